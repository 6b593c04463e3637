// MoE stage 1 (twin: MoeNet::prep): P_j = W_n x_j, the neighbor columns of
// functional.gnn.message1 without bias, once per (item, cell). The generated header defines
// S, FH and the W_* tensor offsets.

@group(0) @binding(0) var<uniform> mp: MoeParams;
@group(0) @binding(1) var<storage, read> wts: array<f32>;
@group(0) @binding(2) var<storage, read> states: array<f32>;
// [items, cells, FH]
@group(0) @binding(3) var<storage, read_write> prep: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = flat_invocation(gid, groups, 64u);
    if (t >= mp.items * mp.cells * FH) {
        return;
    }
    let k = t % FH;
    let row = t / FH;
    let w = W_FUNCTIONAL_GNN_MESSAGE1_WEIGHT + k * 2u * S;
    var acc = 0.0;
    for (var c = 0u; c < S; c++) {
        acc += wts[w + c] * states[row * S + c];
    }
    prep[t] = acc;
}
