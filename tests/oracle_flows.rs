//! Energy flows against an independent float64 oracle written from docs/model.md B2–B9
//! with its decisions (positions normalized once, reflection kept, L after the clamp,
//! capacity counts live flows, both planes kept, f32-free softmax aggregation), sharing no code
//! with the engine's math: the mapper, the SimpleNeuron, the GRU carrier (PyTorch's gate
//! equations), the heads, the move rule (clamp, reflect, terminate), the spawn count and what a
//! child inherits, and the per-(item, plane, cell) softmax aggregation of both planes and the
//! merged surface. Every step of a run is checked flow by flow (by flow id), on the CPU and on
//! the GPU (lavapipe).
//!
//! W − 1 = H − 1 = 8: a displacement clamped at ±0.5 moves exactly 2 cells, so flows never sit
//! on a rounding tie and the surfaces compare cell for cell.

mod oracle;

use std::collections::HashMap;

use lattice_core::config::{self, FlowsConfig, Simulation};
use lattice_core::flows::aggregate::aggregate;
use lattice_core::flows::mapper::{place_batch, seeded_embeddings};
use lattice_core::flows::run::FlowEngine;
use lattice_core::flows::state::{DoneFlow, event, status};
use lattice_core::flows::{CpuFlows, FlowLayout, FlowNet, FlowShape, FlowState, FlowWeights};
use oracle::{Tensors, concat, gelu, gelu_all, sigmoid};

const CONFIG: &str = "(seed: 3, batch: (items: 3), simulation: Flows((dims: (9, 9, 6), \
    embedding_dim: 16, carrier: (hidden: 32, layers: 2), neuron: (hidden: 8, output: 12), \
    displacement_scale: 80.0, noise: 0.0, reflection: true, capacity_per_item: Some(6000), max_steps: Some(6), \
    spawn: Some((threshold: 0.15, max_per_step: 1)))))";
/// The same lattice with reflection off (a move past a side wall stops at it) and up to three
/// children per spawning flow, over 4 steps (room for every child: capacity never binds).
fn unreflected_three_children() -> String {
    CONFIG
        .replace("reflection: true", "reflection: false")
        .replace("max_per_step: 1", "max_per_step: 3")
        .replace("Some(6000)", "Some(24000)")
        .replace("max_steps: Some(6)", "max_steps: Some(4)")
}
const SEED: u64 = 3;
const ITEMS: u64 = 3;

fn setup() -> (FlowsConfig, FlowWeights) {
    setup_of(CONFIG)
}

fn setup_of(text: &str) -> (FlowsConfig, FlowWeights) {
    let cfg = config::parse(text, "oracle.ron".as_ref()).unwrap();
    let Simulation::Flows(f) = cfg.simulation else {
        unreachable!()
    };
    let w = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(&f)), SEED);
    (f, w)
}

/// B3: the mapper's W·H energies of one embedding.
fn mapper(t: &Tensors, emb: &[f64]) -> Vec<f64> {
    let a = t.layer_norm("mapper.norm1", &gelu_all(&t.linear("mapper.fc1", emb)));
    let b = t.layer_norm("mapper.norm2", &gelu_all(&t.linear("mapper.fc2", &a)));
    let c = t.linear("mapper.fc3", &b);
    let (scale, bias) = (
        t.scalar("mapper.energy_scale"),
        t.scalar("mapper.energy_bias"),
    );
    let pos = t.get("mapper.positional");
    c.iter()
        .enumerate()
        .map(|(k, v)| v.tanh() * scale + bias + pos[k])
        .collect()
}

/// What one step does to one flow.
#[derive(Debug, Clone)]
struct Move {
    pos: [f64; 3],
    energy: f64,
    hidden: Vec<f64>,
    plane: Option<u32>,
    reflected: bool,
    children: u32,
}

fn sane(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-10.0, 10.0)
    }
}

