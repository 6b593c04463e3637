//! GPU twin of `lattice_core::moe`: the three-stage MoE step (prep, gather, update) over
//! `[items, N, S]` states that stay on the GPU between steps (ping-pong buffers).
//!
//! Sizes and tensor offsets are baked into each pipeline through a generated header of WGSL
//! `const`s, so any preset works without editing shaders. Rows (item, cell) are processed in
//! chunks so no binding exceeds the adapter's limit.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use lattice_core::NeighborCache;
use lattice_core::config::Combine;
use lattice_core::moe::gather::record_width;
use lattice_core::moe::net::UpdateTile;
use lattice_core::moe::params::EXTERNAL_INPUT;
use lattice_core::moe::{MoeEngine, MoeShape, NonFinite, ParamLayout, STEPS_PER_CHECK};

use crate::context::{GpuContext, GpuError};
use crate::gather::GpuNeighbors;
use crate::gather_tile::GatherTile;
use crate::header::Header;
use crate::kernel::{Kernel, Staging, allocating, read_back, storage, storage_zeroed, uniform};
use crate::layout::LatticeParams;
use crate::profile::{Profiler, kernel_pass};
use crate::shaders::{self, KernelSpec};

/// WGSL `MoeParams` (uniform, 32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct MoeParams {
    pub items: u32,
    pub cells: u32,
    pub first_row: u32,
    pub rows: u32,
    /// 1 for `Combine::Residual`, 0 for `Combine::Replace`.
    pub residual: u32,
    pub pad: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<MoeParams>() == 32);
const _: () = assert!(std::mem::offset_of!(MoeParams, residual) == 16);

/// The WGSL `const` header for one network: sizes, step settings, the update kernel's tile
/// layout and every tensor offset (`W_<NAME>`, the name upper-cased with `.` → `_`).
pub fn header(layout: &ParamLayout, ode_steps: u32) -> String {
    let sh = layout.shape;
    let tile = UpdateTile::new(&sh);
    let gather = GatherTile::new(&sh);
    let mut h = Header::new("lattice-gpu/src/moe.rs")
        .u32s([
            ("S", sh.s),
            ("H1", sh.local_h1),
            ("H2", sh.local_h2),
            ("PH", sh.local_ph),
            ("FH", sh.func_hidden),
            ("FM", sh.func_msg),
            ("OH", sh.ode_hidden),
            ("OH2", sh.ode_hidden / 2),
            ("GH", sh.gate_hidden),
            ("TW", sh.time_width()),
            ("EXT", EXTERNAL_INPUT),
            ("ODE_STEPS", ode_steps),
            ("REC", record_width(&sh) as u32),
            ("GCELLS", gather.cells),
            ("PAIRS", gather.pairs),
            ("WSTAGE", gather.staged_floats(&sh)),
            ("TILE", tile.rows),
            ("LN_LANES", tile.ln_lanes),
            ("ROW", tile.row),
            ("TEMPS", tile.temps),
        ])
        .bool("HAS_TIME", sh.has_time())
        .bool("STAGE", gather.stage_weights)
        .tensor_offsets(&layout.tensors, 0);
    for (func, p) in [
        ("cnf_functional", "functional.cnf"),
        ("cnf_distant", "distant"),
    ] {
        let o = |n: &str| layout.get(&format!("{p}.{n}")).map_or(0, |t| t.offset);
        let names = [
            "norm_in.weight",
            "norm_in.bias",
            "mlp1.weight",
            "mlp1.bias",
            "mlp2.weight",
            "mlp2.bias",
            "mlp3.weight",
            "mlp3.bias",
            "time.weight",
            "norm_out.weight",
            "norm_out.bias",
            "lambda",
        ];
        let args: Vec<String> = names.iter().map(|n| format!("{}u", o(n))).collect();
        h = h.line(&format!(
            "fn {func}() -> Cnf {{ return Cnf({}); }}",
            args.join(", ")
        ));
    }
    h.finish()
}

/// The MoE kernels, in the order [`MoeKernels`] holds them.
pub const KERNELS: [&KernelSpec; 3] = [
    &shaders::MOE_PREP,
    &shaders::MOE_GATHER,
    &shaders::MOE_UPDATE,
];

