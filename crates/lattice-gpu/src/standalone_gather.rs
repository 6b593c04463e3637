//! The standalone neighbor gather: per-class neighbor means for B lattices (tests only).

use lattice_core::NeighborCache;

use crate::context::{GpuContext, GpuError};
use crate::gather::GpuNeighbors;
use crate::kernel::{Kernel, read_back, run_pass, storage, storage_zeroed, uniform};
use crate::layout::LatticeParams;
use crate::shaders;

/// The standalone neighbor gather (twin of `lattice_core::kernels::gather`), for tests: the MoE
/// step gathers inside its own kernel.
pub struct GpuGather {
    kernel: Kernel,
}

impl GpuGather {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            kernel: Kernel::new(ctx, &shaders::GATHER, ""),
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
