// Stage 2 of a flow step, once per GRU layer: a tile of TILE flows times 64 hidden units per
// workgroup, blocked in both: each invocation owns 4 neighbouring units (one vec4 of each gate)
// times SUB flows. Weights are read transposed (`gru_t`: per input column, the r, z, n gates'
// weights of every unit, each gate padded to HCQ vec4s) so one aligned vec4 load brings 4 units
// and neighbouring invocations read neighbouring vec4s; the tile's inputs are staged in
// workgroup memory, KC columns at a time.
// Hidden states ping-pong: the old ones are read from `hidden`, the new one goes to the flow's
// slot in `hnext` (which the next layer reads as its input, and the next step as `hidden`).
// Twin of FlowNet::gru in lattice-core/src/flows/net.rs (sums over k ascending, bias last;
// gate order r, z, n as PyTorch).

struct LayerParams {
    layer: u32,
    input: u32,
    // Offsets of this layer's transposed W_ih and W_hh in `gru_t`, in vec4s.
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
@group(0) @binding(3) var<storage, read> gru_t: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gslot: array<u32>;
@group(0) @binding(5) var<storage, read> xin: array<f32>;
@group(0) @binding(6) var<storage, read> hidden: array<f32>;
@group(0) @binding(7) var<storage, read_write> hnext: array<f32>;
// Offsets of the items' live lists; the live total at [items] (flow_live).
@group(0) @binding(8) var<storage, read> live_off: array<u32>;

const KC: u32 = 64u;
// A workgroup's 256 invocations: 16 quads of hidden units (64 units) times TILE / SUB groups
// of flows. Each vec4 of weights an invocation loads serves its SUB flows; the groups' loads
// of the same weights meet in the L1 cache.
const QUADS: u32 = 16u;
const SUB: u32 = 2u;
// One row of a transposed matrix: three gates of HCQ vec4s.
const ROWQ: u32 = 3u * HCQ;
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

// Stages columns k0 .. k0 + KC of the tile's inputs (W_ih's, or the old hidden states for
// W_hh), flow by flow: neighbouring invocations read neighbouring columns.
fn stage(k0: u32, n_in: u32, of_hidden: bool, g0: u32, live: u32, lid: u32) {
    for (var i = lid; i < TILE * KC; i += 256u) {
        let g = g0 + i / KC;
        let k = k0 + i % KC;
        var v = 0.0;
        if (g < live && k < n_in) {
            if (of_hidden) {
                v = hidden_old(g, k);
            } else {
                v = layer_input(g, k);
            }
        }
        tile[i] = v;
    }
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // This invocation's units: the quad q (units 4q .. 4q + 3); its flows: SUB from s0.
    let q = wg.x * QUADS + lid % QUADS;
    let u0 = 4u * q;
    let g0 = (wg.y + wg.z * nwg.y) * TILE;
    let s0 = (lid / QUADS) * SUB;
    let live = live_off[params.items];
    var ir: array<vec4<f32>, SUB>;
    var iz: array<vec4<f32>, SUB>;
    var inn: array<vec4<f32>, SUB>;
    var hr: array<vec4<f32>, SUB>;
    var hz: array<vec4<f32>, SUB>;
    var hn: array<vec4<f32>, SUB>;

    for (var k0 = 0u; k0 < lp.input; k0 += KC) {
        stage(k0, lp.input, false, g0, live, lid);
        workgroupBarrier();
        if (q < HCQ) {
            let n = min(KC, lp.input - k0);
            for (var kk = 0u; kk < n; kk++) {
                let row = lp.wih + (k0 + kk) * ROWQ + q;
                let wr = gru_t[row];
                let wz = gru_t[row + HCQ];
                let wn = gru_t[row + 2u * HCQ];
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
        stage(k0, HC, true, g0, live, lid);
        workgroupBarrier();
        if (q < HCQ) {
            let n = min(KC, HC - k0);
            for (var kk = 0u; kk < n; kk++) {
                let row = lp.whh + (k0 + kk) * ROWQ + q;
                let wr = gru_t[row];
                let wz = gru_t[row + HCQ];
                let wn = gru_t[row + 2u * HCQ];
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
    for (var t = 0u; t < SUB; t++) {
        let g = g0 + s0 + t;
        if (g >= live) {
            break;
        }
        for (var c = 0u; c < 4u; c++) {
            let u = u0 + c;
            if (u >= HC) {
                break;
            }
            let r = sigmoid((ir[t][c] + wts[lp.bih + u]) + (hr[t][c] + wts[lp.bhh + u]));
            let z = sigmoid((iz[t][c] + wts[lp.bih + HC + u]) + (hz[t][c] + wts[lp.bhh + HC + u]));
            let n = tanh((inn[t][c] + wts[lp.bih + 2u * HC + u]) + r * (hn[t][c] + wts[lp.bhh + 2u * HC + u]));
            let h = clamp((1.0 - z) * n + z * hidden_old(g, u), -10.0, 10.0);
            hnext[gslot[g] * HL + lp.layer * HC + u] = h;
        }
    }
}
