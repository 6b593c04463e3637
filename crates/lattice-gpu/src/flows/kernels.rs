//! The compiled flow pipelines and the uploaded weights (the GRU's matrices transposed for
//! `flow_gru`), shared by every batch of a run.

use super::*;

/// Transposed GRU matrices (per W_ih and W_hh, layer by layer, one row per input column k:
/// the r, z and n gates' weights of every unit, each gate padded with zeros to
/// [`gate_stride`]) and each layer's offsets into them, in vec4s.
pub(super) fn transposed_gru(layout: &FlowLayout, w: &[f32]) -> (Vec<f32>, Vec<(u32, u32)>) {
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
    pub(super) layout: FlowLayout,
    pub(super) capacity: u32,
    pub(super) live: Kernel,
    pub(super) neuron: Kernel,
    pub(super) gru: Kernel,
    pub(super) heads: Kernel,
    pub(super) plan: Kernel,
    pub(super) copy: Kernel,
    pub(super) wts: wgpu::Buffer,
    pub(super) gru_t: wgpu::Buffer,
    pub(super) layers: Vec<wgpu::Buffer>,
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
