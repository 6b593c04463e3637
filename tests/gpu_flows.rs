//! GPU vs CPU for the flow step on lavapipe (or any adapter): the debug preset (20×20×10, GRU
//! 256×2, noise, spawn and reflection on, a capacity that binds), B = 4, run to the end: the
//! same flows complete on the same planes after the same steps, states and surfaces within
//! relative 1e-4; two runs bit-identical on each backend; an item's surface the same alone and
//! in a batch of 8; the live-list kernel equal to its CPU twin, and grids folded at a few
//! workgroups per dimension giving the same bits; every GPU run one window (the device applies
//! the stop rule, the host confirms it), its stop reasons those of the CPU; a GRU width off
//! the kernel's vec4 grid matching too. Skips without an adapter unless LATTICE_REQUIRE_GPU=1
//! (CI sets it).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::OnceLock;

use lattice_core::config::{self, FlowsConfig, Simulation};
use lattice_core::flows::aggregate::aggregate;
use lattice_core::flows::convergence::StopReason;
use lattice_core::flows::coords::quantize;
use lattice_core::flows::mapper::{place_batch, seeded_embeddings};
use lattice_core::flows::run::FlowEngine;
use lattice_core::flows::run::{BatchOutcome, StepRecord};
use lattice_core::flows::state::{DoneFlow, status};
use lattice_core::flows::{
    CpuFlows, FlowLayout, FlowNet, FlowShape, FlowState, FlowWeights, ItemCounts, run_batch,
};
use lattice_gpu::GpuContext;
use lattice_gpu::flows::{FlowKernels, GpuFlows, LiveDispatch};

const ITEMS: u32 = 4;
const SEED: u64 = 42;
/// Same formulas in the same order on both sides; what remains is the driver's
/// exp/tanh/log/cos and FMA contraction, compounded over 5 steps of a 2-layer GRU.
const REL_TOL: f32 = 1e-4;

struct Setup {
    ctx: GpuContext,
    kernels: FlowKernels,
    cfg: FlowsConfig,
    weights: FlowWeights,
}

fn setup() -> Option<&'static Setup> {
    static SHARED: OnceLock<Option<Setup>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let ctx = lattice_gpu::test_context()?;
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/flows_debug.ron");
            let loaded = config::load(std::path::Path::new(path)).unwrap();
            let Simulation::Flows(cfg) = loaded.config.simulation else {
                panic!("flows_debug.ron is a Flows config");
            };
            let weights = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(&cfg)), SEED);
            let kernels =
                FlowKernels::new(&ctx, &weights.layout, &weights.data, cfg.capacity()).unwrap();
            Some(Setup {
                ctx,
                kernels,
                cfg,
                weights,
            })
        })
        .as_ref()
}

fn placed(s: &Setup, ids: &[u64]) -> (FlowState, Vec<[u32; 2]>) {
    let embeddings = seeded_embeddings(SEED, ids, s.cfg.embedding_dim as usize);
    place_batch(&s.weights, &s.cfg, SEED, ids, &embeddings)
}

fn first_items() -> Vec<u64> {
    (0..u64::from(ITEMS)).collect()
}

fn gpu_run(s: &Setup, ids: &[u64]) -> BatchOutcome {
    gpu_run_folded(s, &s.cfg, ids, None)
}

