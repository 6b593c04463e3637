//! Helpers shared by the integration tests (and included by benches/moe.rs). Not every binary
//! that includes this module uses every helper.
#![allow(dead_code)]

use std::path::Path;

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
pub fn debug_cache() -> NeighborCache {
    cube(15, 0.3)
}

/// Writes a C-order `.npy` of `shape` (test inputs, masks, batches).
pub fn write_npy<T: npyz::Serialize + npyz::AutoSerialize>(
    path: &Path,
    shape: &[u64],
    values: impl IntoIterator<Item = T>,
) {
    use npyz::WriterBuilder;
    let mut f = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut f)
        .begin_nd()
        .unwrap();
    w.extend(values).unwrap();
    w.finish().unwrap();
}
