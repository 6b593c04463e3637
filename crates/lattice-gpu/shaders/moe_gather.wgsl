// MoE stage 2 (twin: lattice-core moe::gather::Gather and moe::cpu::gather_cell): one workgroup
// per tile of GCELLS consecutive rows of the chunk ((item, cell) pairs: a run of cells along x,
// which may cross into the next item). Each class's neighbors pass through workgroup memory CH
// per cell at a time, in three phases:
//   1. invocations take (cell, entry) pairs, PAIRS entries each: the neighbor's index, its
//      LOCAL score x·n_j or its FUNCTIONAL message m_j = message2(GELU(P_j + qx)) and attention
//      logit, the per-pair weights read from workgroup memory where they fit (STAGE, staged once
//      per workgroup) and shared by the PAIRS entries (register blocking);
//   2. per cell, one invocation takes the chunk's largest score and rescales the cell's running
//      softmax to it; then each entry's owner turns its score into the weight exp(s - max);
//   3. invocations take (cell, channel) pairs and fold the chunk into their running sums, in
//      neighbor order.
// The softmax is online per chunk (the CPU's is two-pass): the two agree to rounding.
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
// Phase 1: invocations per cell, and entries per cell and chunk.
const LANES: u32 = WG / GCELLS;
const CH: u32 = LANES * PAIRS;
const CHUNK: u32 = GCELLS * CH;
// Phase 3: (cell, channel) pairs per invocation, of the state (S) and of the message (FM).
const CS: u32 = (GCELLS * S + WG - 1u) / WG;
const CM: u32 = (GCELLS * FM + WG - 1u) / WG;
// Staged weights: message2 [FM, FH], attention1's message columns [FM, FM], attention2 [FM].
const STAGED_ATT1: u32 = FM * FH;
const STAGED_ATT2: u32 = STAGED_ATT1 + FM * FM;

var<workgroup> wf: array<f32, WSTAGE>;
// Per cell: qx and ax, the x columns of message1 and attention1 with their biases.
var<workgroup> qx: array<f32, GCELLS * FH>;
var<workgroup> ax: array<f32, GCELLS * FM>;
// The chunk, CH entries per cell: neighbor index (-1 where there is none), score then softmax
// weight, message.
var<workgroup> nb: array<i32, CHUNK>;
var<workgroup> score: array<f32, CHUNK>;
var<workgroup> msg: array<f32, CHUNK * FM>;
// Per cell: the class's range of neighbor entries; the chunks the longest range needs.
var<workgroup> span: array<vec2<u32>, GCELLS>;
var<workgroup> class_chunks: u32;
// Per cell, of the class being walked: softmax running maximum, whether it is set, and the
// factor rescaling the sums before this chunk. Per class (LOCAL, FUNCTIONAL) and cell: the
// softmax denominator; per class and cell: the neighbors seen.
var<workgroup> run_max: array<f32, GCELLS>;
var<workgroup> has_max: array<u32, GCELLS>;
var<workgroup> rescale: array<f32, GCELLS>;
var<workgroup> den: array<f32, 2u * GCELLS>;
var<workgroup> cnt: array<u32, 3u * GCELLS>;

// Phase 3 state of this invocation: the sums of its (cell, channel) pairs.
var<private> agg_l: array<f32, CS>;
var<private> sum_l: array<f32, CS>;
var<private> sum_f: array<f32, CS>;
var<private> abs_f: array<f32, CS>;
var<private> sum_d: array<f32, CS>;
var<private> agg_m: array<f32, CM>;
var<private> h: array<array<f32, FH>, PAIRS>;

fn w_message2(o: u32, k: u32) -> f32 {
    if (STAGE) {
        return wf[o * FH + k];
    }
    return wts[W_FUNCTIONAL_GNN_MESSAGE2_WEIGHT + o * FH + k];
}

fn w_attention1(o: u32, k: u32) -> f32 {
    if (STAGE) {
        return wf[STAGED_ATT1 + o * FM + k];
    }
    return wts[W_FUNCTIONAL_GNN_ATTENTION1_WEIGHT + o * (FM + S) + k];
}

