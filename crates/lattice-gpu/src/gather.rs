//! The neighbor cache on the GPU.

use lattice_core::NeighborCache;

use crate::context::{GpuContext, GpuError};
use crate::kernel::storage;

/// The neighbor cache uploaded once (stencil, and the explicit table when masked).
pub struct GpuNeighbors {
    pub stencil: wgpu::Buffer,
    pub class_ptr: wgpu::Buffer,
    pub col_idx: wgpu::Buffer,
}

impl GpuNeighbors {
    pub fn upload(ctx: &GpuContext, cache: &NeighborCache) -> Result<Self, GpuError> {
        let (class_ptr, col_idx): (&[u32], &[u32]) = match cache.csr() {
            Some(csr) => (csr.class_ptr(), csr.col_idx()),
            None => (&[], &[]),
        };
        ctx.check_binding(
            "the explicit neighbor table",
            std::mem::size_of_val(col_idx) as u64,
            "lower radius_ratio or shrink the masked lattice",
        )?;
        Ok(Self {
            stencil: storage(ctx, "stencil", cache.stencil().offsets()),
            class_ptr: storage(ctx, "class_ptr", class_ptr),
            col_idx: storage(ctx, "col_idx", col_idx),
        })
    }
}
