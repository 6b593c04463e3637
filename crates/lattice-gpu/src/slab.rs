//! A rank's z-slab of every MoE lattice on the GPU (a lattice split across MPI ranks): gather
//! and update run on the slab's cells only, and after every step the edge planes travel device
//! → host, the [`Halo`] exchange carries them to the neighboring ranks (and brings theirs), and
//! the halo planes travel host → device. wgpu cannot hand device memory to MPI, hence the host.

use std::ops::Range;
use std::sync::PoisonError;

use lattice_core::moe::domain::{Domain, Halo};
use lattice_core::moe::{MoeEngine, NonFinite};

use crate::context::{GpuContext, GpuError};
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
        Self {
            ctx,
            moe,
            domain,
            plane_cells,
            host: states,
        }
    }

    fn cells(&self, z: Range<u32>) -> Range<u32> {
        z.start * self.plane_cells..z.end * self.plane_cells
    }

    fn exchange(&mut self) -> Result<(), GpuError> {
        let p = &self.domain.planes;
        let (owned, h) = (p.owned.clone(), p.halo);
        let edges = [
            self.cells(owned.start..owned.start + h),
            self.cells(owned.end - h..owned.end),
        ];
        self.moe.read_cells(self.ctx, &edges, &mut self.host)?;
        let mut halo = self
            .domain
            .halo
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        halo.exchange(&mut self.host);
        let halos: Vec<Range<u32>> = [p.below(), p.above()]
            .into_iter()
            .flatten()
            .map(|z| self.cells(z))
            .collect();
        self.moe.write_cells(self.ctx, &halos, &self.host);
        Ok(())
    }

    fn lowest_over_ranks(&self, flags: Vec<Option<u32>>) -> Vec<u32> {
        let lowest = flags.into_iter().map(|c| c.unwrap_or(u32::MAX)).collect();
        let mut halo = self
            .domain
            .halo
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Halo::lowest_over_ranks(&mut **halo, lowest)
    }
}

impl MoeEngine for GpuSlabEngine<'_> {
    type Error = GpuError;

    fn step(&mut self) -> Result<Vec<NonFinite>, GpuError> {
        self.moe.submit_steps(self.ctx, 1);
        let flags = self.moe.non_finite(self.ctx)?;
        self.exchange()?;
        Ok((self.lowest_over_ranks(flags).into_iter().enumerate())
            .filter(|&(_, cell)| cell != u32::MAX)
            .map(|(item, cell)| NonFinite { item, cell })
            .collect())
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
