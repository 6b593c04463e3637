//! The MoE cellular lattice (docs/model.md part A): network layout and weights, the CPU
//! reference step, and seeded initial states.

pub mod cpu;
pub mod domain;
pub mod engine;
pub mod gather;
pub use crate::math;
pub mod net;
pub mod params;
pub mod weights;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::seeds::derive_seed;

pub use engine::{CpuMoe, MoeEngine, NonFinite, STEPS_PER_CHECK};
pub use net::MoeNet;
pub use params::{MoeShape, ParamLayout};
pub use weights::{MoeWeights, WeightsError};

/// Seeded initial states of one item, `[N, S]` ~ N(0, scale²), from its own ChaCha8 stream
/// keyed by (seed, item id): the same item gets the same states whatever batch it runs in.
pub fn initial_states(seed: u64, item_id: u64, cells: usize, s: usize, scale: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &["states", &item_id.to_string()]));
    let normal = Normal::new(0.0f32, scale).expect("scale is validated finite and ≥ 0");
    (0..cells * s).map(|_| normal.sample(&mut rng)).collect()
}

#[cfg(test)]
mod tests;
