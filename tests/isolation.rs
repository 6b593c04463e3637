//! Seed 000's scenario: in the reference system's batch mode every cell of a 15³ lattice came
//! out "isolated" (0 neighbors) because the neighbor cache was built lazily. Here the cache is
//! complete before use, and every path (per-cell, batch, CPU gather, GPU gather) sees the same
//! neighbors for every cell.

mod common;

use std::collections::BTreeSet;

use lattice_core::config;
use lattice_core::kernels::gather::class_means;
use lattice_core::lattice::build_cache;
use lattice_core::neighbors::{NeighborClass, NeighborError};
use lattice_core::{Boundary, Dims, NeighborCache, Radius};
use lattice_gpu::gather::GpuNeighbors;
use lattice_gpu::standalone_gather::GpuGather;

fn set_of(list: impl IntoIterator<Item = (u32, NeighborClass)>) -> BTreeSet<(u32, NeighborClass)> {
    list.into_iter().collect()
}

#[test]
fn debug_lattice_every_cell_has_neighbors_in_every_path() {
    let cache = common::debug_cache();
    let dims = cache.dims();
    assert_eq!(dims.cells(), 3375);

    // Interior and corner counts from the reference table.
    assert_eq!(cache.class_counts(dims.index(7, 7, 7)), [26, 152, 186]);
    assert_eq!(cache.neighbors(dims.index(7, 7, 7)).len(), 364);
    for corner in [(0, 0, 0), (14, 0, 0), (0, 14, 14), (14, 14, 14)] {
        assert_eq!(
            cache
                .neighbors(dims.index(corner.0, corner.1, corner.2))
                .len(),
            71
        );
    }

    // Per-cell view == batch view, for all cells, and nobody is isolated.
    let all: Vec<u32> = (0..dims.cells()).collect();
    let batch = cache.batch(&all);
    for (k, &i) in all.iter().enumerate() {
        let per_cell = cache.neighbors(i);
        assert!(!per_cell.is_empty(), "cell {i} isolated");
        assert_eq!(
            per_cell.as_slice(),
            batch.row(k),
            "cell {i}: per-cell and batch differ"
        );
        assert!(per_cell.iter().all(|n| n.cell != i));
    }
    // Batch of arbitrary order and with repeats gives the same rows.
    let shuffled: Vec<u32> = (0..dims.cells())
        .map(|k| (k * 1613) % dims.cells())
        .collect();
    let again = cache.batch(&shuffled);
    for (k, &i) in shuffled.iter().enumerate() {
        assert_eq!(
            set_of(again.row(k).iter().map(|n| (n.cell, n.class))),
            set_of(cache.neighbors(i).iter().map(|n| (n.cell, n.class)))
        );
    }

    // CPU and GPU gathers over a batch of 4: item b holds the value b + 1 everywhere, so every
    // class mean of every cell must be exactly b + 1 (0 would mean an isolated class).
    let items = 4;
    let n = dims.cells_usize();
    let states: Vec<f32> = (0..items * n).map(|k| (k / n + 1) as f32).collect();
    let check = |means: &[f32], path: &str| {
        for (row, chunk) in means.chunks(3).enumerate() {
            let (b, i) = (row / n, row % n);
            assert!(
                chunk.iter().all(|&m| m == (b + 1) as f32),
                "{path}: item {b} cell {i} has class means {chunk:?}"
            );
        }
    };
    check(&class_means(&cache, &states, items, 1), "cpu");
    if let Some(ctx) = lattice_gpu::test_context() {
        let up = GpuNeighbors::upload(&ctx, &cache).unwrap();
        let gpu = GpuGather::new(&ctx)
            .class_means(&ctx, &cache, &up, &states, items as u32, 1)
            .unwrap();
        check(&gpu, "gpu");
    }
}

#[test]
fn experiment_lattice_interior_counts() {
    let cache = common::cube(40, 0.2);
    let dims = cache.dims();
    assert_eq!(cache.class_counts(dims.index(20, 20, 20)), [146, 898, 1058]);
    assert_eq!(cache.stats().total.max, 2102);
    assert!(cache.stats().total.min > 0);
}

#[test]
fn non_cubic_bounded_lattice_is_symmetric_and_complete() {
    let dims = Dims::new(11, 6, 4).unwrap();
    let cache = NeighborCache::build(
        dims,
        Boundary::Bounded,
        Radius::adaptive(11, 0.3, 1.0, 100.0),
        None,
    )
    .unwrap();
    let lists: Vec<BTreeSet<u32>> = (0..dims.cells())
        .map(|i| cache.neighbors(i).iter().map(|n| n.cell).collect())
        .collect();
    for (i, list) in lists.iter().enumerate() {
        assert!(!list.is_empty());
        for &j in list {
            assert!(
                lists[j as usize].contains(&(i as u32)),
                "{j} does not list {i}"
            );
        }
        // Independent brute force over all cells.
        let [x, y, z] = dims.coord(i as u32).map(|v| v as i64);
        let brute: BTreeSet<u32> = (0..dims.cells())
            .filter(|&j| {
                let [a, b, c] = dims.coord(j).map(|v| v as i64);
                let d = (((a - x).pow(2) + (b - y).pow(2) + (c - z).pow(2)) as f64).sqrt();
                d > 0.0 && d <= 0.99 * 3.3
            })
            .collect();
        assert_eq!(list, &brute, "cell {i}");
    }
}

#[test]
fn periodic_lattice_every_cell_has_the_full_stencil() {
    let dims = Dims::new(10, 7, 5).unwrap();
    let cache = NeighborCache::build(dims, Boundary::Periodic, Radius::from_r(3.0), None).unwrap();
    let k = cache.stencil().len();
    for i in 0..dims.cells() {
        let list = cache.neighbors(i);
        assert_eq!(list.len(), k);
        let unique: BTreeSet<u32> = list.iter().map(|n| n.cell).collect();
        assert_eq!(unique.len(), k, "cell {i} lists a cell twice");
        assert!(!unique.contains(&i));
    }
}

#[test]
fn a_mask_that_isolates_a_cell_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let dims = Dims::new(6, 6, 6).unwrap();
    // R = 1.8: the 18 neighbors of (3, 3, 3) are its face and edge neighbors; switch them off.
    let centre = dims.index(3, 3, 3);
    let cache = NeighborCache::build(dims, Boundary::Bounded, Radius::from_r(1.8), None).unwrap();
    let mut mask = vec![1u8; dims.cells_usize()];
    for n in cache.neighbors(centre) {
        mask[n.cell as usize] = 0;
    }
    let mask_path = dir.path().join("mask.npy");
    common::write_npy(&mask_path, &[6, 6, 6], mask.iter().copied());
    let cfg = dir.path().join("masked.ron");
    std::fs::write(
        &cfg,
        "(simulation: Moe((lattice: (dims: (6, 6, 6), radius_ratio: 0.3, mask: Some(\"mask.npy\")))))",
    )
    .unwrap();
    let loaded = config::load(&cfg).unwrap();
    let config::Simulation::Moe(moe) = &loaded.config.simulation else {
        panic!("the lattice configs are Moe configs");
    };
    let err = build_cache(&loaded, &moe.lattice).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cell 129 (x 3, y 3, z 3)"), "{text}");
    assert!(text.contains("mask"), "the fix mentions the mask: {text}");
    assert!(matches!(
        err,
        lattice_core::lattice::LatticeError::Neighbors(NeighborError::Isolated { count: 1, .. })
    ));
}
