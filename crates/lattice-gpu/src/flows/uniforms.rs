//! The structs the flow kernels share with the host (uniforms, stop states, dispatch grids),
//! each `#[repr(C)]` + `Pod` with its size asserted against the WGSL.

use super::*;

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
    pub(super) const NEURON: u64 = 0;
    pub(super) const GRU: u64 = 12;
    pub(super) const HEADS: u64 = 24;
    pub(super) const COPY: u64 = 36;

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
