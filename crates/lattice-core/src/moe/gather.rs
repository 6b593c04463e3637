//! Stage 2 of the MoE step on the CPU: one walk over a cell's neighbors producing the record the
//! update stage reads (local attention aggregate, class sums, |n| sums, and the attention-weighted
//! functional message `M`).
//!
//! The functional message and attention MLPs are most of the step's work (≈90 % of its FLOPs at
//! every preset). The walk only collects the functional neighbors; [`Gather::finish`] then runs
//! those MLPs [`LANES`] neighbors at a time on `[feature][lane]` blocks, so every inner loop
//! (matrix products, GELU, tanh) runs across lanes and vectorises. The softmax over the logits is
//! then a plain two-pass one. The WGSL twin (`moe_gather.wgsl`) evaluates the same formulas for
//! a tile of cells, a chunk of neighbors at a time, with a softmax online per chunk; the two
//! agree to rounding.

use super::math::{OnlineSoftmax, exp, gelu, linear_t, tanh};
use super::net::MoeNet;
use super::params::MoeShape;

/// Functional neighbors evaluated together, one per SIMD lane (8 = one AVX register of f32,
/// two SSE ones).
pub const LANES: usize = 8;
type Lanes = [f32; LANES];

/// Width of a gathered record: agg_L, sum_L, sum_F, abs_F, sum_D (S each), then M (msg).
pub fn record_width(sh: &MoeShape) -> usize {
    5 * sh.s as usize + sh.func_msg as usize
}

/// Stage 2 state for one cell: call `begin`, then `local` / `functional` / `distant` for each
/// neighbor in class order, then `finish`. Reused across cells (no allocation per cell once
/// warm).
pub struct Gather {
    s: usize,
    hid: usize,
    msg: usize,
    pub record: Vec<f32>,
    pub counts: [u32; 3],
    /// The x halves of message1 and attention1, biases included.
    qx: Vec<f32>,
    ax: Vec<f32>,
    local_sm: OnlineSoftmax,
    /// Functional neighbor cells, in walk order.
    func: Vec<u32>,
    /// Per-block temporaries: hidden `[hid][lane]`, message and attention `[msg][lane]`.
    h: Vec<Lanes>,
    m: Vec<Lanes>,
    a: Vec<Lanes>,
    /// Per functional neighbor: its attention logit (then softmax weight) and its message.
    scores: Vec<f32>,
    msgs: Vec<f32>,
}

impl Gather {
    pub fn new(sh: &MoeShape) -> Self {
        let (s, hid, msg) = (sh.s as usize, sh.func_hidden as usize, sh.func_msg as usize);
        Self {
            s,
            hid,
            msg,
            record: vec![0.0; record_width(sh)],
            counts: [0; 3],
            qx: vec![0.0; hid],
            ax: vec![0.0; msg],
            local_sm: OnlineSoftmax::new(),
            func: Vec::new(),
            h: vec![[0.0; LANES]; hid],
            m: vec![[0.0; LANES]; msg],
            a: vec![[0.0; LANES]; msg],
            scores: Vec::new(),
            msgs: Vec::new(),
        }
    }

    /// Resets for cell state `x`: the x halves of message1 and attention1 (with their biases).
    pub fn begin(&mut self, net: &MoeNet<'_>, x: &[f32]) {
        self.record.fill(0.0);
        self.counts = [0; 3];
        self.local_sm = OnlineSoftmax::new();
        self.func.clear();
        let (s, hid, msg) = (self.s, self.hid, self.msg);
        // x columns of message1 and attention1 (transposed: after the first S resp. msg inputs).
        let (w1, b1) = net.o.f_msg1;
        linear_t(
            &net.wt[w1 + s * hid..w1 + 2 * s * hid],
            &net.w[b1..b1 + hid],
            &[x],
            &mut self.qx,
        );
        let (wa, ba) = net.o.f_att1;
        linear_t(
            &net.wt[wa + msg * msg..wa + (msg + s) * msg],
            &net.w[ba..ba + msg],
            &[x],
            &mut self.ax,
        );
    }

    pub fn local(&mut self, x: &[f32], n: &[f32]) {
        let s = self.s;
        let mut score = 0.0f32;
        for c in 0..s {
            score += n[c] * x[c];
        }
        let (agg, rest) = self.record.split_at_mut(s);
        self.local_sm.push(score, n, agg);
        for (a, v) in rest[..s].iter_mut().zip(n) {
            *a += v;
        }
        self.counts[0] += 1;
    }

