//! Float64 building blocks for the independent oracles: written from the formulas of
//! docs/model.md (PyTorch semantics), sharing no code with the engine's math. Only the
//! weights are read through the engine's layout (by tensor name, as docs/weights.md lists them).

// Each oracle test binary uses part of this module.
#![allow(dead_code)]

use std::collections::HashMap;

use lattice_core::tensors::TensorSpec;

/// The weights by name, widened to f64.
pub struct Tensors(HashMap<String, Vec<f64>>);

impl Tensors {
    pub fn new<'a>(specs: impl IntoIterator<Item = &'a TensorSpec>, data: &[f32]) -> Self {
        Self(
            specs
                .into_iter()
                .map(|t| {
                    let v = data[t.range()].iter().map(|&x| f64::from(x)).collect();
                    (t.name.clone(), v)
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> &[f64] {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `y = W·x + b` with `W` = `{name}.weight` `[out, in]`, `b` = `{name}.bias`.
    pub fn linear(&self, name: &str, x: &[f64]) -> Vec<f64> {
        let w = self.get(&format!("{name}.weight"));
        let b = self.get(&format!("{name}.bias"));
        linear(w, Some(b), x)
    }

    /// LayerNorm with `{name}.weight` and `{name}.bias`.
    pub fn layer_norm(&self, name: &str, x: &[f64]) -> Vec<f64> {
        layer_norm(
            x,
            self.get(&format!("{name}.weight")),
            self.get(&format!("{name}.bias")),
        )
    }

    pub fn scalar(&self, name: &str) -> f64 {
        self.get(name)[0]
    }
}

/// `W·x + b`, `W` row-major `[out, in]`.
pub fn linear(w: &[f64], b: Option<&[f64]>, x: &[f64]) -> Vec<f64> {
    let n_in = x.len();
    assert_eq!(w.len() % n_in, 0, "weight is [out, {n_in}]");
    let out = w.len() / n_in;
    (0..out)
        .map(|o| {
            let dot: f64 = (0..n_in).map(|i| w[o * n_in + i] * x[i]).sum();
            dot + b.map_or(0.0, |b| b[o])
        })
        .collect()
}

/// PyTorch's LayerNorm (biased variance, ε = 1e-5).
pub fn layer_norm(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + 1e-5).sqrt();
    x.iter()
        .enumerate()
        .map(|(k, v)| (v - mean) * inv * w[k] + b[k])
        .collect()
}

/// Exact GELU, through a float64 erf.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
}

pub fn gelu_all(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| gelu(x)).collect()
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Softmax of `v` (max-subtracted).
pub fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

pub fn concat(parts: &[&[f64]]) -> Vec<f64> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// Asserts `got` (f32) agrees with the oracle's `want` (f64) within `rel` of the larger of the
/// value and `floor` (values near zero are compared on the scale of the whole vector); returns
/// the largest relative difference seen.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], rel: f64, floor: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    assert!(!want.is_empty(), "{what}: nothing compared");
    let mut worst = 0.0f64;
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs() / w.abs().max(floor);
        worst = worst.max(err);
        assert!(
            approx::relative_eq!(f64::from(g), w, epsilon = rel * floor, max_relative = rel),
            "{what}[{k}]: engine {g} oracle {w} (relative {err:e})"
        );
    }
    worst
}
