//! The model a simulation runs: one typed handle per kind.

use lattice_core::NeighborCache;
use lattice_core::config::{FlowsConfig, MoeConfig};
use lattice_core::flows::FlowWeights;
use lattice_core::moe::MoeWeights;

/// A MoE model: its config (as run), validated neighbor cache and weights.
pub struct MoeModel {
    /// The config as run (with `set_steps` applied).
    pub cfg: MoeConfig,
    /// The validated neighbor cache.
    pub cache: NeighborCache,
    /// The weights, seeded or loaded.
    pub weights: MoeWeights,
}

/// A flows model: its config (as run) and the networks' weights.
pub struct FlowsModel {
    /// The config as run (with `set_steps` applied).
    pub cfg: FlowsConfig,
    /// The flow networks' weights, seeded or loaded.
    pub weights: FlowWeights,
}

/// The model a simulation runs, one typed handle per kind.
pub enum Model {
    /// The MoE lattice.
    Moe(Box<MoeModel>),
    /// Energy flows.
    Flows(Box<FlowsModel>),
}
