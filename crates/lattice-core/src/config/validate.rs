//! Semantic checks of a parsed config. Each problem names the field and the valid range.

use super::{BatchSize, FlowsConfig, MoeConfig, RunConfig, Simulation, SpawnConfig};
use crate::geometry::{Dims, DimsError};

/// One problem with a config: the field path, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.message, self.fix)
    }
}

/// Bounds the kernels are written for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_state_size: u32,
    pub max_hidden: u32,
}

impl Default for Limits {
    fn default() -> Self {
        // WGSL kernels keep per-invocation vectors in private arrays of this length.
        Self {
            max_state_size: 256,
            max_hidden: 512,
        }
    }
}

pub(super) fn check(config: &RunConfig, limits: &Limits) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    let mut issue = |field: &str, message: String, fix: String| {
        out.push(ConfigIssue {
            field: field.into(),
            message,
            fix,
        })
    };
    if config.batch.items == 0 {
        issue(
            "batch.items",
            "must be at least 1".into(),
            "set batch.items: 1 or more".into(),
        );
    }
    if let BatchSize::Fixed(0) = config.batch.max_batch_size {
        issue(
            "batch.max_batch_size",
            "Fixed(0) holds no item".into(),
            "use Auto or Fixed(n) with n ≥ 1".into(),
        );
    }
    match &config.simulation {
        Simulation::Moe(moe) => check_moe(moe, limits, &mut issue),
        Simulation::Flows(flows) => {
            check_flows(flows, &mut issue);
            check_texts(config, flows, &mut issue);
        }
    }
    out
}

/// A run takes its inputs from one place.
fn check_texts(config: &RunConfig, f: &FlowsConfig, issue: &mut impl FnMut(&str, String, String)) {
    let Some(t) = &f.texts else { return };
    if config.inputs.is_some() {
        issue(
            "simulation.Flows.texts",
            "texts and inputs both give the embeddings".into(),
            "keep one: texts (embedded at the start of the run) or inputs (precomputed batches)"
                .into(),
        );
    }
    if t.max_batch_size == 0 {
        issue(
            "simulation.Flows.texts.max_batch_size",
            "0 texts per encoder batch encodes nothing".into(),
            "use 1 or more (default 32)".into(),
        );
    }
}

fn check_moe(moe: &MoeConfig, limits: &Limits, issue: &mut impl FnMut(&str, String, String)) {
    check_moe_lattice(moe, issue);
    check_moe_sizes(moe, limits, issue);
}