/// The composed sources of the three MoE kernels for one network.
pub fn sources(layout: &ParamLayout, ode_steps: u32) -> [(&'static str, String); 3] {
    let h = header(layout, ode_steps);
    KERNELS.map(|k| (k.name, shaders::compose(k, &h)))
}

/// The three compiled MoE pipelines for one network shape and ODE step count. Compiling is the
/// slow part of setting up (seconds on lavapipe), so one set serves every batch and lattice;
/// cloning shares the pipelines.
#[derive(Clone)]
pub struct MoeKernels {
    layout: ParamLayout,
    /// Rows per workgroup of the update kernel.
    tile_rows: u32,
    /// Rows per workgroup of the gather kernel.
    gather_rows: u32,
    prep: Kernel,
    gather: Kernel,
    update: Kernel,
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

/// One chunk of rows with its own uniform and bind groups.
struct Chunk {
    first_row: u32,
    rows: u32,
    gather: [wgpu::BindGroup; 2],
    update: [wgpu::BindGroup; 2],
}

/// Rows (item, cell) per gather/update dispatch: as many as one binding of records holds,
/// after checking that the whole batch's states and prep vectors fit their bindings.
fn chunk_rows(ctx: &GpuContext, sh: &MoeShape, rows_total: u64) -> Result<u32, GpuError> {
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
struct BatchBuffers {
    wts: wgpu::Buffer,
    lattice: wgpu::Buffer,
    /// Ping-pong states.
    states: [wgpu::Buffer; 2],
    prep: wgpu::Buffer,
    records: wgpu::Buffer,
    counts: wgpu::Buffer,
    bad: wgpu::Buffer,
    bad_reset: wgpu::Buffer,
}

impl BatchBuffers {
    fn new(
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
    fn bind(
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

/// A batch of `items` lattices on the GPU, stepped in place.
pub struct GpuMoe {
    items: u32,
    cells: u32,
    s: u32,
    fh: u32,
    prep: Kernel,
    gather: Kernel,
    update: Kernel,
    /// Rows per workgroup of `update`.
    tile_rows: u32,
    /// Rows per workgroup of `gather`.
    gather_rows: u32,
    states: [wgpu::Buffer; 2],
    bad: wgpu::Buffer,
    prep_groups: [wgpu::BindGroup; 2],
    chunks: Vec<Chunk>,
    /// All "finite" (u32::MAX per item): copied over `bad` after every step.
    bad_reset: wgpu::Buffer,
    /// One set of non-finite flags per step of the last submission (up to STEPS_PER_CHECK),
    /// copied inside the submission: read once, they still name the exact step.
    flag_ring: Staging,
    /// Steps whose flags the last submission put in `flag_ring`.
    ring_steps: u32,
    /// Which of `states` holds the current states.
    current: usize,
    /// With [`Self::enable_profiling`]: per-kernel GPU time of every submission.
    profiler: Option<Profiler>,
}

impl GpuMoe {
    /// Uploads weights (in `kernels.layout()` order) and initial `states` (`[items, N, S]`).
    /// Running out of GPU memory is an error ([`GpuError::is_allocation`]), not a panic.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        cache: &NeighborCache,
        neighbors: &GpuNeighbors,
        kernels: &MoeKernels,
        weights: &[f32],
        combine: Combine,
        states: &[f32],
        items: u32,
    ) -> Result<Self, GpuError> {
        let inputs = (weights, combine, states, items);
        allocating(ctx, || {
            Self::build(ctx, cache, neighbors, kernels, inputs, None)
        })
    }

    /// [`Self::new`] for a rank's slab: gather and update run on the cells `owned` of each
    /// item only (their rows are this rank's); the rest of the states is read, never written.
    #[allow(clippy::too_many_arguments)]
    pub fn new_slab(
        ctx: &GpuContext,
        cache: &NeighborCache,
        neighbors: &GpuNeighbors,
        kernels: &MoeKernels,
        weights: &[f32],
        combine: Combine,
        states: &[f32],
        items: u32,
        owned: Range<u32>,
    ) -> Result<Self, GpuError> {
        let inputs = (weights, combine, states, items);
        allocating(ctx, || {
            Self::build(ctx, cache, neighbors, kernels, inputs, Some(owned.clone()))
        })
    }

    fn build(
        ctx: &GpuContext,
        cache: &NeighborCache,
        neighbors: &GpuNeighbors,
        kernels: &MoeKernels,
        (weights, combine, states, items): (&[f32], Combine, &[f32], u32),
        owned: Option<Range<u32>>,
    ) -> Result<Self, GpuError> {
        let sh = kernels.layout.shape;
        assert_eq!(
            weights.len(),
            kernels.layout.total() as usize,
            "weights match the kernels' layout"
        );
        let cells = cache.dims().cells();
        let rows_total = u64::from(items) * u64::from(cells);
        assert_eq!(
            states.len() as u64,
            rows_total * u64::from(sh.s),
            "states are [items, N, S]"
        );
        let chunk_rows = chunk_rows(ctx, &sh, rows_total)?;
        let b = BatchBuffers::new(ctx, cache, &sh, weights, states, items, chunk_rows);
        let base = MoeParams {
            items,
            cells,
            first_row: 0,
            rows: rows_total as u32,
            residual: u32::from(combine == Combine::Residual),
            pad: [0; 3],
        };
        let all = uniform(ctx, "moe all", &base);
        let prep_groups = [0, 1].map(|k| {
            kernels
                .prep
                .bind(ctx, &[&all, &b.wts, &b.states[k], &b.prep])
        });
        // The rows to update: every item's together (fewer, fuller dispatches), or a slab's
        // rows of each item.
        let n = u64::from(cells);
        let row_ranges: Vec<Range<u64>> = match &owned {
            None => std::iter::once(0..rows_total).collect(),
            Some(r) => (0..u64::from(items))
                .map(|b| b * n + u64::from(r.start)..b * n + u64::from(r.end))
                .collect(),
        };
        let mut chunks = Vec::new();
        for range in row_ranges {
            let mut first = range.start;
            while first < range.end {
                let rows = (range.end - first).min(u64::from(chunk_rows)) as u32;
                let params = MoeParams {
                    first_row: first as u32,
                    rows,
                    ..base
                };
                chunks.push(Chunk::bind(ctx, kernels, neighbors, &b, &params));
                first += u64::from(rows);
            }
        }
        tracing::debug!(chunks = chunks.len(), chunk_rows, "MoE GPU step prepared");
        let moe = Self {
            items,
            cells,
            s: sh.s,
            fh: sh.func_hidden,
            prep: kernels.prep.clone(),
            gather: kernels.gather.clone(),
            update: kernels.update.clone(),
            tile_rows: kernels.tile_rows,
            gather_rows: kernels.gather_rows,
            states: b.states,
            bad: b.bad,
            prep_groups,
            chunks,
            bad_reset: b.bad_reset,
            flag_ring: Staging::new(
                ctx,
                "non-finite flags",
                u64::from(STEPS_PER_CHECK) * u64::from(items) * 4,
            ),
            ring_steps: 0,
            current: 0,
            profiler: None,
        };
        Ok(moe)
    }

    /// Bytes of one step's flags.
    fn flag_bytes(&self) -> u64 {
        u64::from(self.items) * 4
    }

    /// Records `steps` steps into one command buffer and submits it (no wait). Each kernel
    /// dispatch is its own compute pass, timed when profiling.
    pub fn submit_steps(&mut self, ctx: &GpuContext, steps: u32) {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for step in 0..steps {
            let k = self.current;
            let rows_total = u64::from(self.items) * u64::from(self.cells);
            let mut pass = kernel_pass(&mut enc, self.profiler.as_mut(), "moe_prep");
            let prep_rows = rows_total * u64::from(self.fh);
            self.prep
                .dispatch(ctx, &mut pass, &self.prep_groups[k], prep_rows);
            drop(pass);
            for chunk in &self.chunks {
                debug_assert!(chunk.first_row as u64 + chunk.rows as u64 <= rows_total);
                let rows = u64::from(chunk.rows);
                let mut pass = kernel_pass(&mut enc, self.profiler.as_mut(), "moe_gather");
                // One workgroup per tile of rows.
                let gather =
                    rows.div_ceil(u64::from(self.gather_rows)) * u64::from(self.gather.workgroup);
                self.gather
                    .dispatch(ctx, &mut pass, &chunk.gather[k], gather);
                drop(pass);
                let mut pass = kernel_pass(&mut enc, self.profiler.as_mut(), "moe_update");
                // One workgroup per tile of rows.
                let update =
                    rows.div_ceil(u64::from(self.tile_rows)) * u64::from(self.update.workgroup);
                self.update
                    .dispatch(ctx, &mut pass, &chunk.update[k], update);
            }
            self.current = 1 - k;
            // This step's flags into the ring, then all finite again for the next step. Past
            // the ring's length (an unchecked run) the last slot keeps the latest step.
            let at = u64::from(step.min(STEPS_PER_CHECK - 1)) * self.flag_bytes();
            self.flag_ring
                .record_copy_at(&mut enc, &self.bad, at, self.flag_bytes());
            enc.copy_buffer_to_buffer(&self.bad_reset, 0, &self.bad, 0, self.flag_bytes());
        }
        self.ring_steps = steps.min(STEPS_PER_CHECK);
        if let Some(p) = &self.profiler {
            p.record_resolve(&mut enc);
        }
        ctx.queue.submit([enc.finish()]);
    }

    /// Times every kernel of every later submission (of at most [`STEPS_PER_CHECK`] steps);
    /// false when the adapter has no timestamp queries.
    pub fn enable_profiling(&mut self, ctx: &GpuContext) -> bool {
        let passes = STEPS_PER_CHECK * (1 + 2 * self.chunks.len() as u32);
        self.profiler = Profiler::new(ctx, passes);
        self.profiler.is_some()
    }

    /// Adds the last submission's kernel times to the totals (waits for it).
    ///
    /// # Errors
    /// A failed readback.
    pub fn collect_profile(&mut self, ctx: &GpuContext) -> Result<(), GpuError> {
        self.profiler.as_mut().map_or(Ok(()), |p| p.collect(ctx))
    }

    /// The profiler, when profiling.
    pub fn profiler_mut(&mut self) -> Option<&mut Profiler> {
        self.profiler.as_mut()
    }

    /// Replaces the current states (`[items, N, S]`) and clears the non-finite flags.
    pub fn set_states(&mut self, ctx: &GpuContext, states: &[f32]) {
        let len = self.items as usize * self.cells as usize * self.s as usize;
        assert_eq!(states.len(), len, "states are [items, N, S]");
        self.current = 0;
        ctx.queue
            .write_buffer(&self.states[0], 0, bytemuck::cast_slice(states));
        ctx.queue.write_buffer(
            &self.bad,
            0,
            bytemuck::cast_slice(&vec![u32::MAX; self.items as usize]),
        );
        self.ring_steps = 0;
    }

    /// Waits for submitted work.
    pub fn wait(&self, ctx: &GpuContext) -> Result<(), GpuError> {
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(GpuError::Poll)?;
        Ok(())
    }

    /// For each step of the last submission (of a longer one: its first STEPS_PER_CHECK − 1
    /// steps and its last), per item, the lowest cell whose new state is not finite (`None` if
    /// all are); waits for that submission.
    pub fn non_finite_steps(&self, ctx: &GpuContext) -> Result<Vec<Vec<Option<u32>>>, GpuError> {
        let items = self.items as usize;
        let v: Vec<u32> = self.flag_ring.read(ctx, self.ring_steps as usize * items)?;
        let flags = v.into_iter().map(|c| (c != u32::MAX).then_some(c));
        let flags: Vec<Option<u32>> = flags.collect();
        Ok(flags.chunks(items.max(1)).map(<[_]>::to_vec).collect())
    }

    /// Per item, the lowest non-finite cell of the last submitted step (`None` before any).
    pub fn non_finite(&self, ctx: &GpuContext) -> Result<Vec<Option<u32>>, GpuError> {
        let last = self.non_finite_steps(ctx)?.pop();
        Ok(last.unwrap_or_else(|| vec![None; self.items as usize]))
    }

    /// Floats that `cells` (ranges within an item) hold over every item.
    pub fn cells_len(&self, cells: &[Range<u32>]) -> usize {
        self.places(cells).iter().map(ExactSizeIterator::len).sum()
    }

    /// Copies the cells `cells` (ranges within an item) of every item of the current states
    /// into the same places of `host` (`[items, N, S]`), through `staging` (at least
    /// [`Self::cells_len`] floats, kept by the caller across steps); waits for the copy.
    ///
    /// # Errors
    /// A failed readback.
    pub fn read_cells(
        &self,
        ctx: &GpuContext,
        cells: &[Range<u32>],
        staging: &Staging,
        host: &mut [f32],
    ) -> Result<(), GpuError> {
        let places = self.places(cells);
        let total: usize = places.iter().map(ExactSizeIterator::len).sum();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let mut at = 0u64;
        for r in &places {
            let bytes = r.len() as u64 * 4;
            let src = &self.states[self.current];
            staging.record_copy_from(&mut enc, src, r.start as u64 * 4, at, bytes);
            at += bytes;
        }
        ctx.queue.submit([enc.finish()]);
        let values: Vec<f32> = staging.read(ctx, total)?;
        let mut rest = values.as_slice();
        for r in places {
            let (head, tail) = rest.split_at(r.len());
            host[r].copy_from_slice(head);
            rest = tail;
        }
        Ok(())
    }

    /// Writes the same places of `host` into the current states (before the next step).
    pub fn write_cells(&self, ctx: &GpuContext, cells: &[Range<u32>], host: &[f32]) {
        for r in self.places(cells) {
            let bytes = bytemuck::cast_slice(&host[r.clone()]);
            ctx.queue
                .write_buffer(&self.states[self.current], r.start as u64 * 4, bytes);
        }
    }

    /// The float ranges of `cells` in every item of a `[items, N, S]` array.
    fn places(&self, cells: &[Range<u32>]) -> Vec<Range<usize>> {
        let (n, s) = (self.cells as usize, self.s as usize);
        (0..self.items as usize)
            .flat_map(|b| {
                cells
                    .iter()
                    .map(move |c| (b * n + c.start as usize) * s..(b * n + c.end as usize) * s)
            })
            .collect()
    }

    /// Copies the current states to the host, `[items, N, S]`.
    pub fn states(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        let len = self.items as usize * self.cells as usize * self.s as usize;
        read_back(ctx, &self.states[self.current], len)
    }
}

/// [`GpuMoe`] on its device: the GPU implementation of [`MoeEngine`].
pub struct GpuMoeEngine<'a> {
    ctx: &'a GpuContext,
    moe: GpuMoe,
}

impl<'a> GpuMoeEngine<'a> {
    /// Wraps a batch uploaded to `ctx`.
    pub fn new(ctx: &'a GpuContext, moe: GpuMoe) -> Self {
        Self { ctx, moe }
    }

    /// Times every kernel from now on ([`GpuMoe::enable_profiling`]).
    pub fn enable_profiling(&mut self) -> bool {
        self.moe.enable_profiling(self.ctx)
    }

    /// The kernel times so far, when profiling.
    pub fn profiler_mut(&mut self) -> Option<&mut Profiler> {
        self.moe.profiler_mut()
    }
}

impl MoeEngine for GpuMoeEngine<'_> {
    type Error = GpuError;

    fn step(&mut self) -> Result<Vec<NonFinite>, GpuError> {
        Ok(self.steps(1)?.pop().unwrap_or_default())
    }

    fn steps_per_check(&self) -> u32 {
        STEPS_PER_CHECK
    }

    /// One submission of `k` steps and one read of their flags.
    fn steps(&mut self, k: u32) -> Result<Vec<Vec<NonFinite>>, GpuError> {
        assert!(
            k <= STEPS_PER_CHECK,
            "at most STEPS_PER_CHECK steps between checks"
        );
        self.moe.submit_steps(self.ctx, k);
        let per_step = self.moe.non_finite_steps(self.ctx)?;
        self.moe.collect_profile(self.ctx)?;
        Ok(per_step
            .into_iter()
            .map(|flags| {
                let bad = flags.into_iter().enumerate();
                bad.filter_map(|(item, c)| c.map(|cell| NonFinite { item, cell }))
                    .collect()
            })
            .collect())
    }

    fn run_unchecked(&mut self, steps: u32) -> Result<(), GpuError> {
        if self.moe.profiler_mut().is_none() {
            self.moe.submit_steps(self.ctx, steps);
            return self.moe.wait(self.ctx);
        }
        // A profiled submission holds at most STEPS_PER_CHECK steps' timestamps.
        let mut left = steps;
        while left > 0 {
            let k = left.min(STEPS_PER_CHECK);
            self.moe.submit_steps(self.ctx, k);
            self.moe.wait(self.ctx)?;
            self.moe.collect_profile(self.ctx)?;
            left -= k;
        }
        Ok(())
    }

    fn states(&self) -> Result<Vec<f32>, GpuError> {
        self.moe.states(self.ctx)
    }
}
