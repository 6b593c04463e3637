// MoE stage 3 (twin: MoeNet::update): experts, gating and combine. A workgroup owns a tile of
// TILE rows (item, cell) of the chunk and runs every layer cooperatively (shared/nn.wgsl), the
// activations in workgroup memory at the row offsets below: no global scratch. Every expert is
// computed for every row and an empty class's output is replaced afterwards (predicated, not
// divergent: the rows of a tile need not agree on their classes).

@group(0) @binding(0) var<uniform> mp: MoeParams;
@group(0) @binding(1) var<storage, read> wts: array<f32>;
@group(0) @binding(2) var<storage, read> states: array<f32>;
@group(0) @binding(3) var<storage, read> records: array<f32>;
@group(0) @binding(4) var<storage, read> counts: array<u32>;
@group(0) @binding(5) var<storage, read_write> next: array<f32>;
// Per item: the lowest cell index whose new state is not finite (u32 max when none).
@group(0) @binding(6) var<storage, read_write> bad: array<atomic<u32>>;

// Per row: LOCAL, FUNCTIONAL, DISTANT neighbor counts.
var<workgroup> kcnt: array<u32, 3u * TILE>;

// A row: x, the gathered record, three expert outputs, then temporaries that each phase lays
// out its own way (ROW and TEMPS come from lattice-core's moe::net::UpdateTile).
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
const_assert ROW == T0 + TEMPS;
// Each phase's temporaries (widths as in the functions below).
const CNF_TEMPS: u32 = 3u * S + OH + OH2;
const_assert S + H1 + H2 + PH <= TEMPS;
const_assert 8u * S + S / 2u + 1u + CNF_TEMPS <= TEMPS;
const_assert S + CNF_TEMPS <= TEMPS;
const_assert 2u * S + GH + 3u <= TEMPS;

fn count_of(t: u32, cls: u32) -> u32 {
    return kcnt[3u * t + cls];
}

// Zeroes n values at `at` of the rows whose class `cls` is empty.
fn zero_if_empty(at: u32, n: u32, cls: u32, lid: u32) {
    for (var i = lid; i < n * TILE; i += WG) {
        if (count_of(i % TILE, cls) == 0u) {
            act[at * TILE + i] = 0.0;
        }
    }
    workgroupBarrier();
}

// Fixed-step Euler of f(t, x) = LN_out(MLP(LN_in([x, nbar])) + pad(W_t t)) - |lambda| x, its
// temporaries from `tmp` (CNF_TEMPS floats).
fn cnf(p: Cnf, xin: u32, nbar: u32, out: u32, tmp: u32, lid: u32) {
    let u = tmp;
    let a = u + 2u * S;
    let b = a + OH;
    let f = b + OH2;
    let lambda = abs(wts[p.lambda]);
    let dt = 1.0 / f32(ODE_STEPS);
    copy_range(xin, out, S, lid);
    for (var step = 0u; step < ODE_STEPS; step++) {
        let time = f32(step) / f32(ODE_STEPS);
        copy_range(out, u, S, lid);
        copy_range(nbar, u + S, S, lid);
        layer_norm(u, u, 2u * S, p.norm_in_w, p.norm_in_b, false, lid);
        lin(p.mlp1_w, p.mlp1_b, 2u * S, u, 2u * S, 0u, 0u, a, OH, true, lid);
        lin(p.mlp2_w, p.mlp2_b, OH, a, OH, 0u, 0u, b, OH2, true, lid);
        lin(p.mlp3_w, p.mlp3_b, OH2, b, OH2, 0u, 0u, f, S, false, lid);
        if (HAS_TIME) {
            for (var i = lid; i < TW * TILE; i += WG) {
                act[f * TILE + i] += wts[p.time_w + i / TILE] * time;
            }
            workgroupBarrier();
        }
        layer_norm(f, f, S, p.norm_out_w, p.norm_out_b, false, lid);
        for (var i = lid; i < S * TILE; i += WG) {
            let o = act[out * TILE + i];
            act[out * TILE + i] = o + dt * (act[f * TILE + i] - lambda * o);
        }
        workgroupBarrier();
    }
}

