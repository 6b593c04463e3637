//! A MoE lattice split in z-slabs across the ranks of an MPI job (`--split z-slabs`): each rank
//! owns D/P planes and a halo of the stencil's largest |dz| on each side, refreshed after every
//! step; rank 0 gathers the slabs into the states one process computes.

use std::sync::{Arc, Mutex};

use anyhow::bail;
use lattice_core::moe::domain::{Domain, Planes};
use lattice_sim::{Model, Simulation};

use crate::ranks::{HaloTally, Ranks};

/// Gives `sim` this rank's slab and its halo exchange; returns the exchange's tally.
///
/// # Errors
/// A flows config, the GPU backend, or slabs thinner than the halo.
pub fn split(sim: &mut Simulation, ranks: &Ranks) -> anyhow::Result<Arc<HaloTally>> {
    let Model::Moe(m) = sim.model() else {
        bail!("--split z-slabs applies to Moe configs; a flows run splits by items only");
    };
    let (dims, boundary) = (m.cache.dims(), m.cache.boundary());
    let offsets = m.cache.stencil().offsets();
    let halo = offsets
        .iter()
        .map(|o| o.dz.unsigned_abs())
        .max()
        .unwrap_or(0);
    let (rank, size) = (ranks.rank() as u32, ranks.size() as u32);
    let planes = Planes::slab(dims, boundary, halo, rank, size).map_err(anyhow::Error::msg)?;
    let plane_values = (dims.w() * dims.h() * m.cfg.state_size) as usize;
    tracing::info!(
        "z-slab: planes {:?} of {}, halo {halo} plane(s) each side",
        planes.owned,
        dims.d()
    );
    let tally = Arc::new(HaloTally::default());
    let exchange = ranks.halo(planes.clone(), plane_values, tally.clone());
    sim.set_domain(Domain {
        planes,
        halo: Mutex::new(exchange),
    })?;
    Ok(tally)
}
