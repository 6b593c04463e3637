//! `lattice run` on a Flows config: reads the embeddings, submits every unfinished item to the
//! library API, checkpoints at batch ends through an observer, writes surfaces and totals.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use lattice_core::flows::FlowShape;
use lattice_core::flows::mapper::collect_surface;
use lattice_core::flows::run::{ItemOutcome, StepRecord};
use lattice_core::flows::trace::Trace;
use lattice_core::inputs::read_items;
use lattice_core::io::{write_atomic, write_f32};
use serde_json::json;

use lattice_core::images::{write_heatmap, write_vtk};

use super::checkpoint::{FlowsCheckpoint, Header, STOP_AFTER_CHECKPOINT_ENV};
use super::{RunArgs, origin, png_scale, write_metrics};
use crate::progress::Progress;
use crate::summary::{batches_line, peak_line, print_summary};
use lattice_sim::runtime::ItemRecord;
use lattice_sim::{BatchDone, Item, Model, Observer, ObserverError, Output, Simulation, StepEvent};

/// Weight files above this are not copied into the output folder (they are reproducible from
/// the seed); the optimized preset's mapper alone is 2.5 GB.
const MAX_WEIGHTS_COPY: u64 = 512 << 20;

pub(super) fn run(args: &RunArgs, sim: &Simulation, quiet: bool) -> anyhow::Result<()> {
    let Model::Flows(model) = sim.model() else {
        bail!("{} is not a Flows config", sim.loaded().path.display());
    };
    let cfg = model.cfg.clone();
    let (seed, items) = (sim.config().seed, sim.config().batch.items as usize);
    let shape = FlowShape::from_config(&cfg);
    // Before anything big is allocated: does one batch fit?
    let batch = sim.batch_size(items)?;
    let e = cfg.embedding_dim as usize;
    let embeddings: Option<Vec<f32>> = match &args.embeddings {
        Some(p) => Some(read_items(
            p,
            &[e as u64],
            items,
            args.input_order.into(),
            "[batch.items, embedding_dim]",
        )?),
        None => None,
    };
    let header = Header::new("flows", sim.loaded(), args.weights_origin(), cfg.steps());
    let hw = [u64::from(shape.h), u64::from(shape.w)];
    let (ck, planes, merged) = match &args.resume {
        Some(dir) => {
            if cfg.trace.is_some() {
                bail!(
                    "a run with an event trace cannot be resumed (the trace would miss the \
                     first part); remove trace from the config or run it again from the start"
                );
            }
            let (ck, p, m) = FlowsCheckpoint::load(dir, &header, hw)?;
            tracing::info!(
                "resuming from {}: {} of {items} item(s) finished",
                dir.display(),
                ck.done_items
            );
            (ck, p, m)
        }
        None => (FlowsCheckpoint::new(header), Vec::new(), Vec::new()),
    };
    let start_item = ck.done_items;
    // Item ids are the items' indices.
    let submitted: Vec<Item> = (start_item..items)
        .map(|b| match &embeddings {
            Some(v) => Item::embedding(b as u64, v[b * e..(b + 1) * e].to_vec()),
            None => Item::seeded(b as u64),
        })
        .collect();
    let max_steps = cfg.steps();
    let mut watch = Watch {
        progress: Progress::new(
            (items - start_item) as u64 * u64::from(max_steps),
            max_steps,
            args.log_every,
            quiet,
        ),
        step_records: ck.step_records.clone(),
        outcomes: ck.outcomes.clone(),
        finished: ck.results.clone(),
        ck,
        planes,
        merged,
        collected: Vec::new(),
        hw,
        items,
        first_item: start_item,
        since_checkpoint: 0,
        every: args.checkpoint_every,
        out: &args.out,
    };
    let results = sim.run_observed(&submitted, &mut watch)?;
    watch.progress.finish();
    let st = &results.stats;
    let Watch {
        planes,
        merged,
        step_records: steps,
        outcomes,
        finished,
        collected,
        ..
    } = watch;

    let (w, h) = (u64::from(shape.w), u64::from(shape.h));
    let out = &args.out;
    write_f32(&out.join("surface.npy"), &[items as u64, 2, h, w], &planes)?;
    write_f32(
        &out.join("surface_merged.npy"),
        &[items as u64, h, w],
        &merged,
    )?;
    surface_pictures(out, &shape, &planes[..2 * shape.surface() as usize])?;
    let mut outputs = json!({"surface": "surface.npy", "surface_merged": "surface_merged.npy",
        "png": "surface.png", "vtk": "surface.vtk", "png_shows": "item 0: front plane | back plane"});
    if cfg.collector {
        // Items finished before a resume are collected here; the others came with their results.
        let weights = &model.weights;
        let wh = shape.surface() as usize;
        let mut emb: Vec<f32> = (0..start_item)
            .flat_map(|b| {
                collect_surface(
                    &weights.layout,
                    &weights.data,
                    &merged[b * wh..(b + 1) * wh],
                )
            })
            .collect();
        emb.extend(collected);
        write_f32(
            &out.join("embeddings_out.npy"),
            &[items as u64, e as u64],
            &emb,
        )?;
        outputs["embeddings_out"] = "embeddings_out.npy".into();
    }
    let parameters = sim.parameters() as u64;
    if parameters * 4 <= MAX_WEIGHTS_COPY {
        sim.save_weights(&out.join("weights.safetensors"))?;
        outputs["weights"] = "weights.safetensors".into();
    } else {
        tracing::info!(
            "weights ({:.1} GB) not copied to the output folder; they are seeded from seed {seed}",
            parameters as f64 * 4e-9
        );
    }
    if let Some(t) = &results.trace {
        write_events(&out.join("events.jsonl"), t)?;
        outputs["events"] = "events.jsonl".into();
    }
    let flow_steps: u64 = steps.iter().map(|r| u64::from(r.live)).sum();
    let sum = |f: fn(&ItemOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let metrics = json!({
        "simulation": "flows",
        "dims": [shape.w, shape.h, shape.d],
        "capacity_per_item": cfg.capacity(),
        "max_steps": max_steps,
        "embeddings": origin(args.embeddings.as_deref()),
        "totals": {
            "created": sum(|o| o.created),
            "spawned": sum(|o| o.spawned),
            "completed_front": sum(|o| o.completed_front),
            "completed_back": sum(|o| o.completed_back),
            "reflected": sum(|o| o.reflected),
            "dropped_by_capacity": sum(|o| o.dropped_by_capacity),
            "unfinished": sum(|o| o.unfinished),
            "projected": sum(|o| o.projected),
            "flow_steps": flow_steps,
            "stops": stop_counts(&outcomes),
        },
        "steps": steps,
        "per_item": outcomes,
        "per_item_runs": finished,
        "trace_overwritten": results.trace.as_ref().map(|t| t.overwritten),
        "outputs": outputs,
    });
    write_metrics(args, sim, st, batch, "flow_steps_per_s", metrics)?;
    let completed = sum(|o| o.completed_front + o.completed_back);
    print_summary(
        &format!(
            "ran {} ({}×{}×{} flows) on {}",
            sim.loaded().path.display(),
            shape.w,
            shape.h,
            shape.d,
            st.backend
        ),
        &[
            ("items", format!("{items} in {}", batches_line(st))),
            (
                "flows",
                format!(
                    "{} created, {completed} completed (front {}, back {}), {} unfinished, {} dropped by capacity",
                    sum(|o| o.created),
                    sum(|o| o.completed_front),
                    sum(|o| o.completed_back),
                    sum(|o| o.unfinished),
                    sum(|o| o.dropped_by_capacity)
                ),
            ),
            (
                "steps",
                format!(
                    "{} run, at most {max_steps}; items stopped by {}",
                    steps.len(),
                    stop_line(&stop_counts(&outcomes))
                ),
            ),
            ("time", format!("{:.2} s", st.total_s)),
            (
                "throughput",
                format!(
                    "{:.0} flow-steps/s, {:.2} items/s",
                    st.work_per_s(),
                    st.items_per_s
                ),
            ),
            ("peak memory", peak_line(st.peak_host_memory_bytes)),
            (
                "outputs",
                format!(
                    "{} (surface.npy, surface_merged.npy, surface.png, surface.vtk, metrics.json)",
                    out.display()
                ),
            ),
        ],
    );
    Ok(())
}

/// How many items stopped for each reason (each item stops on its own history, never on its
/// batch's), in a fixed order.
fn stop_counts(outcomes: &[ItemOutcome]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for o in outcomes {
        let name = serde_json::to_value(o.stop)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

fn stop_line(counts: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} ({n})")).collect();
    parts.join(", ")
}

/// What `lattice run` does while a flows run goes: progress, and the finished items' surfaces
/// and totals, checkpointed at a batch end once N steps have run since the last checkpoint.
struct Watch<'a> {
    progress: Progress,
    ck: FlowsCheckpoint,
    planes: Vec<f32>,
    merged: Vec<f32>,
    step_records: Vec<StepRecord>,
    outcomes: Vec<ItemOutcome>,
    finished: Vec<ItemRecord>,
    /// Collected embeddings of the items run here, in order.
    collected: Vec<f32>,
    hw: [u64; 2],
    items: usize,
    /// Items finished before a resume: submitted position k is item first_item + k.
    first_item: usize,
    since_checkpoint: u32,
    every: u32,
    out: &'a Path,
}

impl Observer for Watch<'_> {
    fn step(&mut self, e: &StepEvent<'_>) {
        let Some(r) = e.flows else { return };
        let (first, count) = (self.first_item + e.items.start, e.items.len());
        self.progress.step(e.units, e.step, e.steps, || {
            format!(
                "batch {} (items {first}..{}), step {}: {} live, {} spawned, {} front, {} back, {} reflected, {} dropped",
                e.batch,
                first + count,
                e.step,
                r.live,
                r.spawned,
                r.completed_front,
                r.completed_back,
                r.reflected,
                r.dropped_by_capacity
            )
        });
    }

    fn batch_done(&mut self, d: &BatchDone<'_>) -> Result<(), ObserverError> {
        for r in d.results {
            let Output::Flows {
                planes,
                merged,
                totals,
                embedding_out,
            } = &r.output
            else {
                unreachable!("a flows run gives flows outputs")
            };
            self.planes.extend_from_slice(planes);
            self.merged.extend_from_slice(merged);
            self.outcomes.push((**totals).clone());
            self.collected
                .extend_from_slice(embedding_out.as_deref().unwrap_or(&[]));
            self.finished.push(r.record());
        }
        StepRecord::merge_into(&mut self.step_records, d.flow_steps);
        self.since_checkpoint += d.flow_steps.len() as u32;
        let done = self.finished.len();
        if self.every > 0 && self.since_checkpoint >= self.every && done < self.items {
            self.since_checkpoint = 0;
            self.ck.done_items = done;
            self.ck.step_records = self.step_records.clone();
            self.ck.outcomes = self.outcomes.clone();
            self.ck.results = self.finished.clone();
            self.ck
                .save(self.out, self.hw, &self.planes, &self.merged)?;
            tracing::info!("checkpoint after item {done}");
            if std::env::var_os(STOP_AFTER_CHECKPOINT_ENV).is_some() {
                return Err(format!(
                    "stopped after the checkpoint after item {done}, as {STOP_AFTER_CHECKPOINT_ENV} asks; \
                     continue with --resume {}",
                    self.out.display()
                )
                .into());
            }
        }
        Ok(())
    }
}

