//! Scalar building blocks of the MoE and flow networks. `lattice-gpu/shaders/shared/nn.wgsl`
//! and `act.wgsl` implement the same functions with the same constants and the same order of
//! operations; only `exp` and `tanh` differ in how they are evaluated (the driver's builtins on
//! the GPU, branch-free polynomials here that vectorise), both within 4·10⁻⁷ of exact.

/// PyTorch's LayerNorm epsilon.
pub const LN_EPS: f32 = 1e-5;

/// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5·10⁻⁷): WGSL has no erf, and both
/// backends must evaluate the same formula.
#[inline]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_72,
        1.421_413_8,
        -1.453_152_1,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let y = 1.0 - poly * exp(-ax * ax);
    y.copysign(x)
}

/// e^x without a libm call and without branches, so loops over slices vectorise:
/// e^x = 2^n · e^y with n = round(x·log₂e) and |y| ≤ ln2/2, e^y by its degree-7 Taylor
/// polynomial (relative error < 4·10⁻⁷, rounding included: far inside the tolerances the GPU
/// twins are held to). x is clamped to [−87.3, 88], where 2^n stays a normal f32.
#[inline]
pub fn exp(x: f32) -> f32 {
    let (two_n, q) = exp_parts(x);
    two_n + two_n * q
}

/// e^x − 1, accurate near 0 too (where e^x − 1 would cancel): 2^n − 1 + 2^n·(e^y − 1), exact
/// when n = 0. Same reduction and polynomial as [`exp`].
#[inline]
pub fn expm1(x: f32) -> f32 {
    let (two_n, q) = exp_parts(x);
    (two_n - 1.0) + two_n * q
}

/// (2^n, e^y − 1) with x = n·ln2 + y, |y| ≤ ln2/2, for x clamped to [−87.3, 88].
#[inline]
fn exp_parts(x: f32) -> (f32, f32) {
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer (ties to even).
    const ROUND: f32 = 12_582_912.0;
    // 2^n from the bits of n + 127 + 2²³, whose low mantissa bits hold the biased exponent
    // n + 127 ∈ [1, 254]: shifting them into the exponent field needs no float→int conversion
    // (Rust's saturating `as` would keep loops from vectorising).
    const BIAS: f32 = 8_388_735.0; // 2²³ + 127
    let x = x.clamp(-87.3, 88.0);
    let t = x * std::f32::consts::LOG2_E;
    let n = (t + ROUND) - ROUND;
    // y = x − n·ln2 in two parts (Cody–Waite), so y keeps x's precision.
    let y = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let q = y
        * (1.0
            + y * (0.5
                + y * (1.0 / 6.0
                    + y * (1.0 / 24.0
                        + y * (1.0 / 120.0 + y * (1.0 / 720.0 + y * (1.0 / 5040.0)))))));
    (f32::from_bits((n + BIAS).to_bits() << 23), q)
}

/// tanh without branches or selects: tanh|x| = E/(E + 2) with E = e^{2|x|} − 1 from [`expm1`],
/// which keeps full relative precision near 0; the sign is copied back.
#[inline]
pub fn tanh(x: f32) -> f32 {
    let e = expm1(2.0 * x.abs());
    (e / (e + 2.0)).copysign(x)
}

/// Exact (erf) GELU, as `torch.nn.GELU()`.
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `out[o] = Σ_k W[o, k]·in[k] + b[o]`, where `in` is the concatenation of `parts` and `W` has
/// `stride` columns (columns past the parts multiply zeros and are skipped). Sums run over k in
/// ascending order and the bias is added last.
#[inline]
pub fn linear(w: &[f32], b: &[f32], stride: usize, parts: &[&[f32]], out: &mut [f32]) {
    for (o, y) in out.iter_mut().enumerate() {
        let row = &w[o * stride..(o + 1) * stride];
        let mut acc = 0.0f32;
        let mut k = 0;
        for part in parts {
            for &v in *part {
                acc += row[k] * v;
                k += 1;
            }
        }
        *y = acc + b[o];
    }
}