fn w_attention2(o: u32) -> f32 {
    if (STAGE) {
        return wf[STAGED_ATT2 + o];
    }
    return wts[W_FUNCTIONAL_GNN_ATTENTION2_WEIGHT + o];
}

// The tile's cell t: its row in the chunk, its cell index and the first row of its item.
struct TileRow {
    r: u32,
    cell: u32,
    item_row: u32,
}

fn tile_row(tile: u32, t: u32) -> TileRow {
    let r = tile * GCELLS + t;
    let row = mp.first_row + r;
    let cell = row % mp.cells;
    return TileRow(r, cell, row - cell);
}

// Phase 1 for the FUNCTIONAL entries `slot + q` (q < PAIRS) of neighbor cells js of tile cell
// t: messages into msg, attention logits into score. The pairs share every weight load; each
// pair's sums run in the CPU's order.
fn functional_pairs(slot: u32, t: u32, item_row: u32, js: array<u32, PAIRS>) {
    for (var q = 0u; q < PAIRS; q++) {
        let p = (item_row + js[q]) * FH;
        for (var k = 0u; k < FH; k++) {
            h[q][k] = gelu(prep[p + k] + qx[t * FH + k]);
        }
    }
    for (var o = 0u; o < FM; o++) {
        var acc = array<f32, PAIRS>();
        for (var k = 0u; k < FH; k++) {
            let w = w_message2(o, k);
            for (var q = 0u; q < PAIRS; q++) {
                acc[q] += w * h[q][k];
            }
        }
        let bias = wts[W_FUNCTIONAL_GNN_MESSAGE2_BIAS + o];
        for (var q = 0u; q < PAIRS; q++) {
            msg[(slot + q) * FM + o] = acc[q] + bias;
        }
    }
    var logit = array<f32, PAIRS>();
    for (var o = 0u; o < FM; o++) {
        var acc = array<f32, PAIRS>();
        for (var k = 0u; k < FM; k++) {
            let w = w_attention1(o, k);
            for (var q = 0u; q < PAIRS; q++) {
                acc[q] += w * msg[(slot + q) * FM + k];
            }
        }
        let w2 = w_attention2(o);
        for (var q = 0u; q < PAIRS; q++) {
            logit[q] += w2 * tanh(acc[q] + ax[t * FM + o]);
        }
    }
    for (var q = 0u; q < PAIRS; q++) {
        score[slot + q] = logit[q] + wts[W_FUNCTIONAL_GNN_ATTENTION2_BIAS];
    }
}

// Phase 1: this invocation's entries of chunk `c` of class `cls`: PAIRS of tile cell
// t = lid / LANES. An entry past the cell's range or without a cell (bounded lattice) gets index
// -1; a FUNCTIONAL one is still computed, on a stand-in cell, so the pairs stay blocked, and
// never folded.
fn pairs(cls: u32, c: u32, tile: u32, lid: u32) {
    let t = lid / LANES;
    let slot = t * CH + (lid % LANES) * PAIRS;
    let first = span[t].x + c * CH + (lid % LANES) * PAIRS;
    if (first >= span[t].y) {
        for (var q = 0u; q < PAIRS; q++) {
            nb[slot + q] = -1;
        }
        return;
    }
    let tr = tile_row(tile, t);
    let here = cell_coord(tr.cell, params.dims);
    var js: array<u32, PAIRS>;
    for (var q = 0u; q < PAIRS; q++) {
        let k = first + q;
        var j = -1;
        if (k < span[t].y) {
            if (params.masked == 1u) {
                j = i32(col_idx[k]);
            } else {
                j = neighbor_at(here, stencil[k].d, params.dims, params.boundary);
            }
        }
        nb[slot + q] = j;
        js[q] = select(0u, u32(j), j >= 0);
        if (cls == 0u && j >= 0) {
            let nj = (tr.item_row + u32(j)) * S;
            let xj = (tr.item_row + tr.cell) * S;
            var s = 0.0;
            for (var ch = 0u; ch < S; ch++) {
                s += states[nj + ch] * states[xj + ch];
            }
            score[slot + q] = s;
        }
    }
    if (cls == 1u) {
        functional_pairs(slot, t, tr.item_row, js);
    }
}

