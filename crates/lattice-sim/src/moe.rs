//! The MoE runner behind [`crate::Simulation`]: inputs to states, batches of synchronous steps
//! with per-item non-finite checks, snapshots for checkpoints.

use std::ops::Range;
use std::time::Instant;

use lattice_core::moe::cpu::find_non_finite;
use lattice_core::moe::domain::Domain;
use lattice_core::moe::{MoeEngine, NonFinite, initial_states};

use crate::backend::Backend;
use crate::engines::{GpuMoeSetup, MoeBatch, gpu_moe_batch_limit};
use crate::error::{Error, ItemError, Result};
use crate::items::{Input, Item, ItemResult, Output};
use crate::model::MoeModel;
use crate::observer::{BatchDone, Observer, Snapshot, StepEvent};
use crate::runtime::{Measured, Tally};
use crate::runtime::{host_batch_limit, injected_failure, run_batches};

/// Items of this lattice that fit one batch, and what limits them.
pub(crate) fn batch_limit(backend: &Backend, model: &MoeModel) -> Result<(usize, &'static str)> {
    let (cfg, cache) = (&model.cfg, &model.cache);
    let (n, s) = (cache.dims().cells_usize(), cfg.state_size as usize);
    Ok(match backend {
        Backend::Gpu(ctx) => gpu_moe_batch_limit(ctx, &model.weights.layout, cache.dims().cells())?,
        // States, the next states and the batch's copy.
        Backend::Cpu => (
            host_batch_limit(3 * (n * s) as u64 * 4),
            "80 % of the available host memory",
        ),
    })
}

/// GPU memory one more lattice adds to a batch (the batch's buffers at 2 items less at 1).
fn gpu_moe_bytes_per_item(ctx: &lattice_gpu::GpuContext, m: &MoeModel) -> Option<u64> {
    let bytes =
        |n| lattice_gpu::moe::batch_bytes(ctx, &m.weights.layout, m.cache.dims().cells(), n);
    Some(bytes(2).ok()?.saturating_sub(bytes(1).ok()?))
}

/// A batch's engine once every rank of a split lattice has allocated its part: when any rank
/// could not, every rank fails with an allocation error, so all retry at the same smaller size
/// (and their halo messages keep matching). One process: the allocation's own outcome.
///
/// # Errors
/// This rank's error, or [`Error::RankAllocation`] when another rank failed.
fn agree_on_allocation<E>(domain: Option<&Domain>, engine: Result<E>) -> Result<E> {
    let Some(domain) = domain else {
        return engine;
    };
    // Any other error ends the run on this rank; the job's abort ends the others.
    let here = match &engine {
        Ok(_) => true,
        Err(e) if e.is_allocation() => false,
        Err(_) => return engine,
    };
    if domain.exchange().all_allocated(here) {
        engine
    } else {
        engine.and(Err(Error::RankAllocation))
    }
}

pub(crate) struct MoeRun<'a> {
    backend: &'a Backend,
    model: &'a MoeModel,
    seed: u64,
    domain: Option<&'a Domain>,
}

impl<'a> MoeRun<'a> {
    pub(crate) fn new(
        backend: &'a Backend,
        model: &'a MoeModel,
        seed: u64,
        domain: Option<&'a Domain>,
    ) -> Self {
        Self {
            backend,
            model,
            seed,
            domain,
        }
    }

