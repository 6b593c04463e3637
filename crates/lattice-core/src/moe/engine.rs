//! The MoE engine interface the batch runtime drives, one implementation per backend: [`CpuMoe`]
//! here, `lattice_gpu::moe::GpuMoeEngine` on the GPU. A batch holds `items` lattices of N cells
//! with S channels, `[items, N, S]`, stepped synchronously.

use super::cpu;
use super::domain::{Domain, Planes};
use super::net::MoeNet;
use crate::neighbors::NeighborCache;

/// Steps a backend may run between two reads of its non-finite flags (the GPU keeps one flag
/// set per step in a ring of this many, so a late read still names the exact step).
pub const STEPS_PER_CHECK: u32 = 16;

/// An item whose states turned non-finite: its index in the batch and its first bad cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFinite {
    pub item: usize,
    pub cell: u32,
}

impl NonFinite {
    /// The items that have a non-finite cell, from each item's lowest (`u32::MAX`: none).
    pub fn from_lowest(lowest: Vec<u32>) -> Vec<Self> {
        (lowest.into_iter().enumerate())
            .filter(|&(_, cell)| cell != u32::MAX)
            .map(|(item, cell)| Self { item, cell })
            .collect()
    }
}

/// A backend that steps a batch of MoE lattices.
pub trait MoeEngine {
    /// The backend's failure (the CPU cannot fail: [`std::convert::Infallible`]).
    type Error;

    /// One synchronous step; then, per item that has one, its first non-finite state.
    ///
    /// # Errors
    /// The backend's own failure (a lost device, a failed readback).
    fn step(&mut self) -> Result<Vec<NonFinite>, Self::Error>;

    /// Steps the runtime asks for at once ([`Self::steps`]): 1 where a host check costs
    /// nothing (the CPU; an observer then hears of every step as it ends), up to
    /// [`STEPS_PER_CHECK`] where it is a device round trip.
    fn steps_per_check(&self) -> u32 {
        1
    }

    /// `k` (≤ [`STEPS_PER_CHECK`]) synchronous steps; then, per step, what [`Self::step`]
    /// would have returned. A backend may run them without a host round trip in between.
    ///
    /// # Errors
    /// As [`Self::step`].
    fn steps(&mut self, k: u32) -> Result<Vec<Vec<NonFinite>>, Self::Error> {
        (0..k).map(|_| self.step()).collect()
    }

    /// `steps` steps without the per-step check, then waits for them (benchmarks).
    ///
    /// # Errors
    /// As [`Self::step`].
    fn run_unchecked(&mut self, steps: u32) -> Result<(), Self::Error>;

    /// The batch's current states, `[items, N, S]`.
    ///
    /// # Errors
    /// As [`Self::step`].
    fn states(&self) -> Result<Vec<f32>, Self::Error>;
}

/// The rayon engine: double-buffered states stepped by [`cpu::step`], or with a [`Domain`],
/// a rank's slab of each lattice stepped by [`cpu::step_planes`] and its halo exchanged.
pub struct CpuMoe<'a> {
    net: MoeNet<'a>,
    cache: &'a NeighborCache,
    states: Vec<f32>,
    next: Vec<f32>,
    items: usize,
    domain: Option<&'a Domain>,
}

impl<'a> CpuMoe<'a> {
    /// A batch of `items` lattices starting from `states` (`[items, N, S]`).
    pub fn new(net: MoeNet<'a>, cache: &'a NeighborCache, states: Vec<f32>, items: usize) -> Self {
        Self {
            net,
            cache,
            next: vec![0.0; states.len()],
            states,
            items,
            domain: None,
        }
    }

    /// Steps only this rank's slab of every lattice, exchanging halos after each step. The
    /// states outside the slab and its halo are then stale: read the slab's planes only.
    pub fn with_domain(mut self, domain: &'a Domain) -> Self {
        self.domain = Some(domain);
        self
    }

    fn planes(&self) -> Planes {
        self.domain
            .map_or_else(|| Planes::whole(self.cache.dims()), |d| d.planes.clone())
    }
}

impl CpuMoe<'_> {
    /// One step from the current states into the other buffer, then swaps them.
    fn advance(&mut self) {
        let planes = self.planes();
        let (net, cache, items) = (&self.net, self.cache, self.items);
        cpu::step_planes(net, cache, &self.states, &mut self.next, items, &planes);
        std::mem::swap(&mut self.states, &mut self.next);
        if let Some(d) = self.domain {
            d.exchange().exchange(&mut self.states);
        }
    }
}

impl MoeEngine for CpuMoe<'_> {
    type Error = std::convert::Infallible;

    fn step(&mut self) -> Result<Vec<NonFinite>, Self::Error> {
        self.advance();
        let dims = self.cache.dims();
        let (n, s) = (dims.cells_usize(), self.net.sh.s as usize);
        let plane = (dims.w() * dims.h()) as usize;
        let owned = self.planes().owned;
        let cells = owned.start as usize * plane * s..owned.end as usize * plane * s;
        let mut lowest: Vec<u32> = (self.states.chunks(n * s).take(self.items))
            .map(|st| {
                cpu::find_non_finite(&st[cells.clone()], n, s)
                    .map_or(u32::MAX, |(_, cell, _)| (cells.start / s + cell) as u32)
            })
            .collect();
        if let Some(d) = self.domain {
            lowest = d.exchange().lowest_over_ranks(lowest);
        }
        Ok(NonFinite::from_lowest(lowest))
    }

    fn run_unchecked(&mut self, steps: u32) -> Result<(), Self::Error> {
        for _ in 0..steps {
            self.advance();
        }
        Ok(())
    }

    fn states(&self) -> Result<Vec<f32>, Self::Error> {
        Ok(self.states.clone())
    }
}
