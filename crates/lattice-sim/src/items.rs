//! What a caller submits (items with ids and inputs) and gets back (results by id, the run's
//! figures).

use std::collections::BTreeMap;

use lattice_core::flows::run::{ItemOutcome, StepRecord};
use lattice_core::flows::trace::Trace;

use serde::{Deserialize, Serialize};

use crate::error::ItemError;

/// What an item starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Seeded from (config seed, item id).
    Seeded,
    /// MoE initial states `[N, S]`, cell order x + y·W + z·W·H.
    States(Vec<f32>),
    /// Flows input embedding `[embedding_dim]`.
    Embedding(Vec<f32>),
}

/// One item of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The caller's name for the item; seeded inputs and noise are keyed by it.
    pub id: u64,
    /// What it starts from.
    pub input: Input,
    /// MoE: steps the item has already run, its input being the states after them (a run
    /// resumed from a checkpoint); it runs the remaining ones. 0 for a fresh item.
    pub done_steps: u32,
}

impl Item {
    /// An item whose input is seeded from (config seed, `id`).
    pub fn seeded(id: u64) -> Self {
        Self::new(id, Input::Seeded)
    }

    /// A MoE item starting from `states` (`[N, S]`).
    pub fn states(id: u64, states: Vec<f32>) -> Self {
        Self::new(id, Input::States(states))
    }

    /// A flows item starting from `embedding` (`[embedding_dim]`).
    pub fn embedding(id: u64, embedding: Vec<f32>) -> Self {
        Self::new(id, Input::Embedding(embedding))
    }

    fn new(id: u64, input: Input) -> Self {
        Self {
            id,
            input,
            done_steps: 0,
        }
    }
}

/// What an item produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Final MoE states `[N, S]`.
    Moe {
        /// `[N, S]`.
        states: Vec<f32>,
    },
    /// Flow surfaces: `planes` `[2, H, W]` (front, back), `merged` `[H, W]`, the item's flow
    /// totals, and with `collector` on, the embedding collected from the merged surface.
    Flows {
        /// `[2, H, W]`: front, back.
        planes: Vec<f32>,
        /// `[H, W]`: both planes in one softmax.
        merged: Vec<f32>,
        /// `[2, H, W]`: flows landed in each cell of `planes` (where 0, the plane's value is
        /// the empty softmax's 0, not a flow's energy).
        landed: Vec<u32>,
        /// Flow counts, steps run and why the item stopped.
        totals: Box<ItemOutcome>,
        /// `[embedding_dim]`, with `collector` on.
        embedding_out: Option<Vec<f32>>,
    },
}

impl Output {
    /// The MoE states (empty for a flows output).
    pub fn states(&self) -> &[f32] {
        match self {
            Self::Moe { states } => states,
            Self::Flows { .. } => &[],
        }
    }
}

/// One item's result.
#[derive(Debug, Clone)]
pub struct ItemResult {
    /// The item's id.
    pub id: u64,
    /// The batch it ran in (run order).
    pub batch: usize,
    /// The item's own wall time: from its batch's start until its last step ended, plus the
    /// batch's closing work (surfaces, readback). MoE items run every step of their batch, so
    /// theirs is the batch's; a flows item that stops early takes less.
    pub duration_s: f64,
    /// Wall time of the item's whole batch.
    pub batch_s: f64,
    /// What the item reached (for a failed MoE item, its states after the last step, non-finite
    /// values included).
    pub output: Output,
    /// Why the item failed, if it did.
    pub error: Option<ItemError>,
}

impl ItemResult {
    /// Whether the item finished without error.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// The serializable summary written in `metrics.json` and checkpoints.
    pub fn record(&self) -> ItemRecord {
        ItemRecord {
            id: self.id,
            batch: self.batch,
            duration_s: self.duration_s,
            batch_s: self.batch_s,
            ok: self.is_ok(),
            error: self.error.as_ref().map(ToString::to_string),
        }
    }
}

/// Figures of a run.
#[derive(Debug, Clone)]
pub struct Stats {
    /// [`crate::Backend::name`].
    pub backend: String,
    /// Wall time of the run.
    pub total_s: f64,
    /// Items finished per second of wall time.
    pub items_per_s: f64,
    /// The batch size the run started with.
    pub batch_size: usize,
    /// The size of every batch in run order.
    pub batch_sizes: Vec<usize>,
    /// Batches that failed to allocate and were retried at half size.
    pub halvings: u32,
    /// Mean wall time of one step of one batch.
    pub mean_step_ms: f64,
    /// Longest wall time of one step of one batch.
    pub max_step_ms: f64,
    /// Work done: cell-updates (MoE) or flow-steps (flows, live flows summed over steps).
    pub work: u64,
    /// Wall time per item: the run's wall time over its items.
    pub mean_item_s: f64,
    /// Peak resident memory of the process (Linux).
    pub peak_host_memory_bytes: Option<u64>,
    /// Host memory one item took: the largest growth of resident memory during a batch,
    /// over its items (Linux).
    pub host_bytes_per_item: Option<u64>,
    /// GPU memory one item takes (its buffers, as the kernels size them); None on the CPU.
    pub device_bytes_per_item: Option<u64>,
}

impl Stats {
    /// Cell-updates (MoE) or flow-steps (flows) per second.
    pub fn work_per_s(&self) -> f64 {
        self.work as f64 / self.total_s
    }
}

/// Results by item id.
#[derive(Debug, Clone)]
pub struct Results {
    /// Every item's result, by id.
    pub items: BTreeMap<u64, ItemResult>,
    /// The run's figures.
    pub stats: Stats,
    /// Flows: every step, summed over all items (step k of every batch adds into entry k).
    pub flow_steps: Vec<StepRecord>,
    /// Flows with `trace` in the config: the event trace of the whole run.
    pub trace: Option<Trace>,
}

impl Results {
    /// The result of item `id`.
    pub fn get(&self, id: u64) -> Option<&ItemResult> {
        self.items.get(&id)
    }

    /// Items run.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item ran.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items that finished without error.
    pub fn succeeded(&self) -> usize {
        self.items.values().filter(|r| r.is_ok()).count()
    }

    /// Items that failed.
    pub fn failed(&self) -> impl Iterator<Item = &ItemResult> {
        self.items.values().filter(|r| !r.is_ok())
    }
}

/// The serializable summary of one item's result (metrics.json, checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item's id.
    pub id: u64,
    /// The batch it ran in.
    pub batch: usize,
    /// The item's own wall time (see [`ItemResult::duration_s`]).
    pub duration_s: f64,
    /// Wall time of its whole batch.
    #[serde(default)]
    pub batch_s: f64,
    /// Whether it finished without error.
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
