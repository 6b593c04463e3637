// MoE stage 2 (twin: lattice-core moe::net::Gather and moe::cpu::gather_cell): one walk over a
// cell's neighbors in cls order. Writes the record [agg_L, sum_L, sum_F, abs_F, sum_D (S
// each), M (FM)] and the cls counts. One invocation per (item, cell) row of the chunk.

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

var<private> x: array<f32, S>;
var<private> rec: array<f32, REC>;
var<private> qx: array<f32, FH>;
var<private> ax: array<f32, FM>;
var<private> h: array<f32, FH>;
var<private> m: array<f32, FM>;
var<private> a: array<f32, FM>;
var<private> local_max: f32;
var<private> local_den: f32;
var<private> func_max: f32;
var<private> func_den: f32;
var<private> cnt: vec3<u32>;

fn visit(item: u32, j: u32, cls: u32) {
    let nj = item + j * S;
    if (cls == 0u) {
        var score = 0.0;
        for (var c = 0u; c < S; c++) {
            score += states[nj + c] * x[c];
        }
        // Online softmax; the first neighbor only sets the running max (the sum is still 0).
        if (cnt.x > 0u && score > local_max) {
            let scale = exp(local_max - score);
            for (var c = 0u; c < S; c++) {
                rec[c] *= scale;
            }
            local_den *= scale;
        }
        if (cnt.x == 0u || score > local_max) {
            local_max = score;
        }
        let w = exp(score - local_max);
        for (var c = 0u; c < S; c++) {
            let v = states[nj + c];
            rec[c] += w * v;
            rec[S + c] += v;
        }
        local_den += w;
        cnt.x += 1u;
    } else if (cls == 1u) {
        let p = (item / S + j) * FH;
        // m = message2(GELU(P_j + qx)).
        for (var k = 0u; k < FH; k++) {
            h[k] = gelu(prep[p + k] + qx[k]);
        }
        for (var o = 0u; o < FM; o++) {
            let row = W_FUNCTIONAL_GNN_MESSAGE2_WEIGHT + o * FH;
            var acc = 0.0;
            for (var k = 0u; k < FH; k++) {
                acc += wts[row + k] * h[k];
            }
            m[o] = acc + wts[W_FUNCTIONAL_GNN_MESSAGE2_BIAS + o];
        }
        for (var o = 0u; o < FM; o++) {
            let row = W_FUNCTIONAL_GNN_ATTENTION1_WEIGHT + o * (FM + S);
            var acc = 0.0;
            for (var k = 0u; k < FM; k++) {
                acc += wts[row + k] * m[k];
            }
            a[o] = tanh(acc + ax[o]);
        }
        var e = 0.0;
        for (var k = 0u; k < FM; k++) {
            e += wts[W_FUNCTIONAL_GNN_ATTENTION2_WEIGHT + k] * a[k];
        }
        e = e + wts[W_FUNCTIONAL_GNN_ATTENTION2_BIAS];
        if (cnt.y > 0u && e > func_max) {
            let scale = exp(func_max - e);
            for (var k = 0u; k < FM; k++) {
                rec[5u * S + k] *= scale;
            }
            func_den *= scale;
        }
        if (cnt.y == 0u || e > func_max) {
            func_max = e;
        }
        let w = exp(e - func_max);
        for (var k = 0u; k < FM; k++) {
            rec[5u * S + k] += w * m[k];
        }
        func_den += w;
        for (var c = 0u; c < S; c++) {
            let v = states[nj + c];
            rec[2u * S + c] += v;
            rec[3u * S + c] += abs(v);
        }
        cnt.y += 1u;
    } else {
        for (var c = 0u; c < S; c++) {
            rec[4u * S + c] += states[nj + c];
        }
        cnt.z += 1u;
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = flat_invocation(gid, groups, 64u);
    if (r >= mp.rows) {
        return;
    }
    let row = mp.first_row + r;
    let i = row % mp.cells;
    let item = (row / mp.cells) * mp.cells * S;
    for (var c = 0u; c < REC; c++) {
        rec[c] = 0.0;
    }
    cnt = vec3<u32>(0u);
    for (var c = 0u; c < S; c++) {
        x[c] = states[item + i * S + c];
    }
    for (var k = 0u; k < FH; k++) {
        let w = W_FUNCTIONAL_GNN_MESSAGE1_WEIGHT + k * 2u * S + S;
        var acc = 0.0;
        for (var c = 0u; c < S; c++) {
            acc += wts[w + c] * x[c];
        }
        qx[k] = acc + wts[W_FUNCTIONAL_GNN_MESSAGE1_BIAS + k];
    }
    for (var k = 0u; k < FM; k++) {
        let w = W_FUNCTIONAL_GNN_ATTENTION1_WEIGHT + k * (FM + S) + FM;
        var acc = 0.0;
        for (var c = 0u; c < S; c++) {
            acc += wts[w + c] * x[c];
        }
        ax[k] = acc + wts[W_FUNCTIONAL_GNN_ATTENTION1_BIAS + k];
    }
    if (params.masked == 1u) {
        for (var cls = 0u; cls < 3u; cls++) {
            for (var k = class_ptr[3u * i + cls]; k < class_ptr[3u * i + cls + 1u]; k++) {
                visit(item, col_idx[k], cls);
            }
        }
    } else {
        let here = cell_coord(i, params.dims);
        for (var cls = 0u; cls < 3u; cls++) {
            for (var k = params.class_start[cls]; k < params.class_start[cls + 1u]; k++) {
                let j = neighbor_at(here, stencil[k].d, params.dims, params.boundary);
                if (j >= 0) {
                    visit(item, u32(j), cls);
                }
            }
        }
    }
    if (cnt.x > 0u) {
        for (var c = 0u; c < S; c++) {
            rec[c] /= local_den;
        }
    }
    if (cnt.y > 0u) {
        for (var k = 0u; k < FM; k++) {
            rec[5u * S + k] /= func_den;
        }
    }
    for (var c = 0u; c < REC; c++) {
        records[r * REC + c] = rec[c];
    }
    counts[r * 4u] = cnt.x;
    counts[r * 4u + 1u] = cnt.y;
    counts[r * 4u + 2u] = cnt.z;
    counts[r * 4u + 3u] = 0u;
}
