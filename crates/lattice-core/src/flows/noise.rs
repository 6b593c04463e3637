//! Seeded exploration noise that the CPU and the GPU draw identically: a counter-based hash of
//! (item seed, item-local flow id, step, axis) turned into N(0, 1) by Box–Muller. No state to carry, so
//! the noise a flow gets does not depend on batch composition or thread order. Twin of
//! `gauss` in lattice-gpu/shaders/shared/flow.wgsl.

/// PCG output hash (O'Neill), as `pcg` in the WGSL twin.
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Uniform in (0, 1] from 24 hash bits.
fn unit(h: u32) -> f32 {
    ((h >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// N(0, 1) for one (seed, flow id, step, axis).
pub fn gauss(seed: [u32; 2], flow: u32, step: u32, axis: u32) -> f32 {
    let a = pcg(seed[0] ^ pcg(seed[1] ^ pcg(flow ^ pcg(step.wrapping_mul(4).wrapping_add(axis)))));
    let b = pcg(a ^ 0x9e37_79b9);
    let r = (-2.0 * unit(a).ln()).sqrt();
    r * (std::f32::consts::TAU * unit(b)).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_standard_normal_and_keyed() {
        let n = 20_000;
        let xs: Vec<f32> = (0..n).map(|i| gauss([1, 2], i, 3, 0)).collect();
        let mean = xs.iter().sum::<f32>() / n as f32;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        approx::assert_abs_diff_eq!(mean, 0.0, epsilon = 0.03);
        approx::assert_abs_diff_eq!(var, 1.0, epsilon = 0.05);
        assert_ne!(gauss([1, 2], 5, 3, 0), gauss([1, 2], 5, 3, 1));
        assert_ne!(gauss([1, 2], 5, 3, 0), gauss([1, 2], 5, 4, 0));
    }

    #[test]
    fn noise_matches_values_computed_outside_the_engine() {
        // The PCG hash chain and Box–Muller in float64 (Python); f32 keeps ~1e-6 of it.
        approx::assert_abs_diff_eq!(gauss([1, 2], 5, 3, 0), -0.029_207_18, epsilon = 2e-6);
        approx::assert_abs_diff_eq!(gauss([7, 9], 0, 0, 2), 1.139_662_9, epsilon = 2e-6);
    }
}
