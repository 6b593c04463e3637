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

// Per gate (r, z, n) and flow t of this invocation's SUB: the sums over k of W[gate, u] x_t[k]
// for its 4 units u, k ascending.
struct GateSums {
    r: array<vec4<f32>, SUB>,
    z: array<vec4<f32>, SUB>,
    n: array<vec4<f32>, SUB>,
}

// The tile's products with one transposed matrix at `w` (vec4s) over n_in input columns: the
// layer's inputs (W_ih) or the old hidden states (W_hh), staged KC columns at a time. Called
// from uniform control flow (it holds barriers).
fn gate_sums(w: u32, n_in: u32, of_hidden: bool, q: u32, s0: u32, g0: u32, live: u32, lid: u32) -> GateSums {
    var acc: GateSums;
    for (var k0 = 0u; k0 < n_in; k0 += KC) {
        stage(k0, n_in, of_hidden, g0, live, lid);
        workgroupBarrier();
        if (q < HCQ) {
            let n = min(KC, n_in - k0);
            for (var kk = 0u; kk < n; kk++) {
                let row = w + (k0 + kk) * ROWQ + q;
                let wr = gru_t[row];
                let wz = gru_t[row + HCQ];
                let wn = gru_t[row + 2u * HCQ];
                for (var t = 0u; t < SUB; t++) {
                    let x = tile[(s0 + t) * KC + kk];
                    acc.r[t] += wr * x;
                    acc.z[t] += wz * x;
                    acc.n[t] += wn * x;
                }
            }
        }
        workgroupBarrier();
    }
    return acc;
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
    let i = gate_sums(lp.wih, lp.input, false, q, s0, g0, live, lid);
    let h = gate_sums(lp.whh, HC, true, q, s0, g0, live, lid);
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
            let r = sigmoid((i.r[t][c] + wts[lp.bih + u]) + (h.r[t][c] + wts[lp.bhh + u]));
            let z = sigmoid((i.z[t][c] + wts[lp.bih + HC + u]) + (h.z[t][c] + wts[lp.bhh + HC + u]));
            let n = tanh((i.n[t][c] + wts[lp.bih + 2u * HC + u]) + r * (h.n[t][c] + wts[lp.bhh + 2u * HC + u]));
            let hu = clamp((1.0 - z) * n + z * hidden_old(g, u), -10.0, 10.0);
            hnext[gslot[g] * HL + lp.layer * HC + u] = hu;
        }
    }
}
