//! What is baked into each flow kernel: the generated header of sizes and tensor offsets, the
//! kernel list, and the composed sources.

use super::*;

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
pub(super) fn heads_floats_per_flow(sh: &FlowShape) -> u32 {
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
