//! Validation run on every build of the neighbor cache, before any step can read it.
//!
//! What is proven, and how, for a lattice of N cells and K offsets:
//! * the stencil list agrees with the geometric predicate and with an independent count
//!   (histogram convolution), offsets are distinct, non-zero and symmetric: O(K);
//! * every cell's per-class counts (box sums over prefix sums, O(1) per cell) are computed for all
//!   N cells, so no cell can be missing and no cell can have zero neighbors unnoticed;
//! * the per-cell walk that every kernel uses agrees with those counts on every cell of small
//!   lattices and on a fixed sample (corners, edges, faces, centre, hashed cells) of large ones;
//! * explicit (masked) tables: structure, mask consistency, exact rows on the same sample, and
//!   symmetry over all entries through an order-independent pair hash.

use std::collections::HashSet;

use glam::IVec3;
use rayon::prelude::*;

use super::counts::{BoxCounter, shell_counts};
use super::{Csr, NeighborClass, NeighborError, Stencil};
use crate::geometry::{Boundary, Dims};

/// Below this many (cell, offset) pairs the walk check covers every cell.
const FULL_WALK_BUDGET: u64 = 20_000_000;
/// Cells walked on large lattices in addition to corners, edges and faces.
const HASHED_SAMPLE: u32 = 48;

pub(super) fn validate_stencil(stencil: &Stencil) -> Result<(), NeighborError> {
    let radius = stencil.radius();
    let dims = stencil.dims();
    let boundary = stencil.boundary();
    let wrap = |o: IVec3| match boundary {
        Boundary::Bounded => o,
        Boundary::Periodic => o.rem_euclid(IVec3::new(
            dims.w() as i32,
            dims.h() as i32,
            dims.d() as i32,
        )),
    };
    let mut seen = HashSet::with_capacity(stencil.len());
    for (k, o) in stencil.offsets().iter().enumerate() {
        let class = stencil.class_of(k as u32);
        if radius.classify(o.d2()) != Some(class) {
            return Err(NeighborError::Inconsistent(format!(
                "stencil offset {:?} (distance {}) is filed as {} but classifies as {:?}",
                o.ivec(),
                o.dist,
                class.name(),
                radius.classify(o.d2())
            )));
        }
        if !seen.insert(wrap(o.ivec())) {
            return Err(NeighborError::Inconsistent(format!(
                "stencil offset {:?} reaches a cell another offset already reaches",
                o.ivec()
            )));
        }
    }
    for o in stencil.offsets() {
        if !seen.contains(&wrap(-o.ivec())) {
            return Err(NeighborError::Inconsistent(format!(
                "stencil is not symmetric: {:?} is present but {:?} is not",
                o.ivec(),
                -o.ivec()
            )));
        }
    }
    let independent = shell_counts(dims, boundary, radius);
    let listed = stencil.class_sizes().map(u64::from);
    if independent != listed {
        return Err(NeighborError::Inconsistent(format!(
            "stencil class sizes {listed:?} differ from the independent shell count {independent:?}"
        )));
    }
    Ok(())
}

/// Per-cell counts for every cell (from box sums), checked against the walk on the sample.
pub(super) fn stencil_cell_counts(stencil: &Stencil) -> Result<Vec<[u32; 3]>, NeighborError> {
    let dims = stencil.dims();
    let counter = BoxCounter::new(dims, stencil.boundary(), stencil.radius());
    let counts: Vec<[u32; 3]> = (0..dims.cells())
        .into_par_iter()
        .map(|i| counter.counts(dims.coord_ivec(i)))
        .collect();
    for i in walk_sample(dims, stencil.len()) {
        let mut walked = [0u32; 3];
        stencil.for_each_neighbor(i, |_, c, _| walked[c.index()] += 1);
        if walked != counts[i as usize] {
            return Err(NeighborError::Inconsistent(format!(
                "cell {i} at {:?}: walking the stencil finds {walked:?} neighbors per class, \
                 the independent box count {:?}",
                dims.coord(i),
                counts[i as usize]
            )));
        }
    }
    Ok(counts)
}

