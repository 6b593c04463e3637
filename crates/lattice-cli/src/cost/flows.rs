//! Flow work per flow-step: the matmul FLOPs of one step (throughput reports) and the cost of
//! each kernel as built. Kernels per flow-step (one live flow moving one step): `flow_neuron`,
//! `flow_gru` (all layers together, writing the new hidden states in place of a copy),
//! `flow_heads`; `flow_live`, `flow_plan` and `flow_copy` are counted per flow-step too (the
//! live-list offsets are per item, the plan reads each flow's status, the copy moves a child's
//! hidden state).

use super::KernelCost;
use lattice_core::flows::params::{DISP_HIDDEN, FlowShape};

/// FLOP of LayerNorm then GELU over `n` values.
fn norm_gelu(n: f64) -> f64 {
    8.0 * n + 2.0 + 2.0 * n
}

/// The flow kernels' cost per flow-step; `children` is the children spawned per flow-step
/// (the copy kernel's work), `items` the items per flow-step (the live-list kernel's).
pub fn kernels(sh: &FlowShape, children: f64, items: f64) -> [KernelCost; 6] {
    let (nh, no, hc) = (
        f64::from(sh.neuron_hidden),
        f64::from(sh.neuron_out),
        f64::from(sh.hidden),
    );
    let hl = f64::from(sh.hidden_len());
    let mac = |o: f64, i: f64| 2.0 * o * i;
    // Per item: the children bound and the offset's sum; the count in, the offset out.
    let live = KernelCost {
        kernel: "flow_live",
        flop: 2.0 * items,
        bytes: 8.0 * items,
    };
    // Coordinate encoder (3 of its outputs), fc1 on [coords, energy], two LN+GELU, fc2, fc3.
    let neuron = KernelCost {
        kernel: "flow_neuron",
        flop: mac(3.0, 3.0)
            + mac(nh, 4.0)
            + norm_gelu(nh)
            + mac(nh, nh)
            + norm_gelu(nh)
            + mac(no, nh)
            + 2.0 * no,
        // Position in, the slot index and the carrier input out.
        bytes: 4.0 * (4.0 + 1.0 + no + 1.0),
    };
    let gru_flop: f64 = (0..sh.layers)
        .map(|l| {
            let input = f64::from(sh.layer_in(l));
            // Gates: 3 input and 3 hidden products, sigmoid ×2, tanh, the blend; clamps.
            mac(3.0 * hc, input) + mac(3.0 * hc, hc) + 3.0 * hc + 6.0 * hc + 2.0 * (input + hc)
        })
        .sum();
    let gru_bytes: f64 = (0..sh.layers)
        .map(|l| 4.0 * (f64::from(sh.layer_in(l)) + 2.0 * hc))
        .sum();
    let gru = KernelCost {
        kernel: "flow_gru",
        flop: gru_flop,
        bytes: gru_bytes,
    };
    // Energy head (GELU, tanh), displacement head (GELU), scale, clamp, noise, reflection.
    let heads = KernelCost {
        kernel: "flow_heads",
        flop: mac(hc / 2.0, hc)
            + 2.0 * hc / 2.0
            + mac(1.0, hc / 2.0)
            + 1.0
            + mac(f64::from(DISP_HIDDEN), hc)
            + 2.0 * f64::from(DISP_HIDDEN)
            + mac(3.0, f64::from(DISP_HIDDEN))
            + 30.0,
        // Top hidden layer in; position, previous position, status, event, spawn, steps and
        // the hidden state's buffer index.
        bytes: 4.0 * (hc + 4.0 + 4.0 + 4.0 + 4.0 + 1.0),
    };
    let plan = KernelCost {
        kernel: "flow_plan",
        flop: 4.0,
        // Status, spawn request and live list entry in; the new live list entry out.
        bytes: 4.0 * 4.0,
    };
    let copy = KernelCost {
        kernel: "flow_copy",
        flop: 0.0,
        bytes: children * 2.0 * 4.0 * hl,
    };
    [live, neuron, gru, heads, plan, copy]
}

/// FLOPs of one flow-step (multiply-add = 2): SimpleNeuron, every GRU layer, both heads.
pub fn flops_per_flow_step(sh: &FlowShape) -> f64 {
    let (nh, no, hc) = (
        f64::from(sh.neuron_hidden),
        f64::from(sh.neuron_out),
        f64::from(sh.hidden),
    );
    let neuron = 3.0 * 3.0 + 4.0 * nh + nh * nh + nh * no;
    let gru: f64 = (0..sh.layers)
        .map(|l| 3.0 * hc * (f64::from(sh.layer_in(l)) + hc))
        .sum();
    let heads =
        hc * hc / 2.0 + hc / 2.0 + hc * f64::from(DISP_HIDDEN) + f64::from(DISP_HIDDEN) * 3.0;
    2.0 * (neuron + gru + heads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_network_matches_a_hand_count() {
        // Neuron 8 hidden, 12 out; GRU 16×2; counted by hand as multiply-adds:
        // neuron: coord 3·3, fc1 4·8, fc2 8·8, fc3 8·12 = 9 + 32 + 64 + 96 = 201;
        // GRU layer 0: 3·16·(13 + 16) = 1392, layer 1: 3·16·(16 + 16) = 1536;
        // heads: energy 16·8 + 8·1 = 136, displacement 16·64 + 64·3 = 1216.
        let cfg: lattice_core::config::RunConfig = lattice_core::config::parse(
            "(simulation: Flows((dims: (6, 5, 8), embedding_dim: 16, \
             carrier: (hidden: 16, layers: 2), neuron: (hidden: 8, output: 12))))",
            "t.ron".as_ref(),
        )
        .unwrap();
        let lattice_core::config::Simulation::Flows(f) = &cfg.simulation else {
            unreachable!()
        };
        let macs = 201.0 + 1392.0 + 1536.0 + 136.0 + 1216.0;
        let sh = FlowShape::from_config(f);
        assert_eq!(flops_per_flow_step(&sh), 2.0 * macs);
        // The kernels, counting every operation (LN + GELU over n: 10n + 2):
        // neuron: coords 18, fc1 64, LN+GELU 82, fc2 128, LN+GELU 82, fc3 192, bias and
        // clean-up 24 = 590; reads the position (4), writes the slot and [neuron, energy].
        // GRU layer 0 (input 13): 1248 + 1536 + gates 48 + blend 96 + clamps 58 = 2986;
        // layer 1 (input 16): 1536 + 1536 + 48 + 96 + 64 = 3280.
        // heads: energy 256 + GELU 16 + 16 + tanh 1, displacement 2048 + 128 + 384, move 30.
        let [live, neuron, gru, heads, plan, copy] = kernels(&sh, 0.5, 0.25);
        assert_eq!((live.flop, live.bytes), (0.5, 2.0));
        assert_eq!((neuron.flop, neuron.bytes), (590.0, 4.0 * 18.0));
        assert_eq!(
            (gru.flop, gru.bytes),
            (2986.0 + 3280.0, 4.0 * (45.0 + 48.0))
        );
        assert_eq!((heads.flop, heads.bytes), (2879.0, 4.0 * 33.0));
        assert_eq!((plan.flop, plan.bytes), (4.0, 16.0));
        assert_eq!(copy.bytes, 0.5 * 8.0 * 32.0);
    }
}
