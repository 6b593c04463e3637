//! Completed flows back onto the W×H surface (docs/model.md B9 and its decisions): per item,
//! plane and cell, a softmax over `w = |e|·1/(1 + dist)·(1 + 0.1·steps)` weights the flows'
//! energies, in f32. Each cell's flows are sorted by (w, e) before summing, so the surface is
//! bit-identical whatever order the flows are stored in.

use rayon::prelude::*;

use super::coords::surface_index;
use super::params::FlowShape;
use super::state::{FlowState, status};

/// Surfaces of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Surfaces {
    /// `[items, 2, H, W]`: front (z = −1) then back (z = +1).
    pub planes: Vec<f32>,
    /// `[items, H, W]`: both planes' flows in one softmax (the reference system's output).
    pub merged: Vec<f32>,
    /// `[items, 2, H, W]`: how many flows landed in each cell of `planes` (0: the cell's
    /// value is no flow's, just the empty softmax's 0).
    pub landed: Vec<u32>,
}

/// The aggregation weight of a completed flow.
pub fn weight(p: [f32; 4], steps: u32) -> f32 {
    let dist = (p[2] + 1.0).abs().min((p[2] - 1.0).abs());
    p[3].abs() * (1.0 / (1.0 + dist)) * (1.0 + 0.1 * steps as f32)
}

/// Softmax-weighted energy of one cell's flows, `(w, e)` pairs in any order.
pub fn softmax_energy(flows: &mut [(f32, f32)]) -> f32 {
    if flows.is_empty() {
        return 0.0;
    }
    flows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let max = flows[flows.len() - 1].0;
    let (mut num, mut den) = (0.0f32, 0.0f32);
    for &(w, e) in flows.iter() {
        let x = (w - max).exp();
        num += x * e;
        den += x;
    }
    num / (den + 1e-12)
}

/// Surfaces of every item of a batch from its completion records.
pub fn aggregate(shape: &FlowShape, state: &FlowState) -> Surfaces {
    let wh = shape.surface() as usize;
    let per_item: Vec<(Vec<f32>, Vec<f32>, Vec<u32>)> = (0..state.items)
        .into_par_iter()
        .map(|b| {
            // groups[plane][cell]; plane 2 is the merged surface.
            let mut groups: Vec<Vec<Vec<(f32, f32)>>> = vec![vec![Vec::new(); wh]; 3];
            for d in state.done_of(b) {
                let plane = if d.plane == status::FRONT { 0 } else { 1 };
                let p = d.pos;
                let cell = surface_index(p[0], p[1], shape.w, shape.h) as usize;
                let pair = (weight(p, d.steps), p[3]);
                groups[plane][cell].push(pair);
                groups[2][cell].push(pair);
            }
            let landed = groups[..2]
                .iter()
                .flatten()
                .map(|f| f.len() as u32)
                .collect();
            let mut out: Vec<Vec<f32>> = groups
                .into_iter()
                .map(|g| g.into_iter().map(|mut f| softmax_energy(&mut f)).collect())
                .collect();
            let merged = out.pop().expect("three surfaces");
            (out.concat(), merged, landed)
        })
        .collect();
    let mut surfaces = Surfaces {
        planes: Vec::new(),
        merged: Vec::new(),
        landed: Vec::new(),
    };
    for (planes, merged, landed) in per_item {
        surfaces.planes.extend(planes);
        surfaces.merged.extend(merged);
        surfaces.landed.extend(landed);
    }
    surfaces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_duplicated_and_permuted_flows() {
        assert_eq!(softmax_energy(&mut [(0.7, -0.3)]), -0.3);
        assert_eq!(softmax_energy(&mut [(0.7, -0.3), (0.7, -0.3)]), -0.3);
        let mut a = [(0.2f32, 0.1f32), (0.9, -0.5), (0.4, 0.33), (0.9, 0.2)];
        let mut b = [a[3], a[1], a[0], a[2]];
        assert_eq!(
            softmax_energy(&mut a).to_bits(),
            softmax_energy(&mut b).to_bits()
        );
        assert_eq!(softmax_energy(&mut []), 0.0);
    }

    #[test]
    fn the_weight_is_energy_over_one_plus_plane_distance_times_one_plus_a_tenth_per_step() {
        // w = |e| · 1/(1 + dist) · (1 + 0.1·steps), dist to the nearer plane: a completed
        // flow sits on its plane (dist 0), and so does a projected one (recorded at z = ±1); the
        // term matters only for a record off the planes, as below.
        let f = |z: f64, e: f64, steps: f64| {
            let dist = (z + 1.0).abs().min((z - 1.0).abs());
            e.abs() / (1.0 + dist) * (1.0 + 0.1 * steps)
        };
        for (z, e, steps) in [
            (1.0, -2.0, 3),
            (-1.0, 0.5, 0),
            (0.5, -2.0, 3),
            (-0.25, 1.5, 7),
        ] {
            let got = f64::from(weight([0.3, -0.1, z as f32, e as f32], steps));
            let want = f(z, e, f64::from(steps));
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "z {z} e {e} steps {steps}: {got} {want}"
            );
        }
    }

    #[test]
    fn large_weights_do_not_overflow_the_softmax() {
        // exp(60 + 61) would overflow f32: the softmax subtracts the largest weight first.
        let e = softmax_energy(&mut [(60.0, 1.0), (61.0, 3.0)]);
        let want = (1.0 + 3.0 * 1f32.exp()) / (1.0 + 1f32.exp());
        assert!((e - want).abs() < 1e-6, "{e} {want}");
    }
}
