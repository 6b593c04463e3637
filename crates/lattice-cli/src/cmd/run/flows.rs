//! `lattice run` on a Flows config: reads the embeddings, submits every unfinished item to the
//! library API, checkpoints at batch ends through an observer, writes surfaces and totals.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lattice_core::config::FlowsConfig;
use lattice_core::flows::FlowShape;
use lattice_core::flows::mapper::collect_surface;
use lattice_core::flows::run::{ItemOutcome, StepRecord};
use lattice_core::flows::trace::Trace;
use lattice_core::inputs::read_items;
use lattice_core::io::{write_atomic, write_f32};

use crate::images::write_vtk;

use super::by_items::{self, RankTiming};
use super::checkpoint::{FlowsCheckpoint, Header};
use super::metrics::{
    FlowOutputs, FlowTotals, FlowsMetrics, Metrics, Rate, StepMetrics, TextsInput,
};
use super::{RunArgs, config_name, origin};
use crate::figures::{self, Figure, Panel};
use crate::progress::Progress;
use crate::ranks::Ranks;
use crate::summary::{batches_line, peak_line, per_item_line, print_summary};
use lattice_sim::ItemRecord;
use lattice_sim::{
    BatchDone, FlowsModel, Item, Model, Observer, ObserverError, Output, Results, Simulation,
    Stats, StepEvent,
};
use serde::{Deserialize, Serialize};

/// Weight files above this are not copied into the output folder (they are reproducible from
/// the seed); the optimized preset's mapper alone is 2.5 GB.
const MAX_WEIGHTS_COPY: u64 = 512 << 20;

/// The limit; tests lower it, so the skip can be seen without a 2.5 GB preset.
fn max_weights_copy() -> u64 {
    crate::test_hooks::max_weights_copy().unwrap_or(MAX_WEIGHTS_COPY)
}

pub(super) fn run(
    args: &RunArgs,
    sim: &Simulation,
    quiet: bool,
    ranks: &Ranks,
) -> anyhow::Result<()> {
    let Model::Flows(model) = sim.model() else {
        bail!("{} is not a Flows config", sim.loaded().path.display());
    };
    let cfg = &model.cfg;
    let items = sim.config().batch.items as usize;
    // Under MPI this rank runs its share of the items; rank 0 gathers the rest.
    let share = ranks.share(items);
    // Before anything big is allocated: does one batch fit?
    let batch = sim.batch_size(share.len().max(1))?;
    let (embeddings, texts) = read_embeddings(args, sim, cfg, items)?;
    let mut watch = Watch::resume_or_start(args, sim, cfg, share.len(), quiet)?;
    let e = cfg.embedding_dim as usize;
    // Item ids are the items' indices.
    let submitted: Vec<Item> = (share.start + watch.first_item..share.end)
        .map(|b| match &embeddings {
            Some(v) => Item::embedding(b as u64, v[b * e..(b + 1) * e].to_vec()),
            None => Item::seeded(b as u64),
        })
        .collect();
    let results = sim.run_observed(&submitted, &mut watch)?;
    watch.progress.finish();
    let timing = RankTiming::new(ranks, &share, &results.stats);
    let Some(rank_timings) = gather_flows(ranks, model, &mut watch, timing, items)? else {
        return Ok(());
    };
    let outputs = write_outputs(args, sim, model, &watch, &results)?;
    let flow_steps: u64 = watch.step_records.iter().map(|r| u64::from(r.live)).sum();
    let shape = FlowShape::from_config(cfg);
    let specific = FlowsMetrics {
        simulation: "flows",
        dims: [shape.w, shape.h, shape.d],
        capacity_per_item: cfg.capacity(),
        max_steps: cfg.steps(),
        embeddings: match &texts {
            Some(t) => format!("texts {} via encoder {}", t.file, t.encoder),
            None => origin(args.embeddings.as_deref()),
        },
        texts,
        totals: FlowTotals::new(&watch.outcomes, flow_steps),
        steps: StepMetrics::of(&watch.step_records),
        per_item: &watch.outcomes,
        per_item_runs: &watch.finished,
        trace_overwritten: results.trace.as_ref().map(|t| t.overwritten),
        outputs,
    };
    let st = &results.stats;
    Metrics::new(
        args,
        sim,
        st,
        batch,
        Rate::FlowStepsPerS(st.work_per_s()),
        &specific,
    )
    .with_ranks(rank_timings)
    .write(args)?;
    print_flows_summary(args, sim, &specific, st);
    Ok(())
}

