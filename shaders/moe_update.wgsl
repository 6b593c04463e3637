// MoE stage 3 (twin: MoeNet::update): experts, gating and combine for one (item, cell) row,
// from the cell's state and its gathered record. All vectors live in this lane's scratch
// (shared/nn.wgsl) at the offsets below; tmp(k) are temporaries of width WIDE.

@group(0) @binding(0) var<uniform> mp: MoeParams;
@group(0) @binding(1) var<storage, read> wts: array<f32>;
@group(0) @binding(2) var<storage, read> states: array<f32>;
@group(0) @binding(3) var<storage, read> records: array<f32>;
@group(0) @binding(4) var<storage, read> counts: array<u32>;
@group(0) @binding(5) var<storage, read_write> next: array<f32>;
// Per item: the lowest cell index whose new state is not finite (u32 max when none).
@group(0) @binding(6) var<storage, read_write> bad: array<atomic<u32>>;
// [SCRATCH, scratch_stride]: lane-interleaved per-row scratch.
@group(0) @binding(7) var<storage, read_write> scratch: array<f32>;

const X: u32 = 0u;
const AGG_L: u32 = S;
const SUM_L: u32 = 2u * S;
const SUM_F: u32 = 3u * S;
const ABS_F: u32 = 4u * S;
const SUM_D: u32 = 5u * S;
const M_F: u32 = 6u * S;
const O_L: u32 = S + REC;
const O_F: u32 = O_L + S;
const O_D: u32 = O_F + S;
const T0: u32 = O_D + S;
// SCRATCH (floats of scratch per lane) comes from the header (lattice-gpu's moe::scratch_len);
// this layout must fit it exactly.
const_assert SCRATCH == T0 + 13u * WIDE;

fn tmp(k: u32) -> u32 {
    return T0 + k * WIDE;
}

// Fixed-step Euler of f(t, x) = LN_out(MLP(LN_in([x, nbar])) + pad(W_t t)) - |lambda| x.
fn cnf(p: Cnf, xin: u32, nbar: u32, out: u32, t_first: u32) {
    let u = tmp(t_first);
    let a = tmp(t_first + 1u);
    let b = tmp(t_first + 2u);
    let f = tmp(t_first + 3u);
    let lambda = abs(wts[p.lambda]);
    let dt = 1.0 / f32(ODE_STEPS);
    copy_range(xin, out, S);
    for (var step = 0u; step < ODE_STEPS; step++) {
        let t = f32(step) / f32(ODE_STEPS);
        copy_range(out, u, S);
        copy_range(nbar, u + S, S);
        layer_norm(u, 2u * S, p.norm_in_w, p.norm_in_b);
        lin(p.mlp1_w, p.mlp1_b, 2u * S, u, 2u * S, 0u, 0u, a, OH);
        gelu_range(a, OH);
        lin(p.mlp2_w, p.mlp2_b, OH, a, OH, 0u, 0u, b, OH2);
        gelu_range(b, OH2);
        lin(p.mlp3_w, p.mlp3_b, OH2, b, OH2, 0u, 0u, f, S);
        if (HAS_TIME) {
            for (var k = 0u; k < TW; k++) {
                ss(f + k, sg(f + k) + (wts[p.time_w + k] * t));
            }
        }
        layer_norm(f, S, p.norm_out_w, p.norm_out_b);
        for (var c = 0u; c < S; c++) {
            ss(out + c, sg(out + c) + (dt * (sg(f + c) - lambda * sg(out + c))));
        }
    }
}

fn local_expert(k: u32) {
    if (k == 0u) {
        copy_range(X, O_L, S);
        layer_norm(O_L, S, W_LOCAL_NORM_WEIGHT, W_LOCAL_NORM_BIAS);
        return;
    }
    let h1 = tmp(0u);
    let f = tmp(1u);
    let ph = tmp(2u);
    lin(W_LOCAL_AGG1_WEIGHT, W_LOCAL_AGG1_BIAS, S, AGG_L, S, 0u, 0u, h1, H1);
    gelu_range(h1, H1);
    lin(W_LOCAL_AGG2_WEIGHT, W_LOCAL_AGG2_BIAS, H1, h1, H1, 0u, 0u, f, H2);
    lin(W_LOCAL_PROC1_WEIGHT, W_LOCAL_PROC1_BIAS, S + H2, X, S, f, H2, ph, PH);
    gelu_range(ph, PH);
    lin(W_LOCAL_PROC2_WEIGHT, W_LOCAL_PROC2_BIAS, PH, ph, PH, 0u, 0u, O_L, S);
    layer_norm(O_L, S, W_LOCAL_NORM_WEIGHT, W_LOCAL_NORM_BIAS);
    let alpha = wts[W_LOCAL_ALPHA];
    let beta = wts[W_LOCAL_BETA];
    for (var c = 0u; c < S; c++) {
        ss(O_L + c, alpha * sg(X + c) + beta * sg(O_L + c));
    }
}

