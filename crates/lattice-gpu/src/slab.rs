//! A rank's z-slab of every MoE lattice on the GPU (a lattice split across MPI ranks): gather
//! and update run on the slab's cells only, and after every step the edge planes travel device
//! → host, the [`Halo`](lattice_core::moe::domain::Halo) exchange carries them to the neighboring ranks (and brings theirs), and
//! the halo planes travel host → device. wgpu cannot hand device memory to MPI, hence the host.

use std::ops::Range;

use lattice_core::moe::domain::{Domain, Planes};
use lattice_core::moe::{MoeEngine, NonFinite};

use crate::context::{GpuContext, GpuError};
use crate::kernel::Staging;
use crate::moe::GpuMoe;

/// The GPU engine of a slab: one step per submission, halos exchanged in between.
pub struct GpuSlabEngine<'a> {
    ctx: &'a GpuContext,
    moe: GpuMoe,
    domain: &'a Domain,
    /// Cells in one z-plane (W·H).
    plane_cells: u32,
    /// The host side of the exchange, `[items, N, S]`: after each step its edge and halo
    /// planes are current, the rest is the initial states.
    host: Vec<f32>,
    /// The edge planes' readback, made once.
    edges: Staging,
}

impl<'a> GpuSlabEngine<'a> {
    /// `moe` built with [`GpuMoe::new_slab`] for `domain`'s planes from `states`.
    pub fn new(
        ctx: &'a GpuContext,
        moe: GpuMoe,
        domain: &'a Domain,
        plane_cells: u32,
        states: Vec<f32>,
    ) -> Self {
        let edges = edge_cells(&domain.planes, plane_cells);
        let bytes = moe.cells_len(&edges) as u64 * 4;
        Self {
            ctx,
            edges: Staging::new(ctx, "slab edges", bytes),
            moe,
            domain,
            plane_cells,
            host: states,
        }
    }

    fn exchange(&mut self) -> Result<(), GpuError> {
        let p = &self.domain.planes;
        let edges = edge_cells(p, self.plane_cells);
        (self.moe).read_cells(self.ctx, &edges, &self.edges, &mut self.host)?;
        self.domain.exchange().exchange(&mut self.host);
        let halos: Vec<Range<u32>> = [p.below(), p.above()]
            .into_iter()
            .flatten()
            .map(|z| z.start * self.plane_cells..z.end * self.plane_cells)
            .collect();
        self.moe.write_cells(self.ctx, &halos, &self.host);
        Ok(())
    }
}

/// The cells of a slab's edge planes, the ones its neighbors' halos hold.
fn edge_cells(p: &Planes, plane_cells: u32) -> [Range<u32>; 2] {
    let (owned, h) = (&p.owned, p.halo);
    [owned.start..owned.start + h, owned.end - h..owned.end]
        .map(|z| z.start * plane_cells..z.end * plane_cells)
}

impl MoeEngine for GpuSlabEngine<'_> {
    type Error = GpuError;

    fn step(&mut self) -> Result<Vec<NonFinite>, GpuError> {
        self.moe.submit_steps(self.ctx, 1);
        let flags = self.moe.non_finite(self.ctx)?;
        self.exchange()?;
        let lowest = flags.into_iter().map(|c| c.unwrap_or(u32::MAX)).collect();
        let lowest = self.domain.exchange().lowest_over_ranks(lowest);
        Ok(NonFinite::from_lowest(lowest))
    }

    fn run_unchecked(&mut self, steps: u32) -> Result<(), GpuError> {
        for _ in 0..steps {
            self.moe.submit_steps(self.ctx, 1);
            self.exchange()?;
        }
        self.moe.wait(self.ctx)
    }

    fn states(&self) -> Result<Vec<f32>, GpuError> {
        self.moe.states(self.ctx)
    }
}
