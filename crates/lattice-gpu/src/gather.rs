//! GPU twin of `lattice_core::kernels::gather`: per-class neighbor means for B lattices.

use lattice_core::NeighborCache;

use crate::context::{GpuContext, GpuError};
use crate::kernel::{Kernel, read_back, run_pass, storage, storage_zeroed, uniform};
use crate::layout::LatticeParams;
use crate::shaders;

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

pub struct GpuGather {
    kernel: Kernel,
}

impl GpuGather {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            kernel: Kernel::new(ctx, "gather", shaders::GATHER, &[], 64),
        }
    }

    /// `states` is `[items, N, channels]`; returns `[items, N, 3, channels]`.
    pub fn class_means(
        &self,
        ctx: &GpuContext,
        cache: &NeighborCache,
        neighbors: &GpuNeighbors,
        states: &[f32],
        items: u32,
        channels: u32,
    ) -> Result<Vec<f32>, GpuError> {
        let n = u64::from(cache.dims().cells());
        let out_len = u64::from(items) * n * 3 * u64::from(channels);
        ctx.check_binding(
            "the gathered means",
            out_len * 4,
            "run fewer items per batch",
        )?;
        ctx.check_binding(
            "the states",
            states.len() as u64 * 4,
            "run fewer items per batch",
        )?;
        let params = uniform(ctx, "params", &LatticeParams::new(cache, items, channels));
        let input = storage(ctx, "states", states);
        let output = storage_zeroed(ctx, "means", out_len * 4);
        let group = self.kernel.bind(
            ctx,
            &[
                &params,
                &neighbors.stencil,
                &neighbors.class_ptr,
                &neighbors.col_idx,
                &input,
                &output,
            ],
        );
        let threads = u64::from(items) * n * u64::from(channels);
        run_pass(ctx, |pass| self.kernel.dispatch(ctx, pass, &group, threads))?;
        read_back(ctx, &output, out_len as usize)
    }
}