/// The lattice's size and neighborhood radius.
fn check_moe_lattice(moe: &MoeConfig, issue: &mut impl FnMut(&str, String, String)) {
    let l = &moe.lattice;
    let (w, h, d) = l.dims;
    match Dims::new(w, h, d) {
        Ok(_) => {}
        Err(e @ DimsError::Zero { .. }) => issue(
            "simulation.Moe.lattice.dims",
            e.to_string(),
            "give every dimension a value ≥ 1".into(),
        ),
        Err(e @ DimsError::TooLarge { .. }) => issue(
            "simulation.Moe.lattice.dims",
            e.to_string(),
            "shrink the lattice below 2³² − 1 cells".into(),
        ),
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(l.radius_ratio) {
        issue(
            "simulation.Moe.lattice.radius_ratio",
            format!("{} is not a positive finite number", l.radius_ratio),
            "use a ratio in (0, 1], e.g. 0.3 (DEBUG) or 0.2 (EXPERIMENT)".into(),
        );
    }
    if !positive(l.radius_min) || !positive(l.radius_max) || l.radius_min > l.radius_max {
        issue(
            "simulation.Moe.lattice.radius_min",
            format!(
                "radius_min {} and radius_max {} must be positive with min ≤ max",
                l.radius_min, l.radius_max
            ),
            "the reference values are radius_min: 1.0, radius_max: 100.0".into(),
        );
    }
}

/// The networks' sizes, step counts and the initial scale.
fn check_moe_sizes(moe: &MoeConfig, limits: &Limits, issue: &mut impl FnMut(&str, String, String)) {
    let mut size = |field: &str, v: u32, lo: u32, hi: u32| {
        if v < lo || v > hi {
            issue(
                field,
                format!("{v} is outside {lo}..={hi}"),
                format!("choose a value between {lo} and {hi}"),
            );
        }
    };
    size(
        "simulation.Moe.state_size",
        moe.state_size,
        2,
        limits.max_state_size,
    );
    let hid = limits.max_hidden;
    size("simulation.Moe.local.h1", moe.local.h1, 1, hid);
    size("simulation.Moe.local.h2", moe.local.h2, 1, hid);
    size(
        "simulation.Moe.local.processor_hidden",
        moe.local.processor_hidden,
        1,
        hid,
    );
    size(
        "simulation.Moe.functional.hidden_dim",
        moe.functional.hidden_dim,
        1,
        hid,
    );
    size(
        "simulation.Moe.functional.message_dim",
        moe.functional.message_dim,
        1,
        hid,
    );
    // The CNF MLP has a hidden layer of H/2.
    size(
        "simulation.Moe.distant.ode_hidden",
        moe.distant.ode_hidden,
        2,
        hid,
    );
    size(
        "simulation.Moe.gating.hidden_dim",
        moe.gating.hidden_dim,
        1,
        hid,
    );
    size("simulation.Moe.ode_steps", moe.ode_steps, 1, 1000);
    size("simulation.Moe.steps", moe.steps, 1, 1_000_000);
    if !(moe.init_scale.is_finite() && moe.init_scale >= 0.0) {
        issue(
            "simulation.Moe.init_scale",
            format!("{} is not a finite number ≥ 0", moe.init_scale),
            "the reference value is 0.1".into(),
        );
    }
}

/// Largest move of a flow in one step without noise: ±0.5 per axis.
const MAX_MOVE: f32 = 0.866_025_4;

fn check_flows(f: &FlowsConfig, issue: &mut impl FnMut(&str, String, String)) {
    check_flow_dims(f, issue);
    check_flow_sizes(f, issue);
    check_flow_moves(f, issue);
    check_flow_capacity(f, issue);
    if let Some(sp) = &f.spawn {
        check_flow_spawn(f, sp, issue);
    }
    check_flow_convergence(f, issue);
    if let Some(t) = &f.trace
        && t.capacity == 0
    {
        issue(
            "simulation.Flows.trace.capacity",
            "a ring buffer of 0 events keeps nothing".into(),
            "use 1 or more (default 100000), or remove trace".into(),
        );
    }
}

/// The lattice and its surface.
fn check_flow_dims(f: &FlowsConfig, issue: &mut impl FnMut(&str, String, String)) {
    let (w, h, d) = f.dims;
    if w < 2 || h < 2 || d < 2 {
        issue(
            "simulation.Flows.dims",
            format!(
                "({w}, {h}, {d}): every size must be ≥ 2 (positions are normalized by W−1, H−1 and D)"
            ),
            "the presets are (20, 20, 10), (28, 28, 40) and (100, 100, 50)".into(),
        );
    }
    if u64::from(w) * u64::from(h) > 1 << 24 {
        issue(
            "simulation.Flows.dims",
            format!("a {w}×{h} surface has more than 2²⁴ cells"),
            "use a smaller surface".into(),
        );
    }
}

/// The networks' sizes and the step count.
fn check_flow_sizes(f: &FlowsConfig, issue: &mut impl FnMut(&str, String, String)) {
    let mut size = |field: &str, v: u32, lo: u32, hi: u32, fix: &str| {
        if v < lo || v > hi {
            issue(field, format!("{v} is outside {lo}..={hi}"), fix.into());
        }
    };
    size(
        "simulation.Flows.embedding_dim",
        f.embedding_dim,
        1,
        1 << 16,
        "768 is DistilBERT's width",
    );
    size(
        "simulation.Flows.carrier.hidden",
        f.carrier.hidden,
        2,
        4096,
        "the presets use 256, 512 and 1024",
    );
    size(
        "simulation.Flows.carrier.layers",
        f.carrier.layers,
        1,
        8,
        "the presets use 2 or 3",
    );
    size(
        "simulation.Flows.neuron.hidden",
        f.neuron.hidden,
        1,
        256,
        "the reference value is 32",
    );
    size(
        "simulation.Flows.neuron.output",
        f.neuron.output,
        1,
        256,
        "the reference value is 64",
    );
    size(
        "simulation.Flows.max_steps",
        f.steps(),
        1,
        1_000_000,
        "leave it out for D/2",
    );
    if f.carrier.hidden % 2 == 1 {
        issue(
            "simulation.Flows.carrier.hidden",
            format!(
                "{} is odd; the energy head has Hc/2 units",
                f.carrier.hidden
            ),
            "use an even size".into(),
        );
    }
}

/// The move rule's scale and noise.
fn check_flow_moves(f: &FlowsConfig, issue: &mut impl FnMut(&str, String, String)) {
    if !(f.displacement_scale.is_finite() && f.displacement_scale > 0.0) {
        issue(
            "simulation.Flows.displacement_scale",
            format!("{} is not a positive finite number", f.displacement_scale),
            "1.0 is the reference value; about 40 makes seeded weights complete flows".into(),
        );
    }
    if !(f.noise.is_finite() && f.noise >= 0.0) {
        issue(
            "simulation.Flows.noise",
            format!("{} is not a finite number ≥ 0", f.noise),
            "0 turns noise off; the presets use 0.05 or 0.1".into(),
        );
    }
}

/// Room for the roots.
fn check_flow_capacity(f: &FlowsConfig, issue: &mut impl FnMut(&str, String, String)) {
    let (w, h, _) = f.dims;
    let surface = w * h;
    let capacity = f.capacity();
    if capacity < surface {
        issue(
            "simulation.Flows.capacity_per_item",
            format!("{capacity} slots cannot hold the {surface} root flows of one item (W·H)"),
            format!(
                "use at least {surface}, or leave it out for 2·W·H = {}",
                2 * surface
            ),
        );
    }
}

/// A spawn threshold a move can reach, and children per step.
fn check_flow_spawn(
    f: &FlowsConfig,
    sp: &SpawnConfig,
    issue: &mut impl FnMut(&str, String, String),
) {
    if !(sp.threshold.is_finite() && sp.threshold > 0.0) {
        issue(
            "simulation.Flows.spawn.threshold",
            format!("{} is not a positive finite number", sp.threshold),
            "the presets use 0.1 to 0.5".into(),
        );
    } else {
        // One child needs L ≥ 2τ; noise can add about 4σ per axis.
        let largest = MAX_MOVE * (1.0 + 8.0 * f.noise);
        if 2.0 * sp.threshold > largest {
            issue(
                "simulation.Flows.spawn.threshold",
                format!(
                    "τ = {} needs a move of 2τ = {} to spawn a child, but with noise = {} a flow moves at most about {largest:.3} per step (±0.5 per axis)",
                    sp.threshold,
                    2.0 * sp.threshold,
                    f.noise
                ),
                format!(
                    "lower spawn.threshold below {:.3}, or remove spawn",
                    largest / 2.0
                ),
            );
        }
    }
    if sp.max_per_step == 0 {
        issue(
            "simulation.Flows.spawn.max_per_step",
            "0 children per step means spawn never fires".into(),
            "use 1 or more, or remove spawn".into(),
        );
    }
}

/// A convergence test that can run.
fn check_flow_convergence(f: &FlowsConfig, issue: &mut impl FnMut(&str, String, String)) {
    let Some(c) = &f.convergence else {
        return;
    };
    if !(c.threshold > 0.0 && c.threshold <= 1.0) {
        issue(
            "simulation.Flows.convergence.threshold",
            format!("{} is not a completion rate in (0, 1]", c.threshold),
            "the presets use 0.8 or 0.95".into(),
        );
    }
    if c.min_steps >= f.steps() {
        issue(
            "simulation.Flows.convergence.min_steps",
            format!(
                "{} is not below max_steps = {}, so the convergence test never runs",
                c.min_steps,
                f.steps()
            ),
            "lower convergence.min_steps, raise simulation.Flows.max_steps, or remove convergence"
                .into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LatticeConfig, MoeConfig};

    fn moe() -> MoeConfig {
        crate::config::parse(
            "(simulation: Moe((lattice: (dims: (4, 4, 4)))))",
            std::path::Path::new("t.ron"),
        )
        .map(|c| match c.simulation {
            Simulation::Moe(m) => m,
            Simulation::Flows(_) => unreachable!("parsed a Moe config"),
        })
        .unwrap()
    }

    #[test]
    fn names_the_field_and_range() {
        let mut m = moe();
        m.state_size = 0;
        m.lattice = LatticeConfig {
            radius_ratio: -1.0,
            ..m.lattice
        };
        let config = RunConfig {
            seed: 1,
            batch: Default::default(),
            inputs: None,
            simulation: Simulation::Moe(m),
        };
        let issues = check(&config, &Limits::default());
        let fields: Vec<_> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "simulation.Moe.lattice.radius_ratio",
                "simulation.Moe.state_size"
            ]
        );
        assert!(issues[1].message.contains("2..=256"));
    }
}
