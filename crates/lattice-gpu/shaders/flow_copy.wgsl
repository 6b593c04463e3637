// Stage 5 of a flow step: each new child takes a copy of its parent's (already updated)
// hidden state, in the buffer the step wrote. One invocation per (child, element); `pairs`
// holds (child slot, parent slot).

@group(0) @binding(0) var<storage, read> pairs: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read> pair_count: array<u32>;
@group(0) @binding(2) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(3) var<storage, read_write> hidden_at: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat_invocation(gid, nwg, 64u);
    let p = t / HL;
    if (p >= pair_count[0]) {
        return;
    }
    let pair = pairs[p];
    let e = t % HL;
    hidden[pair.x * HL + e] = hidden[pair.y * HL + e];
    if (e == 0u) {
        hidden_at[pair.x] = hidden_at[pair.y];
    }
}
