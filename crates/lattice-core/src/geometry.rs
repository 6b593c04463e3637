//! Lattice dimensions, the one cell index `i = x + y·W + z·W·H`, and boundary conditions.

use glam::IVec3;
use serde::{Deserialize, Serialize};

/// How a lattice treats offsets that leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Boundary {
    /// Hard walls: neighbors outside the lattice do not exist (the reference behaviour).
    #[default]
    Bounded,
    /// Torus: every axis wraps, distances use the minimum image.
    Periodic,
}

/// Error for dimensions that cannot describe a lattice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DimsError {
    #[error("every dimension must be at least 1, got {w}×{h}×{d}")]
    Zero { w: u32, h: u32, d: u32 },
    #[error("{w}×{h}×{d} = {cells} cells does not fit a u32 cell id (max {max})", max = u32::MAX)]
    TooLarge { w: u32, h: u32, d: u32, cells: u64 },
}

/// Width (x), height (y) and depth (z) of a lattice. The cell count always fits a `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dims {
    w: u32,
    h: u32,
    d: u32,
}

impl Dims {
    pub fn new(w: u32, h: u32, d: u32) -> Result<Self, DimsError> {
        if w == 0 || h == 0 || d == 0 {
            return Err(DimsError::Zero { w, h, d });
        }
        let cells = u64::from(w) * u64::from(h) * u64::from(d);
        // Keep u32::MAX free as a sentinel and so `cells` itself fits.
        if cells >= u64::from(u32::MAX) {
            return Err(DimsError::TooLarge { w, h, d, cells });
        }
        Ok(Self { w, h, d })
    }

    pub fn w(self) -> u32 {
        self.w
    }
    pub fn h(self) -> u32 {
        self.h
    }
    pub fn d(self) -> u32 {
        self.d
    }
    pub fn as_array(self) -> [u32; 3] {
        [self.w, self.h, self.d]
    }
    pub fn max_dim(self) -> u32 {
        self.w.max(self.h).max(self.d)
    }
    pub fn cells(self) -> u32 {
        self.w * self.h * self.d
    }
    pub fn cells_usize(self) -> usize {
        self.cells() as usize
    }

    /// The cell id of (x, y, z): x fastest, then y, then z.
    #[inline]
    pub fn index(self, x: u32, y: u32, z: u32) -> u32 {
        debug_assert!(x < self.w && y < self.h && z < self.d);
        x + y * self.w + z * self.w * self.h
    }

    /// The coordinates of cell `i`.
    #[inline]
    pub fn coord(self, i: u32) -> [u32; 3] {
        debug_assert!(i < self.cells());
        let plane = self.w * self.h;
        [i % self.w, (i % plane) / self.w, i / plane]
    }

    #[inline]
    pub fn coord_ivec(self, i: u32) -> IVec3 {
        let [x, y, z] = self.coord(i);
        IVec3::new(x as i32, y as i32, z as i32)
    }

    /// The cell at `c + o`, or `None` if a bounded lattice has no such cell.
    /// Periodic lattices wrap every axis (any offset, however large).
    #[inline]
    pub fn offset(self, c: IVec3, o: IVec3, boundary: Boundary) -> Option<u32> {
        let dims = IVec3::new(self.w as i32, self.h as i32, self.d as i32);
        let p = c + o;
        let p = match boundary {
            Boundary::Bounded => {
                if p.cmplt(IVec3::ZERO).any() || p.cmpge(dims).any() {
                    return None;
                }
                p
            }
            Boundary::Periodic => p.rem_euclid(dims),
        };
        Some(self.index(p.x as u32, p.y as u32, p.z as u32))
    }
}

impl std::fmt::Display for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.w, self.h, self.d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_coord_are_inverse() {
        let dims = Dims::new(5, 3, 4).unwrap();
        for i in 0..dims.cells() {
            let [x, y, z] = dims.coord(i);
            assert_eq!(dims.index(x, y, z), i);
        }
        assert_eq!(dims.index(1, 0, 0), 1);
        assert_eq!(dims.index(0, 1, 0), 5);
        assert_eq!(dims.index(0, 0, 1), 15);
    }

    #[test]
    fn rejects_zero_and_oversized() {
        assert!(matches!(Dims::new(0, 2, 2), Err(DimsError::Zero { .. })));
        assert!(matches!(
            Dims::new(2000, 2000, 2000),
            Err(DimsError::TooLarge { .. })
        ));
        assert!(Dims::new(1000, 1000, 1000).is_ok());
    }

    #[test]
    fn offsets_respect_boundary() {
        let dims = Dims::new(4, 4, 4).unwrap();
        let c = IVec3::new(0, 3, 1);
        assert_eq!(
            dims.offset(c, IVec3::new(-1, 0, 0), Boundary::Bounded),
            None
        );
        assert_eq!(
            dims.offset(c, IVec3::new(-1, 1, 0), Boundary::Periodic),
            Some(dims.index(3, 0, 1))
        );
        assert_eq!(
            dims.offset(c, IVec3::new(-9, 0, 0), Boundary::Periodic),
            Some(dims.index(3, 3, 1))
        );
    }
}
