//! Whole-step tests of the CPU flow reference on small lattices.

use std::ops::ControlFlow;

use super::aggregate::aggregate;
use super::mapper::{noise_seed, place_batch, seeded_embeddings};
use super::run::run_batch;
use super::state::{FlowState, event, status};
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
    place_batch(w, cfg, seed, &ids, &embeddings).0
}

fn run(cfg: &FlowsConfig, items: u32) -> (run::BatchOutcome, FlowWeights) {
    let w = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(cfg)), 7);
    let state = place(cfg, &w, 7, items);
    let mut engine = CpuFlows {
        net: FlowNet::new(&w.layout, &w.data),
        state,
        seeds: (0..items).map(|b| noise_seed(7, u64::from(b))).collect(),
    };
    let out = run_batch(&mut engine, cfg, items, 0, None, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
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
    // Steps counted once per step: a flow that completed on step k has steps ≤ k + 1 ≤ 12.
    let mut records = 0;
    for b in 0..3 {
        for d in out.state.done_of(b) {
            assert!(d.steps >= 1 && d.steps <= 12, "{d:?}");
            assert!(d.pos[2] == -1.0 || d.pos[2] == 1.0);
            records += 1;
        }
    }
    assert_eq!(records, front + back);
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
    run_batch(&mut engine, cfg, items, 0, None, |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
}

#[test]
fn flows_sent_each_way_land_on_their_own_plane() {
    let cfg = config(&format!("{SMALL}, max_steps: Some(4)"));
    for (dz, plane) in [(-1.0f32, status::FRONT), (1.0, status::BACK)] {
        let w = steered(&cfg, [0.0, 0.0, dz]);
        let out = run_with(&cfg, &w, place(&cfg, &w, 7, 2));
        // From z = 0 at 0.5 per step: the plane is reached on the second step, and every
        // slot is free again.
        for b in 0..2 {
            let done = out.state.done_of(b);
            assert_eq!(done.len(), 30);
            for (k, d) in done.iter().enumerate() {
                assert_eq!((d.id, d.plane, d.steps), (k as u32, plane, 2));
            }
            for s in 0..30 {
                assert_eq!(out.state.status[out.state.slot(b, s)], status::FREE);
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
            for d in out.state.done_of(b as u32) {
                assert_eq!(at(own)[d.id as usize], d.pos[3]);
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
        assert!(o.spawned >= 2, "item {b} fills at least its 2 free slots");
        assert!(o.dropped_by_capacity > 0, "item {b} overflow is counted");
        assert_eq!(o.created, 30 + o.spawned);
        let c = out.state.counts[b];
        assert_eq!(u64::from(c.created), o.created);
        // Every flow created is accounted for once: completed, still moving, or in flight.
        assert_eq!(
            o.completed_front + o.completed_back + o.unfinished,
            o.created,
            "item {b}"
        );
    }
}

/// An item of 2×2 roots in 6 slots whose flows are set by hand, after their move.
fn hand_state(moving: &[(u32, u32)], completed: &[(u32, u32)]) -> FlowState {
    let shape = FlowShape::from_config(&config(
        "dims: (2, 2, 4), embedding_dim: 4, carrier: (hidden: 2, layers: 1), \
         neuron: (hidden: 2, output: 2)",
    ));
    let mut s = FlowState::place(&shape, 6, 2, &[0.1, 0.2, 0.3, 0.4]);
    for &(slot, spawn) in moving {
        s.spawn[slot as usize] = spawn;
        s.prev[slot as usize] = [0.5, -0.5, 0.25, 0.7];
    }
    for &(slot, plane) in completed {
        s.status[slot as usize] = plane;
        s.pos[slot as usize][2] = if plane == status::FRONT { -1.0 } else { 1.0 };
        s.event[slot as usize] = event::TERMINATED;
    }
    s.steps.iter_mut().take(4).for_each(|v| *v = 1);
    s
}

#[test]
fn completed_flows_free_their_slots_for_the_next_children() {
    // Roots 0..2 complete, root 3 asks for 7 children: 6 slots − 1 live = 5 fit, 2 dropped.
    let mut s = hand_state(
        &[(3, 7)],
        &[(0, status::FRONT), (1, status::BACK), (2, status::FRONT)],
    );
    cpu::plan(&mut s, 0);
    let c = s.counts[0];
    assert_eq!(
        (
            c.moving, c.spawned, c.dropped, c.front, c.back, c.created, c.done
        ),
        (6, 5, 2, 2, 1, 9, 3)
    );
    // Survivor first, then the children in the lowest free slots, ids numbered on.
    assert_eq!(&s.live[..6], &[3, 0, 1, 2, 4, 5]);
    for (k, &slot) in [0usize, 1, 2, 4, 5].iter().enumerate() {
        assert_eq!(s.id[slot], 4 + k as u32);
        assert_eq!(s.parent[slot], 3);
        assert_eq!(s.status[slot], status::MOVING);
        assert_eq!(
            s.pos[slot],
            [0.5, -0.5, 0.25, 0.7],
            "at the parent's pre-move position"
        );
        assert_eq!(s.steps[slot], 0);
    }
    // The completed flows are kept as records, in list order.
    let done: Vec<(u32, u32)> = s.done_of(0).iter().map(|d| (d.id, d.plane)).collect();
    assert_eq!(
        done,
        [(0, status::FRONT), (1, status::BACK), (2, status::FRONT)]
    );
    // A dropped child is counted once: the next step, with no requests, drops nothing.
    for slot in 0..6 {
        s.spawn[slot] = 0;
    }
    cpu::plan(&mut s, 0);
    assert_eq!((s.counts[0].dropped, s.counts[0].spawned), (0, 0));
    assert_eq!(s.counts[0].moving, 6);
}

#[test]
fn the_spawn_cap_counts_live_flows_not_slots_ever_used() {
    // Nothing completes: 4 live of 6 leave 2 slots, whatever is requested.
    let mut s = hand_state(&[(0, 1), (1, 0), (2, 3), (3, 0)], &[]);
    cpu::plan(&mut s, 0);
    assert_eq!((s.counts[0].spawned, s.counts[0].dropped), (2, 2));
    // Child of flow 0 first (slot 4), then flow 2's first child (slot 5).
    assert_eq!((s.parent[4], s.parent[5]), (0, 2));
    // Flows 0 and 4 complete the next step: 2 slots free again for 2 of flow 2's 3 children.
    s.status[0] = status::BACK;
    s.status[4] = status::FRONT;
    s.spawn.iter_mut().for_each(|v| *v = 0);
    s.spawn[2] = 3;
    cpu::plan(&mut s, 0);
    let c = s.counts[0];
    assert_eq!((c.spawned, c.dropped, c.moving, c.created), (2, 1, 6, 8));
    assert_eq!((s.id[0], s.id[4]), (6, 7), "lowest free slot first");
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
        assert_eq!(o.stop, StopReason::ThresholdReached);
        assert!(o.steps < 12, "stopped at {}", o.steps);
    }
    // Unreachable threshold, endless patience, slow flows: runs every step.
    let cfg = config(&format!(
        "{SMALL}, max_steps: Some(6), convergence: Some((threshold: 1.0, min_steps: 1, patience: 100))"
    ));
    let (out, _) = run(&cfg, 2);
    for o in &out.items {
        assert_eq!(o.stop, StopReason::StepLimit);
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
    let n = out.state.counts[0].done as usize;
    assert!(n > 10, "{n} flows completed");
    // Reverse the order of the records: a bit-identical surface.
    let mut rev = out.state.clone();
    rev.done[..n].reverse();
    let again = aggregate(&sh, &rev);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&surf.planes), bits(&again.planes));
    assert_eq!(bits(&surf.merged), bits(&again.merged));
    // Duplicate every record: unchanged wherever a cell held one flow.
    let mut dup = out.state.clone();
    assert!(dup.done_capacity as usize >= 2 * n);
    dup.done.copy_within(..n, n);
    dup.counts[0].done = 2 * n as u32;
    let dsurf = aggregate(&sh, &dup);
    let records = out.state.done_of(0);
    let alone: Vec<usize> = (0..2 * 30)
        .filter(|&c| {
            let plane = if c < 30 { status::FRONT } else { status::BACK };
            records
                .iter()
                .filter(|d| {
                    d.plane == plane
                        && coords::surface_index(d.pos[0], d.pos[1], 6, 5) as usize == c % 30
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

fn spawn_rule(threshold: f32, max: u32) -> MoveRule {
    MoveRule {
        displacement_scale: 1.0,
        noise: 0.0,
        reflection: true,
        spawn_threshold: threshold,
        spawn_max: max,
        step: 0,
        stop: None,
    }
}

#[test]
fn a_wall_pushed_move_spawns_by_its_length_inside_the_lattice() {
    // At x = 1 pushed further out by 0.1197: inside the lattice the move is (0, 0.2, 0.2),
    // L = 0.283 < 2τ = 0.30, so no child; the unclamped move (L = 0.307) would ask for one.
    let p = [1.0f32, 0.0, 0.0, 0.3];
    let d = [0.1197f32, 0.2, 0.2];
    let rule = spawn_rule(0.15, 1);
    let m = net::apply_move(&rule, p, 0.3, d, 0, [0, 0]);
    assert_eq!(m.status, status::MOVING);
    assert_ne!(m.event & event::REFLECTED, 0, "folded back from the wall");
    assert_eq!(m.spawn, 0);
    let raw_len = (d.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>()).sqrt();
    assert!(raw_len > 0.30, "the unclamped length {raw_len} is over 2τ");
    // The same move away from the wall is inside the lattice all along: one child.
    let inside = net::apply_move(&rule, [0.0, 0.0, 0.0, 0.3], 0.3, d, 0, [0, 0]);
    assert_eq!(inside.spawn, 1);
}

#[test]
fn a_long_move_spawns_int_l_over_tau_minus_one_up_to_the_cap() {
    // Oracle in f64: k = min(int(L/τ) − 1, cap) for L > τ, with L on the clamped move.
    let oracle = |p: [f64; 3], d: [f64; 3], tau: f64, cap: i64| -> i64 {
        let l = (0..3)
            .map(|a| ((p[a] + d[a]).clamp(-1.0, 1.0) - p[a]).powi(2))
            .sum::<f64>()
            .sqrt();
        if l > tau {
            ((l / tau).floor() as i64 - 1).min(cap)
        } else {
            0
        }
    };
    let cases = [
        ([0.0, 0.0, 0.0], [0.3, 0.2, 0.25], 0.1, 3),
        ([0.0, 0.0, 0.0], [0.3, 0.2, 0.25], 0.1, 10),
        ([0.9, -0.9, 0.1], [0.45, -0.45, 0.33], 0.07, 10),
        ([0.2, 0.1, -0.3], [0.15, 0.0, 0.22], 0.1, 2),
        ([0.2, 0.1, -0.3], [0.01, 0.0, 0.02], 0.1, 2),
    ];
    let mut nonzero = 0;
    for (p, d, tau, cap) in cases {
        let want = oracle(p, d, tau, cap);
        let pf = [p[0] as f32, p[1] as f32, p[2] as f32, 0.5];
        let df = [d[0] as f32, d[1] as f32, d[2] as f32];
        let got = net::apply_move(&spawn_rule(tau as f32, cap as u32), pf, 0.5, df, 0, [0, 0]);
        assert_eq!(
            i64::from(got.spawn),
            want,
            "p {p:?} d {d:?} τ {tau} cap {cap}"
        );
        nonzero += usize::from(want > 0);
    }
    assert_eq!(
        nonzero, 4,
        "the cases exercise the cap, the formula and the threshold"
    );
}

/// A CPU engine that notes how many steps each call ran.
struct Counted<'a> {
    inner: CpuFlows<'a>,
    windows: Vec<usize>,
}

impl FlowEngine for Counted<'_> {
    type Error = std::convert::Infallible;

    fn step(&mut self, rule: &MoveRule) -> Result<Vec<ItemCounts>, Self::Error> {
        self.steps(std::slice::from_ref(rule))
            .map(|mut w| w.remove(0))
    }

    fn steps(&mut self, rules: &[MoveRule]) -> Result<Vec<Vec<ItemCounts>>, Self::Error> {
        self.windows.push(rules.len());
        rules.iter().map(|r| self.inner.step(r)).collect()
    }

    fn freeze(&mut self, items: &[u32]) -> Result<(), Self::Error> {
        self.inner.freeze(items)
    }

    fn state(&mut self) -> Result<FlowState, Self::Error> {
        self.inner.state()
    }
}

/// Runs 3 items with windows (or one step at a time, which a trace asks for); the outcome,
/// the engine's window lengths and those `run_batch` reported.
fn run_windowed(cfg: &FlowsConfig, traced: bool) -> (run::BatchOutcome, Vec<usize>, Vec<usize>) {
    let w = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(cfg)), 7);
    let mut engine = Counted {
        inner: CpuFlows {
            net: FlowNet::new(&w.layout, &w.data),
            state: place(cfg, &w, 7, 3),
            seeds: (0..3).map(|b| noise_seed(7, b)).collect(),
        },
        windows: Vec::new(),
    };
    let mut trace = traced.then(|| trace::Trace::new(1000));
    let mut reported = Vec::new();
    let out = run_batch(&mut engine, cfg, 3, 0, trace.as_mut(), |w| {
        reported.push(w.len());
        ControlFlow::Continue(())
    })
    .unwrap();
    (out, engine.windows, reported)
}

#[test]
fn windows_last_until_the_stop_rule_can_act_and_replay_like_single_steps() {
    let moving = "displacement_scale: 0.5, max_steps: Some(12)";
    let conv = "convergence: Some((threshold: 0.99, min_steps: 4, patience: 50))";
    let cfg = config(&format!("{SMALL}, {moving}, {conv}"));
    let (windowed, windows, reported) = run_windowed(&cfg, false);
    assert_eq!(windows, reported);
    assert_eq!(windows[0], 4, "{windows:?}");
    assert!(
        windows.len() > 2,
        "the run goes on past min_steps: {windows:?}"
    );
    assert!(windows[1..].iter().all(|&n| n == 1), "{windows:?}");
    let (single, steps, _) = run_windowed(&cfg, true);
    assert!(steps.iter().all(|&n| n == 1));
    assert_eq!(windowed.items, single.items);
    assert_eq!(windowed.steps, single.steps);
    assert_eq!(windowed.state, single.state);
    // Without a stop rule the whole run is one window.
    let cfg = config(&format!("{SMALL}, {moving}"));
    let (_, windows, _) = run_windowed(&cfg, false);
    assert_eq!(windows, [12]);
}

#[test]
fn noise_adds_sigma_times_the_keyed_gaussian_on_every_axis() {
    let p = [0.1f32, -0.2, 0.05, 0.3];
    let d = [0.01f32, 0.02, -0.03];
    let quiet = net::apply_move(&spawn_rule(0.0, 0), p, 0.3, d, 7, [11, 13]);
    let rule = MoveRule {
        noise: 0.05,
        step: 4,
        ..spawn_rule(0.0, 0)
    };
    let noisy = net::apply_move(&rule, p, 0.3, d, 7, [11, 13]);
    for a in 0..3 {
        let want = quiet.pos[a] + 0.05 * noise::gauss([11, 13], 7, 4, a as u32);
        assert!((noisy.pos[a] - want).abs() < 1e-6, "axis {a}: {noisy:?}");
        assert_ne!(noisy.pos[a], quiet.pos[a], "axis {a} moved by its noise");
    }
}

#[test]
fn without_reflection_a_move_past_a_side_wall_stops_at_it() {
    let rule = MoveRule {
        reflection: false,
        ..spawn_rule(0.0, 0)
    };
    let m = net::apply_move(
        &rule,
        [0.9, -0.9, 0.0, 0.3],
        0.3,
        [0.4, -0.4, 0.1],
        0,
        [0, 0],
    );
    assert_eq!(&m.pos[..3], &[1.0, -1.0, 0.1]);
    assert_eq!(m.event & event::REFLECTED, 0);
    let inside = net::apply_move(
        &rule,
        [0.1, 0.2, 0.0, 0.3],
        0.3,
        [0.3, -0.4, 0.1],
        0,
        [0, 0],
    );
    assert_eq!(
        &inside.pos[..3],
        &[0.4, -0.2, 0.1],
        "inside the walls a move is its own"
    );
}

#[test]
fn spawning_off_asks_for_no_child_and_a_terminated_flow_says_so() {
    // τ = 0 is spawning off: a long move asks for nothing (L/0 would ask for the cap).
    let long = net::apply_move(
        &spawn_rule(0.0, 5),
        [0.0; 4],
        0.3,
        [0.5, 0.5, 0.4],
        0,
        [0, 0],
    );
    assert_eq!((long.status, long.spawn), (status::MOVING, 0));
    assert_eq!(long.event, 0, "a moving flow inside the walls has no event");
    // A flow that reaches a plane terminates (and spawns nothing) even with spawning on.
    let done = net::apply_move(
        &spawn_rule(0.1, 5),
        [0.0, 0.0, 0.8, 0.3],
        0.3,
        [0.0, 0.0, 0.5],
        0,
        [0, 0],
    );
    assert_eq!((done.status, done.spawn), (status::BACK, 0));
    assert_ne!(done.event & event::TERMINATED, 0);
    assert_eq!(done.event & event::REFLECTED, 0);
}

/// Seed 001's tracking metrics, counted by hand: every flow moves +0.5 along z per step
/// from z = 0, except item 0's first 10 flows, which start at z = 0.8 and reach the back
/// plane in one move of 0.2.
#[test]
fn path_lengths_completion_ratios_and_z_movement_are_counted_by_hand() {
    let cfg = config(&format!("{SMALL}, max_steps: Some(4)"));
    let w = steered(&cfg, [0.0, 0.0, 1.0]);
    let mut state = place(&cfg, &w, 7, 2);
    for s in 0..10 {
        let slot = state.slot(0, s);
        state.pos[slot][2] = 0.8;
    }
    let out = run_with(&cfg, &w, state);
    let (a, b) = (&out.items[0], &out.items[1]);
    // Item 0: 10 flows of 1 step and 20 of 2; item 1: 30 flows of 2 steps.
    assert_eq!((a.completed(), a.completed_path_steps), (30, 10 + 2 * 20));
    assert!((a.mean_path_steps - 50.0 / 30.0).abs() < 1e-12);
    assert_eq!((b.completed_path_steps, b.mean_path_steps), (60, 2.0));
    assert_eq!(
        (a.completed_per_created, b.completed_per_created),
        (1.0, 1.0)
    );
    // Step 1 over both items: 60 flows moved, 10 by 0.2 and 50 by 0.5:
    // mean 27/60 = 0.45, variance (10·0.04 + 50·0.25)/60 − 0.45² = 0.0125.
    let (s0, s1) = (&out.steps[0], &out.steps[1]);
    assert_eq!(s0.live, 60);
    assert!((s0.z_move_mean().unwrap() - 0.45).abs() < 1e-6);
    assert!((s0.z_move_variance().unwrap() - 0.0125).abs() < 1e-6);
    // Step 2: the other 50 move 0.5 onto the plane; no spread.
    assert_eq!(s1.live, 50);
    assert!((s1.z_move_mean().unwrap() - 0.5).abs() < 1e-6);
    assert!(s1.z_move_variance().unwrap() < 1e-9);
    assert_eq!(out.steps.len(), 2, "every flow completed by step 2");
}

/// Run-wide step sums add item sums rounded once to the fixed-point unit: the same whatever
/// the order the batches arrive in.
#[test]
fn merged_z_sums_do_not_depend_on_the_batch_order() {
    let cfg = config(&format!(
        "{SMALL}, displacement_scale: 40.0, max_steps: Some(6), noise: 0.05"
    ));
    let (out, _) = run(&cfg, 3);
    let halves = [&out.steps[..], &out.steps[..]];
    let (mut ab, mut ba) = (Vec::new(), Vec::new());
    for h in halves {
        run::StepRecord::merge_into(&mut ab, h);
    }
    for h in halves.iter().rev() {
        run::StepRecord::merge_into(&mut ba, h);
    }
    assert_eq!(ab, ba);
    assert!(out.steps.iter().all(|s| s.z_move_variance().unwrap() > 0.0));
}
