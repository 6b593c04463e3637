//! `lattice validate`: parse, check, build and validate the neighbor cache, summarize.

use std::path::Path;
use std::time::Instant;

use lattice_core::config::{self, FlowsConfig, Simulation};
use lattice_core::flows::{FlowLayout, FlowShape};
use lattice_core::lattice::build_cache;
use lattice_core::neighbors::NeighborClass;
use serde_json::json;

pub fn run(path: &Path, json_out: bool) -> anyhow::Result<()> {
    let loaded = config::load(path)?;
    let moe = match &loaded.config.simulation {
        Simulation::Moe(m) => m,
        Simulation::Flows(f) => {
            return flows(path, f, u64::from(loaded.config.batch.items), json_out);
        }
    };
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

/// Summary of a valid Flows config: sizes, capacities, parameter counts and memory.
fn flows(path: &Path, f: &FlowsConfig, items: u64, json_out: bool) -> anyhow::Result<()> {
    let shape = FlowShape::from_config(f);
    let layout = FlowLayout::new(shape);
    let params = |p: &str| u64::from(layout.count(p));
    let slots = items * u64::from(f.capacity());
    let hidden_bytes = slots * u64::from(shape.hidden_len()) * 4;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "config": path, "simulation": "flows", "dims": [shape.w, shape.h, shape.d],
                "items": items, "capacity_per_item": f.capacity(), "max_steps": f.steps(),
                "parameters": {"mapper": params("mapper."), "neuron": params("neuron."),
                    "carrier": params("carrier."), "collector": params("collector.")},
                "hidden_state_bytes": hidden_bytes,
            }))?
        );
        return Ok(());
    }
    println!("{}: valid", path.display());
    println!(
        "  lattice   {}×{}×{}: {} root flows per item on plane z = {}, at most {} steps",
        shape.w,
        shape.h,
        shape.d,
        shape.surface(),
        shape.d / 2,
        f.steps()
    );
    println!(
        "  flows     {} slots per item{}{}",
        f.capacity(),
        f.spawn
            .as_ref()
            .map_or(String::from(", spawn off"), |s| format!(
                ", spawn τ = {} (≤ {} per flow and step)",
                s.threshold, s.max_per_step
            )),
        if f.reflection {
            ", x/y reflection"
        } else {
            ", x/y clamped"
        }
    );
    println!(
        "  networks  mapper {}, neuron {}, carrier {} (GRU {}×{}), collector {} parameters",
        params("mapper."),
        params("neuron."),
        params("carrier."),
        shape.hidden,
        shape.layers,
        params("collector.")
    );
    println!(
        "  memory    hidden states {:.2} MiB for {items} item(s)",
        hidden_bytes as f64 / 1048576.0
    );
    Ok(())
}
