//! The per-cell MoE network (docs/model.md A6–A7) on the CPU, split in the same three
//! stages as the WGSL kernels:
//!
//! 1. **prep** (per cell j): the neighbor half of the functional message layer, `P_j = W_n·x_j`,
//!    computed once per cell and reused by every cell that has j as a neighbor;
//! 2. **gather** (per cell i): one walk over the neighbors producing the local attention
//!    aggregate, class sums, |n| sums for the functional activity, and the attention-weighted
//!    functional message `M` (in `gather.rs`, which evaluates the functional neighbors in
//!    SIMD-lane blocks);
//! 3. **update** (per cell i): the three experts, gating and the combine, from `x_i` and the
//!    gathered record alone.

use super::math::{exp, gelu, layer_norm, linear_t, sigmoid, tanh};
use super::params::{EXTERNAL_INPUT, MoeShape, ParamLayout};
use crate::config::Combine;

/// Offsets of one CNF block's tensors.
#[derive(Debug, Clone, Copy)]
pub struct CnfOffsets {
    pub norm_in: (usize, usize),
    pub mlp1: (usize, usize),
    pub mlp2: (usize, usize),
    pub mlp3: (usize, usize),
    pub time: Option<usize>,
    pub norm_out: (usize, usize),
    pub lambda: usize,
}

impl CnfOffsets {
    fn new(l: &ParamLayout, p: &str) -> Self {
        let o = |n: &str| l.offset(&format!("{p}.{n}")) as usize;
        let wb = |n: &str| (o(&format!("{n}.weight")), o(&format!("{n}.bias")));
        Self {
            norm_in: wb("norm_in"),
            mlp1: wb("mlp1"),
            mlp2: wb("mlp2"),
            mlp3: wb("mlp3"),
            time: l
                .get(&format!("{p}.time.weight"))
                .map(|t| t.offset as usize),
            norm_out: wb("norm_out"),
            lambda: o("lambda"),
        }
    }
}

/// The network with its weights and step settings, ready to evaluate cells.
pub struct MoeNet<'w> {
    pub w: &'w [f32],
    /// The same tensors with every linear weight transposed to `[in, out]` (same offsets), so
    /// layers run column by column (see `math::linear_t`).
    pub(super) wt: Vec<f32>,
    pub sh: MoeShape,
    pub combine: Combine,
    pub ode_steps: u32,
    pub(super) o: Offsets,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Offsets {
    l_agg1: (usize, usize),
    l_agg2: (usize, usize),
    l_proc1: (usize, usize),
    l_proc2: (usize, usize),
    l_norm: (usize, usize),
    l_alpha: usize,
    l_beta: usize,
    f_gate1: (usize, usize),
    f_gate2: (usize, usize),
    pub(super) f_msg1: (usize, usize),
    pub(super) f_msg2: (usize, usize),
    pub(super) f_att1: (usize, usize),
    pub(super) f_att2: (usize, usize),
    f_update: (usize, usize),
    f_reset: (usize, usize),
    f_cand: (usize, usize),
    f_cnf: CnfOffsets,
    f_out: (usize, usize),
    f_out_norm: (usize, usize),
    d_cnf: CnfOffsets,
    g_norm: (usize, usize),
    g_fc1: (usize, usize),
    g_fc2: (usize, usize),
}

impl<'w> MoeNet<'w> {
    pub fn new(layout: &ParamLayout, w: &'w [f32], combine: Combine, ode_steps: u32) -> Self {
        let wb = |p: &str| {
            (
                layout.offset(&format!("{p}.weight")) as usize,
                layout.offset(&format!("{p}.bias")) as usize,
            )
        };
        let o = Offsets {
            l_agg1: wb("local.agg1"),
            l_agg2: wb("local.agg2"),
            l_proc1: wb("local.proc1"),
            l_proc2: wb("local.proc2"),
            l_norm: wb("local.norm"),
            l_alpha: layout.offset("local.alpha") as usize,
            l_beta: layout.offset("local.beta") as usize,
            f_gate1: wb("functional.gate1"),
            f_gate2: wb("functional.gate2"),
            f_msg1: wb("functional.gnn.message1"),
            f_msg2: wb("functional.gnn.message2"),
            f_att1: wb("functional.gnn.attention1"),
            f_att2: wb("functional.gnn.attention2"),
            f_update: wb("functional.gnn.update_gate"),
            f_reset: wb("functional.gnn.reset_gate"),
            f_cand: wb("functional.gnn.candidate"),
            f_cnf: CnfOffsets::new(layout, "functional.cnf"),
            f_out: wb("functional.out"),
            f_out_norm: wb("functional.out_norm"),
            d_cnf: CnfOffsets::new(layout, "distant"),
            g_norm: wb("gating.norm"),
            g_fc1: wb("gating.fc1"),
            g_fc2: wb("gating.fc2"),
        };
        assert_eq!(w.len(), layout.total() as usize, "weights match the layout");
        let mut wt = w.to_vec();
        for t in layout.tensors.iter().filter(|t| t.shape.len() == 2) {
            let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
            let base = t.offset as usize;
            for r in 0..rows {
                for c in 0..cols {
                    wt[base + c * rows + r] = w[base + r * cols + c];
                }
            }
        }
        Self {
            w,
            wt,
            sh: layout.shape,
            combine,
            ode_steps,
            o,
        }
    }

