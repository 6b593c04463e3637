//! GPU twin of `lattice_core::flows`: the six-stage flow step (live lists, neuron, GRU layers,
//! heads, plan, copy) on structure-of-arrays buffers that mirror [`FlowState`] slot for slot.
//! The hidden states ping-pong between two buffers, with a per-slot note of which one holds a
//! flow's latest state (flows that stopped moving keep theirs where they left it).
//!
//! Sizes and tensor offsets are baked into each pipeline through a generated header of WGSL
//! `const`s. A step needs nothing from the host: `flow_live` applies the stop rule (B8) to
//! each item, freezing those that stop, and turns the per-item counts left by the previous
//! step into list offsets and the other kernels' workgroup grids (indirect dispatch). A window
//! of steps (`FlowEngine::steps`) runs back to back; each step's counts are copied into a
//! history buffer that is read back once, with the items' stop states, at the window's end,
//! and `run_batch` confirms the device's stops against its own.

use bytemuck::{Pod, Zeroable};
use lattice_core::flows::convergence::StopReason;
use lattice_core::flows::params::DISP_HIDDEN;
use lattice_core::flows::run::{FlowEngine, WINDOW_STEPS};
use lattice_core::flows::state::{DoneFlow, done_capacity};
use lattice_core::flows::{FlowLayout, FlowShape, FlowState, ItemCounts, MoveRule};
use lattice_core::tensors::TensorSpec;

use crate::context::{GpuContext, GpuError};
use crate::header::Header;
use crate::kernel::{
    Kernel, Staging, allocating, grid, indirect_args, read_back, storage, storage_zeroed, uniform,
};
use crate::profile::{Profiler, kernel_pass};
use crate::shaders::{self, KernelSpec};

/// Flows per GRU workgroup (`TILE` in shaders/flow_gru.wgsl): 16 groups of 2, each group 16
/// invocations of 4 hidden units, so each weight a workgroup loads serves 32 flows.
pub const TILE: u32 = 32;

/// WGSL `FlowParams` (uniform, 64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct FlowParams {
    pub items: u32,
    /// Workgroups per grid dimension (the device's limit, where `flow_live` folds grids).
    pub max_groups: u32,
    pub step: u32,
    pub nmax: u32,
    pub scale: f32,
    pub noise: f32,
    pub spawn_tau: f32,
    pub spawn_max: u32,
    pub reflection: u32,
    /// Completion records per item.
    pub done_cap: u32,
    /// Which hidden-state buffer the step writes (0 or 1).
    pub hidden_next: u32,
    /// 1: `flow_live` applies the stop rule below (B8), else only "no live flow".
    pub stop_on: u32,
    pub min_steps: u32,
    pub patience: u32,
    /// The threshold, exactly `stop_m / 2^stop_shift`.
    pub stop_m: u32,
    pub stop_shift: u32,
}
const _: () = assert!(std::mem::size_of::<FlowParams>() == 64);
const _: () = assert!(std::mem::offset_of!(FlowParams, scale) == 16);
const _: () = assert!(std::mem::offset_of!(FlowParams, stop_on) == 44);

/// WGSL `StopState` of flow_live (40 bytes): an item's early-stop state on the device.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct StopState {
    /// 0 while running, else the [`StopReason::code`] it stopped with.
    pub reason: u32,
    /// The step it stopped before.
    pub step: u32,
    pub no_improvement: u32,
    pub checks: u32,
    /// Completed counts of the last six checks, a ring indexed by `checks`.
    pub history: [u32; 6],
}
const _: () = assert!(std::mem::size_of::<StopState>() == 40);

impl StopState {
    /// The host's form of the decision: the step and the reason, or `None` while running.
    pub fn decision(&self) -> Option<(u32, u32)> {
        (self.reason != 0).then_some((self.step, self.reason))
    }
}

/// WGSL `LayerParams` of flow_gru (uniform, 32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct LayerParams {
    pub layer: u32,
    pub input: u32,
    /// Offsets of the layer's transposed W_ih and W_hh in the GRU buffer, in vec4s.
    pub wih: u32,
    pub whh: u32,
    pub bih: u32,
    pub bhh: u32,
    pub pad: [u32; 2],
}
const _: () = assert!(std::mem::size_of::<LayerParams>() == 32);

