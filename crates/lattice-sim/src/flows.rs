//! The flows runner behind [`crate::Simulation`]: embeddings to placed flows, batches run to
//! completion, surfaces aggregated per item.

use std::ops::{ControlFlow, Range};
use std::time::Instant;

use lattice_core::config::FlowsConfig;
use lattice_core::flows::aggregate::aggregate;
use lattice_core::flows::mapper::{collect_surface, seeded_embedding};
use lattice_core::flows::run::{BatchOutcome, StepRecord};
use lattice_core::flows::trace::Trace;
use lattice_core::flows::{FlowLayout, FlowShape};
use lattice_gpu::flows::FlowKernels;

use crate::backend::Backend;
use crate::engines::{FlowBatch, GpuFlowSetup, gpu_flows_batch_limit};
use crate::error::{Error, Result};
use crate::items::{Input, Item, ItemResult, Output};
use crate::model::FlowsModel;
use crate::observer::{BatchDone, Observer, StepEvent};
use crate::runtime::{Measured, Tally};
use crate::runtime::{host_batch_limit, injected_failure, run_batches};

/// Items that fit one batch, and what limits them.
pub(crate) fn batch_limit(backend: &Backend, cfg: &FlowsConfig) -> Result<(usize, &'static str)> {
    let shape = FlowShape::from_config(cfg);
    let per_item =
        FlowKernels::bytes_per_item(&FlowLayout::new(shape), cfg.capacity(), cfg.steps());
    Ok(match backend {
        Backend::Gpu(ctx) => gpu_flows_batch_limit(ctx, &shape, cfg.capacity(), cfg.steps())?,
        // Hidden states, a copy for the trace or the final read, and the rest of a slot.
        Backend::Cpu => (
            host_batch_limit(2 * per_item + u64::from(cfg.capacity()) * 64),
            "80 % of the available host memory",
        ),
    })
}

pub(crate) struct FlowsRun<'a> {
    backend: &'a Backend,
    model: &'a FlowsModel,
    seed: u64,
}

impl<'a> FlowsRun<'a> {
    pub(crate) fn new(backend: &'a Backend, model: &'a FlowsModel, seed: u64) -> Self {
        Self {
            backend,
            model,
            seed,
        }
    }

