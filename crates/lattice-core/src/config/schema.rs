//! The RON schema of a run. Every struct denies unknown fields; defaults are the reference
//! system's (DEBUG preset sizes, docs/model.md A1).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::FlowsConfig;
use crate::geometry::Boundary;

/// A whole run: what to simulate, how many items, which seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Base seed: weights, initial states and per-item seeds are derived from it by hashing.
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    #[serde(default)]
    pub batch: BatchConfig,
    /// Precomputed input batches, as `lattice prepare` writes them: MoE initial states or
    /// flows embeddings. None = generated from the seed (or given on the command line).
    #[serde(default)]
    pub inputs: Option<InputsConfig>,
    pub simulation: Simulation,
}

/// A folder of input batches (`*.npy`, each `[k, ...item]`, read in name order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsConfig {
    /// A relative path is taken from the config file's folder.
    pub dir: PathBuf,
    #[serde(default)]
    pub order: crate::inputs::InputOrder,
}

/// How many independent items (lattices) a run has and how they are grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Number of independent lattices in the run.
    #[serde(default = "defaults::one")]
    pub items: u32,
    /// Largest group of items run together.
    #[serde(default)]
    pub max_batch_size: BatchSize,
    /// Under MPI (`mpirun -n P`): how the ranks divide the run.
    #[serde(default)]
    pub split: Split,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            items: 1,
            max_batch_size: BatchSize::Auto,
            split: Split::Items,
        }
    }
}

/// How the ranks of an MPI job divide a run (one process ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Split {
    /// Each rank runs a contiguous share of the items.
    #[default]
    Items,
    /// Every rank runs every item, each its own z-slab of the lattice (MoE).
    ZSlabs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BatchSize {
    /// Chosen from the memory available on the backend.
    #[default]
    Auto,
    Fixed(u32),
}

/// Which simulation runs on the lattice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Simulation {
    /// The MoE cellular lattice (docs/model.md part A).
    Moe(MoeConfig),
    /// Energy flows from the middle plane to the front and back planes (part B).
    Flows(FlowsConfig),
}

/// Geometry shared by everything that walks neighbors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatticeConfig {
    /// (W, H, D): x, y, z sizes.
    pub dims: (u32, u32, u32),
    #[serde(default)]
    pub boundary: Boundary,
    /// R = clamp(max(W, H, D) · radius_ratio, radius_min, radius_max).
    #[serde(default = "defaults::radius_ratio")]
    pub radius_ratio: f64,
    #[serde(default = "defaults::radius_min")]
    pub radius_min: f64,
    #[serde(default = "defaults::radius_max")]
    pub radius_max: f64,
    /// Optional `.npy` of shape [D, H, W] (u8 or bool): cells with 0 are switched off.
    /// A relative path is taken from the config file's folder.
    #[serde(default)]
    pub mask: Option<PathBuf>,
}

/// How the three expert outputs update a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Combine {
    /// `x' = x + Σ w_k o_k` (the reference per-cell path).
    #[default]
    Residual,
    /// `x' = Σ w_k o_k` (the reference batch path).
    Replace,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeConfig {
    pub lattice: LatticeConfig,
    /// Lattice steps per run.
    #[serde(default = "defaults::steps")]
    pub steps: u32,
    /// S: floats per cell.
    #[serde(default = "defaults::state_size")]
    pub state_size: u32,
    #[serde(default)]
    pub local: LocalExpertConfig,
    #[serde(default)]
    pub functional: FunctionalExpertConfig,
    #[serde(default)]
    pub distant: DistantExpertConfig,
    #[serde(default)]
    pub gating: GatingConfig,
    #[serde(default)]
    pub combine: Combine,
    /// Fixed Euler steps of every CNF (dt = 1 / ode_steps).
    #[serde(default = "defaults::ode_steps")]
    pub ode_steps: u32,
    /// Seeded initial states are N(0, init_scale²).
    #[serde(default = "defaults::init_scale")]
    pub init_scale: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalExpertConfig {
    #[serde(default = "defaults::local_h")]
    pub h1: u32,
    #[serde(default = "defaults::local_h")]
    pub h2: u32,
    #[serde(default = "defaults::local_h")]
    pub processor_hidden: u32,
}

impl Default for LocalExpertConfig {
    fn default() -> Self {
        Self {
            h1: 12,
            h2: 12,
            processor_hidden: 12,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionalExpertConfig {
    #[serde(default = "defaults::functional_hidden")]
    pub hidden_dim: u32,
    #[serde(default = "defaults::message_dim")]
    pub message_dim: u32,
}

impl Default for FunctionalExpertConfig {
    fn default() -> Self {
        Self {
            hidden_dim: 12,
            message_dim: 8,
        }
    }
}

/// The CNF hidden size H, shared by the distant expert and the functional expert's CNF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistantExpertConfig {
    #[serde(default = "defaults::ode_hidden")]
    pub ode_hidden: u32,
}

impl Default for DistantExpertConfig {
    fn default() -> Self {
        Self { ode_hidden: 48 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatingConfig {
    #[serde(default = "defaults::gating_hidden")]
    pub hidden_dim: u32,
}

impl Default for GatingConfig {
    fn default() -> Self {
        Self { hidden_dim: 24 }
    }
}

mod defaults {
    pub fn seed() -> u64 {
        42
    }
    pub fn one() -> u32 {
        1
    }
    pub fn radius_ratio() -> f64 {
        0.3
    }
    pub fn radius_min() -> f64 {
        1.0
    }
    pub fn radius_max() -> f64 {
        100.0
    }
    pub fn steps() -> u32 {
        5
    }
    pub fn state_size() -> u32 {
        24
    }
    pub fn local_h() -> u32 {
        12
    }
    pub fn functional_hidden() -> u32 {
        12
    }
    pub fn message_dim() -> u32 {
        8
    }
    pub fn ode_hidden() -> u32 {
        48
    }
    pub fn gating_hidden() -> u32 {
        24
    }
    pub fn ode_steps() -> u32 {
        3
    }
    pub fn init_scale() -> f32 {
        0.1
    }
}
