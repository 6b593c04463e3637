// Stage 0 of a flow step, one workgroup for the batch. First the stop rule: each running item
// is tested as the host tests it before a step (twin of `stop_reason` in
// lattice-core/src/flows/convergence.rs, the same integer comparisons), and an item that stops
// with live flows is frozen (its count of moving flows set to 0). Then, from each item's count
// of moving flows, the offsets of the items' live lists in the batch-wide list (`live_off`,
// with the live total at `live_off[items]`) and the workgroup grids of the step's other
// kernels, read by indirect dispatch, so a step needs nothing from the host. Twin of
// `LiveDispatch::plan` in lattice-gpu/src/flows.rs (same grids, same folding past
// `max_groups` per dimension).

// An item's early-stop state (lattice-gpu StopState): its stop reason (0: running, else
// StopReason::code) and the step it stopped before, checks since min_steps without 1 %
// improvement, checks made, and the completed counts of the last six checks (a ring).
struct StopState {
    reason: u32,
    step: u32,
    no_improvement: u32,
    checks: u32,
    history: array<u32, 6>,
}

@group(0) @binding(0) var<uniform> params: FlowParams;
@group(0) @binding(1) var<storage, read_write> counts: array<ItemCounts>;
@group(0) @binding(2) var<storage, read_write> live_off: array<u32>;
// Four (x, y, z) grids: flow_neuron, flow_gru, flow_heads, flow_copy.
@group(0) @binding(3) var<storage, read_write> args: array<u32, 12>;
@group(0) @binding(4) var<storage, read_write> stops: array<StopState>;

const ALL_FLOWS_COMPLETED: u32 = 1u;
const THRESHOLD_REACHED: u32 = 2u;
const NO_LIVE_FLOWS_BELOW_HALF: u32 = 3u;
const PATIENCE: u32 = 4u;
const PLATEAU_ABOVE_EIGHTY_PERCENT: u32 = 5u;

// Unsigned 64-bit values as (low, high) words.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>((p00 & 0xffffu) | (mid << 16u), hi);
}

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

// a - b for a >= b.
fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn less64(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

// a * k, for products under 2^64.
fn scale64(a: vec2<u32>, k: u32) -> vec2<u32> {
    let lo = mul_wide(a.x, k);
    return vec2<u32>(lo.x, lo.y + a.y * k);
}

// The fewest completed flows out of `created` that reach the threshold:
// ceil(created * m / 2^shift) (at most `created`, as the threshold is at most 1).
fn completions_needed(created: u32) -> u32 {
    let q = mul_wide(created, params.stop_m);
    let s = params.stop_shift;
    if (s >= 64u) {
        return select(0u, 1u, q.x != 0u || q.y != 0u);
    }
    if (s == 0u) {
        return q.x;
    }
    if (s >= 32u) {
        let t = s - 32u;
        let rest = q.x != 0u || (q.y & ((1u << t) - 1u)) != 0u;
        return (q.y >> t) + select(0u, 1u, rest);
    }
    let rest = (q.x & ((1u << s) - 1u)) != 0u;
    return ((q.x >> s) | (q.y << (32u - s))) + select(0u, 1u, rest);
}

// The sum of the `n`-th to last five of the ring's checks (n = 0: the latest five).
fn window_sum(st: StopState, n: u32) -> vec2<u32> {
    var sum = vec2<u32>(0u, 0u);
    for (var k = 0u; k < 5u; k++) {
        sum = add64(sum, vec2<u32>(st.history[(st.checks - 1u - n - k) % 6u], 0u));
    }
    return sum;
}

// B8 before this step from the item's totals (convergence.rs `Convergence::check`); 0: go on.
fn convergence(st: ptr<function, StopState>, completed: u32, created_raw: u32, live: u32) -> u32 {
    if (params.step < params.min_steps) {
        return 0u;
    }
    (*st).history[(*st).checks % 6u] = completed;
    (*st).checks += 1u;
    if ((*st).checks > 5u) {
        let now = window_sum(*st, 0u);
        let before = window_sum(*st, 1u);
        var improved = !less64(scale64(sub64(now, before), 100u), before);
        if (before.x == 0u && before.y == 0u) {
            improved = now.x != 0u || now.y != 0u;
        }
        (*st).no_improvement = select((*st).no_improvement + 1u, 0u, improved);
    }
    let created = max(created_raw, 1u);
    if (completed >= completions_needed(created)) {
        return THRESHOLD_REACHED;
    }
    if (live == 0u && less64(mul_wide(completed, 2u), vec2<u32>(created, 0u))) {
        return NO_LIVE_FLOWS_BELOW_HALF;
    }
    if ((*st).no_improvement >= params.patience) {
        return PATIENCE;
    }
    let above = less64(mul_wide(created, 4u), mul_wide(completed, 5u));
    if (params.step > 10u && above && (*st).no_improvement > params.patience / 2u) {
        return PLATEAU_ABOVE_EIGHTY_PERCENT;
    }
    return 0u;
}

// The stop rule for item b before this step: records a stop and freezes the item's flows.
fn apply_stop_rule(b: u32) {
    var st = stops[b];
    if (st.reason != 0u) {
        return;
    }
    let c = counts[b];
    var reason = 0u;
    if (params.stop_on != 0u) {
        reason = convergence(&st, c.done, c.created, c.moving);
    }
    if (reason == 0u && c.moving == 0u) {
        reason = ALL_FLOWS_COMPLETED;
    }
    if (reason != 0u) {
        st.reason = reason;
        st.step = params.step;
        counts[b].moving = 0u;
    }
    stops[b] = st;
}

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
            apply_stop_rule(b);
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