fn write_events(path: &Path, trace: &Trace) -> anyhow::Result<()> {
    write_atomic(path, |w| {
        for e in trace.events() {
            serde_json::to_writer(&mut *w, e).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")?;
        }
        Ok(())
    })
    .context("writing the event trace")?;
    Ok(())
}

/// `surface.png` (item 0: front and back side by side, a dark column between) and
/// `surface.vtk` (item 0 as a W×H×2 grid: front at z = 0, back at z = 1).
fn surface_pictures(out: &Path, shape: &FlowShape, item0: &[f32]) -> anyhow::Result<()> {
    let (w, h) = (shape.w as usize, shape.h as usize);
    let gap = f32::NAN;
    let mut rows = Vec::with_capacity(h * (2 * w + 1));
    for y in (0..h).rev() {
        rows.extend_from_slice(&item0[y * w..(y + 1) * w]);
        rows.push(gap);
        rows.extend_from_slice(&item0[(h + y) * w..(h + y + 1) * w]);
    }
    write_heatmap(
        &out.join("surface.png"),
        h,
        2 * w + 1,
        &rows,
        png_scale(2 * shape.w + 1),
    )?;
    write_vtk(
        &out.join("surface.vtk"),
        [shape.w, shape.h, 2],
        &[("energy", item0)],
        "lattice flow surfaces, item 0 (z = 0 front, z = 1 back)",
    )?;
    Ok(())
}
