// Layers over a tile of rows in workgroup memory, computed by the whole workgroup together. Twin
// of lattice-core/src/moe/math.rs (linear, layer_norm): same constants; every linear output is
// one invocation's sum in the CPU's order, and a LayerNorm's statistics are LN_LANES partial
// sums per row added in a fixed order, so a tile's results equal one row at a time.
//
// A kernel that includes this file declares the generated header's TILE (rows per workgroup),
// ROW (floats per row) and LN_LANES, and
//   var<storage, read> wts: array<f32>;   (all MoE tensors, ParamLayout order)
// Vector element k of the tile's row t lives at act[k * TILE + t]: the invocations of one output
// read neighbouring words, and an elementwise pass over n values of every row is one run
// act[at * TILE .. (at + n) * TILE]. Every helper ends with a barrier, so it is called from
// uniform control flow only (all loop bounds below are constants or uniform).

const WG: u32 = 64u;

var<workgroup> act: array<f32, ROW * TILE>;
// Per row: mean and 1/std of the layer being normalised.
var<workgroup> stats: array<f32, 2u * TILE>;

fn tile_get(k: u32, t: u32) -> f32 {
    return act[k * TILE + t];
}

fn tile_set(k: u32, t: u32, v: f32) {
    act[k * TILE + t] = v;
}

const LN_EPS: f32 = 1e-5;

// out[o] = sum_k W[o, k] in[k] + b[o] for every row, in = [a .. a+na, c .. c+nc], W row stride
// `stride` (columns past na + nc multiply zeros and are skipped); GELU on the result when
// `with_gelu`. Invocations take (output, row) pairs, rows fastest.
fn lin(w: u32, b: u32, stride: u32, a: u32, na: u32, c: u32, nc: u32, out: u32, n_out: u32, with_gelu: bool, lid: u32) {
    for (var i = lid; i < n_out * TILE; i += WG) {
        let o = i / TILE;
        let t = i % TILE;
        let row = w + o * stride;
        var acc = 0.0;
        for (var k = 0u; k < na; k++) {
            acc += wts[row + k] * tile_get(a + k, t);
        }
        for (var k = 0u; k < nc; k++) {
            acc += wts[row + na + k] * tile_get(c + k, t);
        }
        var v = acc + wts[b + o];
        if (with_gelu) {
            v = gelu(v);
        }
        tile_set(out + o, t, v);
    }
    workgroupBarrier();
}

// Per row, LN_LANES partial sums of a LayerNorm statistic.
var<workgroup> partial: array<f32, TILE * LN_LANES>;

// Per row, a LayerNorm statistic into stats[2t + which]: the mean of the n values (which = 0),
// or 1/std from the variance around the mean already in stats[2t] (which = 1). LN_LANES
// invocations per row sum every LN_LANES-th value, then one per row adds their sums in lane
// order (so a row's statistics never depend on the other rows of its tile).
fn row_stat(src: u32, n: u32, which: u32, lid: u32) {
    let t = lid / LN_LANES;
    if (t < TILE) {
        var acc = 0.0;
        for (var k = lid % LN_LANES; k < n; k += LN_LANES) {
            var v = tile_get(src + k, t);
            if (which == 1u) {
                v = (v - stats[2u * t]) * (v - stats[2u * t]);
            }
            acc += v;
        }
        partial[lid] = acc;
    }
    workgroupBarrier();
    if (lid < TILE) {
        var sum = 0.0;
        for (var l = 0u; l < LN_LANES; l++) {
            sum += partial[lid * LN_LANES + l];
        }
        let mean = sum / f32(n);
        stats[2u * lid + which] = select(mean, 1.0 / sqrt(mean + LN_EPS), which == 1u);
    }
    workgroupBarrier();
}

// dst[k] = LN(src)[k] * w[k] + b[k] (GELU after it when `with_gelu`); dst may be src. The
// statistics by row_stat, then all invocations normalise.
fn layer_norm(src: u32, dst: u32, n: u32, w: u32, b: u32, with_gelu: bool, lid: u32) {
    row_stat(src, n, 0u, lid);
    row_stat(src, n, 1u, lid);
    for (var i = lid; i < n * TILE; i += WG) {
        let k = i / TILE;
        let t = i % TILE;
        var y = (act[src * TILE + i] - stats[2u * t]) * stats[2u * t + 1u] * wts[w + k] + wts[b + k];
        if (with_gelu) {
            y = gelu(y);
        }
        act[dst * TILE + i] = y;
    }
    workgroupBarrier();
}

fn copy_range(src: u32, dst: u32, n: u32, lid: u32) {
    for (var i = lid; i < n * TILE; i += WG) {
        act[dst * TILE + i] = act[src * TILE + i];
    }
    workgroupBarrier();
}
