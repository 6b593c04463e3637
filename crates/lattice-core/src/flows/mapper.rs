//! Embeddings to surface energies (the EnergyEmbeddingMapper) and the merged surface back to
//! embeddings (the output collector), on the CPU: each runs once per item per run, in eval
//! mode (no dropout). Rows are computed in parallel.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::params::FlowLayout;
use super::{FlowState, FlowWeights};
use crate::config::FlowsConfig;
use crate::math::{gelu, layer_norm};
use crate::seeds::derive_seed;

/// `y = W·x + b` for a row-major `[out, in]` weight, rows in parallel.
fn dense(layout: &FlowLayout, w: &[f32], p: &str, x: &[f32]) -> Vec<f32> {
    let wt = layout.get(&format!("{p}.weight")).expect("layer exists");
    let b = &w[layout
        .get(&format!("{p}.bias"))
        .expect("layer exists")
        .range()];
    let (out, input) = (wt.shape[0] as usize, wt.shape[1] as usize);
    let m = &w[wt.range()];
    (0..out)
        .into_par_iter()
        .map(|o| {
            let row = &m[o * input..(o + 1) * input];
            row.iter().zip(x).map(|(a, v)| a * v).sum::<f32>() + b[o]
        })
        .collect()
}

fn gelu_norm(layout: &FlowLayout, w: &[f32], norm: &str, mut v: Vec<f32>) -> Vec<f32> {
    for x in v.iter_mut() {
        *x = gelu(*x);
    }
    let g = &w[layout.get(&format!("{norm}.weight")).expect("norm").range()];
    let b = &w[layout.get(&format!("{norm}.bias")).expect("norm").range()];
    layer_norm(&mut v, g, b);
    v
}

/// `fc3(norm2(gelu(fc2(norm1(gelu(fc1(x)))))))`: the mapper's and the collector's shared form.
fn three_layers(layout: &FlowLayout, w: &[f32], p: &str, x: &[f32]) -> Vec<f32> {
    let a = gelu_norm(
        layout,
        w,
        &format!("{p}.norm1"),
        dense(layout, w, &format!("{p}.fc1"), x),
    );
    let c = gelu_norm(
        layout,
        w,
        &format!("{p}.norm2"),
        dense(layout, w, &format!("{p}.fc2"), &a),
    );
    dense(layout, w, &format!("{p}.fc3"), &c)
}

/// One item's surface energies `[H·W]` (row y, column x) from its embedding.
pub fn map_embedding(layout: &FlowLayout, w: &[f32], embedding: &[f32]) -> Vec<f32> {
    let scale = w[layout.offset("mapper.energy_scale") as usize];
    let bias = w[layout.offset("mapper.energy_bias") as usize];
    let pos = &w[layout.get("mapper.positional").expect("mapper").range()];
    three_layers(layout, w, "mapper", embedding)
        .into_iter()
        .zip(pos)
        .map(|(v, p)| v.tanh() * scale + bias + p)
        .collect()
}

/// One item's output embedding from its merged surface; the layout must have the collector.
pub fn collect_surface(layout: &FlowLayout, w: &[f32], surface: &[f32]) -> Vec<f32> {
    three_layers(layout, w, "collector", surface)
}

/// A batch ready to run from its items' embeddings (`[ids.len(), E]`): the mapper's energies
/// placed as flows on the middle plane with `cfg`'s capacity and room for its steps'
/// completions, and each item's noise seed keyed by (seed, id).
pub fn place_batch(
    weights: &FlowWeights,
    cfg: &FlowsConfig,
    seed: u64,
    ids: &[u64],
    embeddings: &[f32],
) -> (FlowState, Vec<[u32; 2]>) {
    let e = weights.layout.shape.embed as usize;
    assert_eq!(embeddings.len(), ids.len() * e, "embeddings are [items, E]");
    let energies: Vec<f32> = embeddings
        .par_chunks(e)
        .flat_map_iter(|x| map_embedding(&weights.layout, &weights.data, x))
        .collect();
    let state = FlowState::place(
        &weights.layout.shape,
        cfg.capacity(),
        cfg.steps(),
        &energies,
    );
    let seeds = ids.iter().map(|&id| noise_seed(seed, id)).collect();
    (state, seeds)
}

/// Seeded embeddings of the items `ids`, `[ids.len(), dim]`.
pub fn seeded_embeddings(seed: u64, ids: &[u64], dim: usize) -> Vec<f32> {
    ids.iter()
        .flat_map(|&id| seeded_embedding(seed, id, dim))
        .collect()
}

/// Seeded input embedding of one item, N(0, 1), from its own stream keyed by (seed, item id).
pub fn seeded_embedding(seed: u64, item_id: u64, dim: usize) -> Vec<f32> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(derive_seed(seed, &["embedding", &item_id.to_string()]));
    (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// Noise seed of one item, keyed by (seed, item id) so it does not depend on the batch.
pub fn noise_seed(seed: u64, item_id: u64) -> [u32; 2] {
    let s = derive_seed(seed, &["noise", &item_id.to_string()]);
    [s as u32, (s >> 32) as u32]
}
