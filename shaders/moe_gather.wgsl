// MoE stage 2 (twin: lattice-core moe::gather::Gather and moe::cpu::gather_cell): one workgroup
// per (item, cell) row of the chunk. The cell's neighbors, in class order, pass through
// workgroup memory CHUNK at a time in two phases:
//   1. each invocation takes one neighbor: its index, its LOCAL score x·n_j or its FUNCTIONAL
//      message m_j = message2(GELU(P_j + qx)) and attention logit;
//   2. one invocation runs the online softmax over the chunk's scores in neighbor order and
//      leaves, per entry, the factor that rescales the sums before it and the entry's weight;
//   3. each invocation takes channels (of the S-wide sums, and of the FM-wide message sum) and
//      folds the chunk into its running sums in neighbor order: per channel the same
//      operations in the same order as the CPU walk.
// Writes the record [agg_L, sum_L, sum_F, abs_F, sum_D (S each), M (FM)] and the cls counts.

@group(0) @binding(0) var<uniform> params: LatticeParams;
@group(0) @binding(1) var<uniform> mp: MoeParams;
@group(0) @binding(2) var<storage, read> stencil: array<StencilOffset>;
@group(0) @binding(3) var<storage, read> class_ptr: array<u32>;
@group(0) @binding(4) var<storage, read> col_idx: array<u32>;
@group(0) @binding(5) var<storage, read> wts: array<f32>;
@group(0) @binding(6) var<storage, read> states: array<f32>;
@group(0) @binding(7) var<storage, read> prep: array<f32>;
// [rows, REC]
@group(0) @binding(8) var<storage, read_write> records: array<f32>;
// [rows, 4]: local, functional, distant, unused
@group(0) @binding(9) var<storage, read_write> counts: array<u32>;

const WG: u32 = 64u;
// PAIRS entries per invocation in phase 1 (from the header: 2 where the chunk fits 16 KiB).
const CHUNK: u32 = PAIRS * WG;
// Channels per invocation in phase 2: of the state (S) and of the message (FM).
const CS: u32 = (S + WG - 1u) / WG;
const CM: u32 = (FM + WG - 1u) / WG;

var<workgroup> xw: array<f32, S>;
var<workgroup> qx: array<f32, FH>;
var<workgroup> ax: array<f32, FM>;
// The chunk: neighbor index (-1 where a bounded lattice has none), score or logit, message.
var<workgroup> nb: array<i32, CHUNK>;
var<workgroup> score: array<f32, CHUNK>;
var<workgroup> msg: array<f32, CHUNK * FM>;
// Per entry: (rescale of the running sums, weight of this entry) from phase 2.
var<workgroup> sw: array<vec2<f32>, CHUNK>;
// The final softmax denominators (LOCAL, FUNCTIONAL), from invocation 0.
var<workgroup> dens: vec2<f32>;
// A class's neighbor range in the CSR table, read by one invocation and shared uniformly.
var<workgroup> span_lo: u32;
var<workgroup> span_hi: u32;

// Phase 3 state of this invocation: its channels' sums. Invocation 0 alone also keeps the
// softmax running maxima and denominators and the counts.
var<private> agg_l: array<f32, CS>;
var<private> sum_l: array<f32, CS>;
var<private> sum_f: array<f32, CS>;
var<private> abs_f: array<f32, CS>;
var<private> sum_d: array<f32, CS>;
var<private> agg_m: array<f32, CM>;
// LOCAL, FUNCTIONAL: running softmax maximum and denominator (invocation 0).
var<private> run_max: array<f32, 2>;
var<private> run_den: array<f32, 2>;
// LOCAL, FUNCTIONAL, DISTANT neighbors seen (invocation 0).
var<private> cnt: array<u32, 3>;
var<private> h: array<array<f32, FH>, PAIRS>;

