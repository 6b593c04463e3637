//! Whole-step tests of the CPU flow reference on small lattices.

use super::aggregate::aggregate;
use super::mapper::{noise_seed, place_batch, seeded_embeddings};
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
    let ids: Vec<u64> = (0..u64::from(items)).collect();
    let embeddings = seeded_embeddings(seed, &ids, cfg.embedding_dim as usize);
    place_batch(w, cfg.capacity(), seed, &ids, &embeddings).0
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

/// Weights whose carrier moves every flow by the same displacement `d` per step (before the
/// config's scale and the ±0.5 clamp): the displacement head's weights are zeroed and its
/// bias set to `d`.
fn steered(cfg: &FlowsConfig, d: [f32; 3]) -> FlowWeights {
    let mut w = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(cfg)), 7);
    let wr = w.layout.get("carrier.disp2.weight").unwrap().range();
    w.data[wr].fill(0.0);
    let br = w.layout.get("carrier.disp2.bias").unwrap().range();
    w.data[br].copy_from_slice(&d);
    w
}

fn run_with(cfg: &FlowsConfig, w: &FlowWeights, state: FlowState) -> run::BatchOutcome {
    let items = state.items;
    let mut engine = CpuFlows {
        net: FlowNet::new(&w.layout, &w.data),
        state,
        seeds: (0..items).map(|b| noise_seed(7, u64::from(b))).collect(),
    };
    run_batch(&mut engine, cfg, items, 0, None, |_| {}).unwrap()
}

