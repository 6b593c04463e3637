//! The product's GPU path on lavapipe, as a user runs it: `lattice run --backend gpu` and the
//! library API with `BackendChoice::Gpu`, checked against the CPU run; a non-finite state found
//! on the GPU, named by item, step and cell; the chunked MoE path (a small binding limit); a
//! batch that fails at its GPU allocation (a test-only memory cap) halving with nothing lost;
//! and a GPU run interrupted and resumed. Skips without an adapter unless
//! LATTICE_REQUIRE_GPU=1 (CI sets it).

use std::path::Path;

mod common;
use common::read_npy as npy;
use lattice::core::config;
use lattice::{Backend, BackendChoice, Item, ItemError, Output, Simulation};

const MOE: &str = "(seed: 3, batch: (items: 4, max_batch_size: Auto), simulation: Moe((lattice: \
                   (dims: (6, 5, 4), radius_ratio: 0.5), steps: 3)))";
/// W − 1 = H − 1 = 8: clamped moves never land on a rounding tie (tests/oracle_flows.rs).
const FLOWS: &str = "(seed: 5, batch: (items: 3), simulation: Flows((dims: (9, 9, 6), \
    embedding_dim: 16, carrier: (hidden: 32, layers: 2), neuron: (hidden: 8, output: 12), \
    displacement_scale: 80.0, noise: 0.0, max_steps: Some(4), spawn: Some((threshold: 0.15)))))";

/// The measured GPU-vs-CPU difference after 3 MoE steps is ~1e-6 relative (tests/gpu_moe.rs);
/// 1e-4 leaves room for a hardware GPU's FMA contraction.
const REL_TOL: f32 = 1e-4;

fn gpu() -> Option<lattice::gpu::GpuContext> {
    lattice::gpu::test_context()
}

fn lattice(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let ran = common::lattice_in(dir, args, env);
    (ran.code, ran.stderr)
}

/// Element-wise within `REL_TOL` of the element, floored at 1 % of the largest magnitude;
/// returns how many elements were compared.
fn assert_close(what: &str, cpu: &[f32], gpu: &[f32]) -> usize {
    assert_eq!(cpu.len(), gpu.len(), "{what}");
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: all zero");
    for (k, (a, b)) in cpu.iter().zip(gpu).enumerate() {
        assert!(
            approx::relative_eq!(
                *a,
                *b,
                epsilon = REL_TOL * 0.01 * scale,
                max_relative = REL_TOL
            ),
            "{what}[{k}]: cpu {a} gpu {b}"
        );
    }
    cpu.len()
}

#[test]
fn lattice_run_on_the_gpu_matches_the_cpu_run() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    std::fs::write(d.join("flows.ron"), FLOWS).unwrap();
    for (cfg, file) in [("moe.ron", "states.npy"), ("flows.ron", "surface.npy")] {
        for backend in ["cpu", "gpu"] {
            let out = format!("{cfg}-{backend}");
            let (code, err) = lattice(d, &["run", cfg, "--backend", backend, "--out", &out], &[]);
            assert_eq!(code, 0, "{err}");
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join(&out).join("metrics.json")).unwrap())
                    .unwrap();
            assert!(m["backend"].as_str().unwrap().starts_with(backend), "{m}");
        }
        let (c, g) = (
            npy(&d.join(format!("{cfg}-cpu/{file}"))),
            npy(&d.join(format!("{cfg}-gpu/{file}"))),
        );
        let n = assert_close(cfg, &c, &g);
        assert!(n > 100, "{cfg}: {n} values compared");
    }
}

