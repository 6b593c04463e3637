// Stage 1 of a flow step: find each live flow's slot and run the SimpleNeuron on its
// (position, energy); write the cleaned carrier input [neuron(NO), energy].
// Twin of FlowNet::neuron in lattice-core/src/flows/net.rs.

@group(0) @binding(0) var<uniform> params: FlowParams;
@group(0) @binding(1) var<storage, read> wts: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> live: array<u32>;
@group(0) @binding(4) var<storage, read> live_off: array<u32>;
@group(0) @binding(5) var<storage, read_write> gslot: array<u32>;
@group(0) @binding(6) var<storage, read_write> xin: array<f32>;

const LN_EPS: f32 = 1e-5;

// LayerNorm then GELU on a[0..NH].
fn norm_gelu(a: ptr<function, array<f32, NH>>, w: u32, b: u32) {
    var sum = 0.0;
    for (var k = 0u; k < NH; k++) {
        sum += (*a)[k];
    }
    let mean = sum / f32(NH);
    var v = 0.0;
    for (var k = 0u; k < NH; k++) {
        let d = (*a)[k] - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(v / f32(NH) + LN_EPS);
    for (var k = 0u; k < NH; k++) {
        (*a)[k] = gelu(((*a)[k] - mean) * inv * wts[w + k] + wts[b + k]);
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = flat_invocation(gid, nwg, 64u);
    if (g >= live_off[params.items]) {
        return;
    }
    // The item whose live list holds g: the last b with live_off[b] <= g.
    var lo = 0u;
    var hi = params.items;
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (live_off[mid] <= g) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let slot = lo * CAP + live[lo * CAP + (g - live_off[lo])];
    gslot[g] = slot;
    let p = pos[slot];

    var u: array<f32, 4>;
    for (var o = 0u; o < 3u; o++) {
        let row = W_NEURON_COORD_WEIGHT + o * 3u;
        u[o] = wts[row] * p.x + wts[row + 1u] * p.y + wts[row + 2u] * p.z + wts[W_NEURON_COORD_BIAS + o];
    }
    u[3] = p.w;
    var a: array<f32, NH>;
    for (var o = 0u; o < NH; o++) {
        let row = W_NEURON_FC1_WEIGHT + o * 4u;
        var acc = 0.0;
        for (var k = 0u; k < 4u; k++) {
            acc += wts[row + k] * u[k];
        }
        a[o] = acc + wts[W_NEURON_FC1_BIAS + o];
    }
    norm_gelu(&a, W_NEURON_NORM1_WEIGHT, W_NEURON_NORM1_BIAS);
    var c: array<f32, NH>;
    for (var o = 0u; o < NH; o++) {
        let row = W_NEURON_FC2_WEIGHT + o * NH;
        var acc = 0.0;
        for (var k = 0u; k < NH; k++) {
            acc += wts[row + k] * a[k];
        }
        c[o] = acc + wts[W_NEURON_FC2_BIAS + o];
    }
    norm_gelu(&c, W_NEURON_NORM2_WEIGHT, W_NEURON_NORM2_BIAS);
    let base = g * XIN;
    for (var o = 0u; o < NO; o++) {
        let row = W_NEURON_FC3_WEIGHT + o * NH;
        var acc = 0.0;
        for (var k = 0u; k < NH; k++) {
            acc += wts[row + k] * c[k];
        }
        xin[base + o] = sane(acc + wts[W_NEURON_FC3_BIAS + o]);
    }
    xin[base + NO] = sane(p.w);
}