// LN(x) where the row has no LOCAL neighbor, else alpha x + beta LN(MLP(x, agg)).
fn local_expert(lid: u32) {
    let ln_x = T0;
    let h1 = ln_x + S;
    let f = h1 + H1;
    let ph = f + H2;
    layer_norm(X, ln_x, S, W_LOCAL_NORM_WEIGHT, W_LOCAL_NORM_BIAS, false, lid);
    lin(W_LOCAL_AGG1_WEIGHT, W_LOCAL_AGG1_BIAS, S, AGG_L, S, 0u, 0u, h1, H1, true, lid);
    lin(W_LOCAL_AGG2_WEIGHT, W_LOCAL_AGG2_BIAS, H1, h1, H1, 0u, 0u, f, H2, false, lid);
    lin(W_LOCAL_PROC1_WEIGHT, W_LOCAL_PROC1_BIAS, S + H2, X, S, f, H2, ph, PH, true, lid);
    lin(W_LOCAL_PROC2_WEIGHT, W_LOCAL_PROC2_BIAS, PH, ph, PH, 0u, 0u, O_L, S, false, lid);
    layer_norm(O_L, O_L, S, W_LOCAL_NORM_WEIGHT, W_LOCAL_NORM_BIAS, false, lid);
    let alpha = wts[W_LOCAL_ALPHA];
    let beta = wts[W_LOCAL_BETA];
    for (var i = lid; i < S * TILE; i += WG) {
        let mixed = alpha * act[X * TILE + i] + beta * act[O_L * TILE + i];
        act[O_L * TILE + i] = select(mixed, act[ln_x * TILE + i], count_of(i % TILE, 0u) == 0u);
    }
    workgroupBarrier();
}

// The mean over the neighbors of class `cls` (`sum` / max(k, 1)) of a summed vector, into `to`.
fn class_mean(sum: u32, cls: u32, to: u32, lid: u32) {
    for (var i = lid; i < S * TILE; i += WG) {
        act[to * TILE + i] = act[sum * TILE + i] / f32(max(count_of(i % TILE, cls), 1u));
    }
    workgroupBarrier();
}

fn functional_expert(lid: u32) {
    let mean = T0;
    let gh = mean + S;
    let g1 = gh + S / 2u;
    let z = g1 + 1u;
    let r = z + S;
    let rx = r + S;
    let cand = rx + S;
    let cnf_out = cand + S;
    let cat = cnf_out + S;
    let cnf_tmp = cat + 2u * S;
    class_mean(ABS_F, 1u, mean, lid);
    let half = S / 2u;
    lin(W_FUNCTIONAL_GATE1_WEIGHT, W_FUNCTIONAL_GATE1_BIAS, 2u * S, X, S, mean, S, gh, half, true, lid);
    lin(W_FUNCTIONAL_GATE2_WEIGHT, W_FUNCTIONAL_GATE2_BIAS, half, gh, half, 0u, 0u, g1, 1u, false, lid);
    let stride = S + FM + EXT;
    lin(W_FUNCTIONAL_GNN_UPDATE_GATE_WEIGHT, W_FUNCTIONAL_GNN_UPDATE_GATE_BIAS, stride, X, S, M_F, FM, z, S, false, lid);
    lin(W_FUNCTIONAL_GNN_RESET_GATE_WEIGHT, W_FUNCTIONAL_GNN_RESET_GATE_BIAS, stride, X, S, M_F, FM, r, S, false, lid);
    for (var i = lid; i < S * TILE; i += WG) {
        act[z * TILE + i] = sigmoid(act[z * TILE + i]);
        act[rx * TILE + i] = sigmoid(act[r * TILE + i]) * act[X * TILE + i];
    }
    workgroupBarrier();
    lin(W_FUNCTIONAL_GNN_CANDIDATE_WEIGHT, W_FUNCTIONAL_GNN_CANDIDATE_BIAS, stride, rx, S, M_F, FM, cand, S, false, lid);
    class_mean(SUM_F, 1u, mean, lid);
    cnf(cnf_functional(), X, mean, cnf_out, cnf_tmp, lid);
    for (var i = lid; i < S * TILE; i += WG) {
        let g = sigmoid(act[g1 * TILE + i % TILE]);
        let zc = act[z * TILE + i];
        let gnn = (1.0 - zc) * act[X * TILE + i] + zc * tanh(act[cand * TILE + i]);
        act[cat * TILE + i] = (1.0 - g) * gnn;
        act[(cat + S) * TILE + i] = g * act[cnf_out * TILE + i];
    }
    workgroupBarrier();
    lin(W_FUNCTIONAL_OUT_WEIGHT, W_FUNCTIONAL_OUT_BIAS, 2u * S, cat, 2u * S, 0u, 0u, O_F, S, false, lid);
    layer_norm(O_F, O_F, S, W_FUNCTIONAL_OUT_NORM_WEIGHT, W_FUNCTIONAL_OUT_NORM_BIAS, true, lid);
    zero_if_empty(O_F, S, 1u, lid);
}

