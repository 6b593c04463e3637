// Stage 4 of a flow step, one workgroup per item (twin of `plan` in
// lattice-core/src/flows/cpu.rs):
// 1. survivors keep their slots and are listed in list order; completed flows are appended to
//    the item's completion records and free their slots;
// 2. the lowest free slots are listed, as many as the children requested;
// 3. children, in the order of their parents in the list, take those slots in turn; the rest
//    are dropped and counted once.
// Positions in every list come from scans, not racing atomics, so the same flows get the same
// slots and ids on every run. Children are listed in `pairs` (an atomic append) for flow_copy,
// which copies their parents' hidden states.

@group(0) @binding(0) var<uniform> params: FlowParams;
@group(0) @binding(1) var<storage, read> live_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> live_out: array<u32>;
@group(0) @binding(3) var<storage, read_write> counts: array<ItemCounts>;
@group(0) @binding(4) var<storage, read_write> status: array<u32>;
@group(0) @binding(5) var<storage, read_write> event: array<u32>;
@group(0) @binding(6) var<storage, read_write> spawn: array<u32>;
@group(0) @binding(7) var<storage, read_write> pos: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> prev: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> ids: array<u32>;
@group(0) @binding(10) var<storage, read_write> parent: array<i32>;
@group(0) @binding(11) var<storage, read_write> steps: array<u32>;
@group(0) @binding(12) var<storage, read_write> done: array<DoneFlow>;
@group(0) @binding(13) var<storage, read_write> free: array<u32>;
@group(0) @binding(14) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(15) var<storage, read_write> pair_count: atomic<u32>;

// PLAN_WG (the workgroup size) comes from the kernel table through the header.
const WG: u32 = PLAN_WG;
// Survivors and completions are scanned together: a chunk has at most WG of each.
const DONE_UNIT: u32 = 65536u;
var<workgroup> n_front: atomic<u32>;
var<workgroup> n_back: atomic<u32>;
var<workgroup> n_reflected: atomic<u32>;
// The item's live count, read once from storage and shared uniformly.
var<workgroup> n_live: u32;
// Per lane (Δz, Δz²) of one chunk, summed by a fixed tree so every run adds in one order.
var<workgroup> z_part: array<vec2<f32>, WG>;

// The workgroup's sum of `v` (every invocation gets it).
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    z_part[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            z_part[lid] = z_part[lid] + z_part[lid + stride];
        }
        workgroupBarrier();
    }
    let total = z_part[0];
    workgroupBarrier();
    return total;
}

// Children the list entry `j` asks for (0 past the end or for a flow that is not moving).
fn requested_by(base: u32, n: u32, j: u32) -> u32 {
    if (j >= n) {
        return 0u;
    }
    let s = base + live_in[base + j];
    if (status[s] != MOVING) {
        return 0u;
    }
    return spawn[s];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wg.x;
    let base = b * CAP;
    // Loop bounds around barriers must be uniform: a storage read is not, so one invocation
    // reads the count and every invocation takes it through workgroupUniformLoad.
    if (lid == 0u) {
        n_live = counts[b].moving;
    }
    let n = workgroupUniformLoad(&n_live);
    // An item without live flows stays exactly as it is, counts included (as on the CPU).
    if (n == 0u) {
        return;
    }
    let created = counts[b].created;
    let done0 = counts[b].done;
    let dbase = b * params.done_cap;

    // Pass 1: survivors, completion records and this step's counts.
    var survivors = 0u;
    var completed = 0u;
    var z_moved = vec2<f32>(0.0);
    for (var c0 = 0u; c0 < n; c0 += WG) {
        let j = c0 + lid;
        var flag = 0u;
        var e = 0u;
        var st = FREE;
        var dz = vec2<f32>(0.0);
        if (j < n) {
            e = live_in[base + j];
            let s = base + e;
            st = status[s];
            let d = pos[s].z - prev[s].z;
            dz = vec2<f32>(d, d * d);
            if (st == MOVING) {
                flag = 1u;
            } else if (st == FRONT || st == BACK) {
                flag = DONE_UNIT;
                if (st == FRONT) {
                    atomicAdd(&n_front, 1u);
                } else {
                    atomicAdd(&n_back, 1u);
                }
            }
            if ((event[s] & EV_REFLECTED) != 0u) {
                atomicAdd(&n_reflected, 1u);
            }
        }
        let sc = inclusive_scan(lid, flag);
        if (flag == 1u) {
            live_out[base + survivors + (sc.x & 0xffffu) - 1u] = e;
        } else if (flag == DONE_UNIT) {
            let s = base + e;
            let at = dbase + done0 + completed + (sc.x >> 16u) - 1u;
            done[at] = DoneFlow(pos[s], ids[s], steps[s], st, event[s]);
            status[s] = FREE;
        }
        survivors += sc.y & 0xffffu;
        completed += sc.y >> 16u;
        z_moved += workgroup_sum(lid, dz);
    }
    storageBarrier();
    workgroupBarrier();

    // Children requested by the survivors.
    var requested = 0u;
    for (var c0 = 0u; c0 < n; c0 += WG) {
        requested += inclusive_scan(lid, requested_by(base, n, c0 + lid)).y;
    }

    // Pass 2: the lowest free slots, as many as requested.
    var nfree = 0u;
    for (var c0 = 0u; c0 < CAP && nfree < requested; c0 += WG) {
        let l = c0 + lid;
        var is_free = 0u;
        if (l < CAP && status[base + l] == FREE) {
            is_free = 1u;
        }
        let sc = inclusive_scan(lid, is_free);
        let idx = nfree + sc.x - 1u;
        if (is_free == 1u && idx < requested) {
            free[base + idx] = l;
        }
        nfree = min(nfree + sc.y, requested);
    }
    storageBarrier();
    workgroupBarrier();

    // Pass 3: children in the order of their parents in the list.
    var first_of_chunk = 0u;
    for (var c0 = 0u; c0 < n; c0 += WG) {
        let j = c0 + lid;
        let k = requested_by(base, n, j);
        let sc = inclusive_scan(lid, k);
        let first = first_of_chunk + sc.x - k;
        for (var q = 0u; q < k; q++) {
            let idx = first + q;
            if (idx < nfree) {
                let s = base + live_in[base + j];
                let local = free[base + idx];
                let child = base + local;
                let pv = prev[s];
                pos[child] = pv;
                prev[child] = pv;
                ids[child] = created + idx;
                parent[child] = i32(ids[s]);
                steps[child] = 0u;
                status[child] = MOVING;
                event[child] = 0u;
                spawn[child] = 0u;
                live_out[base + survivors + idx] = local;
                let at = atomicAdd(&pair_count, 1u);
                pairs[at] = vec2<u32>(child, s);
            }
        }
        first_of_chunk += sc.y;
        storageBarrier();
        workgroupBarrier();
    }

    if (lid == 0u) {
        var c: ItemCounts;
        c.moving = survivors + nfree;
        c.spawned = nfree;
        c.dropped = requested - nfree;
        c.front = atomicLoad(&n_front);
        c.back = atomicLoad(&n_back);
        c.reflected = atomicLoad(&n_reflected);
        c.created = created + nfree;
        c.done = done0 + completed;
        c.z_moved = z_moved.x;
        c.z_moved_sq = z_moved.y;
        counts[b] = c;
    }
}