/// A GPU run of `cfg`, its grids folded at `max_groups` workgroups per dimension when given.
fn gpu_run_folded(
    s: &Setup,
    cfg: &FlowsConfig,
    ids: &[u64],
    max_groups: Option<u32>,
) -> BatchOutcome {
    let (state, seeds) = placed(s, ids);
    let mut engine = GpuFlows::new(&s.ctx, &s.kernels, &state, &seeds).unwrap();
    if let Some(n) = max_groups {
        engine.fold_grids_at(n);
    }
    let mut windows = 0;
    let out = run_batch(&mut engine, cfg, ids.len() as u32, 0, None, |_| {
        windows += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    // The GPU applies the stop rule itself: the 5 steps run back to back, one read-back.
    assert_eq!(windows, 1, "one window for the whole run");
    out
}

fn cpu_run(s: &Setup, ids: &[u64]) -> BatchOutcome {
    cpu_run_of(s, &s.cfg, ids)
}

fn cpu_run_of(s: &Setup, cfg: &FlowsConfig, ids: &[u64]) -> BatchOutcome {
    let (state, seeds) = placed(s, ids);
    let mut engine = CpuFlows {
        net: FlowNet::new(&s.weights.layout, &s.weights.data),
        state,
        seeds,
    };
    run_batch(&mut engine, cfg, ids.len() as u32, 0, None, |_| {
        ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| match e {})
}

/// The first items' runs, made once per test binary and shared by the tests that need them
/// (lavapipe takes seconds per run).
fn gpu_first(s: &Setup) -> &'static BatchOutcome {
    static RUN: OnceLock<BatchOutcome> = OnceLock::new();
    RUN.get_or_init(|| gpu_run(s, &first_items()))
}

fn cpu_first(s: &Setup) -> &'static BatchOutcome {
    static RUN: OnceLock<BatchOutcome> = OnceLock::new();
    RUN.get_or_init(|| cpu_run(s, &first_items()))
}

/// Positions and energies live in [−1, 1]: relative to that range.
fn close(a: f32, b: f32) -> bool {
    approx::relative_eq!(a, b, epsilon = REL_TOL, max_relative = REL_TOL)
}

/// The surface index (into `[items, 2, H, W]`) of a record on both backends' quantization.
fn surface_index(sh: &FlowShape, b: u32, r: &DoneFlow) -> usize {
    let plane = usize::from(r.plane == status::BACK);
    let (w, h) = (sh.w as usize, sh.h as usize);
    let cell = quantize(r.pos[1], sh.h) as usize * w + quantize(r.pos[0], sh.w) as usize;
    (b as usize * 2 + plane) * w * h + cell
}

/// Compares two items' completion records: the same flows (ids) on the same planes after
/// the same steps with the same events, positions and energies within tolerance. Returns the
/// surface cells a record lands in differently (allowed only on a rounding tie: both cells are
/// then left out of the surface comparison) and the largest difference seen.
fn compare_records(
    sh: &FlowShape,
    b: u32,
    c: &[DoneFlow],
    g: &[DoneFlow],
) -> (BTreeSet<usize>, f32) {
    assert_eq!(c.len(), g.len(), "item {b}: completed flows");
    let (mut ties, mut worst) = (BTreeSet::new(), 0.0f32);
    for (rc, rg) in c.iter().zip(g) {
        let what = format!("item {b} flow {}", rc.id);
        assert_eq!(
            (rc.id, rc.plane, rc.steps, rc.event),
            (rg.id, rg.plane, rg.steps, rg.event),
            "{what}"
        );
        for a in 0..4 {
            worst = worst.max((rc.pos[a] - rg.pos[a]).abs());
            assert!(
                close(rc.pos[a], rg.pos[a]),
                "{what} axis {a}: cpu {rc:?} gpu {rg:?}"
            );
        }
        let (kc, kg) = (surface_index(sh, b, rc), surface_index(sh, b, rg));
        if kc != kg {
            for (a, n) in [(0, sh.w), (1, sh.h)] {
                let t = (rc.pos[a] + 1.0) * 0.5 * (n - 1) as f32;
                let on_tie = (t.fract() - 0.5).abs() < 1e-3;
                let same = quantize(rc.pos[a], n) == quantize(rg.pos[a], n);
                assert!(same || on_tie, "{what}: a cell apart, not a tie");
            }
            ties.extend([kc, kg]);
        }
    }
    (ties, worst)
}

/// The same counts every step, and z-movement sums that agree to rounding (the GPU sums a
/// step's moves in a tree, the CPU in list order).
fn assert_same_steps(cpu: &[StepRecord], gpu: &[StepRecord]) {
    let strip = |r: &[StepRecord]| -> Vec<StepRecord> {
        r.iter()
            .map(|s| StepRecord {
                z_moved_fx: 0,
                z_moved_sq_fx: 0,
                ..s.clone()
            })
            .collect()
    };
    assert_eq!(strip(cpu), strip(gpu), "per-step counts");
    for (c, g) in cpu.iter().zip(gpu) {
        for (a, b) in [
            (c.z_move_mean(), g.z_move_mean()),
            (c.z_move_variance(), g.z_move_variance()),
        ] {
            let (a, b) = (a.unwrap_or(0.0), b.unwrap_or(0.0));
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                "step {}: z {a} vs {b}",
                c.step
            );
        }
    }
}

/// Counts without the z-movement sums.
fn without_z(counts: &[ItemCounts]) -> Vec<ItemCounts> {
    counts
        .iter()
        .map(|c| ItemCounts {
            z_moved: 0.0,
            z_moved_sq: 0.0,
            ..*c
        })
        .collect()
}

/// What [`compare_runs`] compared.
struct Compared {
    ties: BTreeSet<usize>,
    worst: f32,
    completed: usize,
    live: usize,
}