#[test]
fn the_api_on_the_gpu_names_a_non_finite_state_and_keeps_the_others() {
    if gpu().is_none() {
        return;
    }
    let cfg = config::parse(MOE, "moe.ron".as_ref()).unwrap();
    let n = 6 * 5 * 4 * 24;
    let items = [
        Item::seeded(10),
        Item::states(11, vec![f32::MAX / 2.0; n]),
        Item::seeded(12),
    ];
    let run = |backend| {
        Simulation::new(cfg.clone(), backend)
            .unwrap()
            .run(&items)
            .unwrap()
    };
    let (cpu, gpu) = (run(BackendChoice::Cpu), run(BackendChoice::Gpu));
    assert!(
        gpu.stats.backend.starts_with("gpu"),
        "{}",
        gpu.stats.backend
    );
    let error = |r: &lattice::Results| r.get(11).unwrap().error.clone();
    let Some(ItemError::NonFinite { step, cell, .. }) = error(&gpu) else {
        panic!("item 11 fails on the GPU: {:?}", error(&gpu));
    };
    assert_eq!(step, 1);
    assert_eq!(
        error(&gpu),
        error(&cpu),
        "the same step and cell as the CPU"
    );
    assert!(cell < (6 * 5 * 4) as u32);
    for id in [10, 12] {
        assert!(gpu.get(id).unwrap().is_ok());
        assert_close(
            "ok item",
            cpu.get(id).unwrap().output.states(),
            gpu.get(id).unwrap().output.states(),
        );
    }
}

fn moe_on(ctx: lattice::gpu::GpuContext, batch: &str) -> lattice::Results {
    let text = MOE.replace("max_batch_size: Auto", &format!("max_batch_size: {batch}"));
    let loaded = config::LoadedConfig {
        config: config::parse(&text, "moe.ron".as_ref()).unwrap(),
        path: "moe.ron".into(),
        text_hash: 0,
    };
    let sim = Simulation::from_loaded(loaded, Backend::Gpu(Box::new(ctx))).unwrap();
    sim.run(&(0..4).map(Item::seeded).collect::<Vec<_>>())
        .unwrap()
}

fn states_of(r: &lattice::Results) -> Vec<Vec<f32>> {
    r.items
        .values()
        .map(|i| i.output.states().to_vec())
        .collect()
}

#[test]
fn the_chunked_gpu_moe_path_equals_the_unchunked_one() {
    let (Some(whole), Some(mut chunked)) = (gpu(), gpu()) else {
        return;
    };
    // One binding holds the batch's states but only a fraction of its per-row records, so
    // the gather and update kernels run over several chunks of rows.
    let (rows, s) = (4 * 6 * 5 * 4u64, 24u64);
    chunked.limits.max_storage_buffer_binding_size = rows * s * 4;
    let cfg = config::parse(MOE, "moe.ron".as_ref()).unwrap();
    let config::Simulation::Moe(m) = &cfg.simulation else {
        unreachable!()
    };
    let shape = lattice::core::moe::MoeShape::from_config(m);
    let per_row = lattice::core::moe::gather::record_width(&shape) as u64 * 4;
    assert!(rows * s * 4 / per_row < rows / 2, "at least two chunks");
    let (a, b) = (moe_on(whole, "Fixed(4)"), moe_on(chunked, "Fixed(4)"));
    assert_eq!(states_of(&a), states_of(&b), "bit-identical");
    assert_eq!(b.stats.batch_sizes, [4]);
}

/// A MoE simulation of `MOE` with batches of `batch` on this GPU context.
fn moe_sim(ctx: lattice::gpu::GpuContext, batch: &str) -> Simulation {
    let text = MOE.replace("max_batch_size: Auto", &format!("max_batch_size: {batch}"));
    let loaded = config::LoadedConfig {
        config: config::parse(&text, "moe.ron".as_ref()).unwrap(),
        path: "moe.ron".into(),
        text_hash: 0,
    };
    Simulation::from_loaded(loaded, Backend::Gpu(Box::new(ctx))).unwrap()
}

