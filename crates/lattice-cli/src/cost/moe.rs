//! MoE work per cell-update: the matmul FLOPs of the whole update (throughput reports, the
//! reference system's count, zero inputs included) and the cost of each kernel as built
//! (`moe_prep`, `moe_gather`, `moe_update`), from the cell's mean neighbor counts per class.

use super::KernelCost;
use lattice_core::moe::MoeShape;
use lattice_core::moe::gather::record_width;
use lattice_core::moe::params::EXTERNAL_INPUT;

/// Mean neighbors of a cell per class: LOCAL, FUNCTIONAL, DISTANT.
pub type ClassCounts = [f64; 3];

/// FLOP of `LayerNorm` over `n` values: mean, variance, normalise and affine.
fn layer_norm(n: f64) -> f64 {
    8.0 * n + 2.0
}

/// The three MoE kernels' cost per cell-update.
pub fn kernels(sh: &MoeShape, counts: ClassCounts, ode_steps: u32) -> [KernelCost; 3] {
    let s = f64::from(sh.s);
    let (fh, fm) = (f64::from(sh.func_hidden), f64::from(sh.func_msg));
    let rec = record_width(sh) as f64;
    let [kl, kf, kd] = counts;
    let prep = KernelCost {
        kernel: "moe_prep",
        flop: 2.0 * fh * s,
        bytes: 4.0 * (s + fh),
    };
    // Per pair: LOCAL score, exp, weighted and plain sums; FUNCTIONAL GELU(P_j + qx), the
    // message and attention networks, tanh, exp, weighted sum, sum and |sum|; DISTANT a sum.
    let local_pair = 2.0 * s + 1.0 + 3.0 * s;
    let func_pair = 2.0 * fh
        + 2.0 * fm * fh
        + fm
        + 2.0 * fm * fm
        + 2.0 * fm
        + 2.0 * fm
        + 1.0
        + 2.0 * fm
        + 3.0 * s;
    let gather = KernelCost {
        kernel: "moe_gather",
        flop: 2.0 * fh * s + 2.0 * fm * s + kl * local_pair + kf * func_pair + kd * s + s + fm,
        // The cell's state and its neighbors' (once per cell), their prep vectors, the record
        // and the counts written, one index per neighbor.
        bytes: 4.0 * (s + fh + rec + 4.0 + kl + kf + kd),
    };
    let update = KernelCost {
        kernel: "moe_update",
        flop: update_flop(sh, ode_steps),
        // State, record and counts in, next state out. The activations stay in workgroup
        // memory and the weights (tens of kB, read once per tile of rows) in the caches.
        bytes: 4.0 * (s + rec + 4.0 + s),
    };
    [prep, gather, update]
}

/// The update's FLOP per cell. Every expert runs for every cell (an empty class's output is
/// replaced afterwards, not skipped), so the count does not depend on the neighbor counts.
fn update_flop(sh: &MoeShape, ode_steps: u32) -> f64 {
    let s = f64::from(sh.s);
    let [h1, h2, ph, fm, oh, gh] = [
        sh.local_h1,
        sh.local_h2,
        sh.local_ph,
        sh.func_msg,
        sh.ode_hidden,
        sh.gate_hidden,
    ]
    .map(f64::from);
    let (oh2, tw) = ((oh / 2.0).floor(), (oh / 4.0).floor());
    let mac = |o: f64, i: f64| 2.0 * o * i;
    // One CNF block: `ode_steps` Euler steps of LN, three layers (GELU after two), the time
    // term, LN and the update.
    let cnf_step = layer_norm(2.0 * s)
        + mac(oh, 2.0 * s)
        + 2.0 * oh
        + mac(oh2, oh)
        + 2.0 * oh2
        + mac(s, oh2)
        + s
        + 2.0 * tw
        + layer_norm(s)
        + 4.0 * s;
    let cnf = f64::from(ode_steps) * cnf_step;
    // LN(x) (the output without LOCAL neighbors) and the network with its own LN.
    let local = mac(h1, s)
        + 2.0 * h1
        + mac(h2, h1)
        + mac(ph, s + h2)
        + 2.0 * ph
        + mac(s, ph)
        + 2.0 * layer_norm(s)
        + 3.0 * s;
    let functional = s
        + mac(s / 2.0, 2.0 * s)
        + 2.0 * s / 2.0
        + mac(1.0, s / 2.0)
        + 2.0
        + 3.0 * mac(s, s + fm)
        + 4.0 * s
        + s
        + cnf
        + 6.0 * s
        + mac(s, 2.0 * s)
        + layer_norm(s)
        + 2.0 * s;
    let distant = s + cnf;
    let gating =
        layer_norm(s) + 3.0 * s + mac(gh, 2.0 * s) + 2.0 * gh + mac(3.0, gh) + 10.0 + 6.0 * s;
    local + functional + distant + gating
}

