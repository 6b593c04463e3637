//! [`GpuFlows`]: a batch of flow items stepped on the GPU, the [`FlowEngine`] of the GPU.

use super::*;

/// A batch of flow items on the GPU.
pub struct GpuFlows<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) k: &'a FlowKernels,
    pub(super) items: u32,
    pub(super) b: Buffers,
    pub(super) g: Groups,
    /// Which `live` buffer holds the current list.
    pub(super) cur: usize,
    /// The counts after the last window (with frozen items' `moving` set to 0).
    pub(super) counts: Vec<ItemCounts>,
    /// The counts history and the stop states, copied once at the end of every window.
    pub(super) history_staging: Staging,
    /// The stop states read with the last window.
    pub(super) stops: Vec<StopState>,
    pub(super) done_cap: u32,
    /// Workgroups per grid dimension before `flow_live` folds a grid into the next one.
    pub(super) max_groups: u32,
    /// With [`Self::enable_profiling`]: per-kernel GPU time of every step.
    pub(super) profiler: Option<Profiler>,
}

impl<'a> GpuFlows<'a> {
    /// Uploads a placed batch and the items' noise seeds. Running out of GPU memory is an
    /// error ([`GpuError::is_allocation`]), not a panic.
    pub fn new(
        ctx: &'a GpuContext,
        k: &'a FlowKernels,
        state: &FlowState,
        seeds: &[[u32; 2]],
    ) -> Result<Self, GpuError> {
        allocating(ctx, || Self::build(ctx, k, state, seeds))
    }

    pub(super) fn build(
        ctx: &'a GpuContext,
        k: &'a FlowKernels,
        state: &FlowState,
        seeds: &[[u32; 2]],
    ) -> Result<Self, GpuError> {
        assert_eq!(
            state.capacity, k.capacity,
            "state capacity matches the kernels"
        );
        let sh = k.layout.shape;
        assert_eq!(
            state.hidden_len,
            sh.hidden_len(),
            "state matches the network"
        );
        check_fits(ctx, k, state)?;
        let b = Buffers::upload(ctx, k, state, seeds);
        let g = Groups::bind(ctx, k, &b);
        Ok(Self {
            history_staging: Staging::new(
                ctx,
                "counts history and stops staging",
                history_bytes(state.items) + stops_bytes(state.items),
            ),
            stops: Vec::new(),
            ctx,
            k,
            items: state.items,
            b,
            g,
            cur: 0,
            counts: state.counts.clone(),
            done_cap: state.done_capacity,
            max_groups: ctx.limits.max_compute_workgroups_per_dimension,
            profiler: None,
        })
    }

    /// Folds every later step's grids at `max_groups` workgroups per dimension instead of the
    /// device's limit, as a device with that limit would (tests reach the folded grids of a
    /// big batch with a small one).
    ///
    /// # Panics
    /// Unless `max_groups` is between 1 and the device's limit.
    pub fn fold_grids_at(&mut self, max_groups: u32) {
        let limit = self.ctx.limits.max_compute_workgroups_per_dimension;
        assert!((1..=limit).contains(&max_groups), "1 to {limit} workgroups");
        self.max_groups = max_groups;
    }

    /// What `flow_live` computed in the last step: the live lists' offsets (the live total
    /// last) and the step's grids.
    pub fn live_dispatch(&self) -> Result<(Vec<u32>, LiveDispatch), GpuError> {
        let offsets = read_back(self.ctx, &self.b.live_off, self.items as usize + 1)?;
        let grids: Vec<LiveDispatch> = read_back(self.ctx, &self.b.args, 1)?;
        Ok((offsets, grids[0]))
    }

    /// Times every kernel of every later step; false when the adapter has no timestamp
    /// queries.
    pub fn enable_profiling(&mut self) -> bool {
        let layers = self.k.layers.len() as u32;
        self.profiler = Profiler::new(self.ctx, 5 + layers);
        self.profiler.is_some()
    }

    /// The kernel times so far, when profiling.
    pub fn profiler_mut(&mut self) -> Option<&mut Profiler> {
        self.profiler.as_mut()
    }

    pub(super) fn slots(&self) -> usize {
        (self.items * self.k.capacity) as usize
    }