// Phase 2a (invocation t): the chunk's largest score of tile cell t becomes its running
// maximum when larger; the sums so far (and the denominator) are rescaled to it. The first
// value only sets the maximum (the sums are still 0).
fn chunk_max(cls: u32, t: u32) {
    var m = 0.0;
    var found = false;
    for (var e = t * CH; e < (t + 1u) * CH; e++) {
        if (nb[e] >= 0 && (!found || score[e] > m)) {
            m = score[e];
            found = true;
        }
    }
    var f = 1.0;
    if (found && has_max[t] == 0u) {
        run_max[t] = m;
        has_max[t] = 1u;
    } else if (found && m > run_max[t]) {
        f = exp(run_max[t] - m);
        run_max[t] = m;
    }
    rescale[t] = f;
    den[cls * GCELLS + t] *= f;
}

// Phase 2b: this invocation's entries' scores become softmax weights.
fn weights(lid: u32) {
    let t = lid / LANES;
    let slot = t * CH + (lid % LANES) * PAIRS;
    for (var q = 0u; q < PAIRS; q++) {
        if (nb[slot + q] >= 0) {
            score[slot + q] = exp(score[slot + q] - run_max[t]);
        }
    }
}

// Phase 3 for invocation t: tile cell t's neighbors and softmax denominator.
fn count_chunk(cls: u32, t: u32) {
    for (var e = t * CH; e < (t + 1u) * CH; e++) {
        if (nb[e] >= 0) {
            cnt[cls * GCELLS + t] += 1u;
            if (cls < 2u) {
                den[cls * GCELLS + t] += score[e];
            }
        }
    }
}

// Phase 3: folds the chunk's entries of class `cls` into this invocation's (cell, channel)
// sums.
fn fold(cls: u32, tile: u32, lid: u32) {
    for (var q = 0u; q < CS; q++) {
        let i = lid + q * WG;
        if (i >= GCELLS * S) {
            break;
        }
        let t = i / S;
        let c = i % S;
        let item_row = tile_row(tile, t).item_row;
        if (cls == 0u) {
            agg_l[q] *= rescale[t];
        }
        for (var e = t * CH; e < (t + 1u) * CH; e++) {
            let j = nb[e];
            if (j < 0) {
                continue;
            }
            let v = states[(item_row + u32(j)) * S + c];
            if (cls == 0u) {
                agg_l[q] += score[e] * v;
                sum_l[q] += v;
            } else if (cls == 1u) {
                sum_f[q] += v;
                abs_f[q] += abs(v);
            } else {
                sum_d[q] += v;
            }
        }
    }
    if (cls != 1u) {
        return;
    }
    for (var q = 0u; q < CM; q++) {
        let i = lid + q * WG;
        if (i >= GCELLS * FM) {
            break;
        }
        let t = i / FM;
        let o = i % FM;
        agg_m[q] *= rescale[t];
        for (var e = t * CH; e < (t + 1u) * CH; e++) {
            if (nb[e] >= 0) {
                agg_m[q] += score[e] * msg[e * FM + o];
            }
        }
    }
}

// Stages the per-pair weights (STAGE), and computes every tile cell's qx and ax.
fn begin(tile: u32, lid: u32) {
    if (STAGE) {
        for (var i = lid; i < STAGED_ATT1; i += WG) {
            wf[i] = wts[W_FUNCTIONAL_GNN_MESSAGE2_WEIGHT + i];
        }
        for (var i = lid; i < FM * FM; i += WG) {
            wf[STAGED_ATT1 + i] = wts[W_FUNCTIONAL_GNN_ATTENTION1_WEIGHT + (i / FM) * (FM + S) + i % FM];
        }
        for (var i = lid; i < FM; i += WG) {
            wf[STAGED_ATT2 + i] = wts[W_FUNCTIONAL_GNN_ATTENTION2_WEIGHT + i];
        }
    }
    for (var i = lid; i < GCELLS * FH; i += WG) {
        let k = i % FH;
        let w = W_FUNCTIONAL_GNN_MESSAGE1_WEIGHT + k * 2u * S + S;
        qx[i] = x_dot(tile, i / FH, w) + wts[W_FUNCTIONAL_GNN_MESSAGE1_BIAS + k];
    }
    for (var i = lid; i < GCELLS * FM; i += WG) {
        let k = i % FM;
        let w = W_FUNCTIONAL_GNN_ATTENTION1_WEIGHT + k * (FM + S) + FM;
        ax[i] = x_dot(tile, i / FM, w) + wts[W_FUNCTIONAL_GNN_ATTENTION1_BIAS + k];
    }
}

