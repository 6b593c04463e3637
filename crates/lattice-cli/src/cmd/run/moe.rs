//! `lattice run` on a Moe config: neighbor cache, weights, initial states, batches of steps.

use std::time::Instant;

use anyhow::bail;
use lattice_core::config::{BatchSize, LoadedConfig, MoeConfig};
use lattice_core::inputs::read_items;
use lattice_core::io::write_f32;
use lattice_core::lattice::build_cache;
use lattice_core::moe::{MoeShape, MoeWeights, ParamLayout, initial_states};
use serde_json::json;

use lattice_core::images::{write_heatmap, write_vtk};

use super::checkpoint::{Checkpoint, Header, STOP_AFTER_CHECKPOINT_ENV};
use super::{RunArgs, png_scale, write_metrics};
use crate::backend::Backend;
use crate::progress::Progress;
use crate::runtime::{
    BatchError, BatchRun, ItemResult, batches_line, classify, host_batch_limit, peak_line,
    peak_rss_bytes, print_summary, run_batches,
};
use crate::sim::{GpuSetup, MoeBatch, gpu_batch_limit};

pub(super) fn run(
    args: &RunArgs,
    loaded: &LoadedConfig,
    moe: &MoeConfig,
    backend: &Backend,
    quiet: bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let cache = build_cache(loaded, &moe.lattice)?;
    let st = cache.stats();
    tracing::info!(
        "neighbor cache: {} active cells, K = {}, neighbors per cell {}..{} (mean {:.1}), validated in {:.3} s",
        st.active_cells,
        st.stencil_offsets,
        st.total.min,
        st.total.max,
        st.total.mean,
        start.elapsed().as_secs_f64()
    );
    let cache = &cache;
    let seed = loaded.config.seed;
    let items = loaded.config.batch.items as usize;
    let steps = args.steps.unwrap_or(moe.steps);
    let n = cache.dims().cells_usize();
    let s = moe.state_size as usize;
    let dims = cache.dims();
    if args.channel >= moe.state_size {
        bail!(
            "--channel {} is not a state channel (state_size is {})",
            args.channel,
            s
        );
    }
    if let Some(z) = args.slice_z.filter(|&z| z >= dims.d()) {
        bail!("--slice-z {z} is outside the lattice (D = {})", dims.d());
    }
    // Before anything big is allocated: does one batch fit?
    let fits = match backend {
        Backend::Gpu(ctx) => gpu_batch_limit(
            ctx,
            cache.dims().cells(),
            moe.state_size,
            moe.functional.hidden_dim,
        )?,
        // States, the next states and the batch's copy.
        Backend::Cpu => host_batch_limit(3 * (n * s) as u64 * 4),
    };
    let batch = match loaded.config.batch.max_batch_size {
        BatchSize::Auto => fits.min(items),
        BatchSize::Fixed(b) if b as usize > fits => bail!(
            "batch.max_batch_size Fixed({b}) does not fit this backend: at most {fits} item(s) of \
             this lattice fit ({}); lower it or use Auto",
            if matches!(backend, Backend::Gpu(_)) {
                "one GPU binding"
            } else {
                "80 % of the available host memory"
            }
        ),
        BatchSize::Fixed(b) => (b as usize).min(items),
    };

    let layout = ParamLayout::new(MoeShape::from_config(moe));
    let weights = match &args.weights {
        Some(p) => MoeWeights::load(layout, p)?,
        None => MoeWeights::seeded(layout, seed),
    };
    let mut states = match &args.init_states {
        Some(p) => read_items(
            p,
            &[n as u64, s as u64],
            items,
            args.input_order.into(),
            "[batch.items, cells, state_size]",
        )?,
        None => (0..items)
            .flat_map(|b| initial_states(seed, b as u64, n, s, moe.init_scale))
            .collect(),
    };
    if let Some((item, cell, _)) = lattice_core::moe::cpu::find_non_finite(&states, n, s) {
        bail!(
            "the initial states are not finite at item {item}, cell {cell} {:?}",
            cache.dims().coord(cell as u32)
        );
    }

    let shape = [items as u64, n as u64, s as u64];
    let weights_id = args
        .weights
        .as_ref()
        .map_or("seeded".into(), |p| p.display().to_string());
    let header = Header::new("moe", loaded, weights_id, steps);
    let mut ck = match &args.resume {
        Some(dir) => {
            let (ck, saved) = Checkpoint::load(dir, &header, shape)?;
            tracing::info!(
                "resuming from {}: {} of {items} item(s) finished",
                dir.display(),
                ck.done.iter().filter(|&&d| d == steps).count()
            );
            states = saved;
            ck
        }
        None => Checkpoint::new(header, items),
    };

    let gpu = match backend {
        Backend::Gpu(ctx) => Some(GpuSetup::new(ctx, cache, moe, &weights)?),
        Backend::Cpu => None,
    };
    // Items in flight in the checkpoint (same done count) run first, as one group.
    let partial: Vec<usize> = (0..items)
        .filter(|&b| ck.done[b] > 0 && ck.done[b] < steps)
        .collect();
    let fresh_from = (0..items).find(|&b| ck.done[b] == 0).unwrap_or(items);
    let remaining: u64 = ck.done.iter().map(|&d| u64::from(steps - d)).sum();
    let mut progress = Progress::new(remaining * n as u64, steps, args.log_every, quiet);
    let mut step_ms = Vec::new();
    let mut run = BatchRun::default();
    let run_start = Instant::now();
    let mut run_range = |run: &mut BatchRun, range: std::ops::Range<usize>, size: usize| {
        run_batches(run, range, size, |batch_index, r| {
            let _span = tracing::info_span!("batch", index = batch_index, items = ?r).entered();
            let first = r.start;
            let count = r.len();
            let batch_start = Instant::now();
            let from = ck.done[first];
            let slice = states[first * n * s..(first + count) * n * s].to_vec();
            let mut sim = MoeBatch::new(
                gpu.as_ref().map(GpuSetup::parts),
                cache,
                moe,
                &weights,
                slice,
                count,
            )
            .map_err(classify)?;
            for step in from + 1..=steps {
                let t = Instant::now();
                for bad in sim.step()? {
                    let item = first + bad.item;
                    if ck.errors[item].is_none() {
                        let msg = format!(
                            "non-finite state at step {step}, cell {} {:?}",
                            bad.cell,
                            cache.dims().coord(bad.cell)
                        );
                        tracing::warn!("item {item}: {msg}; the other items go on");
                        ck.errors[item] = Some(msg);
                    }
                }
                let ms = t.elapsed().as_secs_f64() * 1e3;
                step_ms.push(ms);
                progress.step((count * n) as u64, step, steps, || {
                    format!(
                        "batch {batch_index} (items {first}..{}), step {step}/{steps}: {ms:.1} ms",
                        first + count
                    )
                });
                if args.checkpoint_every > 0 && step % args.checkpoint_every == 0 && step < steps {
                    let now = sim.states()?;
                    states[first * n * s..(first + count) * n * s].copy_from_slice(&now);
                    ck.done[first..first + count].fill(step);
                    ck.save(&args.out, shape, &states)?;
                    tracing::info!(
                        "checkpoint at step {step} of items {first}..{}",
                        first + count
                    );
                    if std::env::var_os(STOP_AFTER_CHECKPOINT_ENV).is_some() {
                        return Err(BatchError::Fatal(anyhow::anyhow!(
                            "stopped after the checkpoint at step {step}, as {STOP_AFTER_CHECKPOINT_ENV} asks; \
                             continue with --resume {}",
                            args.out.display()
                        )));
                    }
                }
            }
            let now = sim.states()?;
            states[first * n * s..(first + count) * n * s].copy_from_slice(&now);
            ck.done[first..first + count].fill(steps);
            let secs = batch_start.elapsed().as_secs_f64();
            for item in r {
                ck.results[item] = Some(ItemResult {
                    id: item as u64,
                    batch: batch_index,
                    duration_s: secs,
                    ok: ck.errors[item].is_none(),
                    error: ck.errors[item].clone(),
                });
            }
            Ok(ck.errors[first..first + count].to_vec())
        })
    };
    if let (Some(&a), Some(&b)) = (partial.first(), partial.last()) {
        run_range(&mut run, a..b + 1, b + 1 - a)?;
    }
    run_range(&mut run, fresh_from..items, batch)?;
    progress.finish();
    let total_s = run_start.elapsed().as_secs_f64();

    write_f32(&args.out.join("states.npy"), &shape, &states)?;
    let (slice_z, channel) = pictures(args, cache.dims(), s, &states[..n * s])?;
    weights.save(&args.out.join("weights.safetensors"))?;
    let results: Vec<ItemResult> = ck.results.iter().flatten().cloned().collect();
    let failed: Vec<&ItemResult> = results.iter().filter(|r| !r.ok).collect();
    let mean_ms = step_ms.iter().sum::<f64>() / step_ms.len().max(1) as f64;
    let max_ms = step_ms.iter().cloned().fold(0.0, f64::max);
    let cell_updates = remaining as f64 * n as f64;
    let peak = peak_rss_bytes();
    let metrics = json!({
        "simulation": "moe",
        "config": loaded.path,
        "config_hash": format!("{:016x}", loaded.text_hash),
        "version": env!("CARGO_PKG_VERSION"),
        "backend": backend.name(),
        "seed": loaded.config.seed,
        "dims": cache.dims().as_array(),
        "items": items,
        "batch_size": batch,
        "batch_sizes": run.batch_sizes,
        "halvings": run.halvings,
        "resumed_from": args.resume,
        "steps": steps,
        "state_size": s,
        "neighbors": cache.stats(),
        "weights": args.weights.as_ref().map_or("seeded".into(), |p| p.display().to_string()),
        "init_states": args.init_states.as_ref().map_or("seeded".into(), |p| p.display().to_string()),
        "timing": {
            "total_s": total_s,
            "mean_step_ms": mean_ms,
            "max_step_ms": max_ms,
            "cell_updates_per_s": cell_updates / total_s,
            "items_per_s": items as f64 / total_s,
            "peak_host_memory_bytes": peak,
        },
        "per_item": results,
        "outputs": {"states": "states.npy", "weights": "weights.safetensors",
            "png": "states.png", "vtk": "states.vtk",
            "png_shows": format!("item 0, z = {slice_z}, channel {channel}")},
    });
    write_metrics(&args.out, &metrics)?;
    print_summary(
        &format!(
            "ran {} ({}) on {}",
            loaded.path.display(),
            cache.dims(),
            backend.name()
        ),
        &[
            (
                "items",
                format!(
                    "{} ok, {} failed, in {}",
                    results.len() - failed.len(),
                    failed.len(),
                    batches_line(&run, batch)
                ),
            ),
            ("steps", format!("{steps} per item")),
            (
                "time",
                format!("{total_s:.2} s (mean step {mean_ms:.1} ms, max {max_ms:.1} ms)"),
            ),
            (
                "throughput",
                format!(
                    "{:.0} cell-updates/s, {:.2} items/s",
                    cell_updates / total_s,
                    items as f64 / total_s
                ),
            ),
            ("peak memory", peak_line(peak)),
            (
                "outputs",
                format!(
                    "{} (states.npy, states.png, states.vtk, metrics.json, weights.safetensors)",
                    args.out.display()
                ),
            ),
        ],
    );
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|r| format!("item {}: {}", r.id, r.error.as_deref().unwrap_or("failed")))
            .collect();
        bail!(
            "{} of {items} item(s) failed ({}); the others completed and every output was written. \
             Lower init_scale, check the weights, or try combine: Replace",
            failed.len(),
            list.join("; ")
        );
    }
    Ok(())
}