    fn t(&self, off: usize, len: usize) -> &[f32] {
        &self.w[off..off + len]
    }

    fn lin(
        &self,
        wb: (usize, usize),
        inputs: usize,
        stride: usize,
        parts: &[&[f32]],
        out: &mut [f32],
    ) {
        let n = out.len();
        debug_assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), inputs);
        linear_t(
            &self.wt[wb.0..wb.0 + n * stride],
            self.t(wb.1, n),
            parts,
            out,
        );
    }

    fn norm(&self, wb: (usize, usize), v: &mut [f32]) {
        let n = v.len();
        layer_norm(v, self.t(wb.0, n), self.t(wb.1, n));
    }

    /// Stage 1: `P_j = W_n·x_j`, the neighbor columns of `functional.gnn.message1`, no bias.
    pub fn prep(&self, x: &[f32], p: &mut [f32]) {
        let n = p.len();
        // The first S input columns of message1 (transposed: the first S·n entries), no bias.
        let wt = &self.wt[self.o.f_msg1.0..self.o.f_msg1.0 + x.len() * n];
        p.fill(0.0);
        for (c, &v) in x.iter().enumerate() {
            for (o, w) in p.iter_mut().zip(&wt[c * n..(c + 1) * n]) {
                *o += w * v;
            }
        }
    }
}

/// Three expert outputs, nine functional-expert temporaries, four CNF temporaries.
const SCRATCH_VECTORS: usize = 16;

/// Stage 3 scratch, reused across cells.
pub struct Update {
    v: Vec<Vec<f32>>,
}

impl Update {
    pub fn new(sh: &MoeShape) -> Self {
        let widest = temp_width(sh) as usize;
        Self {
            v: (0..SCRATCH_VECTORS).map(|_| vec![0.0; widest]).collect(),
        }
    }
}

/// Workgroup memory the MoE GPU kernels plan for (the update's tile, the gather's chunk):
/// WebGPU's default limit, which every adapter offers.
pub const WORKGROUP_BUDGET_BYTES: u32 = 16384;

/// Invocations of a GPU update workgroup.
const UPDATE_WORKGROUP: u32 = 64;

/// Rows the GPU update kernel computes per workgroup at most: enough to fill its 64
/// invocations with (output, row) pairs on the small presets.
const UPDATE_TILE_MAX_ROWS: u32 = 8;

/// The GPU update kernel's workgroup layout: a tile of `rows` rows, each `row` floats of
/// workgroup memory (x, the record, three expert outputs, then `temps` floats that each phase
/// lays out its own way; the WGSL asserts its offsets against these numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateTile {
    pub temps: u32,
    pub row: u32,
    pub rows: u32,
    /// Invocations per row summing a LayerNorm's statistics (`LN_LANES`): as many as share
    /// the workgroup and whose partial sums fit the budget's remainder.
    pub ln_lanes: u32,
}

