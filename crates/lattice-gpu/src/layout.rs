//! Rust twins of the structs in `shaders/shared/lattice.wgsl`, with size asserts.

use bytemuck::{Pod, Zeroable};
use lattice_core::neighbors::NeighborClass;
use lattice_core::{Boundary, NeighborCache};

/// WGSL `LatticeParams` (uniform, 48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct LatticeParams {
    pub dims: [u32; 3],
    pub boundary: u32,
    pub cells: u32,
    pub items: u32,
    pub channels: u32,
    pub masked: u32,
    pub class_start: [u32; 4],
}
const _: () = assert!(std::mem::size_of::<LatticeParams>() == 48);
const _: () = assert!(std::mem::offset_of!(LatticeParams, class_start) == 32);

impl LatticeParams {
    pub fn new(cache: &NeighborCache, items: u32, channels: u32) -> Self {
        let s = cache.stencil();
        Self {
            dims: cache.dims().as_array(),
            boundary: match cache.boundary() {
                Boundary::Bounded => 0,
                Boundary::Periodic => 1,
            },
            cells: cache.dims().cells(),
            items,
            channels,
            masked: u32::from(cache.csr().is_some()),
            class_start: [
                s.class_range(NeighborClass::Local).start,
                s.class_range(NeighborClass::Functional).start,
                s.class_range(NeighborClass::Distant).start,
                s.class_range(NeighborClass::Distant).end,
            ],
        }
    }
}
