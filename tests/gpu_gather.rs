//! GPU vs CPU: the batched per-class neighbor gather on lavapipe (or any adapter).
//! Skips without an adapter unless LATTICE_REQUIRE_GPU=1, which CI sets.

mod common;

use lattice_core::kernels::gather::class_means;
use lattice_core::{Boundary, Dims, NeighborCache, Radius};
use lattice_gpu::gather::GpuNeighbors;
use lattice_gpu::standalone_gather::GpuGather;

/// Same summation order on both sides: differences can only come from the driver's float
/// division, so the bound is a few ulps.
const REL_TOL: f32 = 1e-6;

fn states(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|k| {
            let h = (k ^ seed)
                .wrapping_mul(0x9E37_79B9)
                .rotate_left(13)
                .wrapping_mul(0x85EB_CA6B);
            (h >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn compare(cache: &NeighborCache, items: u32, channels: u32) {
    let Some(ctx) = lattice_gpu::test_context() else {
        return;
    };
    let n = cache.dims().cells_usize();
    let input = states(items as usize * n * channels as usize, 17);
    let cpu = class_means(cache, &input, items as usize, channels as usize);
    let gpu_neighbors = GpuNeighbors::upload(&ctx, cache).unwrap();
    let gpu = GpuGather::new(&ctx)
        .class_means(&ctx, cache, &gpu_neighbors, &input, items, channels)
        .unwrap();
    assert_eq!(cpu.len(), gpu.len());
    let mut worst = 0.0f32;
    for (k, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        let err = (a - b).abs() / a.abs().max(1e-3);
        worst = worst.max(err);
        assert!(
            approx::relative_eq!(*a, *b, epsilon = REL_TOL * 1e-3, max_relative = REL_TOL),
            "element {k}: cpu {a} gpu {b}"
        );
    }
    eprintln!(
        "gather: {} values, worst relative error {worst:e}",
        cpu.len()
    );
}

#[test]
fn gather_matches_cpu_debug_lattice_batch_of_4() {
    let cache = common::debug_cache();
    compare(&cache, 4, 24);
}

#[test]
fn gather_matches_cpu_periodic_non_cubic() {
    let dims = Dims::new(9, 6, 5).unwrap();
    let cache = NeighborCache::build(dims, Boundary::Periodic, Radius::from_r(2.7), None).unwrap();
    compare(&cache, 2, 5);
}

#[test]
fn gather_matches_cpu_masked() {
    let dims = Dims::new(8, 7, 6).unwrap();
    let mask: Vec<bool> = (0..dims.cells()).map(|i| i % 7 != 3).collect();
    let cache =
        NeighborCache::build(dims, Boundary::Bounded, Radius::from_r(2.5), Some(mask)).unwrap();
    assert!(cache.csr().is_some());
    compare(&cache, 3, 4);
}
