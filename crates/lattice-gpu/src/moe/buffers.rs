//! A batch's device buffers, and the chunks of rows it is processed in so no binding exceeds
//! the adapter's limit.

use super::*;

/// One chunk of rows with its own uniform and bind groups.
pub(super) struct Chunk {
    pub(super) first_row: u32,
    pub(super) rows: u32,
    pub(super) gather: [wgpu::BindGroup; 2],
    pub(super) update: [wgpu::BindGroup; 2],
}

/// Rows (item, cell) per gather/update dispatch: as many as one binding of records holds,
/// after checking that the whole batch's states and prep vectors fit their bindings.
pub(super) fn chunk_rows(
    ctx: &GpuContext,
    sh: &MoeShape,
    rows_total: u64,
) -> Result<u32, GpuError> {
    let fix = "run fewer items per batch (batch.max_batch_size) or a smaller lattice";
    ctx.check_binding(
        "the states of one batch",
        rows_total * u64::from(sh.s) * 4,
        fix,
    )?;
    let prep = rows_total * u64::from(sh.func_hidden) * 4;
    ctx.check_binding("the functional prep vectors", prep, fix)?;
    let per_row = record_width(sh) as u64 * 4;
    let max_rows = (ctx.max_binding() / per_row).clamp(1, rows_total.max(1));
    Ok(max_rows.min(u64::from(u32::MAX / 2)) as u32)
}

/// Device bytes of every buffer a batch of `items` lattices of `cells` cells allocates (the
/// weights, the ping-pong states, the prep vectors, one chunk's records and counts, the
/// non-finite flags, their reset copy and their staging ring, and the uniform parameters: the
/// lattice's, the whole batch's and each chunk's): what the batch plan checks against the
/// device's memory. A slab rank's chunks are per item: a few more 32-byte uniforms than here.
///
/// # Errors
/// [`GpuError::TooLarge`] when the states or prep vectors exceed one binding.
pub fn batch_bytes(
    ctx: &GpuContext,
    layout: &ParamLayout,
    cells: u32,
    items: u32,
) -> Result<u64, GpuError> {
    let sh = &layout.shape;
    let rows = u64::from(items) * u64::from(cells);
    let chunk = u64::from(chunk_rows(ctx, sh, rows)?);
    let weights = u64::from(layout.total()) * 4;
    let states = 2 * rows * u64::from(sh.s) * 4;
    let prep = rows * u64::from(sh.func_hidden) * 4;
    let per_chunk = chunk * (record_width(sh) as u64 * 4 + 16);
    // The flags, the all-finite copy that resets them after every step and the staging ring
    // they are read back through.
    let flags = (2 + u64::from(STEPS_PER_CHECK)) * u64::from(items) * 4;
    let chunks = rows.div_ceil(chunk);
    let uniforms = (size_of::<LatticeParams>() + size_of::<MoeParams>()) as u64
        + chunks * size_of::<MoeParams>() as u64;
    Ok(weights + states + prep + per_chunk + flags + uniforms)
}

/// One batch's buffers.
pub(super) struct BatchBuffers {
    pub(super) wts: wgpu::Buffer,
    pub(super) lattice: wgpu::Buffer,
    /// Ping-pong states.
    pub(super) states: [wgpu::Buffer; 2],
    pub(super) prep: wgpu::Buffer,
    pub(super) records: wgpu::Buffer,
    pub(super) counts: wgpu::Buffer,
    pub(super) bad: wgpu::Buffer,
    pub(super) bad_reset: wgpu::Buffer,
}

impl BatchBuffers {
    pub(super) fn new(
        ctx: &GpuContext,
        cache: &NeighborCache,
        sh: &MoeShape,
        weights: &[f32],
        states: &[f32],
        items: u32,
        chunk_rows: u32,
    ) -> Self {
        let rows_total = u64::from(items) * u64::from(cache.dims().cells());
        let chunk = u64::from(chunk_rows);
        Self {
            wts: storage(ctx, "moe weights", weights),
            lattice: uniform(ctx, "lattice", &LatticeParams::new(cache, items, sh.s)),
            states: [
                storage(ctx, "states a", states),
                storage(ctx, "states b", states),
            ],
            prep: storage_zeroed(ctx, "prep", rows_total * u64::from(sh.func_hidden) * 4),
            records: storage_zeroed(ctx, "records", chunk * record_width(sh) as u64 * 4),
            counts: storage_zeroed(ctx, "counts", chunk * 16),
            bad: storage(ctx, "bad", &vec![u32::MAX; items as usize]),
            bad_reset: storage(ctx, "bad reset", &vec![u32::MAX; items as usize]),
        }
    }
}

impl Chunk {
    /// The gather and update bind groups of one chunk of rows, for both ping-pong directions.
    pub(super) fn bind(
        ctx: &GpuContext,
        k: &MoeKernels,
        n: &GpuNeighbors,
        b: &BatchBuffers,
        params: &MoeParams,
    ) -> Self {
        let p = uniform(ctx, "moe chunk", params);
        let gather = [0, 1].map(|s| {
            k.gather.bind(
                ctx,
                &[
                    &b.lattice,
                    &p,
                    &n.stencil,
                    &n.class_ptr,
                    &n.col_idx,
                    &b.wts,
                    &b.states[s],
                    &b.prep,
                    &b.records,
                    &b.counts,
                ],
            )
        });
        let update = [0, 1].map(|s| {
            k.update.bind(
                ctx,
                &[
                    &p,
                    &b.wts,
                    &b.states[s],
                    &b.records,
                    &b.counts,
                    &b.states[1 - s],
                    &b.bad,
                ],
            )
        });
        Self {
            first_row: params.first_row,
            rows: params.rows,
            gather,
            update,
        }
    }
}