#[test]
fn a_batch_that_fails_at_its_gpu_allocation_halves_with_nothing_lost() {
    let (Some(probe), Some(mut capped)) = (gpu(), gpu()) else {
        return;
    };
    // What a batch of one item allocates, measured; the cap lets one item through, not two.
    let ones = moe_sim(probe, "Fixed(1)");
    let expected = ones
        .run(&(0..4).map(Item::seeded).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(expected.stats.batch_sizes, [1, 1, 1, 1]);
    let Backend::Gpu(ctx) = ones.backend() else {
        unreachable!()
    };
    let one_item = ctx.last_allocation_bytes();
    assert!(one_item > 0);
    capped.memory_cap = Some(one_item);
    let halved = moe_on(capped, "Fixed(4)");
    assert_eq!(halved.stats.halvings, 2, "4 → 2 → 1");
    assert_eq!(halved.stats.batch_sizes, [1, 1, 1, 1]);
    assert_eq!(halved.succeeded(), 4);
    assert_eq!(
        states_of(&halved),
        states_of(&expected),
        "bit-identical to batches of one"
    );
    // And an item's result does not depend on its batch on the GPU: one batch of four agrees.
    let whole = moe_on(gpu().unwrap(), "Fixed(4)");
    assert_eq!(whole.stats.batch_sizes, [4]);
    assert_eq!(
        states_of(&whole),
        states_of(&expected),
        "a batch of 4 vs batches of 1"
    );
    let Output::Moe { states } = &halved.get(3).unwrap().output else {
        unreachable!()
    };
    assert_eq!(states.len(), 6 * 5 * 4 * 24);
}

#[test]
fn a_gpu_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE.replace("Auto", "Fixed(2)")).unwrap();
    let gpu_args = |extra: &[&'static str]| {
        let mut a = vec!["run", "moe.ron", "--backend", "gpu"];
        a.extend_from_slice(extra);
        a
    };
    assert_eq!(lattice(d, &gpu_args(&["--out", "full"]), &[]).0, 0);
    let (code, err) = lattice(
        d,
        &gpu_args(&["--out", "cut", "--checkpoint-every", "2"]),
        &[("LATTICE_STOP_AFTER_CHECKPOINT", "1")],
    );
    assert_eq!(code, 2, "{err}");
    let (code, err) = lattice(
        d,
        &gpu_args(&["--resume", "cut", "--checkpoint-every", "2"]),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        npy(&d.join("cut/states.npy")),
        npy(&d.join("full/states.npy"))
    );
}

/// The engine-level pieces of `MOE`: its config, neighbor cache, layout and seeded weights.
struct MoeParts {
    m: config::MoeConfig,
    cache: lattice::core::NeighborCache,
    layout: lattice::core::moe::ParamLayout,
    weights: lattice::core::moe::MoeWeights,
}

/// The engine-level pieces of a flows config: the config, layout, seeded weights and kernels.
struct FlowParts {
    f: config::FlowsConfig,
    layout: lattice::core::flows::FlowLayout,
    weights: lattice::core::flows::FlowWeights,
    kernels: lattice::gpu::flows::FlowKernels,
}

fn flow_parts(ctx: &lattice::gpu::GpuContext, text: &str) -> FlowParts {
    let cfg = config::parse(text, "flows.ron".as_ref()).unwrap();
    let config::Simulation::Flows(f) = cfg.simulation else {
        unreachable!()
    };
    let layout =
        lattice::core::flows::FlowLayout::new(lattice::core::flows::FlowShape::from_config(&f));
    let weights = lattice::core::flows::FlowWeights::seeded(layout.clone(), 1);
    let kernels =
        lattice::gpu::flows::FlowKernels::new(ctx, &layout, &weights.data, f.capacity()).unwrap();
    FlowParts {
        f,
        layout,
        weights,
        kernels,
    }
}

fn moe_parts() -> MoeParts {
    let cfg = config::parse(MOE, "moe.ron".as_ref()).unwrap();
    let config::Simulation::Moe(m) = cfg.simulation else {
        unreachable!()
    };
    let l = &m.lattice;
    let cache =
        lattice::core::NeighborCache::build(l.dims(), l.boundary, l.radius(), None).unwrap();
    let layout =
        lattice::core::moe::ParamLayout::new(lattice::core::moe::MoeShape::from_config(&m));
    let weights = lattice::core::moe::MoeWeights::seeded(layout.clone(), 1);
    MoeParts {
        m,
        cache,
        layout,
        weights,
    }
}