/// The CPU and GPU runs of `s` agree: the same flows complete on the same planes after the
/// same steps, slots are reused in the same order, records, positions and hidden states of
/// the live flows within tolerance.
fn compare_runs(s: &Setup, cpu: &BatchOutcome, gpu: &BatchOutcome) -> Compared {
    assert_same_steps(&cpu.steps, &gpu.steps);
    assert_eq!(cpu.items, gpu.items, "per-item totals");
    let (c, g) = (&cpu.state, &gpu.state);
    assert_eq!(without_z(&c.counts), without_z(&g.counts));
    // Slots are reused in the same order: the same flow in every slot.
    assert_eq!(c.status, g.status);
    assert_eq!(c.id, g.id);
    assert_eq!(c.parent, g.parent);
    assert_eq!(c.steps, g.steps);
    let sh = s.weights.layout.shape;
    let (mut ties, mut worst, mut completed) = (BTreeSet::new(), 0.0f32, 0);
    for b in 0..cpu.items.len() as u32 {
        let (t, w) = compare_records(&sh, b, c.done_of(b), g.done_of(b));
        completed += c.done_of(b).len();
        worst = worst.max(w);
        ties.extend(t);
    }
    let mut live = 0;
    let hl = c.hidden_len as usize;
    for slot in c.live_slots() {
        for a in 0..4 {
            assert!(
                close(c.pos[slot][a], g.pos[slot][a]),
                "slot {slot} axis {a}"
            );
        }
        // The GPU's hidden states ping-pong between two buffers: each slot is read back
        // from the one its flow last wrote (a step stale would differ by far more).
        let (hc, hg) = (&c.hidden[slot * hl..][..hl], &g.hidden[slot * hl..][..hl]);
        for (k, (a, b)) in hc.iter().zip(hg).enumerate() {
            assert!(close(*a, *b), "slot {slot} hidden {k}: cpu {a} gpu {b}");
        }
        live += 1;
    }
    Compared {
        ties,
        worst,
        completed,
        live,
    }
}

#[test]
fn gpu_matches_cpu_on_the_debug_preset() {
    let Some(s) = setup() else { return };
    let (cpu, gpu) = (cpu_first(s), gpu_first(s));
    let dropped: u64 = cpu.items.iter().map(|o| o.dropped_by_capacity).sum();
    assert!(dropped > 0, "the preset's capacity binds");
    let Compared {
        ties,
        worst,
        completed,
        live,
    } = compare_runs(s, cpu, gpu);
    assert!(completed > 100, "the preset completes flows ({completed})");
    assert!(live > 100, "{live} live flows compared");
    let sh = s.weights.layout.shape;
    let (c, g) = (&cpu.state, &gpu.state);
    // Surfaces within tolerance, except the cells a tie moved a flow between. Values are
    // softmax means of energies in [−1, 1]; f32 differences of ~1e-6 in the weights give
    // ~1e-6 in the mean, so REL_TOL of the largest value is ample and a wrong formula is not.
    let (sc, sg) = (aggregate(&sh, c), aggregate(&sh, g));
    let scale = sc.planes.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    let mut compared = 0;
    for (k, (a, b)) in sc.planes.iter().zip(&sg.planes).enumerate() {
        if ties.contains(&k) {
            continue;
        }
        assert!(
            approx::abs_diff_eq!(*a, *b, epsilon = REL_TOL * scale),
            "surface {k}: cpu {a} gpu {b}"
        );
        compared += usize::from(*a != 0.0);
    }
    eprintln!(
        "largest record difference {worst:e}; {} tie cells left out, {compared} non-empty cells compared",
        ties.len()
    );
    assert!(
        compared > 100,
        "{compared} non-empty surface cells compared"
    );
}

fn bits(o: &BatchOutcome) -> Vec<u32> {
    let st = &o.state;
    let records = st.done.iter().flat_map(|r| r.pos);
    let floats = st
        .pos
        .iter()
        .flatten()
        .copied()
        .chain(st.hidden.iter().copied());
    floats.chain(records).map(f32::to_bits).collect()
}

#[test]
fn runs_are_bit_identical_on_each_backend() {
    let Some(s) = setup() else { return };
    // The first run is shared with the GPU-vs-CPU test: each backend runs the batch once more.
    let (a, b) = (gpu_first(s), &gpu_run(s, &first_items()));
    assert_eq!(bits(a), bits(b), "two GPU runs");
    assert_eq!((&a.state.done, &a.steps), (&b.state.done, &b.steps));
    let (a, b) = (cpu_first(s), &cpu_run(s, &first_items()));
    assert_eq!(bits(a), bits(b), "two CPU runs");
    assert_eq!((&a.state.done, &a.steps), (&b.state.done, &b.steps));
}

/// Item `id`'s surface planes.
fn surface_of(s: &Setup, out: &BatchOutcome, index: usize) -> Vec<f32> {
    let sh = s.weights.layout.shape;
    let n = 2 * sh.surface() as usize;
    aggregate(&sh, &out.state).planes[index * n..(index + 1) * n].to_vec()
}

