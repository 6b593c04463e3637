//! One lattice split across ranks in z-slabs: the planes a rank owns and the halo planes it
//! reads, and the exchange that keeps its halo current (MPI in the command line). A cell's update
//! reads only its neighborhood, so a rank that computes its own planes from current halo planes
//! gets, bit for bit, what one process computes for them.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::geometry::{Boundary, Dims};

/// The z-planes a step computes and the halo planes around them it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planes {
    /// Planes this rank computes, `[z0, z1)`.
    pub owned: Range<u32>,
    /// Halo planes on each side: the stencil's largest |dz|.
    pub halo: u32,
    /// The lattice's depth D.
    pub depth: u32,
    /// Whether the halo wraps around z (a periodic lattice).
    pub periodic: bool,
}

impl Planes {
    /// The whole lattice: every plane owned, no halo.
    pub fn whole(dims: Dims) -> Self {
        Self {
            owned: 0..dims.d(),
            halo: 0,
            depth: dims.d(),
            periodic: false,
        }
    }

    /// Rank `rank` of `ranks`: planes `[D·r/P, D·(r+1)/P)` and a halo of `halo` planes.
    ///
    /// # Errors
    /// A slab thinner than the halo (its halo would need planes of ranks further away).
    pub fn slab(
        dims: Dims,
        boundary: Boundary,
        halo: u32,
        rank: u32,
        ranks: u32,
    ) -> Result<Self, String> {
        let d = dims.d();
        let thinnest = d / ranks;
        if ranks > 1 && thinnest < halo {
            return Err(format!(
                "{ranks} z-slabs of a lattice {d} planes deep are {thinnest} plane(s) thin, less \
                 than the halo of {halo} planes the neighbor radius needs: use at most {} ranks",
                (d / halo.max(1)).max(1)
            ));
        }
        Ok(Self {
            owned: d * rank / ranks..d * (rank + 1) / ranks,
            halo,
            depth: d,
            periodic: boundary == Boundary::Periodic,
        })
    }

    /// The halo planes below the slab (global z, in order), if any.
    pub fn below(&self) -> Option<Range<u32>> {
        let z0 = self.owned.start;
        if self.halo == 0 || (z0 == 0 && !self.periodic) || self.owned.len() as u32 == self.depth {
            return None;
        }
        Some(if z0 >= self.halo {
            z0 - self.halo..z0
        } else {
            self.depth - self.halo..self.depth
        })
    }

    /// The halo planes above the slab (global z, in order), if any.
    pub fn above(&self) -> Option<Range<u32>> {
        let z1 = self.owned.end;
        if self.halo == 0
            || (z1 == self.depth && !self.periodic)
            || self.owned.len() as u32 == self.depth
        {
            return None;
        }
        Some(if z1 + self.halo <= self.depth {
            z1..z1 + self.halo
        } else {
            0..self.halo
        })
    }

    /// Whether a step reads plane `z` (owned or halo).
    pub fn reads(&self, z: u32) -> bool {
        let in_range = |r: Option<Range<u32>>| r.is_some_and(|r| r.contains(&z));
        self.owned.contains(&z) || in_range(self.below()) || in_range(self.above())
    }
}

/// What a rank owning a slab needs from the others.
pub trait Halo: Send {
    /// After a step: sends this rank's edge planes of every item of `states` (`[items, N, S]`)
    /// to the ranks whose halo they are, and fills its own halo planes from theirs.
    fn exchange(&mut self, states: &mut [f32]);

    /// Per item, the lowest non-finite cell over every rank, from this rank's lowest in its own
    /// planes (`u32::MAX`: none).
    fn lowest_over_ranks(&mut self, lowest: Vec<u32>) -> Vec<u32>;

    /// The batch size rank 0 planned (every rank passes its own; all take rank 0's), so every
    /// rank's batches hold the same items and their halo messages match.
    fn batch_size_of_root(&mut self, mine: usize) -> usize;

    /// Whether every rank allocated its part of a batch (`here`: this rank did). A batch that
    /// any rank could not allocate is retried smaller by all of them together.
    fn all_allocated(&mut self, here: bool) -> bool;
}

/// A rank's slab of every lattice and the exchange that keeps its halo current.
pub struct Domain {
    pub planes: Planes,
    pub halo: Mutex<Box<dyn Halo>>,
}

impl Domain {
    /// The exchange, for one call. A lock poisoned by a panic elsewhere still gives it: the
    /// exchange keeps no state between calls that a panic could leave half-made.
    pub fn exchange(&self) -> MutexGuard<'_, Box<dyn Halo>> {
        self.halo.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slabs_and_their_halos() {
        let dims = Dims::new(4, 3, 10).unwrap();
        let bounded = |r| Planes::slab(dims, Boundary::Bounded, 2, r, 3).unwrap();
        assert_eq!(bounded(0).owned, 0..3);
        assert_eq!((bounded(0).below(), bounded(0).above()), (None, Some(3..5)));
        assert_eq!(
            (bounded(1).below(), bounded(1).above()),
            (Some(1..3), Some(6..8))
        );
        assert_eq!((bounded(2).owned, bounded(2).above()), (6..10, None));
        let periodic = |r| Planes::slab(dims, Boundary::Periodic, 2, r, 3).unwrap();
        assert_eq!(periodic(0).below(), Some(8..10));
        assert_eq!(periodic(2).above(), Some(0..2));
        assert!(periodic(0).reads(9) && !periodic(0).reads(6) && periodic(0).reads(4));
        let err = Planes::slab(dims, Boundary::Bounded, 4, 0, 3).unwrap_err();
        assert!(err.contains("use at most 2 ranks"), "{err}");
        let whole = Planes::whole(dims);
        assert_eq!((whole.below(), whole.above()), (None, None));
        assert!((0..10).all(|z| whole.reads(z)));
    }
}
