//! [`GpuMoe`]: a batch of lattices on the GPU, stepped in place.

use super::*;

/// A batch of `items` lattices on the GPU, stepped in place.
pub struct GpuMoe {
    pub(super) items: u32,
    pub(super) cells: u32,
    pub(super) s: u32,
    pub(super) fh: u32,
    pub(super) prep: Kernel,
    pub(super) gather: Kernel,
    pub(super) update: Kernel,
    /// Rows per workgroup of `update`.
    pub(super) tile_rows: u32,
    /// Rows per workgroup of `gather`.
    pub(super) gather_rows: u32,
    pub(super) states: [wgpu::Buffer; 2],
    pub(super) bad: wgpu::Buffer,
    pub(super) prep_groups: [wgpu::BindGroup; 2],
    pub(super) chunks: Vec<Chunk>,
    /// All "finite" (u32::MAX per item): copied over `bad` after every step.
    pub(super) bad_reset: wgpu::Buffer,
    /// One set of non-finite flags per step of the last submission (up to STEPS_PER_CHECK),
    /// copied inside the submission: read once, they still name the exact step.
    pub(super) flag_ring: Staging,
    /// Steps whose flags the last submission put in `flag_ring`.
    pub(super) ring_steps: u32,
    /// Which of `states` holds the current states.
    pub(super) current: usize,
    /// With [`Self::enable_profiling`]: per-kernel GPU time of every submission.
    pub(super) profiler: Option<Profiler>,
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

    pub(super) fn build(
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
    pub(super) fn flag_bytes(&self) -> u64 {
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
    pub(super) fn places(&self, cells: &[Range<u32>]) -> Vec<Range<usize>> {
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