    /// The uniform parameters of one step.
    pub(super) fn params(&self, rule: &MoveRule, hidden_next: u32) -> FlowParams {
        let stop = rule.stop.unwrap_or_default();
        FlowParams {
            items: self.items,
            max_groups: self.max_groups,
            step: rule.step,
            nmax: self.items * self.k.capacity,
            scale: rule.displacement_scale,
            noise: rule.noise,
            spawn_tau: rule.spawn_threshold,
            spawn_max: rule.spawn_max,
            reflection: u32::from(rule.reflection),
            done_cap: self.done_cap,
            hidden_next,
            stop_on: u32::from(rule.stop.is_some()),
            min_steps: stop.min_steps,
            patience: stop.patience,
            stop_m: stop.threshold_m,
            stop_shift: stop.threshold_shift,
        }
    }

    /// Runs the steps of `rules` back to back, each its own submission (the uniform
    /// parameters are written between them), then reads every step's counts and the stop
    /// states back at once.
    pub(super) fn run_window(
        &mut self,
        rules: &[MoveRule],
    ) -> Result<Vec<Vec<ItemCounts>>, GpuError> {
        assert!(
            (1..=WINDOW_STEPS as usize).contains(&rules.len()),
            "1 to {WINDOW_STEPS} steps a window"
        );
        let ctx = self.ctx;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        for (j, rule) in rules.iter().enumerate() {
            let params = self.params(rule, 1 - self.cur as u32);
            ctx.queue
                .write_buffer(&self.b.params, 0, bytemuck::bytes_of(&params));
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            self.record_step(&mut enc);
            let bytes = size_of_val(self.counts.as_slice()) as u64;
            enc.copy_buffer_to_buffer(&self.b.counts, 0, &self.b.history, j as u64 * bytes, bytes);
            if j + 1 == rules.len() {
                let all = bytes * rules.len() as u64;
                let staging = &self.history_staging;
                staging.record_copy_at(&mut enc, &self.b.history, 0, all);
                let stops = stops_bytes(self.items);
                staging.record_copy_at(&mut enc, &self.b.stops, history_bytes(self.items), stops);
            }
            if let Some(p) = &self.profiler {
                p.record_resolve(&mut enc);
            }
            ctx.queue.submit([enc.finish()]);
            self.cur = 1 - self.cur;
            if let Some(p) = &mut self.profiler {
                p.collect(ctx)?;
            }
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Wgpu(e));
        }
        let n = self.items as usize;
        // The history's unused steps are read too: the stop states follow the whole history.
        let history_words = (history_bytes(self.items) / 4) as usize;
        let all_words = history_words + (stops_bytes(self.items) / 4) as usize;
        let words: Vec<u32> = self.history_staging.read(ctx, all_words)?;
        let (history, stops) = words.split_at(history_words);
        self.stops = bytemuck::cast_slice(stops).to_vec();
        let flat: &[ItemCounts] = bytemuck::cast_slice(history);
        let window: Vec<Vec<ItemCounts>> = (flat.chunks(n).take(rules.len()))
            .map(<[ItemCounts]>::to_vec)
            .collect();
        self.counts
            .clone_from(window.last().expect("a window has a step"));
        Ok(window)
    }

    /// Records one step's kernels; their grids come from `flow_live` (indirect dispatch).
    pub(super) fn record_step(&mut self, enc: &mut wgpu::CommandEncoder) {
        let (k, g, b, c) = (self.k, &self.g, &self.b, self.cur);
        let prof = &mut self.profiler;
        enc.clear_buffer(&b.pair_count, 0, None);
        let mut pass = kernel_pass(enc, prof.as_mut(), "flow_live");
        k.live.dispatch_groups(&mut pass, &g.live, 1, 1, 1);
        drop(pass);
        let mut pass = kernel_pass(enc, prof.as_mut(), "flow_neuron");
        k.neuron
            .dispatch_indirect(&mut pass, &g.neuron[c], &b.args, LiveDispatch::NEURON);
        drop(pass);
        for layer in &g.gru[c] {
            let mut pass = kernel_pass(enc, prof.as_mut(), "flow_gru");
            k.gru
                .dispatch_indirect(&mut pass, layer, &b.args, LiveDispatch::GRU);
        }
        let mut pass = kernel_pass(enc, prof.as_mut(), "flow_heads");
        k.heads
            .dispatch_indirect(&mut pass, &g.heads[c], &b.args, LiveDispatch::HEADS);
        drop(pass);
        let mut pass = kernel_pass(enc, prof.as_mut(), "flow_plan");
        k.plan
            .dispatch_groups(&mut pass, &g.plan[c], self.items, 1, 1);
        drop(pass);
        let mut pass = kernel_pass(enc, prof.as_mut(), "flow_copy");
        k.copy
            .dispatch_indirect(&mut pass, &g.copy[c], &b.args, LiveDispatch::COPY);
    }

    /// Every slot's latest hidden state, from whichever ping-pong buffer holds it.
    pub(super) fn read_hidden(&self) -> Result<Vec<f32>, GpuError> {
        let hl = self.k.layout.shape.hidden_len() as usize;
        let n = self.slots();
        let at: Vec<u32> = read_back(self.ctx, &self.b.hidden_at, n)?;
        let sides: [Vec<f32>; 2] = [
            read_back(self.ctx, &self.b.hidden[0], n * hl)?,
            read_back(self.ctx, &self.b.hidden[1], n * hl)?,
        ];
        Ok((0..n)
            .flat_map(|slot| &sides[at[slot] as usize][slot * hl..(slot + 1) * hl])
            .copied()
            .collect())
    }

    /// Reads the whole batch back.
    pub fn read_state(&self) -> Result<FlowState, GpuError> {
        let ctx = self.ctx;
        let n = self.slots();
        let hl = self.k.layout.shape.hidden_len();
        Ok(FlowState {
            items: self.items,
            capacity: self.k.capacity,
            hidden_len: hl,
            pos: read_back(ctx, &self.b.pos, n)?,
            prev: read_back(ctx, &self.b.prev, n)?,
            hidden: self.read_hidden()?,
            id: read_back(ctx, &self.b.id, n)?,
            parent: read_back(ctx, &self.b.parent, n)?,
            steps: read_back(ctx, &self.b.steps, n)?,
            status: read_back(ctx, &self.b.status, n)?,
            event: read_back(ctx, &self.b.event, n)?,
            spawn: read_back(ctx, &self.b.spawn, n)?,
            live: read_back(ctx, &self.b.live[self.cur], n)?,
            counts: self.counts.clone(),
            done_capacity: self.done_cap,
            done: read_back(
                ctx,
                &self.b.done,
                self.items as usize * self.done_cap as usize,
            )?,
        })
    }
}