/// FLOPs of one cell-update with `counts` neighbors per class (LOCAL, FUNCTIONAL, DISTANT).
pub fn flops_per_cell(sh: &MoeShape, counts: [f64; 3], ode_steps: u32) -> f64 {
    let [s, h1, h2, ph, fh, fm, oh, gh] = [
        sh.s,
        sh.local_h1,
        sh.local_h2,
        sh.local_ph,
        sh.func_hidden,
        sh.func_msg,
        sh.ode_hidden,
        sh.gate_hidden,
    ]
    .map(f64::from);
    let mac = |a: f64, b: f64| 2.0 * a * b;
    let local_pair = mac(2.0, s) + s; // score, weighted sum, plain sum
    let func_pair = mac(fm, fh) + mac(fm, fm) + mac(1.0, fm) + 2.0 * s;
    let distant_pair = s;
    let prep = mac(fh, s);
    let begin = mac(fh, s) + mac(fm, s);
    let local = mac(h1, s) + mac(h2, h1) + mac(ph, s + h2) + mac(s, ph);
    let cnf = f64::from(ode_steps) * (mac(oh, 2.0 * s) + mac(oh / 2.0, oh) + mac(s, oh / 2.0));
    let gru_in = s + fm + f64::from(EXTERNAL_INPUT);
    let functional =
        mac(s / 2.0, 2.0 * s) + mac(1.0, s / 2.0) + 3.0 * mac(s, gru_in) + cnf + mac(s, 2.0 * s);
    let gating = mac(gh, 2.0 * s) + mac(3.0, gh);
    counts[0] * local_pair
        + counts[1] * func_pair
        + counts[2] * distant_pair
        + prep
        + begin
        + local
        + functional
        + cnf
        + gating
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S = 2, FH = 2, FM = 1, local 1/1/1, ODE hidden 4 (so 2 and a time width of 1), gating
    /// 2, one Euler step, one neighbor of each class; counted line by line from the WGSL.
    #[test]
    fn the_kernels_of_a_tiny_shape_match_a_hand_count() {
        let sh = MoeShape {
            s: 2,
            local_h1: 1,
            local_h2: 1,
            local_ph: 1,
            func_hidden: 2,
            func_msg: 1,
            ode_hidden: 4,
            gate_hidden: 2,
        };
        let [prep, gather, update] = kernels(&sh, [1.0, 1.0, 1.0], 1);
        // prep: 2 outputs × 2 multiply-adds; reads x (2), writes P (2).
        assert_eq!((prep.flop, prep.bytes), (8.0, 16.0));
        // gather: qx 8 + ax 4; LOCAL pair: score 4, exp 1, weighted sum 4, sum 2 = 11;
        // FUNCTIONAL pair: P + qx and GELU 4, message 4 + bias 1, attention 2, + ax and tanh
        // 2, score 2, exp 1, weighted sum 2, sum, |n| and its sum 6 = 24; DISTANT pair 2;
        // the two divisions at the end 3. Bytes: x 2, P 2, record 11, counts 4, 3 indices.
        assert_eq!(gather.flop, 12.0 + 11.0 + 24.0 + 2.0 + 3.0);
        assert_eq!(gather.bytes, 4.0 * (2.0 + 2.0 + 11.0 + 4.0 + 3.0));
        // update: LayerNorm(n) = 8n + 2. One CNF step: LN(4) 34, 4×4 layer 32, GELU and bias
        // 8, 2×4 layer 16, its GELU and bias 4, 2×2 layer 8, bias 2, time term 2, LN(2) 18,
        // Euler update 8 = 132. Local: agg1 4 + 2, agg2 2, proc1 6 + 2, proc2 4, two LN 36,
        // the α/β mix 6 = 62. Functional: activity 2, gate1 8 + 2, gate2 2 + 2, three GRU
        // gates over [x, m] 36, sigmoids and r·x 8, activity 2, CNF 132, blend 12, out 16,
        // LN 18, GELU and bias 4 = 244. Distant: mean 2 + CNF 132 = 134. Gating: LN 18,
        // activity 6, fc1 16 + 4, fc2 12, softmax 10, mix and residual 12 = 78.
        assert_eq!(update.flop, 62.0 + 244.0 + 134.0 + 78.0);
        // x, record and counts in, the next state out.
        assert_eq!(update.bytes, 4.0 * (2.0 + 11.0 + 4.0 + 2.0));
        // Predicated: a cell without neighbors of a class costs the same.
        let [_, _, alone] = kernels(&sh, [0.0, 0.0, 0.0], 1);
        assert_eq!(alone.flop, update.flop);
    }
}