/// The per-flow networks' tensors (SimpleNeuron, carrier): the only ones the GPU needs. They
/// are contiguous in the layout; returns their range in the flat weights.
pub fn gpu_range(layout: &FlowLayout) -> std::ops::Range<usize> {
    let mine = |t: &&TensorSpec| t.name.starts_with("neuron.") || t.name.starts_with("carrier.");
    let start = layout
        .tensors
        .iter()
        .filter(mine)
        .map(|t| t.range().start)
        .min();
    let end = layout
        .tensors
        .iter()
        .filter(mine)
        .map(|t| t.range().end)
        .max();
    start.expect("neuron tensors")..end.expect("carrier tensors")
}

/// Floats of workgroup memory one flow takes in `flow_heads`: its top hidden state and both
/// heads' hidden layers.
fn heads_floats_per_flow(sh: &FlowShape) -> u32 {
    sh.hidden + sh.hidden / 2 + DISP_HIDDEN
}

/// Live flows per `flow_heads` workgroup (`HEADS_TILE`): as many as fit WebGPU's default
/// 16 KiB of workgroup memory, at most 8 (8 debug, 4 experiment, 2 optimized).
pub fn heads_tile(sh: &FlowShape) -> u32 {
    (4096 / heads_floats_per_flow(sh)).clamp(1, 8)
}

/// The WGSL `const` header: sizes and every neuron and carrier tensor's offset (`W_<NAME>`)
/// into the uploaded [`gpu_range`] of the weights.
pub fn header(layout: &FlowLayout, capacity: u32) -> String {
    let base = gpu_range(layout).start as u32;
    let sh = layout.shape;
    let on_gpu = |t: &&TensorSpec| t.name.starts_with("neuron.") || t.name.starts_with("carrier.");
    Header::new("lattice-gpu/src/flows.rs")
        .u32s([
            ("W", sh.w),
            ("H", sh.h),
            ("D", sh.d),
            ("CAP", capacity),
            ("HC", sh.hidden),
            ("HCQ", gate_stride(&sh) / 4),
            ("L", sh.layers),
            ("NH", sh.neuron_hidden),
            ("NO", sh.neuron_out),
            ("XIN", sh.carrier_in()),
            ("HL", sh.hidden_len()),
            ("DH", DISP_HIDDEN),
            ("TILE", TILE),
            ("HEADS_TILE", heads_tile(&sh)),
            ("PLAN_WG", shaders::FLOW_PLAN.workgroup),
            ("LIVE_WG", shaders::FLOW_LIVE.workgroup),
        ])
        .tensor_offsets(layout.tensors.iter().filter(on_gpu), base)
        .finish()
}

/// The flow kernels, in the order [`FlowKernels`] holds them.
pub const KERNELS: [&KernelSpec; 6] = [
    &shaders::FLOW_LIVE,
    &shaders::FLOW_NEURON,
    &shaders::FLOW_GRU,
    &shaders::FLOW_HEADS,
    &shaders::FLOW_PLAN,
    &shaders::FLOW_COPY,
];

/// The workgroup grids of one step's kernels after `flow_live` (WGSL `args`, 48 bytes): its
/// CPU twin, [`LiveDispatch::plan`], computes the same grids from the same counts.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct LiveDispatch {
    pub neuron: [u32; 3],
    pub gru: [u32; 3],
    pub heads: [u32; 3],
    pub copy: [u32; 3],
}
const _: () = assert!(std::mem::size_of::<LiveDispatch>() == 48);

impl LiveDispatch {
    /// Byte offsets of the four grids in the `args` buffer.
    const NEURON: u64 = 0;
    const GRU: u64 = 12;
    const HEADS: u64 = 24;
    const COPY: u64 = 36;

    /// The twin of shaders/flow_live.wgsl: the live lists' offsets (the live total last) and
    /// the grids, for items with `moving` live flows each.
    pub fn plan(
        moving: &[u32],
        sh: &FlowShape,
        capacity: u32,
        spawn_max: u32,
        max_groups: u32,
    ) -> (Vec<u32>, Self) {
        let mut offsets = Vec::with_capacity(moving.len() + 1);
        let mut live = 0u32;
        for &m in moving {
            offsets.push(live);
            live += m;
        }
        offsets.push(live);
        let children: u64 = (moving.iter())
            .map(|&m| (u64::from(m) * u64::from(spawn_max)).min(u64::from(capacity)))
            .sum();
        // The 2D grid of `Kernel::dispatch`, but none at all for no work.
        let fold = |invocations: u64, per_group: u32| match invocations {
            0 => [0, 1],
            n => grid(n, per_group, max_groups).into(),
        };
        let live = u64::from(live);
        let [nx, ny] = fold(live, 64);
        let [gy, gz] = fold(live, TILE);
        let [hx, hy] = fold(live, heads_tile(sh));
        let [cx, cy] = fold(children * u64::from(sh.hidden_len()), 64);
        let grids = Self {
            neuron: [nx, ny, 1],
            gru: [sh.hidden.div_ceil(64), gy, gz],
            heads: [hx, hy, 1],
            copy: [cx, cy, 1],
        };
        (offsets, grids)
    }
}

