//! The three compiled MoE pipelines for one network shape, shared by every batch of a run.

use super::*;

/// The three compiled MoE pipelines for one network shape and ODE step count. Compiling is the
/// slow part of setting up (seconds on lavapipe), so one set serves every batch and lattice;
/// cloning shares the pipelines.
#[derive(Clone)]
pub struct MoeKernels {
    pub(super) layout: ParamLayout,
    /// Rows per workgroup of the update kernel.
    pub(super) tile_rows: u32,
    /// Rows per workgroup of the gather kernel.
    pub(super) gather_rows: u32,
    pub(super) prep: Kernel,
    pub(super) gather: Kernel,
    pub(super) update: Kernel,
}

impl MoeKernels {
    /// Compiles the three kernels for one network shape and ODE step count.
    ///
    /// # Errors
    /// [`GpuError::WorkgroupMemory`] when the gather's chunk or one row of the update's tile
    /// does not fit the adapter's workgroup memory (sizes far beyond the presets').
    pub fn new(ctx: &GpuContext, layout: &ParamLayout, ode_steps: u32) -> Result<Self, GpuError> {
        let tile = UpdateTile::new(&layout.shape);
        let gather_tile = GatherTile::new(&layout.shape);
        let limit = ctx.limits.max_compute_workgroup_storage_size;
        let needs = [
            (&shaders::MOE_GATHER, gather_tile.bytes(&layout.shape)),
            (&shaders::MOE_UPDATE, tile.bytes()),
        ];
        if let Some((kernel, need)) = needs.into_iter().find(|&(_, need)| need > limit) {
            return Err(GpuError::WorkgroupMemory {
                kernel: kernel.name,
                need: u64::from(need),
                limit: u64::from(limit),
                fix: "use a smaller state_size or hidden sizes, or run on the CPU backend",
            });
        }
        let h = header(layout, ode_steps);
        let [prep, gather, update] = KERNELS.map(|k| Kernel::new(ctx, k, &h));
        Ok(Self {
            layout: layout.clone(),
            tile_rows: tile.rows,
            gather_rows: gather_tile.cells,
            prep,
            gather,
            update,
        })
    }

    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }
}
