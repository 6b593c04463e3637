// Stage 4 of a flow step: copy every layer's new hidden state from the scratch rows `hs` into
// the flow's slot (`hidden`, [slot, L, HC]). One invocation per (live flow, element).

@group(0) @binding(0) var<uniform> params: FlowParams;
@group(0) @binding(1) var<storage, read> gslot: array<u32>;
@group(0) @binding(2) var<storage, read> hs: array<f32>;
@group(0) @binding(3) var<storage, read_write> hidden: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_invocation(gid, nwg, 64u);
    let g = t / HL;
    if (g >= params.live_total) {
        return;
    }
    let e = t % HL;
    let layer = e / HC;
    hidden[gslot[g] * HL + e] = hs[(layer * params.nmax + g) * HC + e % HC];
}
