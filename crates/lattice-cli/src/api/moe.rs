//! The MoE runner behind [`super::Simulation`]: inputs to states, batches of synchronous steps
//! with per-item non-finite checks, snapshots for checkpoints.

use std::time::Instant;

use anyhow::bail;
use lattice_core::NeighborCache;
use lattice_core::config::MoeConfig;
use lattice_core::moe::cpu::find_non_finite;
use lattice_core::moe::{MoeWeights, initial_states};

use super::{
    BatchDone, Input, Item, ItemResult, Observer, Output, Simulation, Snapshot, StepEvent, Tally,
};
use crate::backend::Backend;
use crate::runtime::{classify, host_batch_limit, run_batches};
use crate::sim::{GpuSetup, MoeBatch, gpu_batch_limit};

/// Items of this lattice that fit one batch, and what limits them.
pub(super) fn batch_limit(
    backend: &Backend,
    cfg: &MoeConfig,
    cache: &NeighborCache,
) -> anyhow::Result<(usize, &'static str)> {
    let (n, s) = (cache.dims().cells_usize(), cfg.state_size as usize);
    Ok(match backend {
        Backend::Gpu(ctx) => gpu_batch_limit(
            ctx,
            cache.dims().cells(),
            cfg.state_size,
            cfg.functional.hidden_dim,
        )?,
        // States, the next states and the batch's copy.
        Backend::Cpu => (
            host_batch_limit(3 * (n * s) as u64 * 4),
            "80 % of the available host memory",
        ),
    })
}

pub(super) struct MoeRun<'a> {
    pub sim: &'a Simulation,
    pub cfg: &'a MoeConfig,
    pub cache: &'a NeighborCache,
    pub weights: &'a MoeWeights,
}

impl MoeRun<'_> {
    /// Checks every item before anything runs: step counts, input kinds and sizes, finite
    /// states.
    fn check(&self, items: &[Item]) -> anyhow::Result<()> {
        let dims = self.cache.dims();
        let (n, s) = (dims.cells_usize(), self.cfg.state_size as usize);
        for item in items {
            if item.done_steps > self.cfg.steps {
                bail!(
                    "item {} has done {} steps; the run has only {}",
                    item.id,
                    item.done_steps,
                    self.cfg.steps
                );
            }
            match &item.input {
                // Normal samples with a finite, validated scale.
                Input::Seeded => {}
                Input::States(v) if v.len() == n * s => {
                    if let Some((_, cell, _)) = find_non_finite(v, n, s) {
                        bail!(
                            "the initial states are not finite at item {}, cell {cell} {:?}",
                            item.id,
                            dims.coord(cell as u32)
                        );
                    }
                }
                Input::States(v) => bail!(
                    "item {}: {} initial values, expected N·S = {}",
                    item.id,
                    v.len(),
                    n * s
                ),
                Input::Embedding(_) => bail!(
                    "item {}: a Moe simulation takes states, not an embedding",
                    item.id
                ),
            }
        }
        Ok(())
    }

    /// One batch's initial states, `[items, N, S]`, built when the batch runs (so a run holds
    /// its inputs once, not twice).
    fn batch_states(&self, items: &[Item]) -> Vec<f32> {
        let (n, s) = (
            self.cache.dims().cells_usize(),
            self.cfg.state_size as usize,
        );
        let seed = self.sim.loaded.config.seed;
        let mut states = Vec::with_capacity(items.len() * n * s);
        for item in items {
            match &item.input {
                Input::Seeded => {
                    states.extend(initial_states(seed, item.id, n, s, self.cfg.init_scale))
                }
                Input::States(v) => states.extend_from_slice(v),
                Input::Embedding(_) => unreachable!("refused by check"),
            }
        }
        states
    }

    pub(super) fn run(
        &self,
        items: &[Item],
        size: usize,
        observer: &mut dyn Observer,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let (cache, cfg) = (self.cache, self.cfg);
        let (n, s, steps) = (
            cache.dims().cells_usize(),
            cfg.state_size as usize,
            cfg.steps,
        );
        self.check(items)?;
        let gpu = match &self.sim.backend {
            Backend::Gpu(ctx) => Some(GpuSetup::new(ctx, cache, cfg, self.weights)?),
            Backend::Cpu => None,
        };
        let Tally {
            batches,
            results,
            step_ms,
            work,
        } = tally;
        // Items that have done the same number of steps run together.
        let mut first = 0;
        while first < items.len() {
            let from = items[first].done_steps;
            let end = (first..items.len())
                .find(|&k| items[k].done_steps != from)
                .unwrap_or(items.len());
            run_batches(batches, first..end, size, |batch, r| {
                let _span = tracing::info_span!("batch", index = batch, items = ?r).entered();
                let (first, count) = (r.start, r.len());
                let batch_start = Instant::now();
                let mut sim = MoeBatch::new(
                    gpu.as_ref().map(GpuSetup::parts),
                    cache,
                    cfg,
                    self.weights,
                    self.batch_states(&items[r.clone()]),
                    count,
                )
                .map_err(classify)?;
                let mut errors: Vec<Option<String>> = vec![None; count];
                for step in from + 1..=steps {
                    let t = Instant::now();
                    for bad in sim.step()? {
                        errors[bad.item].get_or_insert_with(|| {
                            let msg = format!(
                                "non-finite state at step {step}, cell {} {:?}",
                                bad.cell,
                                cache.dims().coord(bad.cell)
                            );
                            let id = items[first + bad.item].id;
                            tracing::warn!("item {id}: {msg}; the other items go on");
                            msg
                        });
                    }
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let units = (count * n) as u64;
                    step_ms.push(ms);
                    *work += units;
                    observer.step(&StepEvent {
                        batch,
                        items: r.clone(),
                        step,
                        steps,
                        ms,
                        units,
                        flows: None,
                    });
                    let every = observer.snapshot_every();
                    if every > 0 && step % every == 0 && step < steps {
                        let now = sim.states()?;
                        observer.snapshot(&Snapshot {
                            items: r.clone(),
                            step,
                            states: &now,
                            errors: &errors,
                        })?;
                    }
                }
                let out = sim.states()?;
                let secs = batch_start.elapsed().as_secs_f64();
                let done: Vec<ItemResult> = (0..count)
                    .map(|k| ItemResult {
                        id: items[first + k].id,
                        batch,
                        duration_s: secs,
                        output: Output::Moe {
                            states: out[k * n * s..(k + 1) * n * s].to_vec(),
                        },
                        error: errors[k].clone(),
                    })
                    .collect();
                observer.batch_done(&BatchDone {
                    batch,
                    items: r.clone(),
                    results: &done,
                    flow_steps: &[],
                })?;
                results.extend(done);
                Ok(())
            })?;
            first = end;
        }
        Ok(())
    }
}