// Phase 1 for this invocation's FUNCTIONAL entries PAIRS lid + q (q < PAIRS) of neighbor
// cells js: messages into msg, attention logits into score. The pairs share every weight load
// (register blocking); each pair's sums run in the CPU's order.
fn functional_pairs(lid: u32, base: u32, js: array<u32, PAIRS>) {
    for (var q = 0u; q < PAIRS; q++) {
        let p = (base + js[q]) * FH;
        for (var k = 0u; k < FH; k++) {
            h[q][k] = gelu(prep[p + k] + qx[k]);
        }
    }
    for (var o = 0u; o < FM; o++) {
        let row = W_FUNCTIONAL_GNN_MESSAGE2_WEIGHT + o * FH;
        var acc = array<f32, PAIRS>();
        for (var k = 0u; k < FH; k++) {
            let w = wts[row + k];
            for (var q = 0u; q < PAIRS; q++) {
                acc[q] += w * h[q][k];
            }
        }
        let bias = wts[W_FUNCTIONAL_GNN_MESSAGE2_BIAS + o];
        for (var q = 0u; q < PAIRS; q++) {
            msg[(PAIRS * lid + q) * FM + o] = acc[q] + bias;
        }
    }
    var logit = array<f32, PAIRS>();
    for (var o = 0u; o < FM; o++) {
        let row = W_FUNCTIONAL_GNN_ATTENTION1_WEIGHT + o * (FM + S);
        var acc = array<f32, PAIRS>();
        for (var k = 0u; k < FM; k++) {
            let w = wts[row + k];
            for (var q = 0u; q < PAIRS; q++) {
                acc[q] += w * msg[(PAIRS * lid + q) * FM + k];
            }
        }
        let w2 = wts[W_FUNCTIONAL_GNN_ATTENTION2_WEIGHT + o];
        for (var q = 0u; q < PAIRS; q++) {
            logit[q] += w2 * tanh(acc[q] + ax[o]);
        }
    }
    for (var q = 0u; q < PAIRS; q++) {
        score[PAIRS * lid + q] = logit[q] + wts[W_FUNCTIONAL_GNN_ATTENTION2_BIAS];
    }
}

// Phase 1: this invocation's neighboring entries PAIRS lid + q (q < PAIRS) of the n-entry
// chunk at k0 of class `cls` (so at most one invocation has fewer than PAIRS). An entry past n
// or without a cell (bounded lattice) gets index -1; a FUNCTIONAL one is still computed, on a
// stand-in cell, so the pairs stay blocked, and never folded.
fn pairs(cls: u32, n: u32, k0: u32, here: vec3<i32>, item: u32, lid: u32) {
    var js: array<u32, PAIRS>;
    for (var q = 0u; q < PAIRS; q++) {
        let e = PAIRS * lid + q;
        var j = -1;
        if (e < n) {
            if (params.masked == 1u) {
                j = i32(col_idx[k0 + e]);
            } else {
                j = neighbor_at(here, stencil[k0 + e].d, params.dims, params.boundary);
            }
        }
        nb[e] = j;
        js[q] = select(0u, u32(j), j >= 0);
        if (cls == 0u && j >= 0) {
            let nj = item + u32(j) * S;
            var s = 0.0;
            for (var c = 0u; c < S; c++) {
                s += states[nj + c] * xw[c];
            }
            score[e] = s;
        }
    }
    if (cls == 1u) {
        functional_pairs(lid, item / S, js);
    }
}

// Online softmax step of class `cls` (LOCAL or FUNCTIONAL) for a new score; returns (scale of
// the sums so far, weight of the new value). The first value only sets the max (the sum is
// still 0).
fn softmax_step(cls: u32, s: f32) -> vec2<f32> {
    let first = cnt[cls] == 0u;
    var scale = 1.0;
    if (!first && s > run_max[cls]) {
        scale = exp(run_max[cls] - s);
        run_den[cls] *= scale;
    }
    if (first || s > run_max[cls]) {
        run_max[cls] = s;
    }
    let w = exp(s - run_max[cls]);
    run_den[cls] += w;
    return vec2<f32>(scale, w);
}

// Phase 2 (invocation 0): the softmax factors of the chunk's n entries, and the counts.
fn softmax_chunk(cls: u32, n: u32) {
    for (var e = 0u; e < n; e++) {
        if (nb[e] < 0) {
            continue;
        }
        if (cls < 2u) {
            sw[e] = softmax_step(cls, score[e]);
        }
        cnt[cls] += 1u;
    }
}

// Phase 3: folds the chunk's n entries of class `cls` into this invocation's channels.
fn fold(cls: u32, n: u32, item: u32, lid: u32) {
    for (var e = 0u; e < n; e++) {
        let j = nb[e];
        if (j < 0) {
            continue;
        }
        let nj = item + u32(j) * S;
        let f = sw[e];
        if (cls == 0u) {
            for (var q = 0u; q < CS; q++) {
                let c = lid + q * WG;
                if (c < S) {
                    let v = states[nj + c];
                    agg_l[q] *= f.x;
                    agg_l[q] += f.y * v;
                    sum_l[q] += v;
                }
            }
        } else if (cls == 1u) {
            for (var q = 0u; q < CM; q++) {
                let o = lid + q * WG;
                if (o < FM) {
                    agg_m[q] *= f.x;
                    agg_m[q] += f.y * msg[e * FM + o];
                }
            }
            for (var q = 0u; q < CS; q++) {
                let c = lid + q * WG;
                if (c < S) {
                    let v = states[nj + c];
                    sum_f[q] += v;
                    abs_f[q] += abs(v);
                }
            }
        } else {
            for (var q = 0u; q < CS; q++) {
                let c = lid + q * WG;
                if (c < S) {
                    sum_d[q] += states[nj + c];
                }
            }
        }
    }
}