/// What a rank's flows part holds besides its arrays (planes, merged, collected).
#[derive(Serialize, Deserialize)]
struct FlowsPart {
    outcomes: Vec<ItemOutcome>,
    finished: Vec<ItemRecord>,
    step_records: Vec<StepRecord>,
    item0_landed: Vec<u32>,
}

/// Sends this rank's items to rank 0; there, puts every rank's into `watch` in item order and
/// returns the ranks' timings (`None` on the other ranks).
fn gather_flows(
    ranks: &Ranks,
    model: &FlowsModel,
    watch: &mut Watch,
    timing: RankTiming,
    items: usize,
) -> anyhow::Result<Option<Vec<RankTiming>>> {
    if ranks.size() == 1 {
        return Ok(Some(vec![timing]));
    }
    // Every item of this rank's share collected, those finished before a resume included.
    watch.collected = collected_embeddings(model, watch);
    watch.first_item = 0;
    let part = FlowsPart {
        outcomes: std::mem::take(&mut watch.outcomes),
        finished: std::mem::take(&mut watch.finished),
        step_records: std::mem::take(&mut watch.step_records),
        item0_landed: std::mem::take(&mut watch.ck.item0_landed),
    };
    let arrays = [&watch.planes[..], &watch.merged[..], &watch.collected[..]];
    let Some(parts) = by_items::gather(ranks, timing, part, &arrays)? else {
        return Ok(None);
    };
    let (mut planes, mut merged, mut collected) = (Vec::new(), Vec::new(), Vec::new());
    let mut timings = Vec::new();
    for (timing, part, arrays) in parts {
        if timing.items[0] == 0 && timing.items[1] > 0 {
            watch.ck.item0_landed = part.item0_landed;
        }
        watch.outcomes.extend(part.outcomes);
        watch.finished.extend(part.finished);
        StepRecord::merge_into(&mut watch.step_records, &part.step_records);
        let [p, m, c] = <[Vec<f32>; 3]>::try_from(arrays).expect("three arrays");
        planes.extend(p);
        merged.extend(m);
        collected.extend(c);
        timings.push(timing);
    }
    (watch.planes, watch.merged, watch.collected) = (planes, merged, collected);
    watch.items = items;
    Ok(Some(timings))
}

/// `--embeddings`, `[items, embedding_dim]`, or None for seeded ones.
fn read_embeddings(
    args: &RunArgs,
    sim: &Simulation,
    cfg: &FlowsConfig,
    items: usize,
) -> anyhow::Result<(Option<Vec<f32>>, Option<TextsInput>)> {
    if let Some(p) = &args.embeddings {
        let e = u64::from(cfg.embedding_dim);
        let what = "[batch.items, embedding_dim]";
        return Ok((Some(read_items(p, &[e], items, args.order(), what)?), None));
    }
    match (&args.texts, &args.encoder) {
        (Some(texts), Some(encoder)) => {
            let (v, info) = embed_texts(sim, (texts, encoder), items)?;
            Ok((Some(v), Some(info)))
        }
        (Some(_), None) => bail!(
            "--texts needs an encoder: give --encoder DIR (a local Hugging Face model folder) or set texts.encoder in the config"
        ),
        (None, Some(_)) => bail!("--encoder embeds texts; give them with --texts FILE"),
        (None, None) => Ok((None, None)),
    }
}

/// The texts' embeddings, one item per text: the encoder's width is checked before its
/// weights load, and the text count against `batch.items` before anything is encoded.
fn embed_texts(
    sim: &Simulation,
    (file, dir): (&PathBuf, &PathBuf),
    items: usize,
) -> anyhow::Result<(Vec<f32>, TextsInput)> {
    let texts = lattice_sim::read_texts_for(file, items)?;
    let encoder = sim.load_encoder(dir)?;
    let batch = sim.encoder_batch_size();
    let encoded = sim.embed_texts(&encoder, &texts.texts, batch, |done| {
        tracing::info!("embedded {done} of {} texts", texts.len());
    })?;
    tracing::info!(
        "texts embedded: {:.1} texts/s, {:.0} tokens/s ({} truncated at {} tokens)",
        encoded.texts_per_s(),
        encoded.tokens_per_s(),
        encoded.truncated,
        encoder.max_tokens()
    );
    let info = TextsInput {
        file: file.display().to_string(),
        encoder: dir.display().to_string(),
        tokens: encoded.tokens(),
        truncated: encoded.truncated,
        seconds: encoded.seconds,
        texts_per_s: encoded.texts_per_s(),
        tokens_per_s: encoded.tokens_per_s(),
        ids: texts.ids,
    };
    Ok((encoded.embeddings, info))
}