/// The composed sources of the six flow kernels.
pub fn sources(layout: &FlowLayout, capacity: u32) -> Vec<(&'static str, String)> {
    let h = header(layout, capacity);
    KERNELS
        .iter()
        .map(|k| (k.name, shaders::compose(k, &h)))
        .collect()
}

/// Hidden units of one GRU gate in a row of the transposed matrices: Hc rounded up to whole
/// vec4s (`HCQ` vec4s), so `flow_gru` loads four units of a gate with one aligned vec4 load.
pub fn gate_stride(sh: &FlowShape) -> u32 {
    sh.hidden.next_multiple_of(4)
}

/// Transposed GRU matrices (per W_ih and W_hh, layer by layer, one row per input column k:
/// the r, z and n gates' weights of every unit, each gate padded with zeros to
/// [`gate_stride`]) and each layer's offsets into them, in vec4s.
fn transposed_gru(layout: &FlowLayout, w: &[f32]) -> (Vec<f32>, Vec<(u32, u32)>) {
    let sh = layout.shape;
    let (hc, stride) = (sh.hidden as usize, gate_stride(&sh) as usize);
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for l in 0..sh.layers {
        let mut at = [0u32; 2];
        for (k, (name, cols)) in [
            (
                format!("carrier.gru.weight_ih_l{l}"),
                sh.layer_in(l) as usize,
            ),
            (format!("carrier.gru.weight_hh_l{l}"), hc),
        ]
        .into_iter()
        .enumerate()
        {
            at[k] = (out.len() / 4) as u32;
            let m = &w[layout.get(&name).expect("GRU tensor").range()];
            let base = out.len();
            out.resize(base + 3 * stride * cols, 0.0);
            // PyTorch's rows are gate-major: row gate·Hc + u.
            for gate in 0..3 {
                for u in 0..hc {
                    let r = gate * hc + u;
                    for c in 0..cols {
                        out[base + c * 3 * stride + gate * stride + u] = m[r * cols + c];
                    }
                }
            }
        }
        offsets.push((at[0], at[1]));
    }
    (out, offsets)
}

/// Compiled flow pipelines and uploaded weights for one network and capacity; shared by every
/// batch of a run.
pub struct FlowKernels {
    layout: FlowLayout,
    capacity: u32,
    live: Kernel,
    neuron: Kernel,
    gru: Kernel,
    heads: Kernel,
    plan: Kernel,
    copy: Kernel,
    wts: wgpu::Buffer,
    gru_t: wgpu::Buffer,
    layers: Vec<wgpu::Buffer>,
}

