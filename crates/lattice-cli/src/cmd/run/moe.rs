//! `lattice run` on a Moe config: neighbor cache, weights, initial states, batches of steps.

use std::time::Instant;

use anyhow::bail;
use lattice_core::config::{BatchSize, LoadedConfig, MoeConfig};
use lattice_core::io::{read_f32, write_f32};
use lattice_core::lattice::build_cache;
use lattice_core::moe::{MoeShape, MoeWeights, ParamLayout, initial_states};
use serde_json::json;

use super::{RunArgs, write_metrics};
use crate::backend::Backend;
use crate::sim::{GpuSetup, MoeBatch, gpu_batch_limit};

pub(super) fn run(
    args: &RunArgs,
    loaded: &LoadedConfig,
    moe: &MoeConfig,
    backend: &Backend,
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
    let layout = ParamLayout::new(MoeShape::from_config(moe));
    let weights = match &args.weights {
        Some(p) => MoeWeights::load(layout, p)?,
        None => MoeWeights::seeded(layout, seed),
    };
    let states = match &args.init_states {
        Some(p) => {
            let want = [Some(items as u64), Some(n as u64), Some(s as u64)];
            read_f32(p, &want, "[batch.items, cells, state_size]")?.0
        }
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

    let gpu = match backend {
        Backend::Gpu(ctx) => Some(GpuSetup::new(ctx, cache, moe, &weights)?),
        Backend::Cpu => None,
    };
    let fits = match &gpu {
        Some(g) => gpu_batch_limit(
            g.ctx,
            cache.dims().cells(),
            moe.state_size,
            moe.functional.hidden_dim,
        )?,
        None => items,
    };
    let batch = match loaded.config.batch.max_batch_size {
        BatchSize::Auto => fits.min(items),
        BatchSize::Fixed(b) if b as usize > fits => bail!(
            "batch.max_batch_size Fixed({b}) does not fit this backend: at most {fits} item(s) of \
             this lattice fit one GPU binding; lower it or use Auto"
        ),
        BatchSize::Fixed(b) => (b as usize).min(items),
    };

    let mut out_states = Vec::with_capacity(states.len());
    let mut step_ms = Vec::new();
    let run_start = Instant::now();
    for (batch_index, first) in (0..items).step_by(batch).enumerate() {
        let count = batch.min(items - first);
        let slice = states[first * n * s..(first + count) * n * s].to_vec();
        let mut sim = MoeBatch::new(
            gpu.as_ref().map(GpuSetup::parts),
            cache,
            moe,
            &weights,
            slice,
            count,
        )?;
        for step in 1..=steps {
            let t = Instant::now();
            if let Some(bad) = sim.step()? {
                let item = first + bad.item;
                bail!(
                    "non-finite state at step {step}: item {item}, cell {} {:?}; nothing was written \
                     for this run. Lower init_scale, check the weights, or try combine: Replace",
                    bad.cell,
                    cache.dims().coord(bad.cell)
                );
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            step_ms.push(ms);
            tracing::info!(
                "batch {batch_index} (items {first}..{}), step {step}/{steps}: {ms:.1} ms",
                first + count
            );
        }
        out_states.extend(sim.states()?);
    }
    let total_s = run_start.elapsed().as_secs_f64();

    let shape = [items as u64, n as u64, s as u64];
    write_f32(&args.out.join("states.npy"), &shape, &out_states)?;
    weights.save(&args.out.join("weights.safetensors"))?;
    let mean_ms = step_ms.iter().sum::<f64>() / step_ms.len().max(1) as f64;
    let cell_updates = (items * n) as f64 * f64::from(steps);
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
        "steps": steps,
        "state_size": s,
        "neighbors": cache.stats(),
        "weights": args.weights.as_ref().map_or("seeded".into(), |p| p.display().to_string()),
        "init_states": args.init_states.as_ref().map_or("seeded".into(), |p| p.display().to_string()),
        "timing": {
            "total_s": total_s,
            "mean_step_ms": mean_ms,
            "max_step_ms": step_ms.iter().cloned().fold(0.0, f64::max),
            "cell_updates_per_s": cell_updates / total_s,
        },
        "outputs": {"states": "states.npy", "weights": "weights.safetensors"},
    });
    write_metrics(&args.out, &metrics)?;
    println!(
        "ran {items} item(s) × {steps} step(s) of {} on {} in {total_s:.2} s ({:.0} cell-updates/s); wrote {}",
        cache.dims(),
        backend.name(),
        cell_updates / total_s,
        args.out.display()
    );
    Ok(())
}