/// B5–B7 for one flow at `p` with `energy` and `hidden` ([layers·Hc]).
fn step_flow(cfg: &FlowsConfig, t: &Tensors, p: [f64; 3], energy: f64, hidden: &[f64]) -> Move {
    // SimpleNeuron: the normalized position as it is (no re-normalization), coord rows 0..3.
    let coord = t.get("neuron.coord.weight");
    let coord_b = t.get("neuron.coord.bias");
    let c: Vec<f64> = (0..3)
        .map(|o| (0..3).map(|i| coord[o * 3 + i] * p[i]).sum::<f64>() + coord_b[o])
        .collect();
    let u = concat(&[&c, &[energy]]);
    let h1 = gelu_all(&t.layer_norm("neuron.norm1", &t.linear("neuron.fc1", &u)));
    let h2 = gelu_all(&t.layer_norm("neuron.norm2", &t.linear("neuron.fc2", &h1)));
    let out = t.linear("neuron.fc3", &h2);
    // GRU carrier, PyTorch's equations, one time step, layer by layer.
    let mut input: Vec<f64> = concat(&[&out, &[energy]]).into_iter().map(sane).collect();
    let hc = cfg.carrier.hidden as usize;
    let mut new_hidden = Vec::new();
    for l in 0..cfg.carrier.layers as usize {
        let h: Vec<f64> = hidden[l * hc..(l + 1) * hc]
            .iter()
            .map(|&v| sane(v))
            .collect();
        let gi = oracle::linear(
            t.get(&format!("carrier.gru.weight_ih_l{l}")),
            Some(t.get(&format!("carrier.gru.bias_ih_l{l}"))),
            &input,
        );
        let gh = oracle::linear(
            t.get(&format!("carrier.gru.weight_hh_l{l}")),
            Some(t.get(&format!("carrier.gru.bias_hh_l{l}"))),
            &h,
        );
        let next: Vec<f64> = (0..hc)
            .map(|k| {
                let r = sigmoid(gi[k] + gh[k]);
                let z = sigmoid(gi[hc + k] + gh[hc + k]);
                let n = (gi[2 * hc + k] + r * gh[2 * hc + k]).tanh();
                ((1.0 - z) * n + z * h[k]).clamp(-10.0, 10.0)
            })
            .collect();
        new_hidden.extend_from_slice(&next);
        input = next;
    }
    let top = input;
    let e1 = gelu_all(&t.linear("carrier.energy1", &top));
    let energy_new = t.linear("carrier.energy2", &e1)[0].tanh();
    let d1: Vec<f64> = t
        .linear("carrier.disp1", &top)
        .iter()
        .map(|&v| gelu(v))
        .collect();
    let d = t.linear("carrier.disp2", &d1);
    let scale = f64::from(cfg.displacement_scale);
    let raw: Vec<f64> = (0..3)
        .map(|a| p[a] + (d[a] * scale).clamp(-0.5, 0.5))
        .collect();
    let next: Vec<f64> = raw.iter().map(|v| v.clamp(-1.0, 1.0)).collect();
    let fold = |v: f64| {
        if v < -1.0 {
            -2.0 - v
        } else if v > 1.0 {
            2.0 - v
        } else {
            v
        }
    };
    let reflected = cfg.reflection && raw[..2].iter().any(|v| !(-1.0..=1.0).contains(v));
    let (x, y) = if cfg.reflection {
        (fold(raw[0]), fold(raw[1]))
    } else {
        (next[0], next[1])
    };
    let plane = if next[2] <= -1.0 {
        Some(status::FRONT)
    } else if next[2] >= 1.0 {
        Some(status::BACK)
    } else {
        None
    };
    // B7 with its decisions: L after the clamp, before the reflection.
    let mut children = 0;
    if let (None, Some(sp)) = (plane, &cfg.spawn) {
        let tau = f64::from(sp.threshold);
        let l = (0..3).map(|a| (next[a] - p[a]).powi(2)).sum::<f64>().sqrt();
        if l > tau {
            children = ((l / tau).floor() as i64 - 1).clamp(0, i64::from(sp.max_per_step)) as u32;
        }
    }
    Move {
        pos: [x, y, next[2]],
        energy: energy_new,
        hidden: new_hidden,
        plane,
        reflected,
        children,
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Tolerances: values are O(1) (positions, energies) or ≤ 10 (hidden); f32 through a few
/// layers of width ≤ 65 stays near 1e-6. A position that took a clamped ±0.5 move is exact.
const REL: f64 = 1e-5;

/// Checks one engine step against the oracle, flow by flow; returns (moved, completed, children).
fn check_step(
    cfg: &FlowsConfig,
    t: &Tensors,
    before: &FlowState,
    after: &FlowState,
    engine: &str,
) -> [usize; 3] {
    let hl = before.hidden_len as usize;
    let mut seen = [0; 3];
    for b in 0..before.items {
        let base = before.slot(b, 0);
        let slot_of: HashMap<u32, usize> = (base..base + before.capacity as usize)
            .filter(|&s| after.status[s] == status::MOVING)
            .map(|s| (after.id[s], s))
            .collect();
        let new_done: HashMap<u32, DoneFlow> = after.done_of(b)
            [before.counts[b as usize].done as usize..]
            .iter()
            .map(|r| (r.id, *r))
            .collect();
        let mut expected_children: HashMap<u32, (u32, [f64; 3], Move)> = HashMap::new();
        let n = before.counts[b as usize].moving as usize;
        for &local in &before.live[base..base + n] {
            let s = base + local as usize;
            let id = before.id[s];
            let p = [0, 1, 2].map(|a| f64::from(before.pos[s][a]));
            let m = step_flow(
                cfg,
                t,
                p,
                f64::from(before.pos[s][3]),
                &f64s(before.hidden_of(s)),
            );
            let what = format!("{engine} item {b} flow {id}");
            let got_pos = match m.plane {
                Some(plane) => {
                    let r = new_done
                        .get(&id)
                        .unwrap_or_else(|| panic!("{what}: should complete"));
                    assert_eq!(r.plane, plane, "{what}: plane");
                    assert_eq!(r.steps, before.steps[s] + 1, "{what}: steps");
                    assert_eq!(
                        r.event & event::REFLECTED != 0,
                        m.reflected,
                        "{what}: reflect"
                    );
                    seen[1] += 1;
                    r.pos
                }
                None => {
                    let &a = slot_of
                        .get(&id)
                        .unwrap_or_else(|| panic!("{what}: should still move"));
                    assert_eq!(after.steps[a], before.steps[s] + 1, "{what}: steps");
                    assert_eq!(
                        after.event[a] & event::REFLECTED != 0,
                        m.reflected,
                        "{what}: reflect"
                    );
                    oracle::assert_close(
                        &format!("{what} hidden"),
                        after.hidden_of(a),
                        &m.hidden,
                        REL,
                        1.0,
                    );
                    seen[0] += 1;
                    after.pos[a]
                }
            };
            let want = [m.pos[0], m.pos[1], m.pos[2], m.energy];
            oracle::assert_close(
                &format!("{what} position/energy"),
                &got_pos,
                &want,
                REL,
                1.0,
            );
            if m.children > 0 {
                expected_children.insert(id, (m.children, p, m));
            }
        }
        // Children: as many as the rule gives (nothing dropped), at the parent's pre-move
        // position, with its new energy and hidden state, age 0.
        let created_before = before.counts[b as usize].created;
        let mut got: HashMap<u32, Vec<usize>> = HashMap::new();
        for (&id, &s) in &slot_of {
            if id >= created_before {
                got.entry(after.parent[s] as u32).or_default().push(s);
            }
        }
        assert_eq!(
            after.counts[b as usize].dropped, 0,
            "{engine}: capacity never binds here"
        );
        for (parent, (k, p, m)) in &expected_children {
            let kids = got.remove(parent).unwrap_or_default();
            assert_eq!(
                kids.len() as u32,
                *k,
                "{engine} item {b} flow {parent}: children"
            );
            for s in kids {
                assert_eq!(after.steps[s], 0);
                let want = [p[0], p[1], p[2], m.energy];
                oracle::assert_close(
                    &format!("{engine} child of {parent}"),
                    &after.pos[s],
                    &want,
                    REL,
                    1.0,
                );
                let hidden = &after.hidden[s * hl..(s + 1) * hl];
                oracle::assert_close(
                    &format!("{engine} child of {parent} hidden"),
                    hidden,
                    &m.hidden,
                    REL,
                    1.0,
                );
                seen[2] += 1;
            }
        }
        assert!(
            got.is_empty(),
            "{engine} item {b}: unexpected children of {:?}",
            got.keys()
        );
    }
    seen
}

/// B9 with the decisions of docs/model.md: per (item, plane, cell) a softmax of
/// w = |e|·1/(1+dist)·(1+0.1·steps)
/// over the flows that completed there, Σ softmax(w)·e; the merged surface takes both planes
/// in one softmax. Cells by round-half-even of (v+1)/2·(n−1).
fn surfaces(shape: &FlowShape, state: &FlowState) -> (Vec<f64>, Vec<f64>) {
    let (w, h) = (shape.w as usize, shape.h as usize);
    let wh = w * h;
    let items = state.items as usize;
    let cell = |v: f32, n: usize| {
        (((f64::from(v) + 1.0) / 2.0 * (n - 1) as f64).round_ties_even() as usize).min(n - 1)
    };
    let mut groups: HashMap<(usize, usize, usize), Vec<(f64, f64)>> = HashMap::new();
    for b in 0..items {
        for r in state.done_of(b as u32) {
            let e = f64::from(r.pos[3]);
            let z = f64::from(r.pos[2]);
            let dist = (z + 1.0).abs().min((z - 1.0).abs());
            let weight = e.abs() / (1.0 + dist) * (1.0 + 0.1 * f64::from(r.steps));
            let plane = if r.plane == status::FRONT { 0 } else { 1 };
            let c = cell(r.pos[1], h) * w + cell(r.pos[0], w);
            groups.entry((b, plane, c)).or_default().push((weight, e));
            groups.entry((b, 2, c)).or_default().push((weight, e));
        }
    }
    let mut planes = vec![0.0; items * 2 * wh];
    let mut merged = vec![0.0; items * wh];
    for ((b, plane, c), flows) in groups {
        let ws: Vec<f64> = flows.iter().map(|f| f.0).collect();
        let sm = oracle::softmax(&ws);
        let v: f64 = sm.iter().zip(&flows).map(|(a, f)| a * f.1).sum();
        if plane == 2 {
            merged[b * wh + c] = v;
        } else {
            planes[(b * 2 + plane) * wh + c] = v;
        }
    }
    (planes, merged)
}

fn run_checked<E: FlowEngine>(engine: &mut E, name: &str, text: &str) -> FlowState
where
    E::Error: std::fmt::Debug,
{
    let (cfg, w) = setup_of(text);
    let t = Tensors::new(&w.layout.tensors, &w.data);
    let mut totals = [0; 3];
    let mut before = engine.state().unwrap();
    for step in 0..cfg.steps() {
        engine.step(&cfg.rule(step)).unwrap();
        let after = engine.state().unwrap();
        let seen = check_step(&cfg, &t, &before, &after, name);
        (0..3).for_each(|k| totals[k] += seen[k]);
        before = after;
    }
    eprintln!(
        "{name}: {} moves, {} completions, {} children checked",
        totals[0], totals[1], totals[2]
    );
    assert!(
        totals.iter().all(|&n| n > 20),
        "{name}: every rule exercised: {totals:?}"
    );
    let (planes, merged) = surfaces(&w.layout.shape, &before);
    let got = aggregate(&w.layout.shape, &before);
    // Softmax of a handful of O(1) weights: f32 keeps ~1e-6 relative.
    oracle::assert_close(&format!("{name} planes"), &got.planes, &planes, 1e-5, 1e-3);
    oracle::assert_close(&format!("{name} merged"), &got.merged, &merged, 1e-5, 1e-3);
    let filled = planes.iter().filter(|v| **v != 0.0).count();
    assert!(
        filled > 20,
        "{name}: {filled} surface cells compared non-empty"
    );
    before
}

fn placed() -> (FlowState, Vec<[u32; 2]>) {
    placed_of(CONFIG)
}

fn placed_of(text: &str) -> (FlowState, Vec<[u32; 2]>) {
    let (cfg, w) = setup_of(text);
    let ids: Vec<u64> = (0..ITEMS).collect();
    let emb = seeded_embeddings(SEED, &ids, cfg.embedding_dim as usize);
    place_batch(&w, &cfg, SEED, &ids, &emb)
}

#[test]
fn the_mapper_places_the_oracles_energies() {
    let (cfg, w) = setup();
    let t = Tensors::new(&w.layout.tensors, &w.data);
    let (state, _) = placed();
    let ids: Vec<u64> = (0..ITEMS).collect();
    let e = cfg.embedding_dim as usize;
    let emb = seeded_embeddings(SEED, &ids, e);
    let wh = w.layout.shape.surface() as usize;
    for b in 0..ITEMS as usize {
        let want = mapper(&t, &f64s(&emb[b * e..(b + 1) * e]));
        let got: Vec<f32> = (0..wh)
            .map(|k| state.pos[state.slot(b as u32, k as u32)][3])
            .collect();
        oracle::assert_close(&format!("item {b} energies"), &got, &want, 1e-5, 1.0);
    }
}

fn cpu_checked(text: &str, name: &str) -> FlowState {
    let (_, w) = setup_of(text);
    let (state, seeds) = placed_of(text);
    let net = FlowNet::new(&w.layout, &w.data);
    let mut engine = CpuFlows { net, state, seeds };
    run_checked(&mut engine, name, text)
}

fn gpu_checked(text: &str, name: &str) {
    let Some(ctx) = lattice_gpu::test_context() else {
        return;
    };
    let (cfg, w) = setup_of(text);
    let (state, seeds) = placed_of(text);
    let kernels =
        lattice_gpu::flows::FlowKernels::new(&ctx, &w.layout, &w.data, cfg.capacity()).unwrap();
    let mut engine = lattice_gpu::flows::GpuFlows::new(&ctx, &kernels, &state, &seeds).unwrap();
    run_checked(&mut engine, name, text);
}

#[test]
fn cpu_flow_steps_match_the_oracle() {
    cpu_checked(CONFIG, "cpu");
}

#[test]
fn gpu_flow_steps_match_the_oracle() {
    gpu_checked(CONFIG, "gpu");
}

/// Reflection off and spawning of up to three children per flow and step: every flow checked,
/// and some flows did stop at a side wall and some did have more than one child.
#[test]
fn cpu_flow_steps_match_the_oracle_without_reflection_and_with_three_children() {
    let text = unreflected_three_children();
    let end = cpu_checked(&text, "cpu unreflected");
    let walls = (0..end.items)
        .flat_map(|b| end.done_of(b).iter().copied())
        .filter(|r| r.pos[..2].iter().any(|v| v.abs() == 1.0))
        .count();
    assert!(walls > 0, "some completed flows stopped at a side wall");
    assert!(
        end.pos
            .iter()
            .all(|p| p[..2].iter().all(|v| v.abs() <= 1.0))
    );
}

#[test]
fn gpu_flow_steps_match_the_oracle_without_reflection_and_with_three_children() {
    gpu_checked(&unreflected_three_children(), "gpu unreflected");
}

/// The library's surfaces (`Simulation::run`, what `lattice run` and Python write), both planes
/// and the merged surface, against the oracle's aggregation of the CPU engine's flows.
#[test]
fn the_librarys_planes_and_merged_surface_match_the_oracle() {
    for text in [CONFIG.to_string(), unreflected_three_children()] {
        let text = text.replace("spawn:", "convergence: None, spawn:");
        let end = cpu_checked(&text, "cpu");
        let (_, w) = setup_of(&text);
        let (planes, merged) = surfaces(&w.layout.shape, &end);
        let sim = lattice::Simulation::from_ron(&text, "oracle.ron", lattice::BackendChoice::Cpu)
            .unwrap();
        let ids: Vec<u64> = (0..ITEMS).collect();
        let items: Vec<lattice::Item> = ids.iter().map(|&i| lattice::Item::seeded(i)).collect();
        let results = sim.run(&items).unwrap();
        let wh = w.layout.shape.surface() as usize;
        for (b, id) in ids.iter().enumerate() {
            let lattice::Output::Flows {
                planes: p,
                merged: m,
                ..
            } = &results.get(*id).unwrap().output
            else {
                panic!("a flows output");
            };
            let (want_p, want_m) = (
                &planes[b * 2 * wh..(b + 1) * 2 * wh],
                &merged[b * wh..(b + 1) * wh],
            );
            oracle::assert_close(&format!("library item {b} planes"), p, want_p, 1e-5, 1e-3);
            oracle::assert_close(&format!("library item {b} merged"), m, want_m, 1e-5, 1e-3);
            assert!(
                m.iter().filter(|v| **v != 0.0).count() > 5,
                "item {b}: a merged surface"
            );
        }
    }
}
