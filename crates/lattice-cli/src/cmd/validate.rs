//! `lattice validate`: parse, check, build and validate the neighbor cache, summarize.

use std::path::Path;
use std::time::Instant;

use lattice_core::config::{self, Simulation};
use lattice_core::lattice::build_cache;
use lattice_core::neighbors::NeighborClass;
use serde_json::json;

pub fn run(path: &Path, json_out: bool) -> anyhow::Result<()> {
    let loaded = config::load(path)?;
    let Simulation::Moe(moe) = &loaded.config.simulation;
    let start = Instant::now();
    let cache = build_cache(&loaded, &moe.lattice)?;
    let build_s = start.elapsed().as_secs_f64();
    let dims = cache.dims();
    let r = cache.radius();
    let stats = cache.stats();
    let items = u64::from(loaded.config.batch.items);
    let state_bytes = items * u64::from(dims.cells()) * u64::from(moe.state_size) * 4;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "config": path, "dims": dims.as_array(), "boundary": format!("{:?}", cache.boundary()),
                "cells": dims.cells(), "radius": r, "neighbors": stats,
                "items": items, "state_bytes": state_bytes, "build_and_validate_s": build_s,
            }))?
        );
        return Ok(());
    }
    println!("{}: valid", path.display());
    println!(
        "  lattice   {dims} ({} cells, {:?}), {} active",
        dims.cells(),
        cache.boundary(),
        stats.active_cells
    );
    println!(
        "  radius    R = {:.3}; LOCAL d < {:.3}, FUNCTIONAL ≤ {:.3}, DISTANT ≤ {:.3}",
        r.r, r.local, r.functional, r.distant
    );
    println!(
        "  stencil   K = {} offsets{}",
        stats.stencil_offsets,
        if cache.csr().is_some() {
            format!(", explicit table of {} entries (masked)", stats.entries)
        } else {
            String::new()
        }
    );
    println!("  neighbors per cell       min      mean       max");
    for class in NeighborClass::ALL {
        let s = stats.per_class[class.index()];
        println!(
            "    {:<12} {:>12} {:>9.1} {:>9}",
            class.name(),
            s.min,
            s.mean,
            s.max
        );
    }
    let t = stats.total;
    println!(
        "    {:<12} {:>12} {:>9.1} {:>9}",
        "total", t.min, t.mean, t.max
    );
    println!(
        "  memory    neighbor cache {:.2} MiB, states {:.2} MiB for {items} item(s) (×2 while stepping)",
        stats.memory_bytes as f64 / 1048576.0,
        state_bytes as f64 / 1048576.0
    );
    println!("  built and validated in {:.3} s", build_s);
    Ok(())
}