// The cell's x, and qx, ax: the x columns of message1 and attention1 with their biases.
fn begin(at: u32, lid: u32) {
    for (var c = lid; c < S; c += WG) {
        xw[c] = states[at + c];
    }
    workgroupBarrier();
    for (var k = lid; k < FH; k += WG) {
        let w = W_FUNCTIONAL_GNN_MESSAGE1_WEIGHT + k * 2u * S + S;
        var acc = 0.0;
        for (var c = 0u; c < S; c++) {
            acc += wts[w + c] * xw[c];
        }
        qx[k] = acc + wts[W_FUNCTIONAL_GNN_MESSAGE1_BIAS + k];
    }
    for (var k = lid; k < FM; k += WG) {
        let w = W_FUNCTIONAL_GNN_ATTENTION1_WEIGHT + k * (FM + S) + FM;
        var acc = 0.0;
        for (var c = 0u; c < S; c++) {
            acc += wts[w + c] * xw[c];
        }
        ax[k] = acc + wts[W_FUNCTIONAL_GNN_ATTENTION1_BIAS + k];
    }
    workgroupBarrier();
}

fn write_record(r: u32, lid: u32) {
    if (lid == 0u) {
        dens = vec2<f32>(run_den[0], run_den[1]);
        counts[r * 4u] = cnt[0];
        counts[r * 4u + 1u] = cnt[1];
        counts[r * 4u + 2u] = cnt[2];
        counts[r * 4u + 3u] = 0u;
    }
    // The counts are zero exactly where a denominator is (a softmax over at least one
    // neighbor has a positive one).
    let d = workgroupUniformLoad(&dens);
    let at = r * REC;
    for (var q = 0u; q < CS; q++) {
        let c = lid + q * WG;
        if (c < S) {
            // An empty class leaves its softmax sum at zero (the reference's zero vector).
            records[at + c] = select(agg_l[q], agg_l[q] / d.x, d.x > 0.0);
            records[at + S + c] = sum_l[q];
            records[at + 2u * S + c] = sum_f[q];
            records[at + 3u * S + c] = abs_f[q];
            records[at + 4u * S + c] = sum_d[q];
        }
    }
    for (var q = 0u; q < CM; q++) {
        let o = lid + q * WG;
        if (o < FM) {
            records[at + 5u * S + o] = select(agg_m[q], agg_m[q] / d.y, d.y > 0.0);
        }
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let r = flat_workgroup(wid, groups);
    // A whole workgroup past the chunk (the 2D grid's overhang): uniform, so it may leave.
    if (r >= mp.rows) {
        return;
    }
    let row = mp.first_row + r;
    let cell = row % mp.cells;
    let item = (row / mp.cells) * mp.cells * S;
    let here = cell_coord(cell, params.dims);
    begin(item + cell * S, lid);
    for (var cls = 0u; cls < 3u; cls++) {
        var lo = params.class_start[cls];
        var hi = params.class_start[cls + 1u];
        if (params.masked == 1u) {
            if (lid == 0u) {
                span_lo = class_ptr[3u * cell + cls];
                span_hi = class_ptr[3u * cell + cls + 1u];
            }
            lo = workgroupUniformLoad(&span_lo);
            hi = workgroupUniformLoad(&span_hi);
        }
        for (var k0 = lo; k0 < hi; k0 += CHUNK) {
            let n = min(CHUNK, hi - k0);
            if (PAIRS * lid < n) {
                pairs(cls, n, k0, here, item, lid);
            }
            workgroupBarrier();
            if (lid == 0u) {
                softmax_chunk(cls, n);
            }
            workgroupBarrier();
            // Invocations past the channels own none (all of the second half at DEBUG).
            if (lid < max(S, FM)) {
                fold(cls, n, item, lid);
            }
            workgroupBarrier();
        }
    }
    write_record(r, lid);
}
