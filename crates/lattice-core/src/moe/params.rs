//! The MoE network's tensors: names, shapes, initialisation, and their places in one flat
//! f32 buffer that the CPU kernel and the WGSL kernel both index with the same offsets.
//! docs/weights.md lists every tensor; this file is the source of truth it is checked against.

use crate::config::MoeConfig;
use crate::tensors::{Init, Layout, LayoutBuilder, TensorLayout};

/// Width of the reference system's (always zero) external input to the GNN update.
pub const EXTERNAL_INPUT: u32 = 16;

/// Network sizes, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoeShape {
    pub s: u32,
    pub local_h1: u32,
    pub local_h2: u32,
    pub local_ph: u32,
    pub func_hidden: u32,
    pub func_msg: u32,
    pub ode_hidden: u32,
    pub gate_hidden: u32,
}

impl MoeShape {
    /// The reference system's DEBUG preset sizes (docs/model.md A1).
    pub const DEBUG: Self = Self {
        s: 24,
        local_h1: 12,
        local_h2: 12,
        local_ph: 12,
        func_hidden: 12,
        func_msg: 8,
        ode_hidden: 48,
        gate_hidden: 24,
    };

    /// The reference system's EXPERIMENT preset sizes (40³, S = 64; ODE hidden max(16, S/2)).
    pub const EXPERIMENT: Self = Self {
        s: 64,
        local_h1: 32,
        local_h2: 16,
        local_ph: 64,
        func_hidden: 32,
        func_msg: 16,
        ode_hidden: 32,
        gate_hidden: 64,
    };

    /// The reference system's OPTIMIZED preset sizes (100³, S = 128).
    pub const OPTIMIZED: Self = Self {
        s: 128,
        local_h1: 64,
        local_h2: 32,
        local_ph: 128,
        func_hidden: 64,
        func_msg: 32,
        ode_hidden: 64,
        gate_hidden: 128,
    };

    pub fn from_config(c: &MoeConfig) -> Self {
        Self {
            s: c.state_size,
            local_h1: c.local.h1,
            local_h2: c.local.h2,
            local_ph: c.local.processor_hidden,
            func_hidden: c.functional.hidden_dim,
            func_msg: c.functional.message_dim,
            ode_hidden: c.ode_hidden(),
            gate_hidden: c.gating.hidden_dim,
        }
    }

    /// Width of the CNF time embedding, `int(0.25·H)`; used only when it fits in S.
    pub fn time_width(&self) -> u32 {
        self.ode_hidden / 4
    }
    pub fn has_time(&self) -> bool {
        let t = self.time_width();
        t >= 1 && t <= self.s
    }
}

impl MoeConfig {
    pub fn ode_hidden(&self) -> u32 {
        self.distant.ode_hidden
    }
}

/// Every tensor of a MoE network (in buffer order) and the sizes they come from. Derefs to its
/// [`TensorLayout`] for lookups.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    pub shape: MoeShape,
    pub net: TensorLayout,
}

impl std::ops::Deref for ParamLayout {
    type Target = TensorLayout;
    fn deref(&self) -> &TensorLayout {
        &self.net
    }
}

impl Layout for ParamLayout {
    fn tensors(&self) -> &TensorLayout {
        &self.net
    }
}

fn cnf(b: &mut LayoutBuilder, p: &str, sh: &MoeShape) {
    let (s, h) = (sh.s, sh.ode_hidden);
    b.norm(&format!("{p}.norm_in"), 2 * s);
    b.linear(&format!("{p}.mlp1"), 2 * s, h);
    b.linear(&format!("{p}.mlp2"), h, h / 2);
    b.linear(&format!("{p}.mlp3"), h / 2, s);
    if sh.has_time() {
        b.push(
            format!("{p}.time.weight"),
            vec![sh.time_width(), 1],
            Init::Uniform { fan_in: 1 },
        );
    }
    b.norm(&format!("{p}.norm_out"), s);
    b.scalar(&format!("{p}.lambda"), 0.1);
}

impl ParamLayout {
    pub fn new(shape: MoeShape) -> Self {
        let sh = shape;
        let s = sh.s;
        let mut b = TensorLayout::builder(format!("MoE network (state_size {s})"));
        b.linear("local.agg1", s, sh.local_h1);
        b.linear("local.agg2", sh.local_h1, sh.local_h2);
        b.linear("local.proc1", s + sh.local_h2, sh.local_ph);
        b.linear("local.proc2", sh.local_ph, s);
        b.norm("local.norm", s);
        b.scalar("local.alpha", 0.1);
        b.scalar("local.beta", 0.9);

        b.linear("functional.gate1", 2 * s, s / 2);
        b.linear("functional.gate2", s / 2, 1);
        b.linear("functional.gnn.message1", 2 * s, sh.func_hidden);
        b.linear("functional.gnn.message2", sh.func_hidden, sh.func_msg);
        b.linear("functional.gnn.attention1", sh.func_msg + s, sh.func_msg);
        b.linear("functional.gnn.attention2", sh.func_msg, 1);
        let update_in = s + sh.func_msg + EXTERNAL_INPUT;
        b.linear("functional.gnn.update_gate", update_in, s);
        b.linear("functional.gnn.reset_gate", update_in, s);
        b.linear("functional.gnn.candidate", update_in, s);
        cnf(&mut b, "functional.cnf", &sh);
        b.linear("functional.out", 2 * s, s);
        b.norm("functional.out_norm", s);

        cnf(&mut b, "distant", &sh);

        b.norm("gating.norm", s);
        b.linear("gating.fc1", 2 * s, sh.gate_hidden);
        b.linear("gating.fc2", sh.gate_hidden, 3);

        Self {
            shape,
            net: b.build(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debug() -> MoeShape {
        MoeShape::DEBUG
    }

    #[test]
    fn parameter_counts_match_the_reference_system() {
        // docs/model.md A6: DEBUG local 1262, functional 10605 and distant 4287 (both
        // counting 2 adaptive-solver scalars this engine does not have), gating 1299.
        let l = ParamLayout::new(debug());
        assert_eq!(l.count("local."), 1262);
        assert_eq!(l.count("functional."), 10605 - 2);
        assert_eq!(l.count("distant."), 4287 - 2);
        assert_eq!(l.count("gating."), 1299);
        let exp = ParamLayout::new(MoeShape::EXPERIMENT);
        assert_eq!(exp.count("local."), 12082);
        assert_eq!(exp.count("functional."), 43277 - 2);
        assert_eq!(exp.count("distant."), 6139 - 2);
        assert_eq!(exp.count("gating."), 8579);
    }

    #[test]
    fn offsets_are_contiguous() {
        let l = ParamLayout::new(debug());
        let mut next = 0;
        for t in &l.tensors {
            assert_eq!(t.offset, next, "{}", t.name);
            next += t.len();
        }
        assert_eq!(next, l.total());
    }
}
