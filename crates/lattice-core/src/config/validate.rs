//! Semantic checks of a parsed config. Each problem names the field and the valid range.

use super::{BatchSize, MoeConfig, RunConfig, Simulation};
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
    }
    out
}

fn check_moe(moe: &MoeConfig, limits: &Limits, issue: &mut impl FnMut(&str, String, String)) {
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