    /// A functional neighbor: cell `j` with state `n`. Its message is computed in `finish`.
    pub fn functional(&mut self, n: &[f32], j: u32) {
        let s = self.s;
        let sums = &mut self.record[2 * s..4 * s];
        let (sum, abs) = sums.split_at_mut(s);
        for c in 0..s {
            sum[c] += n[c];
            abs[c] += n[c].abs();
        }
        self.func.push(j);
        self.counts[1] += 1;
    }

    pub fn distant(&mut self, n: &[f32]) {
        let s = self.s;
        for (a, v) in self.record[4 * s..5 * s].iter_mut().zip(n) {
            *a += v;
        }
        self.counts[2] += 1;
    }

    /// Computes the functional messages from `prep` (`P_j = W_n·x_j` of every cell, `[N, hid]`)
    /// and normalises both softmax accumulators.
    pub fn finish(&mut self, net: &MoeNet<'_>, prep: &[f32]) {
        let s = self.s;
        if self.counts[0] > 0 {
            self.local_sm.finish(&mut self.record[..s]);
        }
        if self.counts[1] > 0 {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { self.functional_messages_avx2(net, prep) };
                return;
            }
            self.functional_messages(net, prep);
        }
    }

    /// [`Self::functional_messages`] compiled for AVX2 (8 lanes per instruction instead of 4).
    /// Rust never fuses a multiply and an add, and the sums keep their order, so the result is
    /// bit-identical to the baseline build's.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn functional_messages_avx2(&mut self, net: &MoeNet<'_>, prep: &[f32]) {
        self.functional_messages(net, prep);
    }

    /// `M = Σ_j softmax(e)_j · m_j` over the functional neighbors, where
    /// `m_j = W2·GELU(P_j + W_x·x + b1) + b2` and `e_j = w_e·tanh(W_m·m_j + W_a·x + b_a) + b_e`.
    #[inline(always)]
    fn functional_messages(&mut self, net: &MoeNet<'_>, prep: &[f32]) {
        let (s, hid, msg) = (self.s, self.hid, self.msg);
        let w = net.w;
        let (w2, b2) = net.o.f_msg2; // [msg, hid]
        let (wa, _) = net.o.f_att1; // [msg, msg + S]: the first msg columns multiply m
        let (we, be) = net.o.f_att2; // [1, msg]
        self.scores.clear();
        self.msgs.clear();
        for block in self.func.chunks(LANES) {
            // Lanes past the block's end keep the previous block's (finite) values, unused.
            for (l, &j) in block.iter().enumerate() {
                let p = &prep[j as usize * hid..(j as usize + 1) * hid];
                for ((h, p), q) in self.h.iter_mut().zip(p).zip(&self.qx) {
                    h[l] = p + q;
                }
            }
            for v in self.h.as_flattened_mut() {
                *v = gelu(*v);
            }
            for (o, m) in self.m.iter_mut().enumerate() {
                let mut acc = [0.0f32; LANES];
                for (wk, h) in w[w2 + o * hid..w2 + (o + 1) * hid].iter().zip(&self.h) {
                    for l in 0..LANES {
                        acc[l] += wk * h[l];
                    }
                }
                let b = w[b2 + o];
                for (m, v) in m.iter_mut().zip(acc) {
                    *m = v + b;
                }
            }
            for (o, a) in self.a.iter_mut().enumerate() {
                let row = wa + o * (msg + s);
                let mut acc = [0.0f32; LANES];
                for (wc, m) in w[row..row + msg].iter().zip(&self.m) {
                    for l in 0..LANES {
                        acc[l] += wc * m[l];
                    }
                }
                // Plain loops, not `array::map`, whose closure call does not vectorise.
                let ax = self.ax[o];
                for l in 0..LANES {
                    a[l] = tanh(acc[l] + ax);
                }
            }
            let mut e = [0.0f32; LANES];
            for (wk, a) in w[we..we + msg].iter().zip(&self.a) {
                for l in 0..LANES {
                    e[l] += wk * a[l];
                }
            }
            for l in 0..block.len() {
                self.scores.push(e[l] + w[be]);
                self.msgs.extend(self.m.iter().map(|m| m[l]));
            }
        }
        let max = self.scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for e in self.scores.iter_mut() {
            *e = exp(*e - max);
        }
        let denom: f32 = self.scores.iter().sum();
        let acc = &mut self.record[5 * s..5 * s + msg];
        for (wj, mj) in self.scores.iter().zip(self.msgs.chunks_exact(msg)) {
            for (a, v) in acc.iter_mut().zip(mj) {
                *a += wj * v;
            }
        }
        for a in acc.iter_mut() {
            *a /= denom;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Combine;
    use crate::math::OnlineSoftmax;
    use crate::moe::{MoeShape, MoeWeights, ParamLayout};

    /// States of `cells` cells and their prep vectors, from a fixed formula.
    fn cells(net: &MoeNet<'_>, cells: usize) -> (Vec<f32>, Vec<f32>) {
        let (s, hid) = (net.sh.s as usize, net.sh.func_hidden as usize);
        let states: Vec<f32> = (0..cells * s)
            .map(|k| ((k * 7919) % 113) as f32 / 40.0 - 1.4)
            .collect();
        let mut prep = vec![0.0; cells * hid];
        for (x, p) in states.chunks(s).zip(prep.chunks_mut(hid)) {
            net.prep(x, p);
        }
        (states, prep)
    }

    /// The functional message of cell 0 over neighbors 1..=k, one neighbor at a time with an
    /// online softmax, written straight from the formulas.
    fn reference(net: &MoeNet<'_>, states: &[f32], k: usize) -> Vec<f32> {
        let sh = net.sh;
        let (s, hid, msg) = (sh.s as usize, sh.func_hidden as usize, sh.func_msg as usize);
        let w = net.w;
        let x = &states[..s];
        let (w1, b1) = net.o.f_msg1;
        let (w2, b2) = net.o.f_msg2;
        let (wa, ba) = net.o.f_att1;
        let (we, be) = net.o.f_att2;
        let mut sm = OnlineSoftmax::new();
        let mut acc = vec![0.0f32; msg];
        for j in 1..=k {
            let n = &states[j * s..(j + 1) * s];
            // message1 over [n, x], 2S inputs.
            let h: Vec<f32> = (0..hid)
                .map(|o| {
                    let row = &w[w1 + o * 2 * s..w1 + (o + 1) * 2 * s];
                    let z: f32 = n.iter().chain(x).zip(row).map(|(a, b)| a * b).sum();
                    gelu(z + w[b1 + o])
                })
                .collect();
            let m: Vec<f32> = (0..msg)
                .map(|o| {
                    let row = &w[w2 + o * hid..w2 + (o + 1) * hid];
                    h.iter().zip(row).map(|(a, b)| a * b).sum::<f32>() + w[b2 + o]
                })
                .collect();
            let e: f32 = (0..msg)
                .map(|o| {
                    let row = &w[wa + o * (msg + s)..wa + (o + 1) * (msg + s)];
                    let z: f32 = m.iter().chain(x).zip(row).map(|(a, b)| a * b).sum();
                    w[we + o] * (z + w[ba + o]).tanh()
                })
                .sum::<f32>()
                + w[be];
            sm.push(e, &m, &mut acc);
        }
        sm.finish(&mut acc);
        acc
    }

    fn gathered(net: &MoeNet<'_>, states: &[f32], k: usize) -> Gather {
        let s = net.sh.s as usize;
        let mut g = Gather::new(&net.sh);
        g.begin(net, &states[..s]);
        for j in 1..=k {
            g.functional(&states[j * s..(j + 1) * s], j as u32);
        }
        g
    }

    #[test]
    fn blocked_functional_messages_match_the_formulas() {
        let layout = ParamLayout::new(MoeShape::DEBUG);
        let weights = MoeWeights::seeded(layout.clone(), 7);
        let net = MoeNet::new(&layout, &weights.data, Combine::Residual, 3);
        let (s, msg) = (net.sh.s as usize, net.sh.func_msg as usize);
        let (states, prep) = cells(&net, 40);
        // One partial block, exactly one block, several blocks with a partial tail.
        for k in [3, LANES, 2 * LANES + 5, 39] {
            let mut g = gathered(&net, &states, k);
            g.finish(&net, &prep);
            let want = reference(&net, &states, k);
            let got = &g.record[5 * s..5 * s + msg];
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 2e-6 * b.abs().max(1.0),
                    "k {k}: {a} vs {b}"
                );
            }
            assert_eq!(g.counts, [0, k as u32, 0]);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_build_is_bit_identical_to_the_baseline() {
        if !std::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU: only the baseline build runs here");
            return;
        }
        // EXPERIMENT's sizes (S 64, functional 32/16): messages span several registers.
        let layout = ParamLayout::new(MoeShape::EXPERIMENT);
        let weights = MoeWeights::seeded(layout.clone(), 11);
        let net = MoeNet::new(&layout, &weights.data, Combine::Residual, 3);
        let (states, prep) = cells(&net, 60);
        let mut base = gathered(&net, &states, 59);
        let mut avx2 = gathered(&net, &states, 59);
        base.functional_messages(&net, &prep);
        // SAFETY: AVX2 support checked above.
        unsafe { avx2.functional_messages_avx2(&net, &prep) };
        let bits = |g: &Gather| g.record.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&base), bits(&avx2));
    }
}