impl UpdateTile {
    pub fn new(sh: &MoeShape) -> Self {
        let s = sh.s;
        let cnf = 3 * s + sh.ode_hidden + sh.ode_hidden / 2;
        let temps = [
            s + sh.local_h1 + sh.local_h2 + sh.local_ph,
            8 * s + s / 2 + 1 + cnf,
            s + cnf,
            2 * s + sh.gate_hidden + 3,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let row = 9 * s + sh.func_msg + temps;
        let rows =
            (WORKGROUP_BUDGET_BYTES / Self::bytes_per_row(row)).clamp(1, UPDATE_TILE_MAX_ROWS);
        let spare_floats =
            WORKGROUP_BUDGET_BYTES.saturating_sub(rows * Self::bytes_per_row(row)) / 4;
        let ln_lanes = (UPDATE_WORKGROUP / rows).min(spare_floats / rows).max(1);
        Self {
            temps,
            row,
            rows,
            ln_lanes,
        }
    }

    /// Workgroup bytes of one row: its floats, its two normalisation statistics and its three
    /// neighbor counts.
    fn bytes_per_row(row: u32) -> u32 {
        4 * (row + 2 + 3)
    }

    /// Workgroup memory of the whole tile and the LayerNorm partial sums; over
    /// [`WORKGROUP_BUDGET_BYTES`] only for shapes whose one row does not fit it (they need an
    /// adapter with a larger limit).
    pub fn bytes(&self) -> u32 {
        self.rows * (Self::bytes_per_row(self.row) + 4 * self.ln_lanes)
    }
}

/// Width of one stage-3 temporary: the widest vector any expert builds.
fn temp_width(sh: &MoeShape) -> u32 {
    [
        2 * sh.s,
        sh.local_h1,
        sh.local_h2,
        sh.local_ph,
        sh.ode_hidden,
        sh.gate_hidden,
        sh.func_msg,
        3,
    ]
    .into_iter()
    .max()
    .unwrap_or(3)
}

impl MoeNet<'_> {
    /// Stage 3: the new state of a cell from its state `x` and its gathered `record`.
    pub fn update(
        &self,
        x: &[f32],
        record: &[f32],
        counts: [u32; 3],
        u: &mut Update,
        out: &mut [f32],
    ) {
        let sh = self.sh;
        let s = sh.s as usize;
        let (agg_l, rest) = record.split_at(s);
        let (sum_l, rest) = rest.split_at(s);
        let (sum_f, rest) = rest.split_at(s);
        let (abs_f, rest) = rest.split_at(s);
        let (sum_d, m_f) = rest.split_at(s);
        let [o_l, o_f, o_d, rest @ ..] = u.v.as_mut_slice() else {
            unreachable!("SCRATCH_VECTORS scratch vectors")
        };
        let (o_l, o_f, o_d) = (&mut o_l[..s], &mut o_f[..s], &mut o_d[..s]);

        self.local_expert(x, agg_l, counts[0], rest, o_l);
        if counts[1] > 0 {
            self.functional_expert(x, sum_f, abs_f, m_f, counts[1], rest, o_f);
        } else {
            o_f.fill(0.0);
        }
        if counts[2] > 0 {
            let [nbar, tail @ ..] = rest else {
                unreachable!()
            };
            let inv = counts[2] as f32;
            for c in 0..s {
                nbar[c] = sum_d[c] / inv;
            }
            self.cnf(&self.o.d_cnf, x, &nbar[..s], tail, o_d);
        } else {
            o_d.fill(0.0);
        }

        // Gating from [LN(x), mean of all neighbor states].
        let [xn, act, hid, logits, ..] = rest else {
            unreachable!()
        };
        // A validated cache never gives a cell zero neighbors; guard anyway so a direct call
        // cannot divide by zero.
        let total = (counts[0] + counts[1] + counts[2]).max(1) as f32;
        xn[..s].copy_from_slice(x);
        self.norm(self.o.g_norm, &mut xn[..s]);
        for c in 0..s {
            act[c] = (sum_l[c] + sum_f[c] + sum_d[c]) / total;
        }
        let gh = sh.gate_hidden as usize;
        self.lin(
            self.o.g_fc1,
            2 * s,
            2 * s,
            &[&xn[..s], &act[..s]],
            &mut hid[..gh],
        );
        for v in &mut hid[..gh] {
            *v = gelu(*v);
        }
        self.lin(self.o.g_fc2, gh, gh, &[&hid[..gh]], &mut logits[..3]);
        let mx = logits[0].max(logits[1]).max(logits[2]);
        let e = [0, 1, 2].map(|k| exp(logits[k] - mx));
        let z = e[0] + e[1] + e[2];
        let w = e.map(|v| v / z);
        for c in 0..s {
            let mix = w[0] * o_l[c] + w[1] * o_f[c] + w[2] * o_d[c];
            out[c] = match self.combine {
                Combine::Residual => x[c] + mix,
                Combine::Replace => mix,
            };
        }
    }