#[test]
fn the_memory_plans_count_every_buffer_a_batch_allocates() {
    let Some(ctx) = gpu() else { return };
    // MoE: the plan is exact.
    let MoeParts {
        m,
        cache,
        layout,
        weights,
    } = moe_parts();
    let neighbors = lattice::gpu::gather::GpuNeighbors::upload(&ctx, &cache).unwrap();
    let kernels = lattice::gpu::moe::MoeKernels::new(&ctx, &layout, m.ode_steps).unwrap();
    for items in [1u32, 3] {
        let n = (cache.dims().cells() * m.state_size * items) as usize;
        let states = vec![0.1f32; n];
        let _batch = lattice::gpu::moe::GpuMoe::new(
            &ctx,
            &cache,
            &neighbors,
            &kernels,
            &weights.data,
            m.combine,
            &states,
            items,
        )
        .unwrap();
        let planned =
            lattice::gpu::moe::batch_bytes(&ctx, &layout, cache.dims().cells(), items).unwrap();
        assert_eq!(planned, ctx.last_allocation_bytes(), "MoE, {items} item(s)");
    }
    // Flows: per item, and the batch's few bytes (an offset, a counter, the dispatch grids).
    let FlowParts {
        f,
        layout,
        weights,
        kernels,
    } = flow_parts(&ctx, FLOWS);
    let f = &f;
    for items in [1u64, 3] {
        let ids: Vec<u64> = (0..items).collect();
        let emb =
            lattice::core::flows::mapper::seeded_embeddings(1, &ids, f.embedding_dim as usize);
        let (state, seeds) = lattice::core::flows::mapper::place_batch(&weights, f, 1, &ids, &emb);
        let _batch = lattice::gpu::flows::GpuFlows::new(&ctx, &kernels, &state, &seeds).unwrap();
        let per_item = lattice::gpu::flows::FlowKernels::device_bytes_per_item(
            &layout,
            f.capacity(),
            f.steps(),
        );
        assert_eq!(
            per_item * items + lattice::gpu::flows::FlowKernels::BATCH_BYTES,
            ctx.last_allocation_bytes(),
            "flows, {items} item(s)"
        );
    }
}

#[test]
fn a_window_of_gpu_steps_reports_each_steps_non_finite_cells_like_the_cpu() {
    use lattice::core::moe::{CpuMoe, MoeEngine, MoeNet};
    let Some(ctx) = gpu() else { return };
    let MoeParts {
        m,
        cache,
        layout,
        weights,
    } = moe_parts();
    // Item 0 finite, item 1 overflowing from the first step: it stays non-finite after.
    let n = (cache.dims().cells() * m.state_size) as usize;
    let mut states = lattice::core::moe::initial_states(1, 0, n / 24, 24, 0.1);
    states.extend(vec![f32::MAX / 2.0; n]);
    let net = MoeNet::new(&layout, &weights.data, m.combine, m.ode_steps);
    let mut cpu = CpuMoe::new(net, &cache, states.clone(), 2);
    let neighbors = lattice::gpu::gather::GpuNeighbors::upload(&ctx, &cache).unwrap();
    let kernels = lattice::gpu::moe::MoeKernels::new(&ctx, &layout, m.ode_steps).unwrap();
    let moe = lattice::gpu::moe::GpuMoe::new(
        &ctx,
        &cache,
        &neighbors,
        &kernels,
        &weights.data,
        m.combine,
        &states,
        2,
    )
    .unwrap();
    let mut gpu = lattice::gpu::moe::GpuMoeEngine::new(&ctx, moe);
    let k = 4;
    let (c, g) = (cpu.steps(k).unwrap(), gpu.steps(k).unwrap());
    assert_eq!(g.len(), k as usize, "one flag set per step of the window");
    assert_eq!(c, g, "the same items and cells, step by step");
    assert!(
        g.iter().all(|step| step.len() == 1 && step[0].item == 1),
        "{g:?}"
    );
}

