//! The neighbor cache: built completely and validated before any step, then read through one
//! interface by every path (per-cell, batch, CPU kernels, GPU upload).
//!
//! Design (docs/model.md, A3 and Decisions): a regular lattice uses the O(K) [`Stencil`]; a lattice
//! with a cell mask adds explicit [`Csr`] lists built from it. There is no lazy state: a
//! [`NeighborCache`] only exists once validation passed, so a cell can never be "isolated" by a
//! cache that was not built yet (the reference system's batch-mode bug, seed 000).

mod counts;
mod csr;
mod radius;
mod stencil;
mod validate;

pub use counts::{BoxCounter, shell_counts};
pub use csr::{Csr, CsrTooLarge};
pub use radius::{DISTANT_RATIO, FUNCTIONAL_RATIO, LOCAL_RATIO, NeighborClass, Radius};
pub use stencil::{Stencil, StencilOffset};

use glam::IVec3;
use serde::Serialize;

use crate::geometry::{Boundary, Dims};

/// One neighbor of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Neighbor {
    pub cell: u32,
    pub class: NeighborClass,
    pub distance: f32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NeighborError {
    #[error(
        "{count} active cell(s) have no neighbor: {cells}. R = {r:.3} reaches {reach} cell(s) \
         along an axis. Fix: {fix}"
    )]
    Isolated {
        count: usize,
        cells: String,
        r: f64,
        reach: i32,
        fix: &'static str,
    },
    #[error("{count} cell(s) have neighbors that do not list them back: {cells}")]
    Asymmetric { count: usize, cells: String },
    #[error("neighbor cache is inconsistent: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    TooLarge(#[from] CsrTooLarge),
    #[error("the mask has {got} entries but the lattice has {want} cells")]
    MaskSize { got: usize, want: usize },
    #[error("the mask switches off every cell: nothing to simulate")]
    EmptyMask,
}

/// min / mean / max of a per-cell count over the active cells.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CountStats {
    pub min: u32,
    pub mean: f64,
    pub max: u32,
}

/// Summary of a validated cache, for `lattice validate` and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeighborStats {
    pub active_cells: u32,
    pub stencil_offsets: u32,
    pub per_class: [CountStats; 3],
    pub total: CountStats,
    pub entries: u64,
    /// Bytes the cache itself holds (stencil, plus the explicit table when masked).
    pub memory_bytes: u64,
}

/// The validated neighbor sets of one lattice geometry.
#[derive(Debug, Clone)]
pub struct NeighborCache {
    stencil: Stencil,
    csr: Option<Csr>,
    stats: NeighborStats,
}

impl NeighborCache {
    /// Builds the stencil (and the explicit table if `mask` is given), validates everything,
    /// and only then returns a cache.
    pub fn build(
        dims: Dims,
        boundary: Boundary,
        radius: Radius,
        mask: Option<Vec<bool>>,
    ) -> Result<Self, NeighborError> {
        let _span = tracing::info_span!("neighbor_cache", %dims, r = radius.r).entered();
        let stencil = Stencil::build(dims, boundary, radius);
        validate::validate_stencil(&stencil)?;
        let counts = validate::stencil_cell_counts(&stencil)?;
        let csr = match mask {
            None => None,
            Some(mask) => {
                if mask.len() != dims.cells_usize() {
                    return Err(NeighborError::MaskSize {
                        got: mask.len(),
                        want: dims.cells_usize(),
                    });
                }
                if !mask.iter().any(|&m| m) {
                    return Err(NeighborError::EmptyMask);
                }
                let csr = Csr::build(&stencil, mask)?;
                validate::validate_csr(&stencil, &csr)?;
                Some(csr)
            }
        };
        let per_cell = |i: usize| match &csr {
            Some(csr) => csr.class_counts(i as u32),
            None => counts[i],
        };
        let active = |i: usize| csr.as_ref().is_none_or(|c| c.is_active(i as u32));
        let isolated: Vec<u32> = (0..dims.cells_usize())
            .filter(|&i| active(i) && per_cell(i).iter().sum::<u32>() == 0)
            .map(|i| i as u32)
            .collect();
        if !isolated.is_empty() {
            return Err(NeighborError::Isolated {
                count: isolated.len(),
                cells: validate::describe(dims, &isolated),
                r: radius.r,
                reach: radius.reach(),
                fix: if csr.is_some() {
                    "switch on more cells around them in the mask, or raise lattice.radius_ratio"
                } else {
                    "raise lattice.radius_ratio (or lattice.radius_min) so that 0.99·R ≥ 1, or use \
                     a lattice with more than one cell"
                },
            });
        }
        let stats = summarize(&stencil, csr.as_ref(), &per_cell, &active);
        tracing::debug!(?stats, "neighbor cache validated");
        Ok(Self {
            stencil,
            csr,
            stats,
        })
    }