// Σ_c wts[w + c] · x[c] for the state x of tile cell t.
fn x_dot(tile: u32, t: u32, w: u32) -> f32 {
    let tr = tile_row(tile, t);
    let x = (tr.item_row + tr.cell) * S;
    var acc = 0.0;
    for (var c = 0u; c < S; c++) {
        acc += wts[w + c] * states[x + c];
    }
    return acc;
}

// Invocation 0: every tile cell's range of class `cls` (empty past the chunk's rows), a fresh
// softmax, and the chunks the longest range needs.
fn class_spans(cls: u32, tile: u32, rows: u32) {
    var most = 0u;
    for (var t = 0u; t < GCELLS; t++) {
        var s = vec2<u32>(0u, 0u);
        if (t < rows) {
            if (params.masked == 1u) {
                let cell = tile_row(tile, t).cell;
                s = vec2<u32>(class_ptr[3u * cell + cls], class_ptr[3u * cell + cls + 1u]);
            } else {
                s = vec2<u32>(params.class_start[cls], params.class_start[cls + 1u]);
            }
        }
        span[t] = s;
        has_max[t] = 0u;
        most = max(most, s.y - s.x);
    }
    class_chunks = (most + CH - 1u) / CH;
}

fn write_records(tile: u32, rows: u32, lid: u32) {
    if (lid < rows) {
        let r = tile * GCELLS + lid;
        for (var cls = 0u; cls < 3u; cls++) {
            counts[r * 4u + cls] = cnt[cls * GCELLS + lid];
        }
        counts[r * 4u + 3u] = 0u;
    }
    // An empty class leaves its softmax sum at zero (the reference's zero vector); a softmax
    // over at least one neighbor has a positive denominator.
    for (var q = 0u; q < CS; q++) {
        let i = lid + q * WG;
        let t = i / S;
        if (i >= GCELLS * S || t >= rows) {
            break;
        }
        let at = (tile * GCELLS + t) * REC + i % S;
        let d = den[t];
        records[at] = select(agg_l[q], agg_l[q] / d, d > 0.0);
        records[at + S] = sum_l[q];
        records[at + 2u * S] = sum_f[q];
        records[at + 3u * S] = abs_f[q];
        records[at + 4u * S] = sum_d[q];
    }
    for (var q = 0u; q < CM; q++) {
        let i = lid + q * WG;
        let t = i / FM;
        if (i >= GCELLS * FM || t >= rows) {
            break;
        }
        let d = den[GCELLS + t];
        let at = (tile * GCELLS + t) * REC + 5u * S + i % FM;
        records[at] = select(agg_m[q], agg_m[q] / d, d > 0.0);
    }
}

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let tile = flat_workgroup(wid, groups);
    // A whole workgroup past the chunk (the 2D grid's overhang): uniform, so it may leave.
    if (tile * GCELLS >= mp.rows) {
        return;
    }
    let rows = min(GCELLS, mp.rows - tile * GCELLS);
    begin(tile, lid);
    for (var cls = 0u; cls < 3u; cls++) {
        if (lid == 0u) {
            class_spans(cls, tile, rows);
        }
        let chunks = workgroupUniformLoad(&class_chunks);
        for (var c = 0u; c < chunks; c++) {
            pairs(cls, c, tile, lid);
            workgroupBarrier();
            if (cls < 2u) {
                if (lid < GCELLS) {
                    chunk_max(cls, lid);
                }
                workgroupBarrier();
                weights(lid);
                workgroupBarrier();
            }
            if (lid < GCELLS) {
                count_chunk(cls, lid);
            }
            fold(cls, tile, lid);
            workgroupBarrier();
        }
    }
    write_records(tile, rows, lid);
}