    /// The items' embeddings, `[items, E]`, checked.
    fn inputs(&self, items: &[Item]) -> Result<Vec<f32>> {
        let e = self.model.cfg.embedding_dim as usize;
        let mut embeddings = Vec::with_capacity(items.len() * e);
        for item in items {
            let fail = |message: String| Error::Input {
                item: item.id,
                message,
            };
            if item.done_steps > 0 {
                return Err(fail(
                    "a flows item runs whole (done_steps must be 0)".into(),
                ));
            }
            match &item.input {
                Input::Seeded => embeddings.extend(seeded_embedding(self.seed, item.id, e)),
                Input::Embedding(v) if v.len() == e => {
                    if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                        return Err(Error::NonFiniteInput {
                            item: item.id,
                            what: "input embeddings",
                            place: format!("element {k}"),
                        });
                    }
                    embeddings.extend_from_slice(v);
                }
                Input::Embedding(v) => {
                    let got = v.len();
                    return Err(fail(format!("embedding of {got} values, expected {e}")));
                }
                Input::States(_) => {
                    return Err(fail(
                        "a Flows simulation takes an embedding, not states".into(),
                    ));
                }
            }
        }
        Ok(embeddings)
    }

    /// Runs every item; returns the run's steps (summed over items) and its trace.
    pub(crate) fn run(
        &self,
        items: &[Item],
        size: usize,
        observer: &mut dyn Observer,
        tally: &mut Tally,
    ) -> Result<(Vec<StepRecord>, Option<Trace>)> {
        let embeddings = self.inputs(items)?;
        let (cfg, weights) = (&self.model.cfg, &self.model.weights);
        let gpu = match self.backend {
            Backend::Gpu(ctx) => Some(GpuFlowSetup::new(ctx, weights, cfg.capacity())?),
            Backend::Cpu => None,
        };
        tally.measured.device_bytes_per_item = gpu.is_some().then(|| {
            FlowKernels::device_bytes_per_item(&weights.layout, cfg.capacity(), cfg.steps())
        });
        let mut ctx = RunState {
            trace: cfg.trace.as_ref().map(|t| Trace::new(t.capacity)),
            steps: Vec::new(),
        };
        let e = cfg.embedding_dim as usize;
        let Tally { batches, measured } = tally;
        run_batches(batches, 0..items.len(), size, |batch, r, inject| {
            injected_failure(inject)?;
            let ids: Vec<u64> = r.clone().map(|k| items[k].id).collect();
            let job = FlowBatch {
                weights,
                cfg,
                seed: self.seed,
                ids: &ids,
                embeddings: &embeddings[r.start * e..r.end * e],
            };
            let done =
                self.run_batch(gpu.as_ref(), &job, batch, r, observer, measured, &mut ctx)?;
            measured.results.extend(done);
            Ok(())
        })?;
        Ok((ctx.steps, ctx.trace))
    }

    /// One batch: steps with progress, then surfaces and results.
    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &self,
        gpu: Option<&GpuFlowSetup<'_>>,
        job: &FlowBatch<'_>,
        batch: usize,
        range: Range<usize>,
        observer: &mut dyn Observer,
        measured: &mut Measured,
        run: &mut RunState,
    ) -> Result<Vec<ItemResult>> {
        let _span = tracing::info_span!("batch", index = batch, items = ?range).entered();
        let (batch_start, mut last) = (Instant::now(), Instant::now());
        let (steps, units) = (self.model.cfg.steps(), range.len() as u64);
        let step_ms = &mut measured.step_ms;
        let mut stopped_by = None;
        // Seconds from the batch's start to the end of each step.
        let mut step_end_s = Vec::new();
        let outcome = job.run(gpu, run.trace.as_mut(), |window| {
            // A window's steps ran back to back: each is given an equal share of its time.
            let ms = last.elapsed().as_secs_f64() * 1e3 / window.len().max(1) as f64;
            last = Instant::now();
            for rec in window {
                step_ms.push(ms);
                step_end_s.push(step_end_s.last().copied().unwrap_or(0.0) + ms / 1e3);
                let event = StepEvent {
                    batch,
                    items: range.clone(),
                    step: rec.step + 1,
                    steps,
                    ms,
                    units,
                    flows: Some(rec),
                };
                if let Err(e) = observer.step(&event) {
                    stopped_by = Some(e);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = stopped_by {
            return Err(Error::Observer(e));
        }
        measured.work += outcome.steps.iter().map(|s| u64::from(s.live)).sum::<u64>();
        StepRecord::merge_into(&mut run.steps, &outcome.steps);
        let flow_steps = outcome.steps.clone();
        let timing = BatchTiming {
            step_end_s,
            batch_s: batch_start.elapsed().as_secs_f64(),
        };
        let done = self.results(outcome, job.ids, batch, &timing);
        let report = BatchDone {
            batch,
            items: range,
            results: &done,
            flow_steps: &flow_steps,
        };
        observer.batch_done(&report).map_err(Error::Observer)?;
        Ok(done)
    }

    /// Each item's surfaces, totals and collected embedding.
    fn results(
        &self,
        outcome: BatchOutcome,
        ids: &[u64],
        batch: usize,
        timing: &BatchTiming,
    ) -> Vec<ItemResult> {
        let (cfg, weights) = (&self.model.cfg, &self.model.weights);
        let shape = weights.layout.shape;
        let wh = shape.surface() as usize;
        let surf = aggregate(&shape, &outcome.state);
        outcome
            .items
            .into_iter()
            .enumerate()
            .map(|(k, totals)| {
                let merged = surf.merged[k * wh..(k + 1) * wh].to_vec();
                let embedding_out = cfg
                    .collector
                    .then(|| collect_surface(&weights.layout, &weights.data, &merged));
                ItemResult {
                    id: ids[k],
                    batch,
                    duration_s: timing.item_s(totals.steps),
                    batch_s: timing.batch_s,
                    output: Output::Flows {
                        planes: surf.planes[k * 2 * wh..(k + 1) * 2 * wh].to_vec(),
                        merged,
                        landed: surf.landed[k * 2 * wh..(k + 1) * 2 * wh].to_vec(),
                        totals: Box::new(totals),
                        embedding_out,
                    },
                    error: None,
                }
            })
            .collect()
    }
}

/// When a batch's steps ended.
struct BatchTiming {
    /// Seconds from the batch's start to the end of each step.
    step_end_s: Vec<f64>,
    /// The whole batch, closing work included.
    batch_s: f64,
}

impl BatchTiming {
    /// An item's own time: until the end of its last step (it ran `steps`), plus the batch's
    /// closing work, which every item waits for.
    fn item_s(&self, steps: u32) -> f64 {
        let stepped = self.step_end_s.last().copied().unwrap_or(0.0);
        let closing = (self.batch_s - stepped).max(0.0);
        let own = match steps {
            0 => 0.0,
            s => self
                .step_end_s
                .get(s as usize - 1)
                .copied()
                .unwrap_or(stepped),
        };
        own + closing
    }
}

/// What a flows run accumulates across batches.
struct RunState {
    trace: Option<Trace>,
    steps: Vec<StepRecord>,
}

#[cfg(test)]
mod tests {
    use super::BatchTiming;

    #[test]
    fn an_item_takes_its_own_steps_and_the_batch_closing_work() {
        let t = BatchTiming {
            step_end_s: vec![0.1, 0.3, 0.6],
            batch_s: 0.7,
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(t.item_s(1), 0.2), "stopped after step 1");
        assert!(close(t.item_s(3), 0.7), "ran every step: the whole batch");
        assert!(
            close(t.item_s(0), 0.1),
            "ran no step: only the closing work"
        );
        assert!(t.item_s(2) < t.item_s(3));
    }
}
