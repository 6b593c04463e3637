//! `lattice inspect neighbors`: one cell's neighbors.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use lattice_core::config::{self, Simulation};
use lattice_core::lattice::build_cache;
use serde_json::json;

#[derive(Subcommand)]
pub enum Inspect {
    /// List a cell's neighbors: index, coordinates, class, distance.
    Neighbors {
        config: PathBuf,
        /// The cell's x y z coordinates.
        #[arg(long, num_args = 3, value_names = ["X", "Y", "Z"], required = true)]
        cell: Vec<u32>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(what: Inspect) -> anyhow::Result<()> {
    let Inspect::Neighbors {
        config: path,
        cell,
        json: json_out,
    } = what;
    let loaded = config::load(&path)?;
    let Simulation::Moe(moe) = &loaded.config.simulation else {
        bail!(
            "{}: a Flows config has no neighbor cache; `inspect neighbors` needs a Moe config",
            path.display()
        );
    };
    let cache = build_cache(&loaded, &moe.lattice)?;
    let dims = cache.dims();
    let [x, y, z] = [cell[0], cell[1], cell[2]];
    if x >= dims.w() || y >= dims.h() || z >= dims.d() {
        bail!(
            "--cell {x} {y} {z} is outside the {dims} lattice (x < {}, y < {}, z < {})",
            dims.w(),
            dims.h(),
            dims.d()
        );
    }
    let i = dims.index(x, y, z);
    let list = cache.neighbors(i);
    let counts = cache.class_counts(i);
    if json_out {
        let rows: Vec<_> = list
            .iter()
            .map(|n| json!({"cell": n.cell, "coord": dims.coord(n.cell), "class": n.class.name(), "distance": n.distance}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "cell": i, "coord": [x, y, z], "active": cache.is_active(i),
                "counts": {"local": counts[0], "functional": counts[1], "distant": counts[2]},
                "neighbors": rows,
            }))?
        );
        return Ok(());
    }
    println!(
        "cell {i} (x {x}, y {y}, z {z}){}: {} neighbors (local {}, functional {}, distant {})",
        if cache.is_active(i) {
            ""
        } else {
            " [masked off]"
        },
        list.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    println!(
        "{:>10} {:>14} {:>11} {:>9}",
        "index", "x y z", "class", "distance"
    );
    for n in &list {
        let [a, b, c] = dims.coord(n.cell);
        println!(
            "{:>10} {:>14} {:>11} {:>9.4}",
            n.cell,
            format!("{a} {b} {c}"),
            n.class.name(),
            n.distance
        );
    }
    Ok(())
}
