//! One batch's device buffers (the flow state's structure of arrays, the counts history, the
//! ping-pong hidden states) and their bind groups.

use super::*;

pub(super) struct Buffers {
    pub(super) params: wgpu::Buffer,
    pub(super) pos: wgpu::Buffer,
    pub(super) prev: wgpu::Buffer,
    /// Ping-pong hidden states, and per slot the index of the one holding its latest state.
    pub(super) hidden: [wgpu::Buffer; 2],
    pub(super) hidden_at: wgpu::Buffer,
    pub(super) id: wgpu::Buffer,
    pub(super) parent: wgpu::Buffer,
    pub(super) steps: wgpu::Buffer,
    pub(super) status: wgpu::Buffer,
    pub(super) event: wgpu::Buffer,
    pub(super) spawn: wgpu::Buffer,
    pub(super) live: [wgpu::Buffer; 2],
    pub(super) live_off: wgpu::Buffer,
    pub(super) gslot: wgpu::Buffer,
    pub(super) xin: wgpu::Buffer,
    pub(super) seeds: wgpu::Buffer,
    pub(super) counts: wgpu::Buffer,
    /// Every step's counts in the current window, step after step.
    pub(super) history: wgpu::Buffer,
    /// The step's workgroup grids ([`LiveDispatch`]), written by `flow_live`.
    pub(super) args: wgpu::Buffer,
    /// Each item's [`StopState`].
    pub(super) stops: wgpu::Buffer,
    pub(super) done: wgpu::Buffer,
    pub(super) free: wgpu::Buffer,
    pub(super) pairs: wgpu::Buffer,
    pub(super) pair_count: wgpu::Buffer,
}

/// Fails with a clear error if one batch's largest buffers or its item count exceed the
/// device's limits.
pub(super) fn check_fits(
    ctx: &GpuContext,
    k: &FlowKernels,
    state: &FlowState,
) -> Result<(), GpuError> {
    let sh = k.layout.shape;
    let items = state.items;
    let slots = u64::from(items) * u64::from(k.capacity);
    let fix = "run fewer items per batch (batch.max_batch_size) or lower capacity_per_item";
    let hidden_bytes = slots * u64::from(sh.hidden_len()) * 4;
    ctx.check_binding("the hidden states of one batch", hidden_bytes, fix)?;
    let xin_bytes = slots * u64::from(sh.carrier_in()) * 4;
    ctx.check_binding("the carrier inputs", xin_bytes, fix)?;
    let done_len = u64::from(items) * u64::from(state.done_capacity);
    ctx.check_binding(
        "the completion records",
        done_len * std::mem::size_of::<DoneFlow>() as u64,
        "run fewer items per batch, fewer steps (max_steps) or a lower capacity_per_item",
    )?;
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension;
    if items > max_groups {
        return Err(GpuError::TooLarge {
            what: "items in one flow batch (one planning workgroup each)",
            need: u64::from(items),
            limit: u64::from(max_groups),
            fix,
        });
    }
    Ok(())
}

/// Bytes of a window's per-item counts, step after step.
pub(super) fn history_bytes(items: u32) -> u64 {
    u64::from(WINDOW_STEPS) * u64::from(items) * size_of::<ItemCounts>() as u64
}

pub(super) fn stops_bytes(items: u32) -> u64 {
    u64::from(items) * size_of::<StopState>() as u64
}

