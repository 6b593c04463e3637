// Stage 3 of a flow step: the carrier's energy and displacement heads on the new top hidden
// layer, then the move rule (scale and clamp, seeded noise, x/y reflection, termination at
// z = -1 / +1, spawn request). Twin of FlowNet::heads and apply_move in
// lattice-core/src/flows/net.rs.
//
// A workgroup owns HEADS_TILE live flows: their top hidden states are staged in workgroup
// memory, the 64 invocations compute the two heads' hidden layers as (unit, flow) pairs, and
// one invocation per flow sums the output layers (units ascending, as the CPU) and moves it.

@group(0) @binding(0) var<uniform> params: FlowParams;
@group(0) @binding(1) var<storage, read> wts: array<f32>;
@group(0) @binding(2) var<storage, read> gslot: array<u32>;
// The new hidden states (this step's side of the ping-pong).
@group(0) @binding(3) var<storage, read> hnext: array<f32>;
@group(0) @binding(4) var<storage, read> seeds: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> pos: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> prev: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> status: array<u32>;
@group(0) @binding(8) var<storage, read_write> event: array<u32>;
@group(0) @binding(9) var<storage, read_write> spawn: array<u32>;
@group(0) @binding(10) var<storage, read_write> steps: array<u32>;
// Item-local flow ids: the noise stream follows the flow, not its (reused) slot.
@group(0) @binding(11) var<storage, read> ids: array<u32>;
// Per slot: which hidden-state buffer holds the flow's latest state (for reading it back).
@group(0) @binding(12) var<storage, read_write> hidden_at: array<u32>;
// Offsets of the items' live lists; the live total at [items] (flow_live).
@group(0) @binding(13) var<storage, read> live_off: array<u32>;

fn outside(v: f32) -> bool {
    return v < -1.0 || v > 1.0;
}

const HT: u32 = HEADS_TILE;
// Hidden units of the energy head, then of the displacement head.
const EH: u32 = HC / 2u;
const HEAD_UNITS: u32 = EH + DH;

// [flow of the tile][unit]: the new top hidden states.
var<workgroup> top: array<f32, HT * HC>;
// [unit][flow of the tile]: GELU of both heads' hidden layers.
var<workgroup> hid: array<f32, HEAD_UNITS * HT>;
// The live total, read once from storage and shared uniformly (it guards a return before
// barriers).
var<workgroup> n_live: u32;

// GELU(W1 . h + b1) of hidden unit o (energy units first) for flow t of the tile.
fn hidden_unit(o: u32, t: u32) -> f32 {
    var row = W_CARRIER_ENERGY1_WEIGHT + o * HC;
    var bias = W_CARRIER_ENERGY1_BIAS + o;
    if (o >= EH) {
        row = W_CARRIER_DISP1_WEIGHT + (o - EH) * HC;
        bias = W_CARRIER_DISP1_BIAS + o - EH;
    }
    var a = 0.0;
    for (var k = 0u; k < HC; k++) {
        a += wts[row + k] * top[t * HC + k];
    }
    return gelu(a + wts[bias]);
}

// The output layers and the move rule for live flow g, flow t of the tile.
fn move_flow(g: u32, t: u32) {
    let slot = gslot[g];

    // Energy: tanh(energy2 . gelu(energy1 . h + b1) + b2), summed over units ascending.
    var acc_e = 0.0;
    for (var o = 0u; o < EH; o++) {
        acc_e += wts[W_CARRIER_ENERGY2_WEIGHT + o] * hid[o * HT + t];
    }
    let energy = tanh(acc_e + wts[W_CARRIER_ENERGY2_BIAS]);

    // Displacement: disp2 . gelu(disp1 . h + b1) + b2.
    var d = vec3<f32>(0.0);
    for (var o = 0u; o < DH; o++) {
        let gv = hid[(EH + o) * HT + t];
        d.x += wts[W_CARRIER_DISP2_WEIGHT + o] * gv;
        d.y += wts[W_CARRIER_DISP2_WEIGHT + DH + o] * gv;
        d.z += wts[W_CARRIER_DISP2_WEIGHT + 2u * DH + o] * gv;
    }
    d += vec3<f32>(wts[W_CARRIER_DISP2_BIAS], wts[W_CARRIER_DISP2_BIAS + 1u], wts[W_CARRIER_DISP2_BIAS + 2u]);

    let p = pos[slot];
    let item = slot / CAP;
    let flow = ids[slot];
    var raw = p.xyz + clamp(d * params.scale, vec3<f32>(-0.5), vec3<f32>(0.5));
    if (params.noise > 0.0) {
        let seed = seeds[item];
        raw.x += params.noise * gauss(seed, flow, params.step, 0u);
        raw.y += params.noise * gauss(seed, flow, params.step, 1u);
        raw.z += params.noise * gauss(seed, flow, params.step, 2u);
    }
    var ev = 0u;
    var x: f32;
    var y: f32;
    if (params.reflection != 0u) {
        if (outside(raw.x) || outside(raw.y)) {
            ev |= EV_REFLECTED;
        }
        x = reflect1(raw.x);
        y = reflect1(raw.y);
    } else {
        x = clamp(raw.x, -1.0, 1.0);
        y = clamp(raw.y, -1.0, 1.0);
    }
    let z = clamp(raw.z, -1.0, 1.0);
    var st = MOVING;
    if (z <= -1.0) {
        st = FRONT;
    } else if (z >= 1.0) {
        st = BACK;
    }
    var k = 0u;
    if (st == MOVING && params.spawn_tau > 0.0) {
        // B7: L is measured on the move clamped to the lattice, before reflection.
        let dv = clamp(raw, vec3<f32>(-1.0), vec3<f32>(1.0)) - p.xyz;
        let len = sqrt(dv.x * dv.x + dv.y * dv.y + dv.z * dv.z);
        if (len > params.spawn_tau) {
            let n = u32(floor(len / params.spawn_tau));
            k = min(max(n, 1u) - 1u, params.spawn_max);
        }
    } else if (st != MOVING) {
        ev |= EV_TERMINATED;
    }
    pos[slot] = vec4<f32>(x, y, z, energy);
    prev[slot] = vec4<f32>(p.xyz, energy);
    status[slot] = st;
    event[slot] = ev;
    spawn[slot] = k;
    steps[slot] = steps[slot] + 1u;
    hidden_at[slot] = params.hidden_next;
}

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let g0 = flat_workgroup(wid, groups) * HT;
    if (lid == 0u) {
        n_live = live_off[params.items];
    }
    let live = workgroupUniformLoad(&n_live);
    // A whole workgroup past the live flows (the 2D grid's overhang): uniform, so it may leave.
    if (g0 >= live) {
        return;
    }
    for (var i = lid; i < HT * HC; i += 64u) {
        let g = g0 + i / HC;
        var v = 0.0;
        if (g < live) {
            v = hnext[gslot[g] * HL + (L - 1u) * HC + i % HC];
        }
        top[i] = v;
    }
    workgroupBarrier();
    for (var i = lid; i < HEAD_UNITS * HT; i += 64u) {
        hid[i] = hidden_unit(i / HT, i % HT);
    }
    workgroupBarrier();
    if (lid < HT && g0 + lid < live) {
        move_flow(g0 + lid, lid);
    }
}
