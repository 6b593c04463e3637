//! `lattice run` on a Flows config: mapper → flows → surfaces, batch by batch.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use lattice_core::config::{BatchSize, FlowsConfig, LoadedConfig};
use lattice_core::flows::aggregate::aggregate;
use lattice_core::flows::mapper::{collect_surface, seeded_embedding};
use lattice_core::flows::run::{ItemOutcome, StepRecord};
use lattice_core::flows::trace::Trace;
use lattice_core::flows::{FlowLayout, FlowShape, FlowWeights};
use lattice_core::inputs::read_items;
use lattice_core::io::{write_atomic, write_f32};
use serde_json::json;

use lattice_core::images::{write_heatmap, write_vtk};

use super::checkpoint::{FlowsCheckpoint, Header, STOP_AFTER_CHECKPOINT_ENV};
use super::{RunArgs, png_scale, write_metrics};
use crate::backend::Backend;
use crate::progress::Progress;
use crate::runtime::{
    BatchError, BatchRun, ItemResult, batches_line, host_batch_limit, peak_line, peak_rss_bytes,
    print_summary, run_batches,
};
use crate::sim::{GpuFlowSetup, flows_batch_limit, run_flow_batch};
use lattice_gpu::flows::FlowKernels;

/// Weight files above this are not copied into the output folder (they are reproducible from
/// the seed); the optimized preset's mapper alone is 2.5 GB.
const MAX_WEIGHTS_COPY: u64 = 512 << 20;