/// Surfaces, pictures, collected embeddings, weights and the trace; what was written.
fn write_outputs(
    args: &RunArgs,
    sim: &Simulation,
    model: &FlowsModel,
    watch: &Watch,
    results: &Results,
) -> anyhow::Result<FlowOutputs> {
    let shape = FlowShape::from_config(&model.cfg);
    let (items, out) = (watch.items as u64, &args.out);
    let (w, h) = (u64::from(shape.w), u64::from(shape.h));
    write_f32(&out.join("surface.npy"), &[items, 2, h, w], &watch.planes)?;
    write_f32(
        &out.join("surface_merged.npy"),
        &[items, h, w],
        &watch.merged,
    )?;
    let item0 = 0..2 * shape.surface() as usize;
    surface_pictures(args, &shape, &watch.planes[item0], &watch.ck.item0_landed)?;
    let mut outputs = FlowOutputs {
        surface: "surface.npy",
        surface_merged: "surface_merged.npy",
        png: "surface.png",
        vtk: "surface.vtk",
        png_shows: "item 0: front plane | back plane",
        embeddings_out: None,
        weights: None,
        events: None,
    };
    if model.cfg.collector {
        let e = u64::from(model.cfg.embedding_dim);
        let emb = collected_embeddings(model, watch);
        write_f32(&out.join("embeddings_out.npy"), &[items, e], &emb)?;
        outputs.embeddings_out = Some("embeddings_out.npy");
    }
    let parameters = sim.parameters() as u64;
    if parameters * 4 <= max_weights_copy() {
        sim.save_weights(&out.join("weights.safetensors"))?;
        outputs.weights = Some("weights.safetensors");
    } else {
        tracing::info!(
            "weights ({:.1} GB) not copied to the output folder; they are seeded from seed {}",
            parameters as f64 * 4e-9,
            sim.config().seed
        );
    }
    if let Some(t) = &results.trace {
        write_events(&out.join("events.jsonl"), t)?;
        outputs.events = Some("events.jsonl");
    }
    Ok(outputs)
}

/// Every item's collected embedding: items finished before a resume are collected here, the
/// others came with their results.
fn collected_embeddings(model: &FlowsModel, watch: &Watch) -> Vec<f32> {
    let weights = &model.weights;
    let wh = FlowShape::from_config(&model.cfg).surface() as usize;
    let merged = &watch.merged;
    let mut emb: Vec<f32> = (0..watch.first_item)
        .flat_map(|b| {
            collect_surface(
                &weights.layout,
                &weights.data,
                &merged[b * wh..(b + 1) * wh],
            )
        })
        .collect();
    emb.extend_from_slice(&watch.collected);
    emb
}

