// Per-class mean of neighbor states for B lattices: CPU twin in
// lattice-core/src/kernels/gather.rs. One invocation per (item, cell, channel); neighbors are
// summed in the cache's walk order, then divided by the count.

@group(0) @binding(0) var<uniform> params: LatticeParams;
@group(0) @binding(1) var<storage, read> stencil: array<StencilOffset>;
@group(0) @binding(2) var<storage, read> class_ptr: array<u32>;
@group(0) @binding(3) var<storage, read> col_idx: array<u32>;
@group(0) @binding(4) var<storage, read> states: array<f32>;
// [items, cells, 3, channels]
@group(0) @binding(5) var<storage, read_write> means: array<f32>;

const GROUP: u32 = 64u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let t = flat_invocation(gid, groups, GROUP);
    let S = params.channels;
    let N = params.cells;
    if (t >= params.items * N * S) {
        return;
    }
    let s = t % S;
    let i = (t / S) % N;
    let b = t / (S * N);
    let item = b * N * S;
    let out = ((b * N + i) * 3u) * S + s;
    if (params.masked == 1u) {
        for (var c = 0u; c < 3u; c++) {
            let lo = class_ptr[3u * i + c];
            let hi = class_ptr[3u * i + c + 1u];
            var acc = 0.0;
            for (var k = lo; k < hi; k++) {
                acc += states[item + col_idx[k] * S + s];
            }
            means[out + c * S] = select(0.0, acc / f32(hi - lo), hi > lo);
        }
        return;
    }
    let here = cell_coord(i, params.dims);
    for (var c = 0u; c < 3u; c++) {
        var acc = 0.0;
        var count = 0u;
        for (var k = params.class_start[c]; k < params.class_start[c + 1u]; k++) {
            let j = neighbor_at(here, stencil[k].d, params.dims, params.boundary);
            if (j >= 0) {
                acc += states[item + u32(j) * S + s];
                count += 1u;
            }
        }
        means[out + c * S] = select(0.0, acc / f32(count), count > 0u);
    }
}
