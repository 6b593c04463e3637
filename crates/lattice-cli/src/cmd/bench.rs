//! `lattice bench`: the standard benchmark matrix, JSON on stdout and a table on stderr.

use std::time::Instant;

use crate::cost::moe::flops_per_cell;
use crate::cost::{self, Device};
use clap::{Args, ValueEnum};
use lattice_core::config::{self, MoeConfig, Simulation};
use lattice_core::moe::{MoeShape, MoeWeights, ParamLayout, initial_states};
use lattice_core::{NeighborCache, neighbors::Stencil};
use lattice_gpu::GpuContext;
use serde_json::json;

use super::bench_flows;
use super::bench_rows::{Flops, MoeRow, NeighborRow, Row, kernel_rows, speedups};
use lattice_core::moe::MoeEngine;
use lattice_sim::engines::{GpuMoeSetup, MoeBatch};
use lattice_sim::{BackendChoice, GpuRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// Neighbor cache build + validation (stencil 15³/40³/100³, CSR 40³).
    Neighbors,
    /// MoE step: DEBUG B = 1 and 64, EXPERIMENT B = 1 and 8.
    Moe,
    /// Flow step: debug B = 1 and 64, experiment B = 16.
    Flows,
    /// Everything.
    All,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum, default_value_t = What::All)]
    pub what: What,
    /// Timed steps per MoE or flow case (after one untimed warm-up step).
    #[arg(long, default_value_t = 2)]
    pub steps: u32,
    /// Only the cases whose label contains this text (e.g. "debug").
    #[arg(long)]
    pub only: Option<String>,
    /// GPU cases: time every kernel with timestamp queries and set each against its cost
    /// model (FLOP, bytes, fraction of the device's peak, modeled roofline bounds).
    #[arg(long)]
    pub profile: bool,
}

const DEBUG: &str = include_str!("../../presets/debug.ron");
const EXPERIMENT: &str = include_str!("../../presets/experiment.ron");

/// FP32 peak (non-tensor) of the devices we know, by adapter name.
fn fp32_peak(name: &str) -> Option<f64> {
    Device::known(name).map(|d| d.fp32_flops)
}

pub fn run(args: BenchArgs, backend: BackendChoice, req: &GpuRequest) -> anyhow::Result<()> {
    let mut results = Vec::new();
    let keep = |label: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| label.contains(o.as_str()))
    };
    if matches!(args.what, What::Neighbors | What::All) {
        results.extend(neighbors(&keep));
    }
    let wants_gpu = matches!(args.what, What::Moe | What::Flows | What::All);
    let gpu = if wants_gpu {
        open_gpu(backend, req)?
    } else {
        None
    };
    let mut backends: Vec<Option<&GpuContext>> = Vec::new();
    if backend != BackendChoice::Gpu {
        backends.push(None);
    }
    if let Some(ctx) = &gpu {
        backends.push(Some(ctx));
    }
    if matches!(args.what, What::Moe | What::All) {
        for (preset, text, items) in [
            ("debug", DEBUG, 1),
            ("debug", DEBUG, 64),
            ("experiment", EXPERIMENT, 1),
            ("experiment", EXPERIMENT, 8),
        ] {
            for ctx in &backends {
                let label = format!("moe/{preset}/B={items}/{}", ctx.map_or("cpu", |_| "gpu"));
                if keep(&label) {
                    let run = Timed {
                        steps: args.steps,
                        profile: args.profile,
                    };
                    results.push(moe_case(&label, text, items, *ctx, run)?);
                }
            }
        }
    }
    if matches!(args.what, What::Flows | What::All) {
        for (preset, text, items) in bench_flows::CASES {
            for ctx in &backends {
                let label = format!("flows/{preset}/B={items}/{}", ctx.map_or("cpu", |_| "gpu"));
                if keep(&label) {
                    let peak = ctx.and_then(|c| fp32_peak(&c.adapter.name));
                    let run = Timed {
                        steps: args.steps,
                        profile: args.profile,
                    };
                    results.push(bench_flows::case(&label, text, items, *ctx, run, peak)?);
                }
            }
        }
    }
    report(gpu.as_ref(), &results)
}

/// The GPU the cases run on: none with `--backend cpu`; with `auto`, none (and a warning) when
/// no adapter opens.
fn open_gpu(backend: BackendChoice, req: &GpuRequest) -> anyhow::Result<Option<GpuContext>> {
    if backend == BackendChoice::Cpu {
        return Ok(None);
    }
    match lattice_sim::Backend::select_with(BackendChoice::Gpu, req) {
        Ok(lattice_sim::Backend::Gpu(ctx)) => Ok(Some(*ctx)),
        Ok(lattice_sim::Backend::Cpu) => Ok(None),
        Err(e) if backend == BackendChoice::Gpu => Err(e.into()),
        Err(e) => {
            tracing::warn!("GPU cases skipped: {e}");
            Ok(None)
        }
    }
}