pub(super) fn run(
    args: &RunArgs,
    loaded: &LoadedConfig,
    cfg: &FlowsConfig,
    backend: &Backend,
    quiet: bool,
) -> anyhow::Result<()> {
    let mut cfg = cfg.clone();
    if let Some(s) = args.steps {
        cfg.max_steps = Some(s);
    }
    let seed = loaded.config.seed;
    let items = loaded.config.batch.items as usize;
    let shape = FlowShape::from_config(&cfg);
    // Before anything big is allocated: does one batch fit?
    let per_item = FlowKernels::bytes_per_item(&FlowLayout::new(shape), cfg.capacity());
    let fits = match backend {
        Backend::Gpu(ctx) => flows_batch_limit(ctx, &shape, cfg.capacity())?,
        // Hidden states, a copy for the trace or the final read, and the rest of a slot.
        Backend::Cpu => host_batch_limit(2 * per_item + u64::from(cfg.capacity()) * 64),
    };
    let batch = match loaded.config.batch.max_batch_size {
        BatchSize::Auto => fits.min(items),
        BatchSize::Fixed(b) if b as usize > fits => bail!(
            "batch.max_batch_size Fixed({b}) does not fit this backend: at most {fits} item(s) \
             of {} flow slots fit {}; lower it or use Auto",
            cfg.capacity(),
            if matches!(backend, Backend::Gpu(_)) {
                "one GPU binding"
            } else {
                "80 % of the available host memory"
            }
        ),
        BatchSize::Fixed(b) => (b as usize).min(items),
    };
    let layout = FlowLayout::new(shape);
    let t = Instant::now();
    let weights = match &args.weights {
        Some(p) => FlowWeights::load(layout, p)?,
        None => FlowWeights::seeded(layout, seed),
    };
    tracing::info!(
        "flow networks: {} parameters, ready in {:.2} s",
        weights.data.len(),
        t.elapsed().as_secs_f64()
    );
    let e = cfg.embedding_dim as usize;
    let embeddings: Vec<f32> = match &args.embeddings {
        Some(p) => read_items(
            p,
            &[e as u64],
            items,
            args.input_order.into(),
            "[batch.items, embedding_dim]",
        )?,
        None => (0..items)
            .flat_map(|b| seeded_embedding(seed, b as u64, e))
            .collect(),
    };
    if let Some(k) = embeddings.iter().position(|v| !v.is_finite()) {
        bail!(
            "the input embeddings are not finite at item {}, element {}",
            k / e,
            k % e
        );
    }

    let gpu = match backend {
        Backend::Gpu(ctx) => Some(GpuFlowSetup::new(ctx, &weights, cfg.capacity())?),
        Backend::Cpu => None,
    };
    let mut trace = cfg.trace.as_ref().map(|t| Trace::new(t.capacity));
    let weights_id = args
        .weights
        .as_ref()
        .map_or("seeded".into(), |p| p.display().to_string());
    let header = Header::new("flows", loaded, weights_id, cfg.steps());
    let hw = [u64::from(shape.h), u64::from(shape.w)];
    let (mut ck, mut planes, mut merged) = match &args.resume {
        Some(dir) => {
            if trace.is_some() {
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
    let mut steps: Vec<StepRecord> = std::mem::take(&mut ck.step_records);
    let mut outcomes: Vec<ItemOutcome> = std::mem::take(&mut ck.outcomes);
    let mut since_checkpoint = 0u32;
    let run_start = Instant::now();
    let max_steps = cfg.steps();
    let mut progress = Progress::new(
        (items - start_item) as u64 * u64::from(max_steps),
        max_steps,
        args.log_every,
        quiet,
    );
    let mut finished: Vec<ItemResult> = std::mem::take(&mut ck.results);
    let mut run = BatchRun::default();
    run_batches(&mut run, start_item..items, batch, |batch_index, r| {
        let _span = tracing::info_span!("batch", index = batch_index, items = ?r).entered();
        let (first, count) = (r.start, r.len());
        let batch_start = Instant::now();
        let log = |r: &StepRecord| {
            progress.step(count as u64, r.step + 1, max_steps, || {
                format!(
                    "batch {batch_index} (items {first}..{}), step {}: {} live, {} spawned, {} front, {} back, {} reflected, {} dropped",
                    first + count,
                    r.step + 1,
                    r.live,
                    r.spawned,
                    r.completed_front,
                    r.completed_back,
                    r.reflected,
                    r.dropped_by_capacity
                )
            })
        };
        let ids: Vec<u64> = (first as u64..(first + count) as u64).collect();
        let outcome = run_flow_batch(
            gpu.as_ref(),
            &weights,
            &cfg,
            seed,
            &ids,
            &embeddings[first * e..(first + count) * e],
            trace.as_mut(),
            log,
        )?;
        let s = aggregate(&shape, &outcome.state);
        planes.extend(s.planes);
        merged.extend(s.merged);
        let outcome_steps = outcome.steps.len() as u32;
        for r in outcome.steps {
            match steps.get_mut(r.step as usize) {
                Some(acc) => add_step(acc, &r),
                None => steps.push(r),
            }
        }
        outcomes.extend(outcome.items);
        let secs = batch_start.elapsed().as_secs_f64();
        finished.extend(r.map(|item| ItemResult {
            id: item as u64,
            batch: batch_index,
            duration_s: secs,
            ok: true,
            error: None,
        }));
        since_checkpoint += outcome_steps;
        if args.checkpoint_every > 0
            && since_checkpoint >= args.checkpoint_every
            && first + count < items
        {
            since_checkpoint = 0;
            ck.done_items = first + count;
            ck.step_records = steps.clone();
            ck.outcomes = outcomes.clone();
            ck.results = finished.clone();
            ck.save(&args.out, hw, &planes, &merged)?;
            tracing::info!("checkpoint after item {}", first + count);
            if std::env::var_os(STOP_AFTER_CHECKPOINT_ENV).is_some() {
                return Err(BatchError::Fatal(anyhow::anyhow!(
                    "stopped after the checkpoint after item {}, as {STOP_AFTER_CHECKPOINT_ENV} asks; \
                     continue with --resume {}",
                    first + count,
                    args.out.display()
                )));
            }
        }
        Ok(vec![None; count])
    })?;
    progress.finish();
    let total_s = run_start.elapsed().as_secs_f64();

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
        let wh = shape.surface() as usize;
        let emb: Vec<f32> = (0..items)
            .flat_map(|b| {
                collect_surface(
                    &weights.layout,
                    &weights.data,
                    &merged[b * wh..(b + 1) * wh],
                )
            })
            .collect();
        write_f32(
            &out.join("embeddings_out.npy"),
            &[items as u64, e as u64],
            &emb,
        )?;
        outputs["embeddings_out"] = "embeddings_out.npy".into();
    }
    if (weights.data.len() as u64) * 4 <= MAX_WEIGHTS_COPY {
        weights.save(&out.join("weights.safetensors"))?;
        outputs["weights"] = "weights.safetensors".into();
    } else {
        tracing::info!(
            "weights ({:.1} GB) not copied to the output folder; they are seeded from seed {seed}",
            weights.data.len() as f64 * 4e-9
        );
    }
    if let Some(t) = &trace {
        write_events(&out.join("events.jsonl"), t)?;
        outputs["events"] = "events.jsonl".into();
    }
    let flow_steps: u64 = steps.iter().map(|r| u64::from(r.live)).sum();
    let sum = |f: fn(&ItemOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let metrics = json!({
        "simulation": "flows",
        "config": loaded.path,
        "config_hash": format!("{:016x}", loaded.text_hash),
        "version": env!("CARGO_PKG_VERSION"),
        "backend": backend.name(),
        "seed": seed,
        "dims": [shape.w, shape.h, shape.d],
        "items": items,
        "batch_size": batch,
        "batch_sizes": run.batch_sizes,
        "halvings": run.halvings,
        "capacity_per_item": cfg.capacity(),
        "max_steps": cfg.steps(),
        "weights": args.weights.as_ref().map_or("seeded".into(), |p| p.display().to_string()),
        "embeddings": args.embeddings.as_ref().map_or("seeded".into(), |p| p.display().to_string()),
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
        },
        "steps": steps,
        "per_item": outcomes,
        "per_item_runs": finished,
        "resumed_from": args.resume,
        "trace_overwritten": trace.as_ref().map(|t| t.overwritten),
        "timing": {
            "total_s": total_s,
            "flow_steps_per_s": flow_steps as f64 / total_s,
            "items_per_s": items as f64 / total_s,
            "peak_host_memory_bytes": peak_rss_bytes(),
        },
        "outputs": outputs,
    });
    write_metrics(out, &metrics)?;
    let peak = peak_rss_bytes();
    let completed = sum(|o| o.completed_front + o.completed_back);
    print_summary(
        &format!(
            "ran {} ({}×{}×{} flows) on {}",
            loaded.path.display(),
            shape.w,
            shape.h,
            shape.d,
            backend.name()
        ),
        &[
            ("items", format!("{items} in {}", batches_line(&run, batch))),
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
                format!("{} run, at most {}", steps.len(), cfg.steps()),
            ),
            ("time", format!("{total_s:.2} s")),
            (
                "throughput",
                format!(
                    "{:.0} flow-steps/s, {:.2} items/s",
                    flow_steps as f64 / total_s,
                    items as f64 / total_s
                ),
            ),
            ("peak memory", peak_line(peak)),
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

fn add_step(acc: &mut StepRecord, r: &StepRecord) {
    acc.live += r.live;
    acc.spawned += r.spawned;
    acc.completed_front += r.completed_front;
    acc.completed_back += r.completed_back;
    acc.reflected += r.reflected;
    acc.moving += r.moving;
    acc.dropped_by_capacity += r.dropped_by_capacity;
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
