//! The flow kernels' host-side planning against hand counts.
use super::*;
use lattice_core::flows::FlowShape;

fn shape() -> FlowShape {
    let cfg: lattice_core::config::RunConfig = lattice_core::config::parse(
        "(simulation: Flows((dims: (6, 5, 8), carrier: (hidden: 96, layers: 2))))",
        "t.ron".as_ref(),
    )
    .unwrap();
    let lattice_core::config::Simulation::Flows(f) = &cfg.simulation else {
        unreachable!()
    };
    FlowShape::from_config(f)
}

#[test]
fn live_dispatch_offsets_bound_children_and_fold_grids() {
    let sh = shape();
    // 3 items: 10, 0 and 7 moving flows; capacity 12, up to 2 children each.
    let (offsets, grids) = LiveDispatch::plan(&[10, 0, 7], &sh, 12, 2, 2);
    assert_eq!(offsets, [0, 10, 10, 17]);
    // 17 live: 1 neuron group; 1 GRU tile of 32 over 2 unit groups; heads tiles of
    // heads_tile(&sh) flows; children min(20, 12) + 0 + min(14, 12) = 24 copies of HL.
    assert_eq!(grids.neuron, [1, 1, 1]);
    assert_eq!(grids.gru, [2, 1, 1]);
    let heads = 17u32.div_ceil(heads_tile(&sh));
    assert_eq!(grids.heads, [heads.min(2), heads.div_ceil(heads.min(2)), 1]);
    let copies = (24 * sh.hidden_len()).div_ceil(64);
    assert_eq!(grids.copy, [2, copies.div_ceil(2), 1]);
    // Nothing live: every grid empty but the GRU's unit groups.
    let (offsets, grids) = LiveDispatch::plan(&[0, 0], &sh, 12, 2, 2);
    assert_eq!(offsets, [0, 0, 0]);
    assert_eq!(grids.neuron, [0, 1, 1]);
    assert_eq!(grids.gru, [2, 0, 1]);
    assert_eq!(grids.copy, [0, 1, 1]);
}
