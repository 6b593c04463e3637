//! The flows runner behind [`super::Simulation`]: embeddings to placed flows, batches run to
//! completion, surfaces aggregated per item.

use std::time::Instant;

use anyhow::bail;
use lattice_core::config::FlowsConfig;
use lattice_core::flows::aggregate::aggregate;
use lattice_core::flows::mapper::{collect_surface, seeded_embedding};
use lattice_core::flows::run::StepRecord;
use lattice_core::flows::trace::Trace;
use lattice_core::flows::{FlowLayout, FlowShape, FlowWeights};
use lattice_gpu::flows::FlowKernels;

use super::{BatchDone, Input, Item, ItemResult, Observer, Output, Simulation, StepEvent, Tally};
use crate::backend::Backend;
use crate::runtime::{host_batch_limit, run_batches};
use crate::sim::{GpuFlowSetup, flows_batch_limit, run_flow_batch};

/// Items that fit one batch, and what limits them.
pub(super) fn batch_limit(
    backend: &Backend,
    cfg: &FlowsConfig,
) -> anyhow::Result<(usize, &'static str)> {
    let shape = FlowShape::from_config(cfg);
    let per_item =
        FlowKernels::bytes_per_item(&FlowLayout::new(shape), cfg.capacity(), cfg.steps());
    Ok(match backend {
        Backend::Gpu(ctx) => flows_batch_limit(ctx, &shape, cfg.capacity(), cfg.steps())?,
        // Hidden states, a copy for the trace or the final read, and the rest of a slot.
        Backend::Cpu => (
            host_batch_limit(2 * per_item + u64::from(cfg.capacity()) * 64),
            "80 % of the available host memory",
        ),
    })
}

pub(super) struct FlowsRun<'a> {
    pub sim: &'a Simulation,
    pub cfg: &'a FlowsConfig,
    pub weights: &'a FlowWeights,
}

impl FlowsRun<'_> {
    /// The items' embeddings, `[items, E]`, checked.
    fn inputs(&self, items: &[Item]) -> anyhow::Result<Vec<f32>> {
        let e = self.cfg.embedding_dim as usize;
        let seed = self.sim.loaded.config.seed;
        let mut embeddings = Vec::with_capacity(items.len() * e);
        for item in items {
            if item.done_steps > 0 {
                bail!(
                    "item {}: a flows item runs whole (done_steps must be 0)",
                    item.id
                );
            }
            match &item.input {
                Input::Seeded => embeddings.extend(seeded_embedding(seed, item.id, e)),
                Input::Embedding(v) if v.len() == e => embeddings.extend_from_slice(v),
                Input::Embedding(v) => bail!(
                    "item {}: embedding of {} values, expected {e}",
                    item.id,
                    v.len()
                ),
                Input::States(_) => bail!(
                    "item {}: a Flows simulation takes an embedding, not states",
                    item.id
                ),
            }
        }
        if let Some(k) = embeddings.iter().position(|v| !v.is_finite()) {
            bail!(
                "the input embeddings are not finite at item {}, element {}",
                items[k / e].id,
                k % e
            );
        }
        Ok(embeddings)
    }

    /// Runs every item; returns the run's steps (summed over items) and its trace.
    pub(super) fn run(
        &self,
        items: &[Item],
        size: usize,
        observer: &mut dyn Observer,
        tally: &mut Tally,
    ) -> anyhow::Result<(Vec<StepRecord>, Option<Trace>)> {
        let (cfg, weights) = (self.cfg, self.weights);
        let seed = self.sim.loaded.config.seed;
        let shape = weights.layout.shape;
        let (e, wh, steps) = (
            cfg.embedding_dim as usize,
            shape.surface() as usize,
            cfg.steps(),
        );
        let embeddings = self.inputs(items)?;
        let gpu = match &self.sim.backend {
            Backend::Gpu(ctx) => Some(GpuFlowSetup::new(ctx, weights, cfg.capacity())?),
            Backend::Cpu => None,
        };
        let mut trace = cfg.trace.as_ref().map(|t| Trace::new(t.capacity));
        let mut run_steps: Vec<StepRecord> = Vec::new();
        let Tally {
            batches,
            results,
            step_ms,
            work,
        } = tally;
        run_batches(batches, 0..items.len(), size, |batch, r| {
            let _span = tracing::info_span!("batch", index = batch, items = ?r).entered();
            let (first, count) = (r.start, r.len());
            let batch_start = Instant::now();
            let mut last = Instant::now();
            let ids: Vec<u64> = r.clone().map(|k| items[k].id).collect();
            let outcome = run_flow_batch(
                gpu.as_ref(),
                weights,
                cfg,
                seed,
                &ids,
                &embeddings[first * e..(first + count) * e],
                trace.as_mut(),
                |rec| {
                    let ms = last.elapsed().as_secs_f64() * 1e3;
                    last = Instant::now();
                    step_ms.push(ms);
                    observer.step(&StepEvent {
                        batch,
                        items: r.clone(),
                        step: rec.step + 1,
                        steps,
                        ms,
                        units: count as u64,
                        flows: Some(rec),
                    });
                },
            )?;
            let surf = aggregate(&shape, &outcome.state);
            *work += outcome.steps.iter().map(|s| u64::from(s.live)).sum::<u64>();
            StepRecord::merge_into(&mut run_steps, &outcome.steps);
            let secs = batch_start.elapsed().as_secs_f64();
            let done: Vec<ItemResult> = outcome
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
                        duration_s: secs,
                        output: Output::Flows {
                            planes: surf.planes[k * 2 * wh..(k + 1) * 2 * wh].to_vec(),
                            merged,
                            totals: Box::new(totals),
                            embedding_out,
                        },
                        error: None,
                    }
                })
                .collect();
            observer.batch_done(&BatchDone {
                batch,
                items: r.clone(),
                results: &done,
                flow_steps: &outcome.steps,
            })?;
            results.extend(done);
            Ok(())
        })?;
        Ok((run_steps, trace))
    }
}
