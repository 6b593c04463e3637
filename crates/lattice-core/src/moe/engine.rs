//! The MoE engine interface the batch runtime drives, one implementation per backend: [`CpuMoe`]
//! here, `lattice_gpu::moe::GpuMoeEngine` on the GPU. A batch holds `items` lattices of N cells
//! with S channels, `[items, N, S]`, stepped synchronously.

use super::cpu;
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

/// The rayon engine: double-buffered states stepped by [`cpu::step`].
pub struct CpuMoe<'a> {
    net: MoeNet<'a>,
    cache: &'a NeighborCache,
    states: Vec<f32>,
    next: Vec<f32>,
    items: usize,
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
        }
    }
}

impl CpuMoe<'_> {
    /// One step from the current states into the other buffer, then swaps them.
    fn advance(&mut self) {
        cpu::step(
            &self.net,
            self.cache,
            &self.states,
            &mut self.next,
            self.items,
        );
        std::mem::swap(&mut self.states, &mut self.next);
    }
}

impl MoeEngine for CpuMoe<'_> {
    type Error = std::convert::Infallible;

    fn step(&mut self) -> Result<Vec<NonFinite>, Self::Error> {
        self.advance();
        let n = self.cache.dims().cells_usize();
        let s = self.net.sh.s as usize;
        Ok(self
            .states
            .chunks(n * s)
            .take(self.items)
            .enumerate()
            .filter_map(|(item, st)| {
                cpu::find_non_finite(st, n, s).map(|(_, cell, _)| NonFinite {
                    item,
                    cell: cell as u32,
                })
            })
            .collect())
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