/// `lattice bench --profile`: every MoE kernel timed by timestamp queries, its FLOP and bytes
/// those of the cost model for the case, its GPU time within the step's wall time.
#[test]
fn bench_profile_times_every_moe_kernel_against_the_cost_model() {
    if gpu().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--backend",
        "gpu",
        "bench",
        "moe",
        "--profile",
        "--only",
        "debug/B=1/",
        "--steps",
        "1",
    ];
    let ran = common::lattice_in(dir.path(), &args, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let row = &report["results"][0];
    assert_eq!(row["case"], "moe/debug/B=1/gpu");
    let kernels = row["kernels"]
        .as_array()
        .expect("a profiled case has kernels");
    let names: Vec<&str> = kernels
        .iter()
        .map(|k| k["kernel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["moe_prep", "moe_gather", "moe_update"]);
    let cells = 15.0 * 15.0 * 15.0;
    let mut gpu_ms = 0.0;
    for k in kernels {
        let ms = k["ms_per_step"].as_f64().unwrap();
        assert!(ms > 0.0, "{k}");
        assert_eq!(k["dispatches_per_step"], 1.0, "{k}");
        assert!(k["modeled_ms_h100"].as_f64().unwrap() > 0.0, "{k}");
        let flop = k["flop_per_step"].as_f64().unwrap();
        assert!(flop > cells, "{k}");
        approx::assert_relative_eq!(
            k["achieved_flops"].as_f64().unwrap(),
            flop / (ms * 1e-3),
            max_relative = 1e-9
        );
        gpu_ms += ms;
    }
    assert!(
        gpu_ms <= row["ms_per_step"].as_f64().unwrap() * 1.05,
        "{row}"
    );
    assert!(ran.stderr.contains("modeled H100"), "{}", ran.stderr);
}

/// A network whose one row of the update kernel's tile exceeds the adapter's workgroup memory
/// is refused by name before any pipeline is built, not a wgpu validation panic.
#[test]
fn an_update_tile_over_the_workgroup_limit_is_a_named_error() {
    let Some(ctx) = gpu() else {
        return;
    };
    let limit = ctx.limits.max_compute_workgroup_storage_size;
    let s = limit / 4 / 9 + 1;
    let shape = lattice::core::moe::MoeShape {
        s,
        ..lattice::core::moe::MoeShape::DEBUG
    };
    let layout = lattice::core::moe::ParamLayout::new(shape);
    let Err(e) = lattice::gpu::moe::MoeKernels::new(&ctx, &layout, 1) else {
        panic!("state size {s} fits {limit} bytes of workgroup memory");
    };
    let text = e.to_string();
    assert!(
        text.contains("moe_update") && text.contains("state_size"),
        "{text}"
    );
}

/// The flow step's profile with a 3-layer carrier: every kernel timed, the GRU once per layer
/// (the profiler is sized by the layer count, not by the two ping-pong directions).
#[test]
fn a_profiled_flow_step_times_every_kernel_and_each_gru_layer() {
    use lattice::core::flows::run::FlowEngine;
    let Some(ctx) = gpu() else {
        return;
    };
    let FlowParts {
        f,
        weights,
        kernels,
        ..
    } = flow_parts(&ctx, &FLOWS.replace("layers: 2", "layers: 3"));
    let f = &f;
    let ids = [0u64, 1];
    let emb = lattice::core::flows::mapper::seeded_embeddings(1, &ids, f.embedding_dim as usize);
    let (state, seeds) = lattice::core::flows::mapper::place_batch(&weights, f, 1, &ids, &emb);
    let mut flows = lattice::gpu::flows::GpuFlows::new(&ctx, &kernels, &state, &seeds).unwrap();
    assert!(flows.enable_profiling(), "lavapipe has timestamp queries");
    for step in 0..2 {
        flows.step(&f.rule(step)).unwrap();
    }
    let totals = flows.profiler_mut().unwrap().totals();
    let dispatches: Vec<(&str, u64)> = totals.iter().map(|(k, t)| (*k, t.dispatches)).collect();
    // Children are spawned in both steps here, so the copy runs too.
    assert_eq!(
        dispatches,
        [
            ("flow_copy", 2),
            ("flow_gru", 6),
            ("flow_heads", 2),
            ("flow_live", 2),
            ("flow_neuron", 2),
            ("flow_plan", 2)
        ]
    );
    assert!(totals.values().all(|t| t.ms > 0.0), "{dispatches:?}");
}
