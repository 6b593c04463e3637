//! Helpers shared by the integration tests (and included by benches/moe.rs).

use lattice_core::{Boundary, Dims, NeighborCache, Radius};

/// The validated cache of a bounded n³ lattice with the reference radius rule
/// (R = clamp(n · ratio, 1, 100)).
pub fn cube(n: u32, ratio: f64) -> NeighborCache {
    let dims = Dims::new(n, n, n).unwrap();
    NeighborCache::build(
        dims,
        Boundary::Bounded,
        Radius::adaptive(n, ratio, 1.0, 100.0),
        None,
    )
    .unwrap()
}

/// The DEBUG preset's lattice: 15³, ratio 0.3.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn debug_cache() -> NeighborCache {
    cube(15, 0.3)
}
