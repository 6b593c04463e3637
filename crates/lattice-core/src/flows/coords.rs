//! Normalized flow coordinates and arithmetic quantization (docs/model.md B2, and its
//! decisions).
//! x_n = 2x/(W−1) − 1, y_n = 2y/(H−1) − 1, z_n = 2z/D − 1; positions stay continuous, only the
//! surface index is discrete. Ties round half to even, as WGSL `round()` and `torch.round` do.

/// Normalized x (or y) of lattice column `i` on an axis of `n` points.
pub fn normalize_xy(i: u32, n: u32) -> f32 {
    2.0 * i as f32 / (n - 1) as f32 - 1.0
}

/// Normalized z of plane `k` of a lattice `d` deep (planes 0..=d).
pub fn normalize_z(k: u32, d: u32) -> f32 {
    2.0 * k as f32 / d as f32 - 1.0
}

/// The lattice column of normalized `v` on an axis of `n` points: round half to even, clamped.
/// Same formula as `quantize` in lattice-gpu/shaders/flow_aggregate.wgsl.
pub fn quantize(v: f32, n: u32) -> u32 {
    let top = (n - 1) as f32;
    let i = ((v + 1.0) * 0.5 * top).round_ties_even();
    i.clamp(0.0, top) as u32
}

/// Surface index `iy·W + ix` of a normalized position.
pub fn surface_index(x: f32, y: f32, w: u32, h: u32) -> u32 {
    quantize(y, h) * w + quantize(x, w)
}

/// Folds a coordinate that left [−1, 1] back in once (`v < −1 → −2 − v`, `v > 1 → 2 − v`),
/// then clamps what a single fold cannot bring back.
pub fn reflect(v: f32) -> f32 {
    let r = if v < -1.0 {
        -2.0 - v
    } else if v > 1.0 {
        2.0 - v
    } else {
        v
    };
    r.clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_points_map_exactly_and_edges_clamp() {
        for n in [2u32, 5, 20, 28, 100] {
            for i in 0..n {
                assert_eq!(quantize(normalize_xy(i, n), n), i, "n {n} i {i}");
            }
            assert_eq!(quantize(-1.7, n), 0);
            assert_eq!(quantize(1.3, n), n - 1);
        }
        // Half-way between columns 0 and 1 of 3 (x_n = −0.5) rounds to the even column 0;
        // half-way between 1 and 2 (x_n = 0.5) rounds to 2.
        assert_eq!(quantize(-0.5, 3), 0);
        assert_eq!(quantize(0.5, 3), 2);
        assert_eq!(surface_index(1.0, -1.0, 20, 20), 19);
        assert_eq!(surface_index(-1.0, 1.0, 20, 20), 19 * 20);
    }

    #[test]
    fn planes_normalize_from_minus_one_to_one_odd_depths_included() {
        assert_eq!(normalize_z(0, 10), -1.0);
        assert_eq!(normalize_z(5, 10), 0.0);
        assert_eq!(normalize_z(10, 10), 1.0);
        // The middle plane of an odd depth (D // 2) sits below z = 0.
        assert_eq!(normalize_z(2, 5), 2.0 * 2.0 / 5.0 - 1.0);
    }

    #[test]
    fn reflection_folds_once() {
        assert_eq!(reflect(1.25), 0.75);
        assert_eq!(reflect(-1.5), -0.5);
        assert_eq!(reflect(0.3), 0.3);
        assert_eq!(reflect(3.5), -1.0);
    }
}
