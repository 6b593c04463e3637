// Shared by the flow kernels. Twin of lattice-core/src/flows (state.rs, net.rs, noise.rs):
// same status codes, event bits, constants and order of operations. The generated header
// (lattice-gpu/src/flows.rs) defines the sizes (W, H, D, CAP, HC, L, NH, NO, XIN, HL, DH) and
// the tensor offsets W_<NAME> into `wts`.

struct FlowParams {
    items: u32,
    // Workgroups per grid dimension (the device limit flow_live folds its grids at).
    max_groups: u32,
    step: u32,
    // Slots of the batch (items * CAP).
    nmax: u32,
    scale: f32,
    noise: f32,
    spawn_tau: f32,
    spawn_max: u32,
    reflection: u32,
    // Completion records per item (`done` holds items * done_cap).
    done_cap: u32,
    // Which of the two hidden-state buffers this step writes (0 or 1).
    hidden_next: u32,
    // The early-stop rule (B8; flow_live), when stop_on is 1: the threshold is exactly
    // stop_m / 2^stop_shift.
    stop_on: u32,
    min_steps: u32,
    patience: u32,
    stop_m: u32,
    stop_shift: u32,
}

struct ItemCounts {
    moving: u32,
    spawned: u32,
    dropped: u32,
    front: u32,
    back: u32,
    reflected: u32,
    // Flow ids issued so far: the next child's id.
    created: u32,
    // Completion records written so far.
    done: u32,
    // Σ Δz and Σ Δz² over the flows that moved this step (lattice-core ItemCounts).
    z_moved: f32,
    z_moved_sq: f32,
}

// A flow that completed (lattice-core DoneFlow): position and energy, id, steps, plane, event.
struct DoneFlow {
    pos: vec4<f32>,
    id: u32,
    steps: u32,
    plane: u32,
    event: u32,
}

const FREE: u32 = 0u;
const MOVING: u32 = 1u;
const FRONT: u32 = 2u;
const BACK: u32 = 3u;
const EV_REFLECTED: u32 = 1u;
const EV_TERMINATED: u32 = 2u;

// NaN -> 0, then clamp to +-10 (the carrier's input and hidden-state guard).
fn sane(v: f32) -> f32 {
    return select(clamp(v, -10.0, 10.0), 0.0, v != v);
}

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn unit(h: u32) -> f32 {
    return f32((h >> 8u) + 1u) * (1.0 / 16777216.0);
}

// N(0, 1) for one (item seed, item-local flow id, step, axis); Box-Muller.
fn gauss(seed: vec2<u32>, flow: u32, step: u32, axis: u32) -> f32 {
    let a = pcg(seed.x ^ pcg(seed.y ^ pcg(flow ^ pcg(step * 4u + axis))));
    let b = pcg(a ^ 0x9e3779b9u);
    let r = sqrt(-2.0 * log(unit(a)));
    return r * cos(6.2831855 * unit(b));
}

// Folds a coordinate back into [-1, 1] once, then clamps.
fn reflect1(v: f32) -> f32 {
    var r = v;
    if (v < -1.0) {
        r = -2.0 - v;
    } else if (v > 1.0) {
        r = 2.0 - v;
    }
    return clamp(r, -1.0, 1.0);
}