fn distant_expert(lid: u32) {
    let nbar = T0;
    class_mean(SUM_D, 2u, nbar, lid);
    cnf(cnf_distant(), X, nbar, O_D, nbar + S, lid);
    zero_if_empty(O_D, S, 2u, lid);
}

// Gating from [LN(x), mean of all neighbor states]; leaves the three logits at the returned
// offset.
fn gating(lid: u32) -> u32 {
    let xn = T0;
    let mean = xn + S;
    let hid = mean + S;
    let logits = hid + GH;
    layer_norm(X, xn, S, W_GATING_NORM_WEIGHT, W_GATING_NORM_BIAS, false, lid);
    for (var i = lid; i < S * TILE; i += WG) {
        let t = i % TILE;
        let total = f32(max(count_of(t, 0u) + count_of(t, 1u) + count_of(t, 2u), 1u));
        act[mean * TILE + i] = (act[SUM_L * TILE + i] + act[SUM_F * TILE + i] + act[SUM_D * TILE + i]) / total;
    }
    workgroupBarrier();
    lin(W_GATING_FC1_WEIGHT, W_GATING_FC1_BIAS, 2u * S, xn, S, mean, S, hid, GH, true, lid);
    lin(W_GATING_FC2_WEIGHT, W_GATING_FC2_BIAS, GH, hid, GH, 0u, 0u, logits, 3u, false, lid);
    return logits;
}

// Loads the tile's states, records and counts; rows past the chunk read as zeros (computed,
// never written).
fn load_tile(first: u32, lid: u32) {
    for (var i = lid; i < S * TILE; i += WG) {
        let t = i / S;
        let c = i % S;
        let r = first + t;
        tile_set(X + c, t, select(0.0, states[(mp.first_row + r) * S + c], r < mp.rows));
    }
    for (var i = lid; i < REC * TILE; i += WG) {
        let t = i / REC;
        let c = i % REC;
        let r = first + t;
        tile_set(S + c, t, select(0.0, records[r * REC + c], r < mp.rows));
    }
    for (var i = lid; i < 3u * TILE; i += WG) {
        let r = first + i / 3u;
        kcnt[i] = select(0u, counts[r * 4u + i % 3u], r < mp.rows);
    }
    workgroupBarrier();
}

@compute @workgroup_size(64)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let first = flat_workgroup(wid, groups) * TILE;
    // A whole workgroup past the chunk (the 2D grid's overhang): uniform, so it may leave.
    if (first >= mp.rows) {
        return;
    }
    load_tile(first, lid);
    local_expert(lid);
    functional_expert(lid);
    distant_expert(lid);
    let logits = gating(lid);
    for (var i = lid; i < S * TILE; i += WG) {
        let t = i / S;
        let c = i % S;
        let r = first + t;
        if (r >= mp.rows) {
            continue;
        }
        let row = mp.first_row + r;
        let x = tile_get(X + c, t);
        // A validated active cell has neighbors: no neighbors means masked off, state kept.
        if (count_of(t, 0u) + count_of(t, 1u) + count_of(t, 2u) == 0u) {
            next[row * S + c] = x;
            continue;
        }
        let l0 = tile_get(logits, t);
        let l1 = tile_get(logits + 1u, t);
        let l2 = tile_get(logits + 2u, t);
        let mx = max(max(l0, l1), l2);
        let e0 = exp(l0 - mx);
        let e1 = exp(l1 - mx);
        let e2 = exp(l2 - mx);
        let zs = e0 + e1 + e2;
        let mix = (e0 / zs) * tile_get(O_L + c, t) + (e1 / zs) * tile_get(O_F + c, t) + (e2 / zs) * tile_get(O_D + c, t);
        let v = select(mix, x + mix, mp.residual == 1u);
        next[row * S + c] = v;
        // NaN and ±inf have an all-ones exponent. Checked on the bits: WGSL lets float math
        // assume there are no NaNs, so a float comparison could be optimised away.
        if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
            atomicMin(&bad[row / mp.cells], row % mp.cells);
        }
    }
}
