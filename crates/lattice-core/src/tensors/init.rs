//! Filling one tensor from its [`Init`] and its own ChaCha8 stream.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

use super::{Init, TensorSpec};

pub(super) fn fill(spec: &TensorSpec, rng: &mut ChaCha8Rng, dst: &mut [f32]) {
    match spec.init {
        Init::Const(v) => dst.fill(v),
        Init::Uniform { fan_in } => uniform(rng, dst, 1.0 / (fan_in as f32).sqrt()),
        Init::XavierUniform { fan_in, fan_out } => {
            uniform(rng, dst, (6.0 / (fan_in + fan_out) as f32).sqrt())
        }
        Init::Normal { std } => {
            let normal = Normal::new(0.0f32, std).expect("init std is finite and ≥ 0");
            for v in dst {
                *v = normal.sample(rng);
            }
        }
        Init::ConstRange { from, to, value } => {
            dst.fill(0.0);
            dst[from as usize..to as usize].fill(value);
        }
        Init::Orthogonal => {
            let (rows, cols) = match spec.shape[..] {
                [r, c] => (r as usize, c as usize),
                _ => panic!("orthogonal init needs a matrix, {} is not", spec.name),
            };
            orthogonal(rng, rows, cols, dst);
        }
    }
}

fn uniform(rng: &mut ChaCha8Rng, dst: &mut [f32], bound: f32) {
    for v in dst {
        *v = rng.random_range(-bound..bound);
    }
}

/// A `[rows, cols]` row-major matrix with orthonormal columns (rows ≥ cols) or rows: a Gaussian
/// matrix orthonormalised by modified Gram–Schmidt in f64, which gives the Q of its QR
/// factorisation with a positive diagonal of R, as `torch.nn.init.orthogonal_` does.
fn orthogonal(rng: &mut ChaCha8Rng, rows: usize, cols: usize, dst: &mut [f32]) {
    // Work on the taller orientation: vectors of length `len`, `count` of them.
    let (len, count) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let mut q: Vec<Vec<f64>> = (0..count)
        .map(|_| {
            (0..len)
                .map(|_| -> f64 { StandardNormal.sample(rng) })
                .collect()
        })
        .collect();
    for j in 0..count {
        let (done, rest) = q.split_at_mut(j);
        let v = &mut rest[0];
        for u in done.iter() {
            let d: f64 = u.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
            for (x, y) in v.iter_mut().zip(u) {
                *x -= d * y;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
    for (j, v) in q.iter().enumerate() {
        for (i, &x) in v.iter().enumerate() {
            // Vector j is column j of a tall matrix, or row j of a wide one.
            let at = if rows >= cols {
                i * cols + j
            } else {
                j * cols + i
            };
            dst[at] = x as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn orthogonal_columns_are_orthonormal() {
        for (rows, cols) in [(12usize, 4usize), (4, 12), (6, 6)] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let mut m = vec![0.0f32; rows * cols];
            orthogonal(&mut rng, rows, cols, &mut m);
            let (n, dot): (usize, Box<dyn Fn(usize, usize) -> f32>) = if rows >= cols {
                (
                    cols,
                    Box::new(|a, b| (0..rows).map(|i| m[i * cols + a] * m[i * cols + b]).sum()),
                )
            } else {
                (
                    rows,
                    Box::new(|a, b| (0..cols).map(|i| m[a * cols + i] * m[b * cols + i]).sum()),
                )
            };
            for a in 0..n {
                for b in 0..n {
                    let want = if a == b { 1.0 } else { 0.0 };
                    approx::assert_abs_diff_eq!(dot(a, b), want, epsilon = 1e-5);
                }
            }
        }
    }
}