    fn local_expert(&self, x: &[f32], agg: &[f32], k: u32, tmp: &mut [Vec<f32>], out: &mut [f32]) {
        let sh = self.sh;
        let s = sh.s as usize;
        if k == 0 {
            out.copy_from_slice(x);
            self.norm(self.o.l_norm, out);
            return;
        }
        let [h1, f, ph, ..] = tmp else { unreachable!() };
        let (n1, n2, np) = (
            sh.local_h1 as usize,
            sh.local_h2 as usize,
            sh.local_ph as usize,
        );
        self.lin(self.o.l_agg1, s, s, &[agg], &mut h1[..n1]);
        for v in &mut h1[..n1] {
            *v = gelu(*v);
        }
        self.lin(self.o.l_agg2, n1, n1, &[&h1[..n1]], &mut f[..n2]);
        self.lin(
            self.o.l_proc1,
            s + n2,
            s + n2,
            &[x, &f[..n2]],
            &mut ph[..np],
        );
        for v in &mut ph[..np] {
            *v = gelu(*v);
        }
        self.lin(self.o.l_proc2, np, np, &[&ph[..np]], out);
        self.norm(self.o.l_norm, out);
        let (alpha, beta) = (self.w[self.o.l_alpha], self.w[self.o.l_beta]);
        for c in 0..s {
            out[c] = alpha * x[c] + beta * out[c];
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn functional_expert(
        &self,
        x: &[f32],
        sum_f: &[f32],
        abs_f: &[f32],
        m: &[f32],
        k: u32,
        tmp: &mut [Vec<f32>],
        out: &mut [f32],
    ) {
        let sh = self.sh;
        let s = sh.s as usize;
        let kf = k as f32;
        let [act, gh, g1, z, r, rx, cand, cnf, cat, rest @ ..] = tmp else {
            unreachable!()
        };
        // Gate between GNN (0) and CNF (1).
        for c in 0..s {
            act[c] = abs_f[c] / kf;
        }
        let half = s / 2;
        self.lin(
            self.o.f_gate1,
            2 * s,
            2 * s,
            &[x, &act[..s]],
            &mut gh[..half],
        );
        for v in &mut gh[..half] {
            *v = gelu(*v);
        }
        self.lin(self.o.f_gate2, half, half, &[&gh[..half]], &mut g1[..1]);
        let g = sigmoid(g1[0]);
        // GRU-style update with u = [x, M, ext = 0].
        let stride = s + sh.func_msg as usize + EXTERNAL_INPUT as usize;
        let inputs = s + m.len();
        self.lin(self.o.f_update, inputs, stride, &[x, m], &mut z[..s]);
        self.lin(self.o.f_reset, inputs, stride, &[x, m], &mut r[..s]);
        for c in 0..s {
            z[c] = sigmoid(z[c]);
            rx[c] = sigmoid(r[c]) * x[c];
        }
        self.lin(
            self.o.f_cand,
            inputs,
            stride,
            &[&rx[..s], m],
            &mut cand[..s],
        );
        // CNF over the mean functional neighbor, into `cnf`.
        for c in 0..s {
            act[c] = sum_f[c] / kf;
        }
        self.cnf(&self.o.f_cnf, x, &act[..s], rest, &mut cnf[..s]);
        for c in 0..s {
            let gnn = (1.0 - z[c]) * x[c] + z[c] * tanh(cand[c]);
            cat[c] = (1.0 - g) * gnn;
            cat[s + c] = g * cnf[c];
        }
        self.lin(self.o.f_out, 2 * s, 2 * s, &[&cat[..2 * s]], out);
        self.norm(self.o.f_out_norm, out);
        for v in out.iter_mut() {
            *v = gelu(*v);
        }
    }

    /// Fixed-step Euler of `f(t, x) = LN_out(MLP(LN_in([x, n̄])) + pad(W_t·t)) − |λ|·x`
    /// over t ∈ [0, 1), dt = 1 / ode_steps; returns the final state in `out`.
    fn cnf(&self, o: &CnfOffsets, x: &[f32], nbar: &[f32], tmp: &mut [Vec<f32>], out: &mut [f32]) {
        let sh = self.sh;
        let s = sh.s as usize;
        let (h, h2) = (sh.ode_hidden as usize, sh.ode_hidden as usize / 2);
        let [u, a, b, f, ..] = tmp else {
            unreachable!()
        };
        let lambda = self.w[o.lambda].abs();
        let dt = 1.0 / self.ode_steps as f32;
        out.copy_from_slice(x);
        for step in 0..self.ode_steps {
            let t = step as f32 / self.ode_steps as f32;
            u[..s].copy_from_slice(out);
            u[s..2 * s].copy_from_slice(nbar);
            self.norm(o.norm_in, &mut u[..2 * s]);
            self.lin(o.mlp1, 2 * s, 2 * s, &[&u[..2 * s]], &mut a[..h]);
            for v in &mut a[..h] {
                *v = gelu(*v);
            }
            self.lin(o.mlp2, h, h, &[&a[..h]], &mut b[..h2]);
            for v in &mut b[..h2] {
                *v = gelu(*v);
            }
            self.lin(o.mlp3, h2, h2, &[&b[..h2]], &mut f[..s]);
            if let Some(tw) = o.time {
                let width = sh.time_width() as usize;
                for (v, w) in f[..width].iter_mut().zip(&self.w[tw..tw + width]) {
                    *v += w * t;
                }
            }
            self.norm(o.norm_out, &mut f[..s]);
            for c in 0..s {
                out[c] += dt * (f[c] - lambda * out[c]);
            }
        }
    }
}