impl Buffers {
    /// Uploads a placed batch; scratch buffers start zeroed.
    pub(super) fn upload(
        ctx: &GpuContext,
        k: &FlowKernels,
        state: &FlowState,
        seeds: &[[u32; 2]],
    ) -> Self {
        let sh = k.layout.shape;
        let items = u64::from(state.items);
        let slots = items * u64::from(k.capacity);
        let seeds_flat: Vec<u32> = seeds.iter().flatten().copied().collect();
        Self {
            params: uniform(ctx, "flow params", &FlowParams::zeroed()),
            pos: storage(ctx, "pos", &state.pos),
            prev: storage(ctx, "prev", &state.prev),
            hidden: [
                storage(ctx, "hidden a", &state.hidden),
                storage_zeroed(ctx, "hidden b", slots * u64::from(sh.hidden_len()) * 4),
            ],
            hidden_at: storage_zeroed(ctx, "hidden at", slots * 4),
            id: storage(ctx, "id", &state.id),
            parent: storage(ctx, "parent", &state.parent),
            steps: storage(ctx, "steps", &state.steps),
            status: storage(ctx, "status", &state.status),
            event: storage(ctx, "event", &state.event),
            spawn: storage(ctx, "spawn", &state.spawn),
            live: [
                storage(ctx, "live a", &state.live),
                storage_zeroed(ctx, "live b", slots * 4),
            ],
            live_off: storage_zeroed(ctx, "live offsets", (items + 1) * 4),
            gslot: storage_zeroed(ctx, "live slots", slots * 4),
            xin: storage_zeroed(ctx, "carrier input", slots * u64::from(sh.carrier_in()) * 4),
            seeds: storage(ctx, "seeds", &seeds_flat),
            counts: storage(ctx, "counts", &state.counts),
            history: storage_zeroed(ctx, "counts history", history_bytes(state.items)),
            args: indirect_args(ctx, "dispatch grids", size_of::<LiveDispatch>() as u64),
            stops: storage_zeroed(ctx, "stop states", stops_bytes(state.items)),
            done: storage(ctx, "done", &state.done),
            free: storage_zeroed(ctx, "free slots", slots * 4),
            pairs: storage_zeroed(ctx, "spawn pairs", slots * 8),
            pair_count: storage_zeroed(ctx, "spawn pair count", 4),
        }
    }
}

/// The bind groups of one batch, in the kernel table's binding order, one per ping-pong
/// direction (the live lists and the hidden states swap together); `gru` per layer.
pub(super) struct Groups {
    pub(super) live: wgpu::BindGroup,
    pub(super) neuron: [wgpu::BindGroup; 2],
    pub(super) gru: [Vec<wgpu::BindGroup>; 2],
    pub(super) heads: [wgpu::BindGroup; 2],
    pub(super) plan: [wgpu::BindGroup; 2],
    pub(super) copy: [wgpu::BindGroup; 2],
}

impl Groups {
    pub(super) fn bind(ctx: &GpuContext, k: &FlowKernels, b: &Buffers) -> Self {
        let live = k
            .live
            .bind(ctx, &[&b.params, &b.counts, &b.live_off, &b.args, &b.stops]);
        let neuron = [0, 1].map(|c| {
            let live = &b.live[c];
            k.neuron.bind(
                ctx,
                &[
                    &b.params,
                    &k.wts,
                    &b.pos,
                    live,
                    &b.live_off,
                    &b.gslot,
                    &b.xin,
                ],
            )
        });
        let gru = [0, 1].map(|c| {
            let (old, new) = (&b.hidden[c], &b.hidden[1 - c]);
            (k.layers.iter())
                .map(|lp| {
                    let bufs = [
                        &b.params,
                        lp,
                        &k.wts,
                        &k.gru_t,
                        &b.gslot,
                        &b.xin,
                        old,
                        new,
                        &b.live_off,
                    ];
                    k.gru.bind(ctx, &bufs)
                })
                .collect()
        });
        let heads = [0, 1].map(|c| {
            k.heads.bind(
                ctx,
                &[
                    &b.params,
                    &k.wts,
                    &b.gslot,
                    &b.hidden[1 - c],
                    &b.seeds,
                    &b.pos,
                    &b.prev,
                    &b.status,
                    &b.event,
                    &b.spawn,
                    &b.steps,
                    &b.id,
                    &b.hidden_at,
                    &b.live_off,
                ],
            )
        });
        let plan = [0, 1].map(|c| {
            k.plan.bind(
                ctx,
                &[
                    &b.params,
                    &b.live[c],
                    &b.live[1 - c],
                    &b.counts,
                    &b.status,
                    &b.event,
                    &b.spawn,
                    &b.pos,
                    &b.prev,
                    &b.id,
                    &b.parent,
                    &b.steps,
                    &b.done,
                    &b.free,
                    &b.pairs,
                    &b.pair_count,
                ],
            )
        });
        let copy = [0, 1].map(|c| {
            let bufs = [&b.pairs, &b.pair_count, &b.hidden[1 - c], &b.hidden_at];
            k.copy.bind(ctx, &bufs)
        });
        Self {
            live,
            neuron,
            gru,
            heads,
            plan,
            copy,
        }
    }
}