#[test]
fn flows_sent_each_way_land_on_their_own_plane() {
    let cfg = config(&format!("{SMALL}, max_steps: Some(4)"));
    for (dz, plane) in [(-1.0f32, status::FRONT), (1.0, status::BACK)] {
        let w = steered(&cfg, [0.0, 0.0, dz]);
        let out = run_with(&cfg, &w, place(&cfg, &w, 7, 2));
        // From z = 0 at 0.5 per step: the plane is reached on the second step.
        for b in 0..2 {
            for s in 0..30 {
                let slot = out.state.slot(b, s);
                assert_eq!(out.state.status[slot], plane);
                assert_eq!(out.state.steps[slot], 2);
            }
        }
        let surf = aggregate(&w.layout.shape, &out.state);
        let (own, other) = if plane == status::FRONT {
            (0, 1)
        } else {
            (1, 0)
        };
        for b in 0..2usize {
            let at = |p: usize| &surf.planes[(b * 2 + p) * 30..(b * 2 + p + 1) * 30];
            // One flow per cell: the surface gives back each flow's energy exactly.
            for s in 0..30 {
                let e = out.state.pos[out.state.slot(b as u32, s as u32)][3];
                assert_eq!(at(own)[s], e);
            }
            assert!(at(other).iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn a_flow_pushed_past_the_wall_is_reflected_once() {
    let cfg = config(&format!("{SMALL}, max_steps: Some(1)"));
    let w = steered(&cfg, [1.0, 0.0, 0.0]);
    let mut state = place(&cfg, &w, 7, 1);
    state.pos[0][0] = 0.8;
    let out = run_with(&cfg, &w, state);
    let s = &out.state;
    assert_eq!(s.pos[0][0], 2.0 - (0.8f32 + 0.5));
    assert_eq!(s.steps[0], 1, "steps counted once");
    assert_eq!(s.status[0], status::MOVING);
    // Columns with x_n > 0.5 (and the moved flow) left the wall and were folded back.
    let past = (0..30).filter(|&k| s.prev[k][0] + 0.5 > 1.0).count() as u64;
    assert_eq!(out.items[0].reflected, past);
    assert!(past >= 1);
    // With reflection off the same flow is clamped to the wall.
    let cfg = config(&format!("{SMALL}, max_steps: Some(1), reflection: false"));
    let mut state = place(&cfg, &w, 7, 1);
    state.pos[0][0] = 0.8;
    let out = run_with(&cfg, &w, state);
    assert_eq!(out.state.pos[0][0], 1.0);
    assert_eq!(out.items[0].reflected, 0);
}

#[test]
fn positions_stay_continuous_between_steps() {
    let cfg = config(&format!("{SMALL}, max_steps: Some(2)"));
    let (out, _) = run(&cfg, 1);
    let s = &out.state;
    let off_grid = (0..30)
        .filter(|&k| {
            let x = s.pos[k][0];
            x != coords::normalize_xy(coords::quantize(x, 6), 6)
        })
        .count();
    assert!(
        off_grid > 20,
        "only {off_grid} of 30 flows are off the grid"
    );
}

#[test]
fn tiny_capacity_still_places_every_item_and_counts_the_overflow() {
    let cfg = config(&format!(
        "{SMALL}, displacement_scale: 40.0, max_steps: Some(4), capacity_per_item: Some(32), \
         spawn: Some((threshold: 0.05, max_per_step: 3))"
    ));
    let (out, _) = run(&cfg, 3);
    for (b, o) in out.items.iter().enumerate() {
        assert_eq!(o.spawned, 2, "item {b} fills its 2 free slots");
        assert!(o.dropped_by_capacity > 0, "item {b} overflow is counted");
        assert_eq!(o.created, 32);
        assert_eq!(out.state.counts[b].used, 32);
    }
}

#[test]
fn convergence_stops_early_only_when_reached() {
    use convergence::StopReason;
    let base = format!("{SMALL}, displacement_scale: 40.0, max_steps: Some(12)");
    let cfg = config(&format!(
        "{base}, convergence: Some((threshold: 0.3, min_steps: 1, patience: 100))"
    ));
    let (out, _) = run(&cfg, 2);
    for o in &out.items {
        assert_eq!(o.stop, Some(StopReason::ThresholdReached));
        assert!(o.steps < 12, "stopped at {}", o.steps);
    }
    // Unreachable threshold, endless patience, slow flows: runs every step.
    let cfg = config(&format!(
        "{SMALL}, max_steps: Some(6), convergence: Some((threshold: 1.0, min_steps: 1, patience: 100))"
    ));
    let (out, _) = run(&cfg, 2);
    for o in &out.items {
        assert_eq!(o.stop, None);
        assert_eq!(o.steps, 6);
    }
}

#[test]
fn aggregation_ignores_flow_order_and_duplicates() {
    let cfg = config(&format!(
        "{SMALL}, displacement_scale: 40.0, max_steps: Some(8), capacity_per_item: Some(120)"
    ));
    let (out, w) = run(&cfg, 1);
    let sh = w.layout.shape;
    let surf = aggregate(&sh, &out.state);
    // Reverse the order of the slots: a bit-identical surface.
    let mut rev = out.state.clone();
    rev.pos.reverse();
    rev.steps.reverse();
    rev.status.reverse();
    let again = aggregate(&sh, &rev);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&surf.planes), bits(&again.planes));
    assert_eq!(bits(&surf.merged), bits(&again.merged));
    // Duplicate every completed flow into free slots: unchanged wherever a cell held one flow.
    let mut dup = out.state.clone();
    let done: Vec<usize> = (0..120)
        .filter(|&k| dup.status[k] >= status::FRONT)
        .collect();
    let free: Vec<usize> = (0..120)
        .filter(|&k| dup.status[k] == status::FREE)
        .collect();
    let mut copied = 0;
    for (&from, &to) in done.iter().zip(&free) {
        dup.pos[to] = dup.pos[from];
        dup.steps[to] = dup.steps[from];
        dup.status[to] = dup.status[from];
        copied += 1;
    }
    assert!(copied > 0);
    let dsurf = aggregate(&sh, &dup);
    let alone: Vec<usize> = (0..2 * 30)
        .filter(|&c| {
            let plane = if c < 30 { status::FRONT } else { status::BACK };
            done.iter()
                .filter(|&&k| {
                    let p = out.state.pos[k];
                    out.state.status[k] == plane
                        && coords::surface_index(p[0], p[1], 6, 5) as usize == c % 30
                })
                .count()
                == 1
        })
        .collect();
    assert!(!alone.is_empty());
    for c in alone {
        assert_eq!(
            surf.planes[c].to_bits(),
            dsurf.planes[c].to_bits(),
            "cell {c}"
        );
    }
}
