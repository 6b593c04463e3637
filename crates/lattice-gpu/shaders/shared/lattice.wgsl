// Shared lattice addressing. Mirrors lattice-core (geometry.rs, neighbors/) and the Rust
// layout structs in lattice-gpu/src/layout.rs; sizes are asserted on the Rust side.

struct StencilOffset {
    d: vec3<i32>,
    dist: f32,
}

struct LatticeParams {
    dims: vec3<u32>,
    // 0 = bounded, 1 = periodic
    boundary: u32,
    cells: u32,
    items: u32,
    channels: u32,
    // 1 when the explicit (CSR) table is bound and must be used instead of the stencil
    masked: u32,
    // stencil offset index where LOCAL, FUNCTIONAL, DISTANT start, and the stencil length
    class_start: vec4<u32>,
}

fn cell_coord(i: u32, dims: vec3<u32>) -> vec3<i32> {
    let plane = dims.x * dims.y;
    return vec3<i32>(vec3<u32>(i % dims.x, (i % plane) / dims.x, i / plane));
}

fn cell_index(c: vec3<i32>, dims: vec3<u32>) -> u32 {
    let u = vec3<u32>(c);
    return u.x + u.y * dims.x + u.z * dims.x * dims.y;
}

// The cell at c + o, or -1 where a bounded lattice has none. Periodic axes wrap.
fn neighbor_at(c: vec3<i32>, o: vec3<i32>, dims: vec3<u32>, boundary: u32) -> i32 {
    let size = vec3<i32>(dims);
    var p = c + o;
    if (boundary == 1u) {
        p = ((p % size) + size) % size;
    } else if (any(p < vec3<i32>(0)) || any(p >= size)) {
        return -1;
    }
    return i32(cell_index(p, dims));
}

// Flattens a 2D dispatch (x folded at 65,535 workgroups) back into one invocation index.
fn flat_invocation(gid: vec3<u32>, num_groups: vec3<u32>, group_size: u32) -> u32 {
    return gid.x + gid.y * num_groups.x * group_size;
}

// The flat index of a workgroup in a 2D dispatch (x folded at 65,535 workgroups).
fn flat_workgroup(wid: vec3<u32>, num_groups: vec3<u32>) -> u32 {
    return wid.x + wid.y * num_groups.x;
}