pub(super) fn validate_csr(stencil: &Stencil, csr: &Csr) -> Result<(), NeighborError> {
    let dims = stencil.dims();
    if !csr.dims_check(dims) || csr.class_ptr().len() != 3 * dims.cells_usize() + 1 {
        return Err(NeighborError::Inconsistent(
            "explicit table does not cover every cell".into(),
        ));
    }
    if csr.class_ptr().windows(2).any(|w| w[0] > w[1])
        || *csr.class_ptr().last().unwrap() as usize != csr.entries()
    {
        return Err(NeighborError::Inconsistent(
            "explicit table row pointers are not monotone".into(),
        ));
    }
    // Every entry: in range, not the cell itself, active, and masked-off cells have empty rows.
    let bad = (0..dims.cells()).into_par_iter().find_any(|&i| {
        let all =
            csr.class_ptr()[3 * i as usize] as usize..csr.class_ptr()[3 * i as usize + 3] as usize;
        (!csr.is_active(i) && !all.is_empty())
            || csr.col_idx()[all]
                .iter()
                .any(|&j| j == i || j >= dims.cells() || !csr.is_active(j))
    });
    if let Some(i) = bad {
        return Err(NeighborError::Inconsistent(format!(
            "explicit row of cell {i} at {:?} lists itself, an inactive cell, or a cell out of range",
            dims.coord(i)
        )));
    }
    // Exact rows on the sample, from the stencil walk filtered by the mask.
    for i in walk_sample(dims, stencil.len()) {
        let mut want: [Vec<u32>; 3] = Default::default();
        if csr.is_active(i) {
            stencil.for_each_neighbor(i, |j, c, _| {
                if csr.is_active(j) {
                    want[c.index()].push(j);
                }
            });
        }
        for class in NeighborClass::ALL {
            if csr.class_slice(i, class) != want[class.index()].as_slice() {
                return Err(NeighborError::Inconsistent(format!(
                    "explicit {} row of cell {i} at {:?} differs from the stencil",
                    class.name(),
                    dims.coord(i)
                )));
            }
        }
    }
    // Symmetry: the multiset of (i, j, class) equals that of (j, i, class) iff the sums of a
    // strong pair hash agree (order-independent, so it runs in parallel over all entries).
    let (forward, backward) = (0..dims.cells())
        .into_par_iter()
        .map(|i| {
            let mut acc = (0u64, 0u64);
            for class in NeighborClass::ALL {
                for &j in csr.class_slice(i, class) {
                    acc.0 = acc.0.wrapping_add(pair_hash(i, j, class));
                    acc.1 = acc.1.wrapping_add(pair_hash(j, i, class));
                }
            }
            acc
        })
        .reduce(
            || (0, 0),
            |a, b| (a.0.wrapping_add(b.0), a.1.wrapping_add(b.1)),
        );
    if forward != backward {
        return Err(asymmetry(csr, dims));
    }
    Ok(())
}

/// Slow path, only on failure: find the cells whose lists are not mirrored.
fn asymmetry(csr: &Csr, dims: Dims) -> NeighborError {
    let mut cells = Vec::new();
    for i in 0..dims.cells() {
        for class in NeighborClass::ALL {
            if csr
                .class_slice(i, class)
                .iter()
                .any(|&j| !csr.class_slice(j, class).contains(&i))
            {
                cells.push(i);
                break;
            }
        }
    }
    NeighborError::Asymmetric {
        count: cells.len(),
        cells: describe(dims, &cells),
    }
}

fn pair_hash(i: u32, j: u32, class: NeighborClass) -> u64 {
    // splitmix64 finaliser over the packed triple.
    let mut z = (u64::from(i) << 32 | u64::from(j))
        ^ (class as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The cells whose walk is checked: all of them when cheap, else a fixed, spread-out sample.
fn walk_sample(dims: Dims, k: usize) -> Vec<u32> {
    if u64::from(dims.cells()) * k as u64 <= FULL_WALK_BUDGET {
        return (0..dims.cells()).collect();
    }
    let [w, h, d] = dims.as_array();
    let picks = |n: u32| [0, 1, n / 2, n.saturating_sub(2), n - 1];
    let mut cells = Vec::new();
    for z in picks(d) {
        for y in picks(h) {
            for x in picks(w) {
                cells.push(dims.index(x, y, z));
            }
        }
    }
    let mut state = 0x243F_6A88_85A3_08D3u64;
    for _ in 0..HASHED_SAMPLE {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        cells.push(((state >> 33) % u64::from(dims.cells())) as u32);
    }
    cells.sort_unstable();
    cells.dedup();
    cells
}

/// "cell 12 (x 12, y 0, z 0)" for the first few cells.
pub(super) fn describe(dims: Dims, cells: &[u32]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = cells
        .iter()
        .take(SHOWN)
        .map(|&i| {
            let [x, y, z] = dims.coord(i);
            format!("cell {i} (x {x}, y {y}, z {z})")
        })
        .collect();
    if cells.len() > SHOWN {
        parts.push(format!("and {} more", cells.len() - SHOWN));
    }
    parts.join(", ")
}