/// `states.png` (item 0, one z-slice of one channel) and `states.vtk` (item 0, that channel and
/// the state norm, every cell); returns the slice and channel drawn.
fn pictures(
    args: &RunArgs,
    dims: lattice_core::Dims,
    s: usize,
    item0: &[f32],
) -> anyhow::Result<(u32, u32)> {
    let c = args.channel as usize;
    let z = args.slice_z.unwrap_or(dims.d() / 2);
    let (w, h) = (dims.w() as usize, dims.h() as usize);
    let plane = w * h;
    let slice: Vec<f32> = (0..plane)
        .map(|k| item0[(z as usize * plane + k) * s + c])
        .collect();
    // Row y = H−1 at the top, as a plot of the x-y plane.
    let flipped: Vec<f32> = (0..h)
        .rev()
        .flat_map(|y| slice[y * w..(y + 1) * w].to_vec())
        .collect();
    write_heatmap(
        &args.out.join("states.png"),
        h,
        w,
        &flipped,
        png_scale(dims.w()),
    )?;
    let channel: Vec<f32> = item0.chunks(s).map(|v| v[c]).collect();
    let norm: Vec<f32> = item0
        .chunks(s)
        .map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt())
        .collect();
    write_vtk(
        &args.out.join("states.vtk"),
        dims.as_array(),
        &[(&format!("channel_{c}"), &channel), ("state_norm", &norm)],
        "lattice MoE states, item 0",
    )?;
    Ok((z, args.channel))
}
