//! docs/weights.md lists every MoE and flow tensor with its shape; this keeps it true.

use std::collections::BTreeMap;

use lattice_core::flows::{FlowLayout, FlowShape};
use lattice_core::moe::{MoeShape, ParamLayout};

/// Evaluates a shape term of the doc ("2S", "S+fm+16", "H/2", …) for the given sizes.
fn eval(expr: &str, sizes: &BTreeMap<&str, u32>) -> u32 {
    expr.split('+')
        .map(|term| {
            let term = term.trim();
            let (term, div) = term.strip_suffix("/2").map_or((term, 1), |t| (t, 2));
            let digits: String = term.chars().take_while(|c| c.is_ascii_digit()).collect();
            let symbol = &term[digits.len()..];
            let factor = if digits.is_empty() {
                1
            } else {
                digits.parse().unwrap()
            };
            let value = if symbol.is_empty() { 1 } else { sizes[symbol] };
            factor * value / div
        })
        .sum()
}

#[test]
fn every_tensor_is_documented_with_its_shape() {
    let sh = MoeShape {
        s: 24,
        local_h1: 12,
        local_h2: 10,
        local_ph: 14,
        func_hidden: 12,
        func_msg: 8,
        ode_hidden: 48,
        gate_hidden: 20,
    };
    let sizes: BTreeMap<&str, u32> = [
        ("S", sh.s),
        ("h1", sh.local_h1),
        ("h2", sh.local_h2),
        ("ph", sh.local_ph),
        ("fh", sh.func_hidden),
        ("fm", sh.func_msg),
        ("H", sh.ode_hidden),
        ("gh", sh.gate_hidden),
        ("T", sh.time_width()),
    ]
    .into();
    let doc = section("# MoE weights");
    let documented = documented(&doc, &sizes);
    let layout = ParamLayout::new(sh);
    let actual: BTreeMap<String, Vec<u32>> = layout
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    assert_eq!(documented, actual);
}

/// The lines of docs/weights.md from `heading` to the next top-level heading.
fn section(heading: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/weights.md")).unwrap();
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("{heading} in docs/weights.md"));
    let rest = &doc[start + heading.len()..];
    let end = rest.find("\n# ").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// `name → shape` of every table row of a section.
fn documented(doc: &str, sizes: &BTreeMap<&str, u32>) -> BTreeMap<String, Vec<u32>> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let (name, rest) = l.split_once("` | [").unwrap();
            let dims = rest.split_once(']').unwrap().0;
            (
                name.to_string(),
                dims.split(',').map(|d| eval(d, sizes)).collect(),
            )
        })
        .collect()
}

#[test]
fn every_flow_tensor_is_documented_with_its_shape() {
    // Sizes chosen so no two symbols coincide.
    let sh = FlowShape {
        w: 5,
        h: 3,
        d: 8,
        embed: 40,
        hidden: 10,
        layers: 2,
        neuron_hidden: 6,
        neuron_out: 7,
        collector: true,
    };
    let sizes: BTreeMap<&str, u32> = [
        ("E", sh.embed),
        ("W", sh.w),
        ("H", sh.h),
        ("WH", sh.surface()),
        ("I", sh.inner()),
        ("NH", sh.neuron_hidden),
        ("NO", sh.neuron_out),
        ("Hc", sh.hidden),
    ]
    .into();
    let documented = documented(&section("# Flow weights"), &sizes);
    let actual: BTreeMap<String, Vec<u32>> = FlowLayout::new(sh)
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    assert_eq!(documented, actual);
}