/// [`linear`] on a transposed weight (`wt` is `[in, out]`, `n_out` wide). Each output is still
/// summed over k in ascending order with the bias added last, so the result is bit-identical to
/// `linear`. The inner loops run across outputs and vectorise: small layers (the MoE experts,
/// whose weights stay in L1) keep blocks of outputs in registers; larger ones (the flows'
/// networks) stream the weight matrix once, in memory order, accumulating into `out`.
#[inline]
pub fn linear_t(wt: &[f32], b: &[f32], parts: &[&[f32]], out: &mut [f32]) {
    let n = out.len();
    let inputs: usize = parts.iter().map(|p| p.len()).sum();
    if n > 64 || inputs * n > 8192 {
        out.fill(0.0);
        let mut k = 0;
        for part in parts {
            for &v in *part {
                for (o, w) in out.iter_mut().zip(&wt[k * n..(k + 1) * n]) {
                    *o += w * v;
                }
                k += 1;
            }
        }
        for (o, bias) in out.iter_mut().zip(b) {
            *o += bias;
        }
        return;
    }
    let mut o = 0;
    while n - o >= 8 {
        linear_t_block::<8>(wt, b, parts, out, o);
        o += 8;
    }
    if n - o >= 4 {
        linear_t_block::<4>(wt, b, parts, out, o);
        o += 4;
    }
    while o < n {
        linear_t_block::<1>(wt, b, parts, out, o);
        o += 1;
    }
}

/// Outputs `o0..o0 + W` of [`linear_t`], accumulated in registers.
#[inline(always)]
fn linear_t_block<const W: usize>(
    wt: &[f32],
    b: &[f32],
    parts: &[&[f32]],
    out: &mut [f32],
    o0: usize,
) {
    let n = out.len();
    let mut acc = [0.0f32; W];
    let mut k = 0;
    for part in parts {
        for &v in *part {
            let col = &wt[k * n + o0..k * n + o0 + W];
            for l in 0..W {
                acc[l] += col[l] * v;
            }
            k += 1;
        }
    }
    for l in 0..W {
        out[o0 + l] = acc[l] + b[o0 + l];
    }
}

/// In-place LayerNorm with affine weights.
#[inline]
pub fn layer_norm(v: &mut [f32], weight: &[f32], bias: &[f32]) {
    let n = v.len() as f32;
    let mut sum = 0.0f32;
    for &x in v.iter() {
        sum += x;
    }
    let mean = sum / n;
    let mut var = 0.0f32;
    for &x in v.iter() {
        var += (x - mean) * (x - mean);
    }
    let inv = 1.0 / (var / n + LN_EPS).sqrt();
    for (k, x) in v.iter_mut().enumerate() {
        *x = (*x - mean) * inv * weight[k] + bias[k];
    }
}

/// Single-pass (online) softmax-weighted sum: feed (score, value) pairs, read the weighted mean.
#[derive(Debug, Clone)]
pub struct OnlineSoftmax {
    pub max: f32,
    pub denom: f32,
}

impl OnlineSoftmax {
    pub fn new() -> Self {
        Self {
            max: f32::NEG_INFINITY,
            denom: 0.0,
        }
    }

    /// Adds `value` with logit `score` into `acc`.
    #[inline]
    pub fn push(&mut self, score: f32, value: &[f32], acc: &mut [f32]) {
        if score > self.max {
            let scale = exp(self.max - score);
            for a in acc.iter_mut() {
                *a *= scale;
            }
            self.denom *= scale;
            self.max = score;
        }
        let w = exp(score - self.max);
        for (a, v) in acc.iter_mut().zip(value) {
            *a += w * v;
        }
        self.denom += w;
    }

    /// Divides the accumulated sum by the normaliser.
    #[inline]
    pub fn finish(&self, acc: &mut [f32]) {
        for a in acc.iter_mut() {
            *a /= self.denom;
        }
    }
}