impl FlowKernels {
    pub fn new(
        ctx: &GpuContext,
        layout: &FlowLayout,
        weights: &[f32],
        capacity: u32,
    ) -> Result<Self, GpuError> {
        assert_eq!(
            weights.len(),
            layout.total() as usize,
            "weights match the layout"
        );
        let heads_bytes = 4 * heads_tile(&layout.shape) * heads_floats_per_flow(&layout.shape);
        let limit = ctx.limits.max_compute_workgroup_storage_size;
        if heads_bytes > limit {
            return Err(GpuError::WorkgroupMemory {
                kernel: shaders::FLOW_HEADS.name,
                need: u64::from(heads_bytes),
                limit: u64::from(limit),
                fix: "use a smaller carrier.hidden or --backend cpu",
            });
        }
        let h = header(layout, capacity);
        let [live, neuron, gru, heads, plan, copy] = KERNELS.map(|k| Kernel::new(ctx, k, &h));
        // Only the per-flow networks go to the GPU; the mapper and collector run on the host
        // (the optimized preset's mapper alone is 2.5 GB).
        let range = gpu_range(layout);
        let base = range.start as u32;
        let (gt, offsets) = transposed_gru(layout, weights);
        let fix = "use a smaller carrier (carrier.hidden, carrier.layers) or --backend cpu";
        ctx.check_binding("the transposed GRU weights", gt.len() as u64 * 4, fix)?;
        let sh = layout.shape;
        let layers = offsets
            .iter()
            .enumerate()
            .map(|(l, &(wih, whh))| {
                let lp = LayerParams {
                    layer: l as u32,
                    input: sh.layer_in(l as u32),
                    wih,
                    whh,
                    bih: layout.offset(&format!("carrier.gru.bias_ih_l{l}")) - base,
                    bhh: layout.offset(&format!("carrier.gru.bias_hh_l{l}")) - base,
                    pad: [0; 2],
                };
                uniform(ctx, "gru layer", &lp)
            })
            .collect();
        let w = &weights[range];
        ctx.check_binding("the flow weights", (w.len() as u64) * 4, fix)?;
        Ok(Self {
            layout: layout.clone(),
            capacity,
            live,
            neuron,
            gru,
            heads,
            plan,
            copy,
            wts: storage(ctx, "flow weights", w),
            gru_t: storage(ctx, "gru transposed", &gt),
            layers,
        })
    }

    /// Bytes of the largest per-batch binding for one item over `steps` steps: the hidden
    /// states (each of the two ping-pong buffers) or the completion records.
    pub fn bytes_per_item(layout: &FlowLayout, capacity: u32, steps: u32) -> u64 {
        let hidden = u64::from(capacity) * u64::from(layout.shape.hidden_len()) * 4;
        let records = u64::from(done_capacity(capacity, steps)) * size_of::<DoneFlow>() as u64;
        hidden.max(records)
    }

    /// Device memory one item's batch buffers take in all over `steps` steps: per slot the
    /// two ping-pong hidden states, the carrier input, 84 bytes of position, status, lists,
    /// spawn pairs and the hidden state's buffer index; the completion records; its counts
    /// (on the device, and a window's worth in the history and in the staging buffer it is
    /// read back through), its stop state (on the device and staged), noise seed and list
    /// offset. A batch adds [`Self::BATCH_BYTES`].
    pub fn device_bytes_per_item(layout: &FlowLayout, capacity: u32, steps: u32) -> u64 {
        let sh = layout.shape;
        let per_slot = u64::from(2 * sh.hidden_len() + sh.carrier_in()) * 4 + 84;
        let records = u64::from(done_capacity(capacity, steps)) * size_of::<DoneFlow>() as u64;
        let counts = (1 + 2 * WINDOW_STEPS as usize) * size_of::<ItemCounts>();
        let stops = 2 * size_of::<StopState>();
        let per_item = (counts + stops + 8 + 4) as u64;
        u64::from(capacity) * per_slot + records + per_item
    }

    /// Device memory a batch takes besides its items': one more list offset, the pair counter,
    /// the indirect dispatch grids and the step's uniform parameters.
    pub const BATCH_BYTES: u64 = 8 + (size_of::<LiveDispatch>() + size_of::<FlowParams>()) as u64;
}

struct Buffers {
    params: wgpu::Buffer,
    pos: wgpu::Buffer,
    prev: wgpu::Buffer,
    /// Ping-pong hidden states, and per slot the index of the one holding its latest state.
    hidden: [wgpu::Buffer; 2],
    hidden_at: wgpu::Buffer,
    id: wgpu::Buffer,
    parent: wgpu::Buffer,
    steps: wgpu::Buffer,
    status: wgpu::Buffer,
    event: wgpu::Buffer,
    spawn: wgpu::Buffer,
    live: [wgpu::Buffer; 2],
    live_off: wgpu::Buffer,
    gslot: wgpu::Buffer,
    xin: wgpu::Buffer,
    seeds: wgpu::Buffer,
    counts: wgpu::Buffer,
    /// Every step's counts in the current window, step after step.
    history: wgpu::Buffer,
    /// The step's workgroup grids ([`LiveDispatch`]), written by `flow_live`.
    args: wgpu::Buffer,
    /// Each item's [`StopState`].
    stops: wgpu::Buffer,
    done: wgpu::Buffer,
    free: wgpu::Buffer,
    pairs: wgpu::Buffer,
    pair_count: wgpu::Buffer,
}

