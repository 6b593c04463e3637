// Stage 2 of a flow step, once per GRU layer: a tile of TILE flows times 64 hidden units per
// workgroup. Weights are read transposed ([in, 3*HC], `gru_t`) so neighbouring invocations read
// neighbouring words; the tile's inputs are staged in workgroup memory, KC columns at a time.
// Hidden states ping-pong: the old ones are read from `hidden`, the new one goes to the flow's
// slot in `hnext` (which the next layer reads as its input, and the next step as `hidden`).
// Twin of FlowNet::gru in lattice-core/src/flows/net.rs (sums over k ascending, bias last;
// gate order r, z, n as PyTorch).

struct LayerParams {
    layer: u32,
    input: u32,
    // Offsets of this layer's transposed W_ih and W_hh in `gru_t`.
    wih: u32,
    whh: u32,
    // Offsets of its biases in `wts`.
    bih: u32,
    bhh: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> params: FlowParams;
@group(0) @binding(1) var<uniform> lp: LayerParams;
@group(0) @binding(2) var<storage, read> wts: array<f32>;
@group(0) @binding(3) var<storage, read> gru_t: array<f32>;
@group(0) @binding(4) var<storage, read> gslot: array<u32>;
@group(0) @binding(5) var<storage, read> xin: array<f32>;
@group(0) @binding(6) var<storage, read> hidden: array<f32>;
@group(0) @binding(7) var<storage, read_write> hnext: array<f32>;
// Offsets of the items' live lists; the live total at [items] (flow_live).
@group(0) @binding(8) var<storage, read> live_off: array<u32>;

const KC: u32 = 64u;
// Flows per invocation: a workgroup's 256 invocations are 64 hidden units times TILE / SUB
// groups of flows, so each weight a workgroup loads serves TILE flows (the groups' loads of the
// same weight meet in the L1 cache).
const SUB: u32 = 8u;
var<workgroup> tile: array<f32, TILE * KC>;

// Input column k of flow g: the carrier input (layer 0) or the previous layer's new state.
fn layer_input(g: u32, k: u32) -> f32 {
    if (lp.layer == 0u) {
        return xin[g * XIN + k];
    }
    return hnext[gslot[g] * HL + (lp.layer - 1u) * HC + k];
}

fn hidden_old(g: u32, k: u32) -> f32 {
    return sane(hidden[gslot[g] * HL + lp.layer * HC + k]);
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let u = wg.x * 64u + lid % 64u;
    let g0 = (wg.y + wg.z * nwg.y) * TILE;
    // This invocation's flows: SUB of the tile's, from s0.
    let s0 = (lid / 64u) * SUB;
    let live = live_off[params.items];
    var ir: array<f32, SUB>;
    var iz: array<f32, SUB>;
    var inn: array<f32, SUB>;
    var hr: array<f32, SUB>;
    var hz: array<f32, SUB>;
    var hn: array<f32, SUB>;
    let h3 = 3u * HC;

    for (var k0 = 0u; k0 < lp.input; k0 += KC) {
        // The tile's inputs, flow by flow; neighbouring invocations read neighbouring columns.
        for (var i = lid; i < TILE * KC; i += 256u) {
            let g = g0 + i / KC;
            let k = k0 + i % KC;
            var v = 0.0;
            if (g < live && k < lp.input) {
                v = layer_input(g, k);
            }
            tile[i] = v;
        }
        workgroupBarrier();
        if (u < HC) {
            let n = min(KC, lp.input - k0);
            for (var kk = 0u; kk < n; kk++) {
                let row = lp.wih + (k0 + kk) * h3 + u;
                let wr = gru_t[row];
                let wz = gru_t[row + HC];
                let wn = gru_t[row + 2u * HC];
                for (var t = 0u; t < SUB; t++) {
                    let x = tile[(s0 + t) * KC + kk];
                    ir[t] += wr * x;
                    iz[t] += wz * x;
                    inn[t] += wn * x;
                }
            }
        }
        workgroupBarrier();
    }
    for (var k0 = 0u; k0 < HC; k0 += KC) {
        for (var i = lid; i < TILE * KC; i += 256u) {
            let g = g0 + i / KC;
            let k = k0 + i % KC;
            var v = 0.0;
            if (g < live && k < HC) {
                v = hidden_old(g, k);
            }
            tile[i] = v;
        }
        workgroupBarrier();
        if (u < HC) {
            let n = min(KC, HC - k0);
            for (var kk = 0u; kk < n; kk++) {
                let row = lp.whh + (k0 + kk) * h3 + u;
                let wr = gru_t[row];
                let wz = gru_t[row + HC];
                let wn = gru_t[row + 2u * HC];
                for (var t = 0u; t < SUB; t++) {
                    let x = tile[(s0 + t) * KC + kk];
                    hr[t] += wr * x;
                    hz[t] += wz * x;
                    hn[t] += wn * x;
                }
            }
        }
        workgroupBarrier();
    }
    if (u >= HC) {
        return;
    }
    for (var t = 0u; t < SUB; t++) {
        let g = g0 + s0 + t;
        if (g >= live) {
            break;
        }
        let r = sigmoid((ir[t] + wts[lp.bih + u]) + (hr[t] + wts[lp.bhh + u]));
        let z = sigmoid((iz[t] + wts[lp.bih + HC + u]) + (hz[t] + wts[lp.bhh + HC + u]));
        let n = tanh((inn[t] + wts[lp.bih + 2u * HC + u]) + r * (hn[t] + wts[lp.bhh + 2u * HC + u]));
        let h = clamp((1.0 - z) * n + z * hidden_old(g, u), -10.0, 10.0);
        hnext[gslot[g] * HL + lp.layer * HC + u] = h;
    }
}
