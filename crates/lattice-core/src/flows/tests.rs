//! Whole-step tests of the CPU flow reference on small lattices.

use super::aggregate::aggregate;
use super::mapper::{map_embedding, noise_seed, seeded_embedding};
use super::run::run_batch;
use super::state::{FlowState, status};
use super::*;
use crate::config::{FlowsConfig, Simulation, parse};

pub(crate) fn config(text: &str) -> FlowsConfig {
    let c = parse(
        &format!("(simulation: Flows(({text})))"),
        std::path::Path::new("t.ron"),
    )
    .unwrap();
    match c.simulation {
        Simulation::Flows(f) => f,
        Simulation::Moe(_) => unreachable!(),
    }
}

pub(crate) fn place(cfg: &FlowsConfig, w: &FlowWeights, seed: u64, items: u32) -> FlowState {
    let e: Vec<f32> = (0..items)
        .flat_map(|b| {
            let emb = seeded_embedding(seed, u64::from(b), cfg.embedding_dim as usize);
            map_embedding(&w.layout, &w.data, &emb)
        })
        .collect();
    FlowState::place(&w.layout.shape, cfg.capacity(), &e)
}

fn run(cfg: &FlowsConfig, items: u32) -> (run::BatchOutcome, FlowWeights) {
    let w = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(cfg)), 7);
    let state = place(cfg, &w, 7, items);
    let mut engine = CpuFlows {
        net: FlowNet::new(&w.layout, &w.data),
        state,
        seeds: (0..items).map(|b| noise_seed(7, u64::from(b))).collect(),
    };
    let out = run_batch(&mut engine, cfg, items, 0, None, |_| {}).unwrap();
    (out, w)
}

const SMALL: &str = "dims: (6, 5, 8), embedding_dim: 16, carrier: (hidden: 16, layers: 2), \
                     neuron: (hidden: 8, output: 12)";

#[test]
fn a_minimal_run_completes_flows_on_both_planes() {
    let cfg = config(&format!(
        "{SMALL}, displacement_scale: 40.0, max_steps: Some(12), spawn: Some((threshold: 0.15)), noise: 0.05"
    ));
    let (out, w) = run(&cfg, 3);
    let front: u64 = out.items.iter().map(|o| o.completed_front).sum();
    let back: u64 = out.items.iter().map(|o| o.completed_back).sum();
    let spawned: u64 = out.items.iter().map(|o| o.spawned).sum();
    assert!(front > 0 && back > 0, "front {front} back {back}");
    assert!(spawned > 0);
    let s = aggregate(&w.layout.shape, &out.state);
    assert_eq!(s.planes.len(), 3 * 2 * 30);
    assert!(s.planes.iter().any(|&v| v != 0.0));
    // Steps counted once per step: a root that completed on step k has steps == k + 1 ≤ 12.
    for (slot, &st) in out.state.status.iter().enumerate() {
        if st == status::FRONT || st == status::BACK {
            assert!(out.state.steps[slot] >= 1 && out.state.steps[slot] <= 12);
        }
    }
}