    pub fn dims(&self) -> Dims {
        self.stencil.dims()
    }
    pub fn boundary(&self) -> Boundary {
        self.stencil.boundary()
    }
    pub fn radius(&self) -> Radius {
        self.stencil.radius()
    }
    pub fn stencil(&self) -> &Stencil {
        &self.stencil
    }
    /// The explicit table, present when the lattice is masked.
    pub fn csr(&self) -> Option<&Csr> {
        self.csr.as_ref()
    }
    pub fn stats(&self) -> &NeighborStats {
        &self.stats
    }
    pub fn is_active(&self, cell: u32) -> bool {
        self.csr.as_ref().is_none_or(|c| c.is_active(cell))
    }

    /// Calls `f(neighbor, class, distance)` for each neighbor of `cell`, class by class
    /// (LOCAL, FUNCTIONAL, DISTANT) and in a fixed order within a class.
    #[inline]
    pub fn for_each_neighbor(&self, cell: u32, mut f: impl FnMut(u32, NeighborClass, f32)) {
        match &self.csr {
            None => self.stencil.for_each_neighbor(cell, f),
            Some(csr) => {
                let c = self.dims().coord_ivec(cell);
                for class in NeighborClass::ALL {
                    for &j in csr.class_slice(cell, class) {
                        f(j, class, self.distance(c, j));
                    }
                }
            }
        }
    }

    /// The per-cell view: every neighbor of one cell.
    pub fn neighbors(&self, cell: u32) -> Vec<Neighbor> {
        let mut out = Vec::new();
        self.for_each_neighbor(cell, |j, class, distance| {
            out.push(Neighbor {
                cell: j,
                class,
                distance,
            })
        });
        out
    }

    pub fn class_counts(&self, cell: u32) -> [u32; 3] {
        let mut n = [0u32; 3];
        self.for_each_neighbor(cell, |_, c, _| n[c.index()] += 1);
        n
    }

    /// The batch view: the neighbors of many cells at once, as flat arrays (tests check it
    /// against the per-cell view: the reference system's batch mode once left cells isolated).
    #[cfg(feature = "test-support")]
    pub fn batch(&self, cells: &[u32]) -> NeighborBatch {
        let mut batch = NeighborBatch {
            cells: cells.to_vec(),
            row_ptr: Vec::with_capacity(cells.len() + 1),
            neighbors: Vec::new(),
        };
        batch.row_ptr.push(0);
        for &i in cells {
            self.for_each_neighbor(i, |j, class, distance| {
                batch.neighbors.push(Neighbor {
                    cell: j,
                    class,
                    distance,
                })
            });
            batch.row_ptr.push(batch.neighbors.len());
        }
        batch
    }

    fn distance(&self, c: IVec3, j: u32) -> f32 {
        let dims = self.dims();
        let mut d = self.dims().coord_ivec(j) - c;
        if self.boundary() == Boundary::Periodic {
            let l = IVec3::new(dims.w() as i32, dims.h() as i32, dims.d() as i32);
            // Minimum image per axis.
            d = (d + l / 2).rem_euclid(l) - l / 2;
        }
        (f64::from(d.length_squared() as u32)).sqrt() as f32
    }
}

/// The neighbors of a list of cells in one flat table (`row_ptr` has `cells.len() + 1` entries).
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, PartialEq)]
pub struct NeighborBatch {
    pub cells: Vec<u32>,
    pub row_ptr: Vec<usize>,
    pub neighbors: Vec<Neighbor>,
}

#[cfg(feature = "test-support")]
impl NeighborBatch {
    pub fn row(&self, k: usize) -> &[Neighbor] {
        &self.neighbors[self.row_ptr[k]..self.row_ptr[k + 1]]
    }
}

fn summarize(
    stencil: &Stencil,
    csr: Option<&Csr>,
    per_cell: &dyn Fn(usize) -> [u32; 3],
    active: &dyn Fn(usize) -> bool,
) -> NeighborStats {
    let n = stencil.dims().cells_usize();
    let mut min = [u32::MAX; 4];
    let mut max = [0u32; 4];
    let mut sum = [0u64; 4];
    let mut active_cells = 0u32;
    for i in (0..n).filter(|&i| active(i)) {
        active_cells += 1;
        let c = per_cell(i);
        let all = [c[0], c[1], c[2], c[0] + c[1] + c[2]];
        for k in 0..4 {
            min[k] = min[k].min(all[k]);
            max[k] = max[k].max(all[k]);
            sum[k] += u64::from(all[k]);
        }
    }
    let stat = |k: usize| CountStats {
        min: min[k],
        mean: sum[k] as f64 / f64::from(active_cells.max(1)),
        max: max[k],
    };
    let stencil_bytes = std::mem::size_of_val(stencil.offsets()) as u64;
    let csr_bytes = csr.map_or(0, |c| {
        (std::mem::size_of_val(c.class_ptr()) + std::mem::size_of_val(c.col_idx()) + c.mask().len())
            as u64
    });
    NeighborStats {
        active_cells,
        stencil_offsets: stencil.len() as u32,
        per_class: [stat(0), stat(1), stat(2)],
        total: stat(3),
        entries: sum[3],
        memory_bytes: stencil_bytes + csr_bytes,
    }
}
