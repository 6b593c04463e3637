// Layers on a per-invocation scratch vector. Twin of lattice-core/src/moe/math.rs (linear,
// layer_norm): same constants, same order of operations. Kernels that include this file declare
//   var<storage, read_write> scratch: array<f32>;  (element k of lane l at k * stride + l)
//   var<storage, read> wts: array<f32>;            (all MoE tensors, ParamLayout order)
// and set `lane` and `scratch_stride` before use.
//
// The scratch lives in a storage buffer, interleaved by lane so neighbouring invocations touch
// neighbouring words, not in a private array: GPU compilers spill a private array of ~10³
// floats with dynamic indexing to memory anyway, and it made lavapipe's LLVM coroutine pass
// run for minutes.

var<private> lane: u32;
var<private> scratch_stride: u32;

fn sg(k: u32) -> f32 {
    return scratch[k * scratch_stride + lane];
}

fn ss(k: u32, v: f32) {
    scratch[k * scratch_stride + lane] = v;
}

const LN_EPS: f32 = 1e-5;

// scratch[out + o] = sum_k W[o, k] * in[k] + b[o], in = [scratch[a .. a+na], scratch[c .. c+nc]],
// W row stride `stride` (columns past na + nc multiply zeros and are skipped).
fn lin(w: u32, b: u32, stride: u32, a: u32, na: u32, c: u32, nc: u32, out: u32, n_out: u32) {
    for (var o = 0u; o < n_out; o++) {
        let row = w + o * stride;
        var acc = 0.0;
        for (var k = 0u; k < na; k++) {
            acc += wts[row + k] * sg(a + k);
        }
        for (var k = 0u; k < nc; k++) {
            acc += wts[row + na + k] * sg(c + k);
        }
        ss(out + o, acc + wts[b + o]);
    }
}

fn layer_norm(at: u32, n: u32, w: u32, b: u32) {
    var sum = 0.0;
    for (var k = 0u; k < n; k++) {
        sum += sg(at + k);
    }
    let mean = sum / f32(n);
    var v = 0.0;
    for (var k = 0u; k < n; k++) {
        let d = sg(at + k) - mean;
        v += d * d;
    }
    let inv = 1.0 / sqrt(v / f32(n) + LN_EPS);
    for (var k = 0u; k < n; k++) {
        ss(at + k, (sg(at + k) - mean) * inv * wts[w + k] + wts[b + k]);
    }
}

fn gelu_range(at: u32, n: u32) {
    for (var k = 0u; k < n; k++) {
        ss(at + k, gelu(sg(at + k)));
    }
}

fn copy_range(src: u32, dst: u32, n: u32) {
    for (var k = 0u; k < n; k++) {
        ss(dst + k, sg(src + k));
    }
}
