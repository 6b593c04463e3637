//! The stencil form of the neighbor set: K offsets shared by every cell of a regular lattice.
//!
//! Memory is O(K): at 100³ with ratio 0.2 an interior cell has 32,530 neighbors, which as
//! explicit per-cell lists would need ~130 GB.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use glam::IVec3;

use super::{NeighborClass, Radius};
use crate::geometry::{Boundary, Dims};

/// One stencil offset, laid out as the WGSL `StencilOffset { d: vec3<i32>, dist: f32 }`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct StencilOffset {
    pub dx: i32,
    pub dy: i32,
    pub dz: i32,
    /// Euclidean length of the offset (minimum image on a periodic lattice).
    pub dist: f32,
}
const _: () = assert!(std::mem::size_of::<StencilOffset>() == 16);

impl StencilOffset {
    pub fn ivec(&self) -> IVec3 {
        IVec3::new(self.dx, self.dy, self.dz)
    }
    pub fn d2(&self) -> u32 {
        (self.dx * self.dx + self.dy * self.dy + self.dz * self.dz) as u32
    }
}

/// The offsets of every neighbor of a cell, sorted by class, then by (dz, dy, dx) so that a
/// walk touches memory in cell-index order.
#[derive(Debug, Clone)]
pub struct Stencil {
    dims: Dims,
    boundary: Boundary,
    radius: Radius,
    offsets: Vec<StencilOffset>,
    class_ranges: [Range<u32>; 3],
}

/// The offsets along one axis that can reach a distinct cell: on a bounded axis every offset
/// up to the lattice size; on a periodic axis one representative per residue (the minimum
/// image, `-(L-1)/2 ..= L/2`), so a small periodic lattice never lists a cell twice or itself.
pub(crate) fn axis_range(len: u32, reach: i32, boundary: Boundary) -> (i32, i32) {
    let len = len as i32;
    match boundary {
        Boundary::Bounded => {
            let r = reach.min(len - 1);
            (-r, r)
        }
        Boundary::Periodic => ((-(len - 1) / 2).max(-reach), (len / 2).min(reach)),
    }
}

impl Stencil {
    pub fn build(dims: Dims, boundary: Boundary, radius: Radius) -> Self {
        let reach = radius.reach();
        let (x0, x1) = axis_range(dims.w(), reach, boundary);
        let (y0, y1) = axis_range(dims.h(), reach, boundary);
        let (z0, z1) = axis_range(dims.d(), reach, boundary);
        let mut by_class: [Vec<StencilOffset>; 3] = Default::default();
        // Nested loops in (dz, dy, dx) order give the within-class order directly.
        for dz in z0..=z1 {
            for dy in y0..=y1 {
                for dx in x0..=x1 {
                    let d2 = (dx * dx + dy * dy + dz * dz) as u32;
                    if let Some(class) = radius.classify(d2) {
                        by_class[class.index()].push(StencilOffset {
                            dx,
                            dy,
                            dz,
                            dist: (f64::from(d2)).sqrt() as f32,
                        });
                    }
                }
            }
        }
        let mut offsets = Vec::with_capacity(by_class.iter().map(Vec::len).sum());
        let mut class_ranges: [Range<u32>; 3] = Default::default();
        for (c, list) in by_class.into_iter().enumerate() {
            let start = offsets.len() as u32;
            offsets.extend(list);
            class_ranges[c] = start..offsets.len() as u32;
        }
        Self {
            dims,
            boundary,
            radius,
            offsets,
            class_ranges,
        }
    }

    pub fn dims(&self) -> Dims {
        self.dims
    }
    pub fn boundary(&self) -> Boundary {
        self.boundary
    }
    pub fn radius(&self) -> Radius {
        self.radius
    }
    pub fn offsets(&self) -> &[StencilOffset] {
        &self.offsets
    }
    /// K: the number of offsets (the neighbor count of an interior cell).
    pub fn len(&self) -> usize {
        self.offsets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
    pub fn class_range(&self, class: NeighborClass) -> Range<u32> {
        self.class_ranges[class.index()].clone()
    }
    pub fn class_sizes(&self) -> [u32; 3] {
        self.class_ranges.clone().map(|r| r.end - r.start)
    }
    pub fn class_of(&self, offset_index: u32) -> NeighborClass {
        NeighborClass::ALL
            .into_iter()
            .find(|c| self.class_ranges[c.index()].contains(&offset_index))
            .expect("offset index within the stencil")
    }

    /// Calls `f(neighbor cell, class, distance)` for every neighbor of `cell`, in class order.
    #[inline]
    pub fn for_each_neighbor(&self, cell: u32, mut f: impl FnMut(u32, NeighborClass, f32)) {
        let c = self.dims.coord_ivec(cell);
        for class in NeighborClass::ALL {
            for o in &self.offsets[self.class_ranges[class.index()].start as usize
                ..self.class_ranges[class.index()].end as usize]
            {
                if let Some(j) = self.dims.offset(c, o.ivec(), self.boundary) {
                    f(j, class, o.dist);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_counts_match_reference_table() {
        let cases = [
            (15, 0.3, [26, 152, 186]),
            (27, 0.2, [32, 308, 278]),
            (40, 0.2, [146, 898, 1058]),
        ];
        for (n, ratio, want) in cases {
            let dims = Dims::new(n, n, n).unwrap();
            let s = Stencil::build(
                dims,
                Boundary::Bounded,
                Radius::adaptive(n, ratio, 1.0, 100.0),
            );
            assert_eq!(s.class_sizes(), want, "{n}³ ratio {ratio}");
        }
    }

    #[test]
    fn small_periodic_lattice_lists_each_cell_once() {
        // R = 4.5 on a 3×4×5 torus: the ball covers the whole lattice, every other cell once.
        let dims = Dims::new(3, 4, 5).unwrap();
        let s = Stencil::build(dims, Boundary::Periodic, Radius::from_r(4.5));
        let mut seen = vec![0u32; dims.cells_usize()];
        s.for_each_neighbor(7, |j, _, _| seen[j as usize] += 1);
        for (j, &n) in seen.iter().enumerate() {
            assert_eq!(n, u32::from(j != 7), "cell {j}");
        }
    }

    #[test]
    fn an_axis_reaches_each_residue_once_when_periodic_and_every_cell_when_bounded() {
        // Periodic: the minimum images −(L−1)/2 ..= L/2, cut to the reach.
        assert_eq!(axis_range(6, 10, Boundary::Periodic), (-2, 3));
        assert_eq!(axis_range(5, 10, Boundary::Periodic), (-2, 2));
        assert_eq!(axis_range(9, 2, Boundary::Periodic), (-2, 2));
        // Bounded: every offset up to L − 1, cut to the reach.
        assert_eq!(axis_range(6, 10, Boundary::Bounded), (-5, 5));
        assert_eq!(axis_range(6, 2, Boundary::Bounded), (-2, 2));
    }

    #[test]
    fn the_offsets_are_the_stencil_and_a_single_cell_has_none() {
        let s = Stencil::build(
            Dims::new(3, 3, 3).unwrap(),
            Boundary::Bounded,
            Radius::from_r(2.0),
        );
        assert!(!s.is_empty());
        assert_eq!(s.offsets().len(), s.len());
        assert_eq!(s.len() as u32, s.class_sizes().iter().sum::<u32>());
        let one = Stencil::build(
            Dims::new(1, 1, 1).unwrap(),
            Boundary::Bounded,
            Radius::from_r(2.0),
        );
        assert!(one.is_empty() && one.offsets().is_empty());
    }
}
