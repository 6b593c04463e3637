//! Neighbor counts computed without walking the stencil list, for validation.
//!
//! * [`shell_counts`]: per-class sizes of the offset set by convolving per-axis histograms of
//!   squared offsets, an algorithm that shares nothing with the stencil's 3D enumeration.
//! * [`BoxCounter`]: the per-class count of any cell in O(1), from 3D prefix sums over the
//!   offset cube: a bounded cell sees exactly the offsets inside a box clipped by the walls.

use glam::IVec3;

use super::Radius;
use super::stencil::axis_range;
use crate::geometry::{Boundary, Dims};

/// Per-class number of offsets whose squared length classifies into each class, counted by
/// histogram convolution over the per-axis offset ranges.
pub fn shell_counts(dims: Dims, boundary: Boundary, radius: Radius) -> [u64; 3] {
    let reach = radius.reach();
    let hist = |len: u32| -> Vec<u64> {
        let (lo, hi) = axis_range(len, reach, boundary);
        let mut h = vec![0u64; (reach * reach) as usize + 1];
        for d in lo..=hi {
            h[(d * d) as usize] += 1;
        }
        h
    };
    let conv = |a: &[u64], b: &[u64]| -> Vec<u64> {
        let mut out = vec![0u64; a.len() + b.len() - 1];
        for (i, &x) in a.iter().enumerate().filter(|(_, x)| **x != 0) {
            for (j, &y) in b.iter().enumerate().filter(|(_, y)| **y != 0) {
                out[i + j] += x * y;
            }
        }
        out
    };
    let h3 = conv(&conv(&hist(dims.w()), &hist(dims.h())), &hist(dims.d()));
    let mut counts = [0u64; 3];
    for (d2, &n) in h3.iter().enumerate() {
        if let Some(class) = radius.classify(d2 as u32) {
            counts[class.index()] += n;
        }
    }
    counts
}

/// O(1) per-cell, per-class neighbor counts on an unmasked lattice.
pub struct BoxCounter {
    dims: Dims,
    boundary: Boundary,
    lo: IVec3,
    hi: IVec3,
    /// Inclusive 3D prefix sums per class, with a zero border: index (x+1, y+1, z+1).
    prefix: [Vec<u32>; 3],
    side: IVec3,
}

impl BoxCounter {
    pub fn new(dims: Dims, boundary: Boundary, radius: Radius) -> Self {
        let reach = radius.reach();
        let (x0, x1) = axis_range(dims.w(), reach, boundary);
        let (y0, y1) = axis_range(dims.h(), reach, boundary);
        let (z0, z1) = axis_range(dims.d(), reach, boundary);
        let lo = IVec3::new(x0, y0, z0);
        let hi = IVec3::new(x1, y1, z1);
        let side = hi - lo + IVec3::splat(2);
        let len = (side.x * side.y * side.z) as usize;
        let mut prefix: [Vec<u32>; 3] = std::array::from_fn(|_| vec![0u32; len]);
        let at = |x: i32, y: i32, z: i32| (x + side.x * (y + side.y * z)) as usize;
        for z in 1..side.z {
            for y in 1..side.y {
                for x in 1..side.x {
                    let o = lo + IVec3::new(x - 1, y - 1, z - 1);
                    let class = radius.classify((o.x * o.x + o.y * o.y + o.z * o.z) as u32);
                    for (c, p) in prefix.iter_mut().enumerate() {
                        let own = u32::from(class.map(|k| k.index()) == Some(c));
                        // Inclusion–exclusion over the 7 lower neighbors in the prefix cube.
                        p[at(x, y, z)] = own
                            .wrapping_add(p[at(x - 1, y, z)])
                            .wrapping_add(p[at(x, y - 1, z)])
                            .wrapping_add(p[at(x, y, z - 1)])
                            .wrapping_sub(p[at(x - 1, y - 1, z)])
                            .wrapping_sub(p[at(x - 1, y, z - 1)])
                            .wrapping_sub(p[at(x, y - 1, z - 1)])
                            .wrapping_add(p[at(x - 1, y - 1, z - 1)]);
                    }
                }
            }
        }
        Self {
            dims,
            boundary,
            lo,
            hi,
            prefix,
            side,
        }
    }

    /// Per-class counts of the cell at `c`.
    pub fn counts(&self, c: IVec3) -> [u32; 3] {
        let (a, b) = match self.boundary {
            Boundary::Periodic => (self.lo, self.hi),
            Boundary::Bounded => {
                let last = IVec3::new(
                    self.dims.w() as i32 - 1,
                    self.dims.h() as i32 - 1,
                    self.dims.d() as i32 - 1,
                );
                (self.lo.max(-c), self.hi.min(last - c))
            }
        };
        if a.cmpgt(b).any() {
            return [0; 3];
        }
        // Shift to prefix coordinates: offset o sits at (o - lo + 1).
        let a = a - self.lo; // exclusive lower corner in prefix coordinates
        let b = b - self.lo + IVec3::ONE; // inclusive upper corner
        let s = self.side;
        let at = |x: i32, y: i32, z: i32| (x + s.x * (y + s.y * z)) as usize;
        std::array::from_fn(|c| {
            let p = &self.prefix[c];
            p[at(b.x, b.y, b.z)]
                .wrapping_sub(p[at(a.x, b.y, b.z)])
                .wrapping_sub(p[at(b.x, a.y, b.z)])
                .wrapping_sub(p[at(b.x, b.y, a.z)])
                .wrapping_add(p[at(a.x, a.y, b.z)])
                .wrapping_add(p[at(a.x, b.y, a.z)])
                .wrapping_add(p[at(b.x, a.y, a.z)])
                .wrapping_sub(p[at(a.x, a.y, a.z)])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbors::Stencil;

    #[test]
    fn box_counts_match_a_walk_on_every_cell() {
        for boundary in [Boundary::Bounded, Boundary::Periodic] {
            let dims = Dims::new(9, 7, 5).unwrap();
            let radius = Radius::from_r(3.7);
            let stencil = Stencil::build(dims, boundary, radius);
            let counter = BoxCounter::new(dims, boundary, radius);
            for i in 0..dims.cells() {
                let mut walked = [0u32; 3];
                stencil.for_each_neighbor(i, |_, c, _| walked[c.index()] += 1);
                assert_eq!(counter.counts(dims.coord_ivec(i)), walked, "cell {i}");
            }
        }
    }

    #[test]
    fn shell_counts_match_the_reference_table() {
        let dims = Dims::new(100, 100, 100).unwrap();
        let r = Radius::adaptive(100, 0.2, 1.0, 100.0);
        assert_eq!(
            shell_counts(dims, Boundary::Bounded, r),
            [2102, 14974, 15454]
        );
    }
}
