//! Every kernel of the table (`lattice_gpu::shaders::KERNELS`) is composed, parsed and validated
//! by naga, for every shipped preset's header, so a shader error fails `cargo test` on a machine
//! without a GPU; and the table is checked against the WGSL: the entry point, its workgroup
//! size, and each binding's name and position. Every file under shaders/ must belong to some
//! kernel.

use std::collections::BTreeSet;
use std::path::Path;

use lattice_core::config::{self, Simulation};
use lattice_core::flows::{FlowLayout, FlowShape};
use lattice_core::moe::{MoeShape, ParamLayout};
use lattice_gpu::shaders::{KERNELS, KernelSpec, Specialised, compose};

fn validate(what: &str, source: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
    module
}

/// The table's entry point, workgroup size and bindings are the WGSL's.
fn check_against_table(spec: &KernelSpec, module: &naga::Module) {
    let name = spec.name;
    let entry = module
        .entry_points
        .iter()
        .find(|e| e.name == spec.entry)
        .unwrap_or_else(|| panic!("{name}: no entry point {}", spec.entry));
    assert_eq!(entry.stage, naga::ShaderStage::Compute, "{name}");
    assert_eq!(
        entry.workgroup_size,
        [spec.workgroup, 1, 1],
        "{name}: workgroup size"
    );
    let mut bound: Vec<(u32, u32, String)> = module
        .global_variables
        .iter()
        .filter_map(|(_, g)| {
            let b = g.binding.as_ref()?;
            Some((b.group, b.binding, g.name.clone().unwrap_or_default()))
        })
        .collect();
    bound.sort();
    let expected: Vec<(u32, u32, String)> = (spec.bindings.iter().enumerate())
        .map(|(k, n)| (0, k as u32, n.to_string()))
        .collect();
    assert_eq!(bound, expected, "{name}: bindings (group, binding, name)");
}

fn presets(names: &[&str]) -> Vec<(String, Simulation)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    names
        .iter()
        .map(|p| {
            (
                p.to_string(),
                config::load(&root.join(p)).unwrap().config.simulation,
            )
        })
        .collect()
}

#[test]
fn every_kernel_validates_and_matches_the_table_for_every_preset() {
    let moe = presets(&[
        "debug.ron",
        "experiment.ron",
        "optimized.ron",
        "periodic.ron",
    ]);
    let flows = presets(&[
        "flows_debug.ron",
        "flows_experiment.ron",
        "flows_optimized.ron",
    ]);
    let mut checked = 0;
    for spec in KERNELS {
        let headers: Vec<(String, String)> = match spec.header {
            Specialised::No => vec![("-".into(), String::new())],
            Specialised::Moe => (moe.iter())
                .map(|(p, sim)| {
                    let Simulation::Moe(m) = sim else {
                        panic!("{p} is a Moe preset")
                    };
                    let layout = ParamLayout::new(MoeShape::from_config(m));
                    (p.clone(), lattice_gpu::moe::header(&layout, m.ode_steps))
                })
                .collect(),
            Specialised::Flow => (flows.iter())
                .map(|(p, sim)| {
                    let Simulation::Flows(f) = sim else {
                        panic!("{p} is a Flows preset")
                    };
                    let layout = FlowLayout::new(FlowShape::from_config(f));
                    (p.clone(), lattice_gpu::flows::header(&layout, f.capacity()))
                })
                .collect(),
        };
        for (preset, header) in headers {
            let module = validate(
                &format!("{} ({preset})", spec.name),
                &compose(spec, &header),
            );
            check_against_table(spec, &module);
            checked += 1;
        }
    }
    assert_eq!(checked, 1 + 3 * 4 + 6 * 3);
}

#[test]
fn a_binding_out_of_order_is_caught() {
    // The check itself can fail: the gather kernel against a table with two bindings swapped.
    let mut spec = lattice_gpu::shaders::GATHER;
    spec.bindings = &[
        "params",
        "class_ptr",
        "stencil",
        "col_idx",
        "states",
        "means",
    ];
    let module = validate("gather", &compose(&spec, ""));
    let caught = std::panic::catch_unwind(|| check_against_table(&spec, &module));
    assert!(caught.is_err());
}

#[test]
fn every_shader_file_is_part_of_a_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk = BTreeSet::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "wgsl") {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                on_disk.insert(rel);
            }
        }
    }
    let used: BTreeSet<String> = KERNELS
        .iter()
        .flat_map(|k| k.parts.iter().map(|f| f.to_string()))
        .collect();
    assert_eq!(
        on_disk, used,
        "shaders/ and lattice_gpu::shaders::KERNELS disagree"
    );
}