impl Default for OnlineSoftmax {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_gelu_are_close_to_exact() {
        // Reference values of erf from a high-precision table.
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (-2.0, -0.995_322_265_018_952_7),
            (3.5, 0.999_999_256_901_627_7),
        ] {
            assert!((f64::from(erf(x)) - want).abs() < 3e-7, "erf({x})");
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
    }

    #[test]
    fn fast_exp_and_tanh_match_libm() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let (e, want) = (exp(x), x.exp());
            assert!(
                (e - want).abs() <= 3e-7 * want,
                "exp({x}) = {e}, libm {want}"
            );
            let (m, want) = (expm1(x), x.exp_m1());
            assert!(
                (m - want).abs() <= 3e-7 * want.abs(),
                "expm1({x}) = {m}, libm {want}"
            );
            let (t, want) = (tanh(x), x.tanh());
            assert!(
                (t - want).abs() <= 3e-7 * want.abs().max(1e-3),
                "tanh({x}) = {t}, libm {want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(-200.0), exp(-87.3));
        assert!(exp(100.0).is_finite());
        assert_eq!(tanh(0.0), 0.0);
        for tiny in [1e-3f32, -2.5e-5, 1e-9] {
            assert!(
                (expm1(tiny) / tiny.exp_m1() - 1.0).abs() < 3e-7,
                "expm1({tiny})"
            );
            assert!(
                (tanh(tiny) / tiny.tanh() - 1.0).abs() < 3e-7,
                "tanh({tiny})"
            );
        }
        assert!(tanh(f32::NAN).is_nan() && exp(f32::NAN).is_nan());
    }

    #[test]
    fn online_softmax_equals_two_pass() {
        let scores = [0.3f32, -1.0, 2.5, 2.4];
        let values = [[1.0f32, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]];
        let mut acc = [0.0f32; 2];
        let mut sm = OnlineSoftmax::new();
        for (s, v) in scores.iter().zip(&values) {
            sm.push(*s, v, &mut acc);
        }
        sm.finish(&mut acc);
        let z: f32 = scores.iter().map(|s| s.exp()).sum();
        for c in 0..2 {
            let want: f32 = scores
                .iter()
                .zip(&values)
                .map(|(s, v)| s.exp() / z * v[c])
                .sum();
            assert!((acc[c] - want).abs() < 1e-6);
        }
    }

    #[test]
    fn linear_t_is_bit_identical_to_linear() {
        // Every path of linear_t: register blocks of 8, 4 and 1, and the streaming one (more
        // than 64 outputs, or more than 8192 weights).
        for (n, a, c) in [
            (1usize, 5usize, 7usize),
            (3, 5, 7),
            (4, 5, 7),
            (12, 5, 7),
            (13, 5, 7),
            (24, 5, 7),
            (64, 5, 7),
            (65, 5, 7),
            (200, 5, 7),
            (16, 300, 400),
        ] {
            let w: Vec<f32> = (0..n * (a + c))
                .map(|k| ((k * 37) % 101) as f32 / 17.0 - 3.0)
                .collect();
            let mut wt = vec![0.0; w.len()];
            for o in 0..n {
                for k in 0..a + c {
                    wt[k * n + o] = w[o * (a + c) + k];
                }
            }
            let b: Vec<f32> = (0..n).map(|o| o as f32 * 0.1 - 1.0).collect();
            let x: Vec<f32> = (0..a + c).map(|k| (k as f32).sin()).collect();
            let parts: [&[f32]; 2] = [&x[..a], &x[a..]];
            let (mut want, mut got) = (vec![0.0; n], vec![0.0; n]);
            linear(&w, &b, a + c, &parts, &mut want);
            linear_t(&wt, &b, &parts, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "n = {n}");
        }
    }

    #[test]
    fn layer_norm_normalises() {
        let mut v = [1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut v, &[1.0; 4], &[0.0; 4]);
        let mean: f32 = v.iter().sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6);
        assert!((v[3] - 1.341_635_5).abs() < 1e-4);
    }
}