/// Fails with a clear error if one batch's largest buffers or its item count exceed the
/// device's limits.
fn check_fits(ctx: &GpuContext, k: &FlowKernels, state: &FlowState) -> Result<(), GpuError> {
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
fn history_bytes(items: u32) -> u64 {
    u64::from(WINDOW_STEPS) * u64::from(items) * size_of::<ItemCounts>() as u64
}

fn stops_bytes(items: u32) -> u64 {
    u64::from(items) * size_of::<StopState>() as u64
}

impl Buffers {
    /// Uploads a placed batch; scratch buffers start zeroed.
    fn upload(ctx: &GpuContext, k: &FlowKernels, state: &FlowState, seeds: &[[u32; 2]]) -> Self {
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
struct Groups {
    live: wgpu::BindGroup,
    neuron: [wgpu::BindGroup; 2],
    gru: [Vec<wgpu::BindGroup>; 2],
    heads: [wgpu::BindGroup; 2],
    plan: [wgpu::BindGroup; 2],
    copy: [wgpu::BindGroup; 2],
}

impl Groups {
    fn bind(ctx: &GpuContext, k: &FlowKernels, b: &Buffers) -> Self {
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

/// A batch of flow items on the GPU.
pub struct GpuFlows<'a> {
    ctx: &'a GpuContext,
    k: &'a FlowKernels,
    items: u32,
    b: Buffers,
    g: Groups,
    /// Which `live` buffer holds the current list.
    cur: usize,
    /// The counts after the last window (with frozen items' `moving` set to 0).
    counts: Vec<ItemCounts>,
    /// The counts history and the stop states, copied once at the end of every window.
    history_staging: Staging,
    /// The stop states read with the last window.
    stops: Vec<StopState>,
    done_cap: u32,
    /// Workgroups per grid dimension before `flow_live` folds a grid into the next one.
    max_groups: u32,
    /// With [`Self::enable_profiling`]: per-kernel GPU time of every step.
    profiler: Option<Profiler>,
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

    fn build(
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

    fn slots(&self) -> usize {
        (self.items * self.k.capacity) as usize
    }

    /// The uniform parameters of one step.
    fn params(&self, rule: &MoveRule, hidden_next: u32) -> FlowParams {
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
    fn run_window(&mut self, rules: &[MoveRule]) -> Result<Vec<Vec<ItemCounts>>, GpuError> {
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
    fn record_step(&mut self, enc: &mut wgpu::CommandEncoder) {
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
    fn read_hidden(&self) -> Result<Vec<f32>, GpuError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use lattice_core::flows::FlowShape;

    fn shape() -> FlowShape {
        let cfg: lattice_core::config::RunConfig = lattice_core::config::parse(
            "(simulation: Flows((dims: (6, 5, 8), carrier: (hidden: 96, layers: 2))))",
            "t.ron".as_ref(),
        )
        .unwrap();
        let lattice_core::config::Simulation::Flows(f) = &cfg.simulation else {
            unreachable!()
        };
        FlowShape::from_config(f)
    }

    #[test]
    fn live_dispatch_offsets_bound_children_and_fold_grids() {
        let sh = shape();
        // 3 items: 10, 0 and 7 moving flows; capacity 12, up to 2 children each.
        let (offsets, grids) = LiveDispatch::plan(&[10, 0, 7], &sh, 12, 2, 2);
        assert_eq!(offsets, [0, 10, 10, 17]);
        // 17 live: 1 neuron group; 1 GRU tile of 32 over 2 unit groups; heads tiles of
        // heads_tile(&sh) flows; children min(20, 12) + 0 + min(14, 12) = 24 copies of HL.
        assert_eq!(grids.neuron, [1, 1, 1]);
        assert_eq!(grids.gru, [2, 1, 1]);
        let heads = 17u32.div_ceil(heads_tile(&sh));
        assert_eq!(grids.heads, [heads.min(2), heads.div_ceil(heads.min(2)), 1]);
        let copies = (24 * sh.hidden_len()).div_ceil(64);
        assert_eq!(grids.copy, [2, copies.div_ceil(2), 1]);
        // Nothing live: every grid empty but the GRU's unit groups.
        let (offsets, grids) = LiveDispatch::plan(&[0, 0], &sh, 12, 2, 2);
        assert_eq!(offsets, [0, 0, 0]);
        assert_eq!(grids.neuron, [0, 1, 1]);
        assert_eq!(grids.gru, [2, 0, 1]);
        assert_eq!(grids.copy, [0, 1, 1]);
    }
}
