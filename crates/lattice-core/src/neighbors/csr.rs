//! Explicit neighbor lists (CSR) for lattices with a cell mask, built in parallel from the stencil.
//!
//! Layout: `class_ptr` has 3·N + 1 entries; the class-`c` neighbors of cell `i` are
//! `col_idx[class_ptr[3i + c] .. class_ptr[3i + c + 1]]`. It is the usual `row_ptr` (every third
//! entry) with the class boundaries folded in, so no per-entry class byte is stored.
//! A masked-off cell has an empty row and is never simulated.

use rayon::prelude::*;

use super::{NeighborClass, Stencil};
use crate::geometry::Dims;

#[derive(Debug, Clone)]
pub struct Csr {
    class_ptr: Vec<u32>,
    col_idx: Vec<u32>,
    mask: Vec<bool>,
}

/// Error for a CSR table that cannot be indexed with u32.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the explicit neighbor table would hold {entries} entries ({gib:.1} GiB), more than u32 \
     indices address; lower radius_ratio, shrink the lattice, or drop the mask to use the \
     O(K) stencil form"
)]
pub struct CsrTooLarge {
    pub entries: u64,
    pub gib: f64,
}

/// Cells per parallel work unit: large enough to amortise scheduling, small enough to balance.
const CHUNK_CELLS: usize = 256;

impl Csr {
    /// Every active cell's neighbors are the stencil's neighbors that are active too.
    pub fn build(stencil: &Stencil, mask: Vec<bool>) -> Result<Self, CsrTooLarge> {
        let dims = stencil.dims();
        assert_eq!(
            mask.len(),
            dims.cells_usize(),
            "mask length is checked by the caller"
        );
        let n = dims.cells_usize();

        // Pass 1: per-(cell, class) counts.
        let mut counts = vec![0u32; 3 * n];
        counts
            .par_chunks_mut(3 * CHUNK_CELLS)
            .enumerate()
            .for_each(|(chunk, out)| {
                let first = chunk * CHUNK_CELLS;
                for (k, slot) in out.chunks_mut(3).enumerate() {
                    let i = first + k;
                    if mask[i] {
                        stencil.for_each_neighbor(i as u32, |j, class, _| {
                            slot[class.index()] += u32::from(mask[j as usize]);
                        });
                    }
                }
            });

        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if total >= u64::from(u32::MAX) {
            return Err(CsrTooLarge {
                entries: total,
                gib: total as f64 * 4.0 / (1u64 << 30) as f64,
            });
        }
        let mut class_ptr = Vec::with_capacity(3 * n + 1);
        class_ptr.push(0u32);
        let mut acc = 0u32;
        for c in &counts {
            acc += c;
            class_ptr.push(acc);
        }
        drop(counts);

        // Pass 2: fill disjoint slices of col_idx, one per chunk of cells.
        let mut col_idx = vec![0u32; total as usize];
        let mut pieces = Vec::with_capacity(n.div_ceil(CHUNK_CELLS));
        let mut rest: &mut [u32] = &mut col_idx;
        for first in (0..n).step_by(CHUNK_CELLS) {
            let last = (first + CHUNK_CELLS).min(n);
            let len = (class_ptr[3 * last] - class_ptr[3 * first]) as usize;
            let (piece, tail) = rest.split_at_mut(len);
            pieces.push((first, last, piece));
            rest = tail;
        }
        pieces.into_par_iter().for_each(|(first, last, piece)| {
            let mut at = 0;
            for i in first..last {
                if mask[i] {
                    stencil.for_each_neighbor(i as u32, |j, _, _| {
                        if mask[j as usize] {
                            piece[at] = j;
                            at += 1;
                        }
                    });
                }
            }
            debug_assert_eq!(at, piece.len());
        });
        Ok(Self {
            class_ptr,
            col_idx,
            mask,
        })
    }

    pub fn class_ptr(&self) -> &[u32] {
        &self.class_ptr
    }
    pub fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }
    pub fn mask(&self) -> &[bool] {
        &self.mask
    }
    pub fn is_active(&self, cell: u32) -> bool {
        self.mask[cell as usize]
    }
    pub fn entries(&self) -> usize {
        self.col_idx.len()
    }

    pub fn class_slice(&self, cell: u32, class: NeighborClass) -> &[u32] {
        let k = 3 * cell as usize + class.index();
        &self.col_idx[self.class_ptr[k] as usize..self.class_ptr[k + 1] as usize]
    }

    pub fn class_counts(&self, cell: u32) -> [u32; 3] {
        let k = 3 * cell as usize;
        [0, 1, 2].map(|c| self.class_ptr[k + c + 1] - self.class_ptr[k + c])
    }

    pub fn cells(&self) -> usize {
        self.mask.len()
    }

    pub(crate) fn dims_check(&self, dims: Dims) -> bool {
        self.mask.len() == dims.cells_usize()
    }
}