/// "; z-movement variance 0.012 (first step) → 0.0034 (last)".
fn z_variance_line(steps: &[StepMetrics<'_>]) -> String {
    let vars: Vec<f64> = steps.iter().filter_map(|s| s.z_move_variance).collect();
    match (vars.first(), vars.last()) {
        (Some(a), Some(b)) => format!("; z-movement variance {a:.3e} (step 1) → {b:.3e} (last)"),
        _ => String::new(),
    }
}

fn print_flows_summary(args: &RunArgs, sim: &Simulation, m: &FlowsMetrics<'_>, st: &Stats) {
    let [w, h, d] = m.dims;
    let t = &m.totals;
    let completed = t.completed_front + t.completed_back;
    let title = format!(
        "ran {} ({w}×{h}×{d} flows) on {}",
        sim.loaded().path.display(),
        st.backend
    );
    let items = sim.config().batch.items;
    print_summary(
        &title,
        &[
            ("items", format!("{items} in {}", batches_line(st))),
            (
                "flows",
                format!(
                    "{} created, {completed} completed (front {}, back {}), {} unfinished, {} dropped by capacity",
                    t.created,
                    t.completed_front,
                    t.completed_back,
                    t.unfinished,
                    t.dropped_by_capacity
                ),
            ),
            (
                "paths",
                format!(
                    "{:.2} steps on average to a plane; {:.3} completed per created{}",
                    t.mean_path_steps,
                    t.completed_per_created,
                    z_variance_line(&m.steps)
                ),
            ),
            (
                "steps",
                format!(
                    "{} run, at most {}; items stopped by {}",
                    m.steps.len(),
                    m.max_steps,
                    t.stops_line()
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
            ("per item", per_item_line(st)),
            ("peak memory", peak_line(st.peak_host_memory_bytes)),
            (
                "outputs",
                format!(
                    "{} (surface.npy, surface_merged.npy, surface.png, surface.vtk, metrics.json)",
                    args.out.display()
                ),
            ),
        ],
    );
}

/// What `lattice run` does while a flows run goes: progress, and the finished items' surfaces
/// and totals, checkpointed at a batch end once N steps have run since the last checkpoint.
struct Watch {
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
    /// Where its checkpoints go (OUT, or this rank's folder in it).
    out: PathBuf,
}

impl Watch {
    /// A fresh watch, or one that continues `--resume DIR`'s checkpoint.
    fn resume_or_start(
        args: &RunArgs,
        sim: &Simulation,
        cfg: &FlowsConfig,
        items: usize,
        quiet: bool,
    ) -> anyhow::Result<Self> {
        let shape = FlowShape::from_config(cfg);
        let header = Header::new(
            "flows",
            sim.loaded(),
            args.weights_origin(),
            cfg.steps(),
            args.layout,
        );
        let hw = [u64::from(shape.h), u64::from(shape.w)];
        let home = args.checkpoint_home();
        let (ck, planes, merged) = match args.resume.as_ref().map(|_| &home) {
            Some(dir) => {
                if cfg.trace.is_some() {
                    bail!(
                        "a run with an event trace cannot be resumed (the trace would miss the \
                         first part); remove trace from the config or run it again from the start"
                    );
                }
                let (ck, p, m) = FlowsCheckpoint::load(dir, &header, hw)?;
                let done = ck.done_items;
                tracing::info!(
                    "resuming from {}: {done} of {items} item(s) finished",
                    dir.display()
                );
                (ck, p, m)
            }
            None => (FlowsCheckpoint::new(header), Vec::new(), Vec::new()),
        };
        let (first_item, max_steps) = (ck.done_items, cfg.steps());
        let units = (items - first_item) as u64 * u64::from(max_steps);
        Ok(Self {
            progress: Progress::new(units, max_steps, args.log_every, quiet),
            step_records: ck.step_records.clone(),
            outcomes: ck.outcomes.clone(),
            finished: ck.results.clone(),
            ck,
            planes,
            merged,
            collected: Vec::new(),
            hw,
            items,
            first_item,
            since_checkpoint: 0,
            every: args.checkpoint_every,
            out: home,
        })
    }
}

impl Observer for Watch {
    fn step(&mut self, e: &StepEvent<'_>) -> Result<(), ObserverError> {
        let Some(r) = e.flows else { return Ok(()) };
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
        Ok(())
    }

    fn batch_done(&mut self, d: &BatchDone<'_>) -> Result<(), ObserverError> {
        for r in d.results {
            let Output::Flows {
                planes,
                merged,
                landed,
                totals,
                embedding_out,
            } = &r.output
            else {
                unreachable!("a flows run gives flows outputs")
            };
            if self.finished.is_empty() {
                // Item 0: its picture marks the cells no flow reached.
                self.ck.item0_landed.clone_from(landed);
            }
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
                .save(&self.out, self.hw, &self.planes, &self.merged)?;
            tracing::info!("checkpoint after item {done}");
            if let Some(why) = crate::test_hooks::stop_after_checkpoint() {
                return Err(format!(
                    "stopped after the checkpoint after item {done}, {why}; continue with --resume {}",
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

/// `surface.png` (item 0's front and back planes, cells no flow reached marked) and
/// `surface.vtk` (item 0 as a W×H×2 grid: front at z = 0, back at z = 1).
fn surface_pictures(
    args: &RunArgs,
    shape: &FlowShape,
    item0: &[f32],
    landed: &[u32],
) -> anyhow::Result<()> {
    let (w, h, out) = (shape.w as usize, shape.h as usize, &args.out);
    let marked: Vec<f32> = (item0.iter().zip(landed))
        .map(|(&v, &n)| if n == 0 { f32::NAN } else { v })
        .collect();
    let (front, back) = marked.split_at(w * h);
    let panel = |caption: &str, values| Panel {
        caption: caption.into(),
        values,
        w,
        h,
    };
    figures::write(
        &out.join("surface.png"),
        &Figure {
            title: format!("{}: flow surfaces", config_name(&args.config)),
            panels: vec![
                panel("item 0, front plane (z = −1)", front),
                panel("item 0, back plane (z = +1)", back),
            ],
            value_label: "energy".into(),
            no_value: "no flow landed",
        },
    )?;
    write_vtk(
        &out.join("surface.vtk"),
        [shape.w, shape.h, 2],
        &[("energy", item0)],
        "lattice flow surfaces, item 0 (z = 0 front, z = 1 back)",
    )?;
    Ok(())
}
