// A workgroup-wide scan for kernels with one-dimensional workgroups of WG invocations (each
// kernel defines WG; WGSL module-scope declarations may come in any order).

var<workgroup> scan: array<u32, WG>;

// Inclusive scan of `v` over the workgroup (Hillis-Steele) and the chunk's total (uniform);
// every invocation must call it.
fn inclusive_scan(lid: u32, v: u32) -> vec2<u32> {
    scan[lid] = v;
    workgroupBarrier();
    for (var off = 1u; off < WG; off *= 2u) {
        var add = 0u;
        if (lid >= off) {
            add = scan[lid - off];
        }
        workgroupBarrier();
        scan[lid] += add;
        workgroupBarrier();
    }
    let mine = scan[lid];
    // The total drives loop bounds around barriers: load it uniformly (WGSL uniformity).
    let total = workgroupUniformLoad(&scan[WG - 1u]);
    workgroupBarrier();
    return vec2<u32>(mine, total);
}
