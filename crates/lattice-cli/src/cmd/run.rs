//! `lattice run`: build and validate the lattice, then run the configured simulation.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use lattice_core::config::{self, Simulation};
use lattice_core::lattice::build_cache;

use crate::backend::{Backend, BackendChoice};

#[derive(Args)]
pub struct RunArgs {
    /// The RON config to run.
    pub config: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

pub fn run(args: RunArgs, backend: BackendChoice, _quiet: bool) -> anyhow::Result<()> {
    let loaded = config::load(&args.config)?;
    let Simulation::Moe(moe) = &loaded.config.simulation;
    let backend = Backend::select(backend)?;
    tracing::info!(backend = %backend.name(), "backend");
    let start = Instant::now();
    let cache = build_cache(&loaded, &moe.lattice)?;
    let s = cache.stats();
    tracing::info!(
        "neighbor cache: {} cells, K = {}, neighbors per cell {}..{} (mean {:.1}), validated in {:.3} s",
        s.active_cells,
        s.stencil_offsets,
        s.total.min,
        s.total.max,
        s.total.mean,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