fn functional_expert(k: u32) {
    let kf = f32(k);
    let act = tmp(0u);
    let gh = tmp(1u);
    let g1 = tmp(2u);
    let z = tmp(3u);
    let r = tmp(4u);
    let rx = tmp(5u);
    let cand = tmp(6u);
    let cnf_out = tmp(7u);
    let cat = tmp(8u);
    for (var c = 0u; c < S; c++) {
        ss(act + c, sg(ABS_F + c) / kf);
    }
    let half = S / 2u;
    lin(W_FUNCTIONAL_GATE1_WEIGHT, W_FUNCTIONAL_GATE1_BIAS, 2u * S, X, S, act, S, gh, half);
    gelu_range(gh, half);
    lin(W_FUNCTIONAL_GATE2_WEIGHT, W_FUNCTIONAL_GATE2_BIAS, half, gh, half, 0u, 0u, g1, 1u);
    let g = sigmoid(sg(g1));
    let stride = S + FM + EXT;
    lin(W_FUNCTIONAL_GNN_UPDATE_GATE_WEIGHT, W_FUNCTIONAL_GNN_UPDATE_GATE_BIAS, stride, X, S, M_F, FM, z, S);
    lin(W_FUNCTIONAL_GNN_RESET_GATE_WEIGHT, W_FUNCTIONAL_GNN_RESET_GATE_BIAS, stride, X, S, M_F, FM, r, S);
    for (var c = 0u; c < S; c++) {
        ss(z + c, sigmoid(sg(z + c)));
        ss(rx + c, sigmoid(sg(r + c)) * sg(X + c));
    }
    lin(W_FUNCTIONAL_GNN_CANDIDATE_WEIGHT, W_FUNCTIONAL_GNN_CANDIDATE_BIAS, stride, rx, S, M_F, FM, cand, S);
    for (var c = 0u; c < S; c++) {
        ss(act + c, sg(SUM_F + c) / kf);
    }
    cnf(cnf_functional(), X, act, cnf_out, 9u);
    for (var c = 0u; c < S; c++) {
        let gnn = (1.0 - sg(z + c)) * sg(X + c) + sg(z + c) * tanh(sg(cand + c));
        ss(cat + c, (1.0 - g) * gnn);
        ss(cat + S + c, g * sg(cnf_out + c));
    }
    lin(W_FUNCTIONAL_OUT_WEIGHT, W_FUNCTIONAL_OUT_BIAS, 2u * S, cat, 2u * S, 0u, 0u, O_F, S);
    layer_norm(O_F, S, W_FUNCTIONAL_OUT_NORM_WEIGHT, W_FUNCTIONAL_OUT_NORM_BIAS);
    gelu_range(O_F, S);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = flat_invocation(gid, groups, 64u);
    if (r >= mp.rows) {
        return;
    }
    let row = mp.first_row + r;
    let base = row * S;
    lane = r;
    scratch_stride = mp.scratch_stride;
    let kl = counts[r * 4u];
    let kf = counts[r * 4u + 1u];
    let kd = counts[r * 4u + 2u];
    // A validated active cell has neighbors: no neighbors means masked off, state kept.
    if (kl + kf + kd == 0u) {
        for (var c = 0u; c < S; c++) {
            next[base + c] = states[base + c];
        }
        return;
    }
    for (var c = 0u; c < S; c++) {
        ss(X + c, states[base + c]);
    }
    for (var c = 0u; c < REC; c++) {
        ss(S + c, records[r * REC + c]);
    }
    local_expert(kl);
    if (kf > 0u) {
        functional_expert(kf);
    } else {
        for (var c = 0u; c < S; c++) {
            ss(O_F + c, 0.0);
        }
    }
    if (kd > 0u) {
        let nbar = tmp(0u);
        for (var c = 0u; c < S; c++) {
            ss(nbar + c, sg(SUM_D + c) / f32(kd));
        }
        cnf(cnf_distant(), X, nbar, O_D, 1u);
    } else {
        for (var c = 0u; c < S; c++) {
            ss(O_D + c, 0.0);
        }
    }
    // Gating from [LN(x), mean of all neighbor states].
    let xn = tmp(0u);
    let act = tmp(1u);
    let hid = tmp(2u);
    let logits = tmp(3u);
    let total = f32(max(kl + kf + kd, 1u));
    copy_range(X, xn, S);
    layer_norm(xn, S, W_GATING_NORM_WEIGHT, W_GATING_NORM_BIAS);
    for (var c = 0u; c < S; c++) {
        ss(act + c, (sg(SUM_L + c) + sg(SUM_F + c) + sg(SUM_D + c)) / total);
    }
    lin(W_GATING_FC1_WEIGHT, W_GATING_FC1_BIAS, 2u * S, xn, S, act, S, hid, GH);
    gelu_range(hid, GH);
    lin(W_GATING_FC2_WEIGHT, W_GATING_FC2_BIAS, GH, hid, GH, 0u, 0u, logits, 3u);
    let mx = max(max(sg(logits), sg(logits + 1u)), sg(logits + 2u));
    let e0 = exp(sg(logits) - mx);
    let e1 = exp(sg(logits + 1u) - mx);
    let e2 = exp(sg(logits + 2u) - mx);
    let zs = e0 + e1 + e2;
    let w0 = e0 / zs;
    let w1 = e1 / zs;
    let w2 = e2 / zs;
    var finite = true;
    for (var c = 0u; c < S; c++) {
        let mix = w0 * sg(O_L + c) + w1 * sg(O_F + c) + w2 * sg(O_D + c);
        let v = select(mix, sg(X + c) + mix, mp.residual == 1u);
        next[base + c] = v;
        // NaN and ±inf have an all-ones exponent. Checked on the bits: WGSL lets float math
        // assume there are no NaNs, so a float comparison could be optimised away.
        finite = finite && ((bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u);
    }
    if (!finite) {
        atomicMin(&bad[row / mp.cells], row % mp.cells);
    }
}