/// The JSON report on stdout and a table on stderr.
fn report(gpu: Option<&GpuContext>, results: &[Row]) -> anyhow::Result<()> {
    // The device the cases ran on; a neighbors-only run (or --backend cpu) still names the
    // adapter the machine has.
    let describe = |c: &GpuContext| json!({"name": c.adapter.name, "backend": c.adapter.backend, "type": c.adapter.device_type});
    let machine = json!({
        "cpu_threads": lattice_sim::rayon_threads(),
        "gpu": gpu.map(describe).or_else(|| GpuContext::new().ok().as_ref().map(describe)),
    });
    let speedups = speedups(results);
    println!(
        "{}",
        serde_json::to_string_pretty(
            &json!({"machine": machine, "results": results, "speedups": speedups})
        )?
    );
    eprintln!(
        "{:<34} {:>12} {:>16} {:>14} {:>10}",
        "case", "ms/step", "cells|flows/s", "GFLOP/s", "% FP32"
    );
    for r in results {
        eprintln!("{}", r.table_line());
        for k in r.kernels() {
            eprintln!("{}", k.table_line());
        }
    }
    for s in &speedups {
        eprintln!(
            "{:<34} B = {} is {:.1}× faster per item-step than B = 1",
            s.case, s.batched, s.speedup
        );
    }
    Ok(())
}

fn neighbors(keep: &dyn Fn(&str) -> bool) -> Vec<Row> {
    let mut out = Vec::new();
    for n in [15u32, 40, 100] {
        let label = format!("neighbors/stencil+validate/{n}^3");
        if !keep(&label) {
            continue;
        }
        let dims = lattice_core::Dims::new(n, n, n).expect("small dims");
        let radius = lattice_core::Radius::adaptive(n, 0.2, 1.0, 100.0);
        let t = Instant::now();
        let cache = NeighborCache::build(dims, lattice_core::Boundary::Bounded, radius, None);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        out.push(Row::Neighbors(NeighborRow {
            case: label,
            ms,
            ok: Some(cache.is_ok()),
            stencil_offsets: cache.map(|c| c.stats().stencil_offsets).ok(),
            entries: None,
        }));
    }
    let label = "neighbors/csr_build/40^3";
    if keep(label) {
        let dims = lattice_core::Dims::new(40, 40, 40).expect("small dims");
        let stencil = Stencil::build(
            dims,
            lattice_core::Boundary::Bounded,
            lattice_core::Radius::adaptive(40, 0.2, 1.0, 100.0),
        );
        let t = Instant::now();
        let csr = lattice_core::neighbors::Csr::build(&stencil, vec![true; dims.cells_usize()]);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        out.push(Row::Neighbors(NeighborRow {
            case: label.into(),
            ms,
            ok: None,
            stencil_offsets: None,
            entries: csr.map(|c| c.entries() as u64).ok(),
        }));
    }
    out
}

/// How a case is timed: its timed steps, and whether GPU kernels are profiled.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub steps: u32,
    pub profile: bool,
}

fn moe_case(
    label: &str,
    text: &str,
    items: usize,
    gpu: Option<&GpuContext>,
    run: Timed,
) -> anyhow::Result<Row> {
    let steps = run.steps;
    let cfg = config::parse(text, std::path::Path::new("preset.ron"))?;
    let Simulation::Moe(moe) = &cfg.simulation else {
        unreachable!("the MoE bench presets are Moe configs")
    };
    let moe: &MoeConfig = moe;
    let dims = moe.lattice.dims();
    let cache = NeighborCache::build(dims, moe.lattice.boundary, moe.lattice.radius(), None)?;
    let shape = MoeShape::from_config(moe);
    let weights = MoeWeights::seeded(ParamLayout::new(shape), cfg.seed);
    let n = dims.cells_usize();
    let s = moe.state_size as usize;
    let states: Vec<f32> = (0..items)
        .flat_map(|b| initial_states(cfg.seed, b as u64, n, s, moe.init_scale))
        .collect();
    let setup = match gpu {
        Some(ctx) => Some(GpuMoeSetup::new(ctx, &cache, moe, &weights)?),
        None => None,
    };
    let mut sim = MoeBatch::new(setup.as_ref(), &cache, moe, &weights, states, items, None)?;
    let profiling = gpu.is_some() && run.profile;
    if profiling && !sim.enable_profiling() {
        anyhow::bail!("--profile: this adapter has no timestamp queries");
    }
    tracing::info!("{label}: warm-up step");
    sim.run_unchecked(1)?;
    if let Some(p) = sim.profiler_mut() {
        p.reset();
    }
    tracing::info!("{label}: {steps} timed step(s)");
    // Poll-bracketed wall time: run_unchecked waits for the GPU before returning.
    let t = Instant::now();
    sim.run_unchecked(steps)?;
    let secs = t.elapsed().as_secs_f64();
    let ms = secs * 1e3 / f64::from(steps);
    let updates = (n * items) as f64 * f64::from(steps) / secs;
    let st = cache.stats();
    let counts = [
        st.per_class[0].mean,
        st.per_class[1].mean,
        st.per_class[2].mean,
    ];
    let flops = flops_per_cell(&shape, counts, moe.ode_steps);
    let peak = gpu.and_then(|c| fp32_peak(&c.adapter.name));
    let kernels = sim.profiler_mut().map(|p| {
        let costs = cost::moe::kernels(&shape, counts, moe.ode_steps);
        let device = gpu.and_then(|c| Device::known(&c.adapter.name));
        kernel_rows(p.totals(), &costs, (n * items) as f64, steps, device)
    });
    Ok(Row::Moe(MoeRow {
        case: label.into(),
        backend: gpu.map_or("cpu (rayon)".to_string(), |c| {
            format!("gpu ({})", c.adapter.name)
        }),
        items,
        cells: n,
        steps,
        ms,
        ms_per_step: ms,
        cell_updates_per_s: updates,
        flops_per_cell_update: flops,
        flops: Flops::new(flops, updates, peak),
        kernels,
    }))
}
