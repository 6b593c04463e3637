// Stage 5 of a flow step, one workgroup per item: count what the step did, compact the live
// list (survivors in list order, then children in the order of their parents), and give each
// requested child the next free slot until the item's capacity is reached; the rest are
// dropped and counted. Slots come from a scan, not from racing atomics, so the same flows get
// the same slots on every run. Children are listed in `pairs` (an atomic append) for
// flow_copy, which copies their parents' hidden states. Twin of `plan` in
// lattice-core/src/flows/cpu.rs.

@group(0) @binding(0) var<storage, read> live_in: array<u32>;
@group(0) @binding(1) var<storage, read_write> live_out: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<ItemCounts>;
@group(0) @binding(3) var<storage, read_write> status: array<u32>;
@group(0) @binding(4) var<storage, read_write> event: array<u32>;
@group(0) @binding(5) var<storage, read_write> spawn: array<u32>;
@group(0) @binding(6) var<storage, read_write> pos: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> prev: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> parent: array<i32>;
@group(0) @binding(9) var<storage, read_write> steps: array<u32>;
@group(0) @binding(10) var<storage, read_write> pairs: array<vec2<u32>>;
@group(0) @binding(11) var<storage, read_write> pair_count: atomic<u32>;

const WG: u32 = 256u;
var<workgroup> scan: array<u32, WG>;
var<workgroup> n_front: atomic<u32>;
var<workgroup> n_back: atomic<u32>;
var<workgroup> n_reflected: atomic<u32>;

// Inclusive scan of `v` over the workgroup (Hillis-Steele) and the chunk's total; every
// invocation must call it.
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
    let r = vec2<u32>(scan[lid], scan[WG - 1u]);
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wg.x;
    let base = b * CAP;
    let n = counts[b].moving;
    let used = counts[b].used;

    // Pass 1: survivors and this step's counts.
    var survivors = 0u;
    for (var c0 = 0u; c0 < n; c0 += WG) {
        let j = c0 + lid;
        var keep = 0u;
        var e = 0u;
        if (j < n) {
            e = live_in[base + j];
            let s = base + e;
            let st = status[s];
            if (st == MOVING) {
                keep = 1u;
            } else if (st == FRONT) {
                atomicAdd(&n_front, 1u);
            } else if (st == BACK) {
                atomicAdd(&n_back, 1u);
            }
            if ((event[s] & EV_REFLECTED) != 0u) {
                atomicAdd(&n_reflected, 1u);
            }
        }
        let sc = inclusive_scan(lid, keep);
        if (keep == 1u) {
            live_out[base + survivors + sc.x - 1u] = e;
        }
        survivors += sc.y;
    }

    // Pass 2: children, in the order of their parents in the list.
    var requested = 0u;
    for (var c0 = 0u; c0 < n; c0 += WG) {
        let j = c0 + lid;
        var k = 0u;
        var s = 0u;
        var e = 0u;
        if (j < n) {
            e = live_in[base + j];
            s = base + e;
            if (status[s] == MOVING) {
                k = spawn[s];
            }
        }
        let sc = inclusive_scan(lid, k);
        let first = requested + sc.x - k;
        for (var q = 0u; q < k; q++) {
            let idx = first + q;
            let local = used + idx;
            if (local < CAP) {
                let child = base + local;
                let pv = prev[s];
                pos[child] = pv;
                prev[child] = pv;
                parent[child] = i32(e);
                steps[child] = 0u;
                status[child] = MOVING;
                event[child] = 0u;
                spawn[child] = 0u;
                live_out[base + survivors + idx] = local;
                let at = atomicAdd(&pair_count, 1u);
                pairs[at] = vec2<u32>(child, s);
            }
        }
        requested += sc.y;
    }

    if (lid == 0u) {
        let created = min(requested, CAP - used);
        var c: ItemCounts;
        c.moving = survivors + created;
        c.spawned = created;
        c.dropped = requested - created;
        c.front = atomicLoad(&n_front);
        c.back = atomicLoad(&n_back);
        c.reflected = atomicLoad(&n_reflected);
        c.used = used + created;
        c.pad = 0u;
        counts[b] = c;
    }
}

