//! The RON schema of the energy-flow simulation (docs/model.md part B), with the engine's
//! decisions (docs/model.md, Decisions): positions normalized once, reflection kept, both
//! planes kept, per-item capacity, seeded noise that is off by default.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// (W, H, D): the surface is W×H, flows start on plane z = D/2 and end on z = 0 or z = D.
    pub dims: (u32, u32, u32),
    /// Width of the input embeddings (and of the collector's output).
    #[serde(default = "defaults::embedding_dim")]
    pub embedding_dim: u32,
    #[serde(default)]
    pub carrier: CarrierConfig,
    #[serde(default)]
    pub neuron: NeuronConfig,
    /// Step limit; default D/2 (the reference system's).
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// Gain on the carrier's displacement before the ±0.5 clamp. Seeded (untrained) weights
    /// move flows by ~0.003–0.05 per step; about 40 makes a 20×20×10 run complete flows.
    #[serde(default = "defaults::one")]
    pub displacement_scale: f32,
    /// σ of the seeded Gaussian exploration noise added to every axis; 0 turns it off.
    #[serde(default)]
    pub noise: f32,
    /// Fold x and y back into [−1, 1] at the side walls (`2 − v`); off clamps them instead.
    #[serde(default = "defaults::yes")]
    pub reflection: bool,
    /// Movement spawn: children at the pre-move position when a flow moves far. None = off.
    #[serde(default)]
    pub spawn: Option<SpawnConfig>,
    /// Live flows per item (roots included); a completed flow frees its slot for the next children.
    /// Default 2·W·H. Children past it are dropped and counted.
    #[serde(default)]
    pub capacity_per_item: Option<u32>,
    /// Early stop on the completion rate (docs/model.md B8). None = run to max_steps.
    #[serde(default)]
    pub convergence: Option<ConvergenceConfig>,
    /// What happens to flows still moving when the run ends.
    #[serde(default)]
    pub unfinished: Unfinished,
    /// Map the merged surface back to `embedding_dim` with the output collector.
    #[serde(default)]
    pub collector: bool,
    /// Record spawn, reflect and terminate events into a bounded ring buffer, written as JSON
    /// lines (`OUT/events.jsonl`). None = off (costs nothing).
    #[serde(default)]
    pub trace: Option<TraceConfig>,
    /// Run from texts, one item per text: a local sentence encoder turns them into the
    /// embeddings (as `lattice embed` does alone). None = embeddings from the command line,
    /// `inputs`, or the seed.
    #[serde(default)]
    pub texts: Option<TextsConfig>,
}

/// Texts in: which file, which encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextsConfig {
    /// One text per line, or JSON lines (`.jsonl`) of `{"id": ..., "text": ...}`; it must hold
    /// `batch.items` texts. A relative path is taken from the config file's folder.
    pub file: std::path::PathBuf,
    /// A local model folder in the Hugging Face layout (config.json, tokenizer.json,
    /// model.safetensors); its width must equal `embedding_dim`. Relative as `file`.
    pub encoder: std::path::PathBuf,
    /// Texts per encoder batch.
    #[serde(default = "defaults::encoder_batch")]
    pub max_batch_size: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierConfig {
    /// GRU hidden size Hc (even).
    #[serde(default = "defaults::carrier_hidden")]
    pub hidden: u32,
    /// GRU layers L.
    #[serde(default = "defaults::carrier_layers")]
    pub layers: u32,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        Self {
            hidden: defaults::carrier_hidden(),
            layers: defaults::carrier_layers(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeuronConfig {
    #[serde(default = "defaults::neuron_hidden")]
    pub hidden: u32,
    #[serde(default = "defaults::neuron_output")]
    pub output: u32,
}

impl Default for NeuronConfig {
    fn default() -> Self {
        Self {
            hidden: defaults::neuron_hidden(),
            output: defaults::neuron_output(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnConfig {
    /// τ: a flow that moved L > τ (normalized units) spawns `min(⌊L/τ⌋ − 1, max_per_step)`.
    pub threshold: f32,
    #[serde(default = "defaults::spawn_per_step")]
    pub max_per_step: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvergenceConfig {
    /// Stop once completed / created reaches this.
    pub threshold: f32,
    /// The test starts at this step.
    #[serde(default = "defaults::min_steps")]
    pub min_steps: u32,
    /// Stop after this many steps without 1 % improvement of the 5-step moving average.
    #[serde(default = "defaults::patience")]
    pub patience: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Unfinished {
    /// Leave them out of the surface (the reference behaviour), counted in metrics.
    #[default]
    Drop,
    /// Snap them to the nearer plane (z ≤ 0 → front) and aggregate them there.
    Project,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// Most recent events kept; older ones are overwritten (and counted).
    #[serde(default = "defaults::trace_capacity")]
    pub capacity: u32,
}

impl FlowsConfig {
    pub fn surface(&self) -> u32 {
        self.dims.0 * self.dims.1
    }
    pub fn capacity(&self) -> u32 {
        self.capacity_per_item.unwrap_or(2 * self.surface())
    }
    pub fn steps(&self) -> u32 {
        self.max_steps.unwrap_or(self.dims.2 / 2)
    }
}

mod defaults {
    pub fn encoder_batch() -> u32 {
        32
    }
    pub fn embedding_dim() -> u32 {
        768
    }
    pub fn one() -> f32 {
        1.0
    }
    pub fn yes() -> bool {
        true
    }
    pub fn carrier_hidden() -> u32 {
        256
    }
    pub fn carrier_layers() -> u32 {
        2
    }
    pub fn neuron_hidden() -> u32 {
        32
    }
    pub fn neuron_output() -> u32 {
        64
    }
    pub fn spawn_per_step() -> u32 {
        1
    }
    pub fn min_steps() -> u32 {
        5
    }
    pub fn patience() -> u32 {
        10
    }
    pub fn trace_capacity() -> u32 {
        100_000
    }
}
