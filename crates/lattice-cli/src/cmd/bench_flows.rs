//! The flow cases of `lattice bench`: debug B = 1 (latency) and 64, experiment B = 16, per
//! backend.
//! Convergence is off so every case runs the same steps; spawning, noise and reflection are on
//! as in the presets. Time is wall time around whole steps, each of which ends with the
//! per-item counts read back (poll-bracketed on the GPU).

use std::time::Instant;

use super::bench::Timed;
use super::bench_rows::{Flops, FlowRow, Row, kernel_rows};
use crate::cost::flows::flops_per_flow_step;
use crate::cost::{self, Device};
use lattice_core::config::{self, FlowsConfig, Simulation};
use lattice_core::flows::ItemCounts;
use lattice_core::flows::mapper::{place_batch, seeded_embeddings};
use lattice_core::flows::run::{FlowEngine, WINDOW_STEPS};
use lattice_core::flows::{CpuFlows, FlowLayout, FlowNet, FlowShape, FlowWeights};
use lattice_gpu::GpuContext;
use lattice_gpu::flows::{FlowKernels, GpuFlows};

const DEBUG: &str = include_str!("../../presets/flows_debug.ron");
const EXPERIMENT: &str = include_str!("../../presets/flows_experiment.ron");

/// The cases: (preset, config text, items).
pub const CASES: [(&str, &str, u32); 3] = [
    ("debug", DEBUG, 1),
    ("debug", DEBUG, 64),
    ("experiment", EXPERIMENT, 16),
];

pub fn case(
    label: &str,
    text: &str,
    items: u32,
    gpu: Option<&GpuContext>,
    run: Timed,
    peak: Option<f64>,
) -> anyhow::Result<Row> {
    let steps = run.steps;
    let cfg = config::parse(text, std::path::Path::new("preset.ron"))?;
    let Simulation::Flows(f) = &cfg.simulation else {
        unreachable!("the flow bench presets are Flows configs")
    };
    // Timed steps go on whatever the stop rule would say: the bench measures stepping.
    let f = FlowsConfig {
        convergence: None,
        ..f.clone()
    };
    let shape = FlowShape::from_config(&f);
    let weights = FlowWeights::seeded(FlowLayout::new(shape), cfg.seed);
    let ids: Vec<u64> = (0..u64::from(items)).collect();
    let embeddings = seeded_embeddings(cfg.seed, &ids, f.embedding_dim as usize);
    let (state, seeds) = place_batch(&weights, &f, cfg.seed, &ids, &embeddings);
    let timed = match gpu {
        None => {
            let mut e = CpuFlows {
                net: FlowNet::new(&weights.layout, &weights.data),
                state,
                seeds,
            };
            (time_steps(&mut e, &f, steps).map_err(|x| match x {})?, None)
        }
        Some(ctx) => {
            let kernels = FlowKernels::new(ctx, &weights.layout, &weights.data, f.capacity())?;
            let mut e = GpuFlows::new(ctx, &kernels, &state, &seeds)?;
            if run.profile && !e.enable_profiling() {
                anyhow::bail!("--profile: this adapter has no timestamp queries");
            }
            let timed = time_steps(&mut e, &f, steps)?;
            let device = Device::known(&ctx.adapter.name);
            let rows = e.profiler_mut().map(|p| {
                let (units, done) = (timed.flow_steps as f64, timed.steps);
                let per_unit = |v: f64| v / units.max(1.0);
                let items_run = f64::from(items) * f64::from(done);
                let costs = cost::flows::kernels(
                    &shape,
                    per_unit(timed.spawned as f64),
                    per_unit(items_run),
                );
                kernel_rows(
                    p.totals(),
                    &costs,
                    units / f64::from(done.max(1)),
                    done,
                    device,
                )
            });
            (timed, rows)
        }
    };
    let (
        Steps {
            flow_steps,
            secs,
            steps: done,
            ..
        },
        kernels,
    ) = timed;
    let ms = secs * 1e3 / f64::from(done.max(1));
    let rate = flow_steps as f64 / secs;
    let flops = flops_per_flow_step(&shape);
    Ok(Row::Flows(FlowRow {
        case: label.into(),
        backend: gpu.map_or("cpu (rayon)".to_string(), |c| {
            format!("gpu ({})", c.adapter.name)
        }),
        items,
        steps: done,
        flow_steps,
        ms,
        ms_per_step: ms,
        flow_steps_per_s: rate,
        flops_per_flow_step: flops,
        flops: Flops::new(flops, rate, peak),
        kernels,
    }))
}

/// What the timed steps did.
struct Steps {
    flow_steps: u64,
    /// Children spawned in the timed steps.
    spawned: u64,
    secs: f64,
    steps: u32,
}

/// One untimed warm-up step (its kernel times forgotten), then up to `steps` timed ones in
/// windows of back-to-back steps as a run without a stop rule takes them (fewer if every flow
/// finished: the window where the last one did still counts all its steps).
fn time_steps<E: FlowEngine + Profiled>(
    e: &mut E,
    f: &FlowsConfig,
    steps: u32,
) -> Result<Steps, E::Error> {
    let mut counts = e.step(&f.rule(0))?;
    e.forget_profile();
    let mut timed = Steps {
        flow_steps: 0,
        spawned: 0,
        secs: 0.0,
        steps: 0,
    };
    let moving = |c: &[ItemCounts]| c.iter().map(|c| u64::from(c.moving)).sum::<u64>();
    let t = Instant::now();
    let mut step = 1;
    while step <= steps && moving(&counts) > 0 {
        let len = (steps + 1 - step).min(WINDOW_STEPS);
        let rules: Vec<_> = (step..step + len).map(|s| f.rule(s)).collect();
        for after in e.steps(&rules)? {
            timed.flow_steps += moving(&counts);
            timed.spawned += after.iter().map(|c| u64::from(c.spawned)).sum::<u64>();
            counts = after;
        }
        timed.steps += len;
        step += len;
    }
    timed.secs = t.elapsed().as_secs_f64();
    Ok(timed)
}

/// An engine whose kernel times can be forgotten after the warm-up (the CPU has none).
trait Profiled {
    fn forget_profile(&mut self) {}
}

impl Profiled for CpuFlows<'_> {}

impl Profiled for GpuFlows<'_> {
    fn forget_profile(&mut self) {
        if let Some(p) = self.profiler_mut() {
            p.reset();
        }
    }
}