#[test]
fn an_items_surface_does_not_depend_on_its_batch() {
    let Some(s) = setup() else { return };
    let batch: Vec<u64> = (0..8).collect();
    let item = 5;
    for (backend, run) in [
        ("cpu", cpu_run as fn(&Setup, &[u64]) -> BatchOutcome),
        ("gpu", gpu_run),
    ] {
        let alone = run(s, &[item]);
        let shared = run(s, &batch);
        assert_eq!(
            alone.items[0], shared.items[item as usize],
            "{backend}: totals"
        );
        let (a, b) = (
            surface_of(s, &alone, 0),
            surface_of(s, &shared, item as usize),
        );
        assert!(a.iter().any(|&v| v != 0.0));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a),
            bits(&b),
            "{backend}: item {item} alone vs in a batch of 8"
        );
    }
}

/// Steps the first items one at a time, folding grids at `max_groups` when given, and checks
/// after each step that `flow_live` computed what its CPU twin does from the counts the step
/// started with.
fn check_live_kernel(s: &Setup, max_groups: Option<u32>) {
    let (state, seeds) = placed(s, &first_items());
    let mut engine = GpuFlows::new(&s.ctx, &s.kernels, &state, &seeds).unwrap();
    let limit = max_groups.unwrap_or(s.ctx.limits.max_compute_workgroups_per_dimension);
    if let Some(n) = max_groups {
        engine.fold_grids_at(n);
    }
    let sh = s.weights.layout.shape;
    let mut moving: Vec<u32> = state.counts.iter().map(|c| c.moving).collect();
    let mut children_seen = false;
    for step in 0..s.cfg.steps() {
        let rule = s.cfg.rule(step);
        let counts = engine.step(&rule).unwrap();
        let want = LiveDispatch::plan(&moving, &sh, s.cfg.capacity(), rule.spawn_max, limit);
        assert_eq!(engine.live_dispatch().unwrap(), want, "step {step}");
        children_seen |= want.1.copy[0] > 0;
        moving = counts.iter().map(|c| c.moving).collect();
    }
    assert!(children_seen, "a step had children to copy");
}

#[test]
fn the_live_kernel_matches_its_cpu_twin() {
    let Some(s) = setup() else { return };
    check_live_kernel(s, None);
    check_live_kernel(s, Some(3));
}

#[test]
fn grids_folded_at_two_workgroups_give_the_same_bits() {
    let Some(s) = setup() else { return };
    let folded = gpu_run_folded(s, &s.cfg, &first_items(), Some(2));
    let plain = gpu_first(s);
    assert_eq!(bits(&folded), bits(plain));
    assert_eq!(
        (&folded.state.done, &folded.steps),
        (&plain.state.done, &plain.steps)
    );
}

/// The debug preset with a threshold all four items reach before step 4 (with flows still
/// live): the GPU freezes them inside its one window, the host confirms, and both backends
/// end in the same state.
#[test]
fn a_stop_inside_the_window_freezes_items_as_on_the_cpu() {
    let Some(s) = setup() else { return };
    let conv = lattice_core::config::ConvergenceConfig {
        threshold: 0.25,
        min_steps: 2,
        patience: 5,
    };
    let cfg = FlowsConfig {
        convergence: Some(conv),
        ..s.cfg.clone()
    };
    let ids = first_items();
    let (cpu, gpu) = (
        cpu_run_of(s, &cfg, &ids),
        gpu_run_folded(s, &cfg, &ids, None),
    );
    for o in &cpu.items {
        assert_eq!((o.stop, o.steps), (StopReason::ThresholdReached, 4));
        assert!(o.unfinished > 0, "frozen with live flows");
    }
    assert_eq!(cpu.items, gpu.items, "per-item totals");
    assert_same_steps(&cpu.steps, &gpu.steps);
    let (c, g) = (&cpu.state, &gpu.state);
    assert_eq!(without_z(&c.counts), without_z(&g.counts));
    assert_eq!((&c.status, &c.id), (&g.status, &g.id));
}

/// A carrier whose hidden size is not a whole number of vec4s (6 units: the GRU kernel's
/// second quad is half padding) still matches the CPU.
#[test]
fn a_gru_width_off_the_vec4_grid_matches_the_cpu() {
    let Some(debug) = setup() else { return };
    let mut cfg = debug.cfg.clone();
    cfg.carrier.hidden = 6;
    let weights = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(&cfg)), SEED);
    let ctx = lattice_gpu::test_context().expect("a second context on the same adapter");
    let kernels = FlowKernels::new(&ctx, &weights.layout, &weights.data, cfg.capacity()).unwrap();
    let s = Setup {
        ctx,
        kernels,
        cfg,
        weights,
    };
    let ids = first_items();
    let (cpu, gpu) = (
        cpu_run_of(&s, &s.cfg, &ids),
        gpu_run_folded(&s, &s.cfg, &ids, None),
    );
    let compared = compare_runs(&s, &cpu, &gpu);
    assert!(compared.completed + compared.live > 100, "flows compared");
}
