//! Work per cell-update, for throughput reports: matmul FLOPs (2 per multiply-add) of every
//! linear layer and per-neighbor product. Activations, norms and softmax are not counted.

use super::params::{EXTERNAL_INPUT, MoeShape};

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
