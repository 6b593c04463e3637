//! Work per flow-step, for throughput reports: matmul FLOPs (2 per multiply-add) of the
//! SimpleNeuron, every GRU layer and both heads. Activations and norms are not counted.

use super::params::{DISP_HIDDEN, FlowShape};

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
        let cfg: crate::config::RunConfig = crate::config::parse(
            "(simulation: Flows((dims: (6, 5, 8), embedding_dim: 16, \
             carrier: (hidden: 16, layers: 2), neuron: (hidden: 8, output: 12))))",
            "t.ron".as_ref(),
        )
        .unwrap();
        let crate::config::Simulation::Flows(f) = &cfg.simulation else {
            unreachable!()
        };
        let macs = 201.0 + 1392.0 + 1536.0 + 136.0 + 1216.0;
        assert_eq!(flops_per_flow_step(&FlowShape::from_config(f)), 2.0 * macs);
    }
}