impl FlowEngine for GpuFlows<'_> {
    type Error = GpuError;

    fn step(&mut self, rule: &MoveRule) -> Result<Vec<ItemCounts>, GpuError> {
        let mut window = self.run_window(std::slice::from_ref(rule))?;
        Ok(window.pop().expect("one step"))
    }

    fn steps(&mut self, rules: &[MoveRule]) -> Result<Vec<Vec<ItemCounts>>, GpuError> {
        self.run_window(rules)
    }

    fn freeze(&mut self, items: &[u32]) -> Result<(), GpuError> {
        // flow_live freezes the same items before the step (confirmed after the window); the
        // host's copy follows for the state read back.
        for &b in items {
            self.counts[b as usize].moving = 0;
        }
        Ok(())
    }

    fn decides_stops(&self) -> bool {
        true
    }

    fn confirm_stops(&mut self, host: &[Option<(u32, StopReason)>]) -> Result<(), GpuError> {
        for (b, (h, d)) in host.iter().zip(&self.stops).enumerate() {
            let host = h.map(|(step, reason)| (step, reason.code()));
            if host != d.decision() {
                let name = |x: Option<(u32, u32)>| {
                    x.map_or("no stop".into(), |(s, r)| {
                        format!("stop code {r} before step {s}")
                    })
                };
                return Err(GpuError::StopRule {
                    item: b as u32,
                    device: name(d.decision()),
                    host: name(host),
                });
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<FlowState, GpuError> {
        self.read_state()
    }
}
