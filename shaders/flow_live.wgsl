// Stage 0 of a flow step, one workgroup for the batch: from each item's count of moving flows,
// the offsets of the items' live lists in the batch-wide list (`live_off`, with the live total
// at `live_off[items]`) and the workgroup grids of the step's other kernels, read by indirect
// dispatch, so a step needs nothing from the host. Twin of `LiveDispatch::plan` in
// lattice-gpu/src/flows.rs (same grids, same folding past `max_groups` per dimension).

@group(0) @binding(0) var<uniform> params: FlowParams;
@group(0) @binding(1) var<storage, read> counts: array<ItemCounts>;
@group(0) @binding(2) var<storage, read_write> live_off: array<u32>;
// Four (x, y, z) grids: flow_neuron, flow_gru, flow_heads, flow_copy.
@group(0) @binding(3) var<storage, read_write> args: array<u32, 12>;

// LIVE_WG (the workgroup size) comes from the kernel table through the header.
const WG: u32 = LIVE_WG;

fn ceil_div(a: u32, b: u32) -> u32 {
    return a / b + select(0u, 1u, a % b != 0u);
}

// `groups` workgroups as an (x, y) grid, x at most max_groups; (0, 1) for none.
fn fold(groups: u32) -> vec2<u32> {
    if (groups == 0u) {
        return vec2<u32>(0u, 1u);
    }
    let x = min(groups, params.max_groups);
    return vec2<u32>(x, ceil_div(groups, x));
}

// Children an item's moving flows may ask for this step: spawn_max each, at most its capacity
// (without overflowing u32).
fn children_of(moving: u32) -> u32 {
    if (moving == 0u) {
        return 0u;
    }
    if (params.spawn_max > CAP / moving) {
        return CAP;
    }
    return moving * params.spawn_max;
}

fn set_grid(k: u32, x: u32, y: u32, z: u32) {
    args[3u * k] = x;
    args[3u * k + 1u] = y;
    args[3u * k + 2u] = z;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    let items = params.items;
    var live = 0u;
    var children = 0u;
    for (var c0 = 0u; c0 < items; c0 += WG) {
        let b = c0 + lid;
        var m = 0u;
        if (b < items) {
            m = counts[b].moving;
        }
        let sc = inclusive_scan(lid, m);
        if (b < items) {
            live_off[b] = live + sc.x - m;
        }
        live += sc.y;
        children += inclusive_scan(lid, children_of(m)).y;
    }
    if (lid == 0u) {
        live_off[items] = live;
        let neuron = fold(ceil_div(live, 64u));
        set_grid(0u, neuron.x, neuron.y, 1u);
        let gru = fold(ceil_div(live, TILE));
        set_grid(1u, ceil_div(HC, 64u), gru.x, gru.y);
        let heads = fold(ceil_div(live, HEADS_TILE));
        set_grid(2u, heads.x, heads.y, 1u);
        let copy = fold(ceil_div(children * HL, 64u));
        set_grid(3u, copy.x, copy.y, 1u);
    }
}