    /// Checks every item before anything runs: step counts, input kinds and sizes, finite
    /// states.
    fn check(&self, items: &[Item]) -> Result<()> {
        let (cfg, dims) = (&self.model.cfg, self.model.cache.dims());
        let (n, s) = (dims.cells_usize(), cfg.state_size as usize);
        for item in items {
            let fail = |message: String| Error::Input {
                item: item.id,
                message,
            };
            if item.done_steps > cfg.steps {
                let (done, all) = (item.done_steps, cfg.steps);
                return Err(fail(format!(
                    "has done {done} steps; the run has only {all}"
                )));
            }
            match &item.input {
                // Normal samples with a finite, validated scale.
                Input::Seeded => {}
                Input::States(v) if v.len() == n * s => {
                    if let Some((_, cell, _)) = find_non_finite(v, n, s) {
                        let at = dims.coord(cell as u32);
                        return Err(Error::NonFiniteInput {
                            item: item.id,
                            what: "initial states",
                            place: format!("cell {cell} {at:?}"),
                        });
                    }
                }
                Input::States(v) => {
                    let got = v.len();
                    return Err(fail(format!(
                        "{got} initial values, expected N·S = {}",
                        n * s
                    )));
                }
                Input::Embedding(_) => {
                    return Err(fail(
                        "a Moe simulation takes states, not an embedding".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// One batch's initial states, `[items, N, S]`, built when the batch runs (so a run holds
    /// its inputs once, not twice).
    fn batch_states(&self, items: &[Item]) -> Vec<f32> {
        let cfg = &self.model.cfg;
        let (n, s) = (
            self.model.cache.dims().cells_usize(),
            cfg.state_size as usize,
        );
        let mut states = Vec::with_capacity(items.len() * n * s);
        for item in items {
            match &item.input {
                Input::Seeded => {
                    states.extend(initial_states(self.seed, item.id, n, s, cfg.init_scale))
                }
                Input::States(v) => states.extend_from_slice(v),
                Input::Embedding(_) => unreachable!("refused by check"),
            }
        }
        states
    }

    /// Runs every item; items that have done the same number of steps run together.
    pub(crate) fn run(
        &self,
        items: &[Item],
        size: usize,
        observer: &mut dyn Observer,
        tally: &mut Tally,
    ) -> Result<()> {
        self.check(items)?;
        let m = self.model;
        let gpu = match self.backend {
            Backend::Gpu(ctx) => Some(GpuMoeSetup::new(ctx, &m.cache, &m.cfg, &m.weights)?),
            Backend::Cpu => None,
        };
        tally.measured.device_bytes_per_item = match self.backend {
            Backend::Gpu(ctx) => gpu_moe_bytes_per_item(ctx, m),
            Backend::Cpu => None,
        };
        let mut first = 0;
        while first < items.len() {
            let from = items[first].done_steps;
            let end = (first..items.len())
                .find(|&k| items[k].done_steps != from)
                .unwrap_or(items.len());
            let Tally { batches, measured } = &mut *tally;
            run_batches(batches, first..end, size, |batch, r, inject| {
                let states = self.batch_states(&items[r.clone()]);
                let (cfg, weights) = (&m.cfg, &m.weights);
                let engine = injected_failure(inject).and_then(|()| {
                    MoeBatch::new(
                        gpu.as_ref(),
                        &m.cache,
                        cfg,
                        weights,
                        states,
                        r.len(),
                        self.domain,
                    )
                });
                let mut engine = agree_on_allocation(self.domain, engine)?;
                let job = BatchJob {
                    batch,
                    range: r,
                    from,
                };
                let done = self.run_batch(&mut engine, &job, items, observer, measured)?;
                measured.results.extend(done);
                Ok(())
            })?;
            first = end;
        }
        Ok(())
    }

    /// Steps one batch from step `job.from` to the end, generic over the engine, in windows of
    /// up to [`MoeEngine::steps_per_check`] steps (a window ends early at a snapshot step): the engine
    /// runs a window without a host round trip and reports each of its steps' non-finite
    /// cells, so a failure is still named by its exact step.
    fn run_batch<E: MoeEngine<Error = Error>>(
        &self,
        engine: &mut E,
        job: &BatchJob,
        items: &[Item],
        observer: &mut dyn Observer,
        measured: &mut Measured,
    ) -> Result<Vec<ItemResult>> {
        let _span = tracing::info_span!("batch", index = job.batch, items = ?job.range).entered();
        let steps = self.model.cfg.steps;
        let batch_start = Instant::now();
        let mut errors: Vec<Option<ItemError>> = vec![None; job.range.len()];
        let every = observer.snapshot_every();
        let mut done = job.from;
        while done < steps {
            let mut k = (steps - done).min(engine.steps_per_check());
            if every > 0 {
                // Stop at the next snapshot step.
                k = k.min(every - done % every);
            }
            let t = Instant::now();
            let flagged = engine.steps(k)?;
            let ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(k);
            for (i, bad) in flagged.iter().enumerate() {
                let step = done + 1 + i as u32;
                self.record_failures(job, items, step, bad, &mut errors);
                self.report_step(job, step, ms, observer, measured)?;
            }
            done += k;
            if every > 0 && done.is_multiple_of(every) && done < steps {
                let states = engine.states()?;
                let (items, errors) = (job.range.clone(), &errors[..]);
                let snap = Snapshot {
                    items,
                    step: done,
                    states: &states,
                    errors,
                };
                observer.snapshot(&snap).map_err(Error::Observer)?;
            }
        }
        let done = self.results(engine, job, items, errors, batch_start)?;
        let (batch, range) = (job.batch, job.range.clone());
        let report = BatchDone {
            batch,
            items: range,
            results: &done,
            flow_steps: &[],
        };
        observer.batch_done(&report).map_err(Error::Observer)?;
        Ok(done)
    }

    /// Keeps each item's first non-finite state (step, cell), logging it once.
    fn record_failures(
        &self,
        job: &BatchJob,
        items: &[Item],
        step: u32,
        bad: &[NonFinite],
        errors: &mut [Option<ItemError>],
    ) {
        let dims = self.model.cache.dims();
        for b in bad {
            errors[b.item].get_or_insert_with(|| {
                let coord = dims.coord(b.cell);
                let e = ItemError::NonFinite {
                    step,
                    cell: b.cell,
                    coord,
                };
                let id = items[job.range.start + b.item].id;
                tracing::warn!("item {id}: {e}; the other items go on");
                e
            });
        }
    }

    /// One step's figures into the measurements and to the observer.
    fn report_step(
        &self,
        job: &BatchJob,
        step: u32,
        ms: f64,
        observer: &mut dyn Observer,
        measured: &mut Measured,
    ) -> Result<()> {
        let units = (job.range.len() * self.model.cache.dims().cells_usize()) as u64;
        measured.step_ms.push(ms);
        measured.work += units;
        observer
            .step(&StepEvent {
                batch: job.batch,
                items: job.range.clone(),
                step,
                steps: self.model.cfg.steps,
                ms,
                units,
                flows: None,
            })
            .map_err(Error::Observer)
    }

    /// Each item's final states and error.
    fn results<E: MoeEngine<Error = Error>>(
        &self,
        engine: &E,
        job: &BatchJob,
        items: &[Item],
        errors: Vec<Option<ItemError>>,
        batch_start: Instant,
    ) -> Result<Vec<ItemResult>> {
        let len = self.model.cache.dims().cells_usize() * self.model.cfg.state_size as usize;
        let out = engine.states()?;
        let secs = batch_start.elapsed().as_secs_f64();
        Ok(errors
            .into_iter()
            .enumerate()
            .map(|(k, error)| ItemResult {
                id: items[job.range.start + k].id,
                batch: job.batch,
                duration_s: secs,
                batch_s: secs,
                output: Output::Moe {
                    states: out[k * len..(k + 1) * len].to_vec(),
                },
                error,
            })
            .collect())
    }
}

/// One batch: its number, its items (indices into the submitted slice), its first step.
struct BatchJob {
    batch: usize,
    range: Range<usize>,
    from: u32,
}
