//! The library API: build a simulation from a config (a RON file or a [`RunConfig`] made in
//! code), submit items with ids, get each item's result back by id, with the run's statistics.
//! `lattice run` is a thin layer over it: it reads the inputs, submits them, watches the run
//! through an [`Observer`] (progress bar, checkpoints) and writes the results to files.
//!
//! ```no_run
//! use lattice_cli::api::{BackendChoice, Item, Simulation};
//!
//! let sim = Simulation::from_file("configs/debug.ron".as_ref(), BackendChoice::Cpu)?;
//! let results = sim.run(&[Item::seeded(7), Item::seeded(8)])?;
//! println!("{} of {} items ok", results.succeeded(), results.len());
//! let states = results.get(7).unwrap().output.states();
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Items run in batches of at most [`Simulation::batch_size`] (the config's
//! `batch.max_batch_size`, or with `Auto` as many as fit in memory); a batch that fails to
//! allocate is retried at half size; an item whose states turn non-finite fails alone.
//! Seeded inputs are keyed by the item's id, so an item's result depends only on the config,
//! the seed and its id, whatever batch it runs in. Nothing is written to disk.

mod flows;
mod moe;
mod observer;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use lattice_core::NeighborCache;
use lattice_core::config::{
    self, BatchSize, FlowsConfig, LoadedConfig, MoeConfig, RunConfig, Simulation as Sim,
};
use lattice_core::flows::run::{ItemOutcome, StepRecord};
use lattice_core::flows::trace::Trace;
use lattice_core::flows::{FlowLayout, FlowShape, FlowWeights};
use lattice_core::lattice::build_cache;
use lattice_core::moe::{MoeShape, MoeWeights, ParamLayout};

pub use crate::backend::{Backend, BackendChoice};
pub use observer::{BatchDone, NoObserver, Observer, Snapshot, StepEvent};

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
    pub id: u64,
    pub input: Input,
    /// MoE: steps the item has already run, its input being the states after them (a run
    /// resumed from a checkpoint); it runs the remaining ones. 0 for a fresh item.
    pub done_steps: u32,
}

impl Item {
    pub fn seeded(id: u64) -> Self {
        Self {
            id,
            input: Input::Seeded,
            done_steps: 0,
        }
    }
    pub fn states(id: u64, states: Vec<f32>) -> Self {
        Self {
            id,
            input: Input::States(states),
            done_steps: 0,
        }
    }
    pub fn embedding(id: u64, embedding: Vec<f32>) -> Self {
        Self {
            id,
            input: Input::Embedding(embedding),
            done_steps: 0,
        }
    }
}

/// What an item produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Final MoE states `[N, S]`.
    Moe { states: Vec<f32> },
    /// Flow surfaces: `planes` `[2, H, W]` (front, back), `merged` `[H, W]`, the item's flow
    /// totals, and with `collector` on, the embedding collected from the merged surface.
    Flows {
        planes: Vec<f32>,
        merged: Vec<f32>,
        totals: Box<ItemOutcome>,
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
    pub id: u64,
    pub batch: usize,
    /// Wall time of the item's batch.
    pub duration_s: f64,
    /// What the item reached (for a failed MoE item, its states after the last step, non-finite
    /// values included).
    pub output: Output,
    /// Why the item failed (e.g. a non-finite state, with step and cell), if it did.
    pub error: Option<String>,
}

impl ItemResult {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// The serializable summary written in `metrics.json` and checkpoints.
    pub fn record(&self) -> crate::runtime::ItemResult {
        crate::runtime::ItemResult {
            id: self.id,
            batch: self.batch,
            duration_s: self.duration_s,
            ok: self.is_ok(),
            error: self.error.clone(),
        }
    }
}

/// Figures of a run.
#[derive(Debug, Clone)]
pub struct Stats {
    pub backend: String,
    pub total_s: f64,
    pub items_per_s: f64,
    /// The batch size the run started with, and the size of every batch in run order.
    pub batch_size: usize,
    pub batch_sizes: Vec<usize>,
    /// Batches that failed to allocate and were retried at half size.
    pub halvings: u32,
    /// Mean and max wall time of one step of one batch.
    pub mean_step_ms: f64,
    pub max_step_ms: f64,
    /// Work done: cell-updates (MoE) or flow-steps (flows, live flows summed over steps).
    pub work: u64,
    pub peak_host_memory_bytes: Option<u64>,
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
    pub items: BTreeMap<u64, ItemResult>,
    pub stats: Stats,
    /// Flows: every step, summed over all items (step k of every batch adds into entry k).
    pub flow_steps: Vec<StepRecord>,
    /// Flows with `trace` in the config: the event trace of the whole run.
    pub trace: Option<Trace>,
}

impl Results {
    pub fn get(&self, id: u64) -> Option<&ItemResult> {
        self.items.get(&id)
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn succeeded(&self) -> usize {
        self.items.values().filter(|r| r.is_ok()).count()
    }
    pub fn failed(&self) -> impl Iterator<Item = &ItemResult> {
        self.items.values().filter(|r| !r.is_ok())
    }
}

/// The model a simulation runs, with its weights.
enum Model {
    Moe {
        cfg: MoeConfig,
        cache: Box<NeighborCache>,
        weights: MoeWeights,
    },
    Flows {
        cfg: FlowsConfig,
        weights: FlowWeights,
    },
}

/// A configured simulation on a chosen backend.
pub struct Simulation {
    loaded: LoadedConfig,
    backend: Backend,
    model: Model,
}

impl Simulation {
    /// Loads and checks a RON config file.
    pub fn from_file(path: &Path, backend: BackendChoice) -> anyhow::Result<Self> {
        Self::from_loaded(config::load(path)?, Backend::select(backend)?)
    }

    /// A config made in code, checked like a file (relative mask paths are taken from the
    /// current folder).
    pub fn new(config: RunConfig, backend: BackendChoice) -> anyhow::Result<Self> {
        if let Err(issues) = config::check(&config) {
            let list: Vec<String> = issues.iter().map(|i| format!("  - {i}")).collect();
            bail!(
                "the config has {} problem(s):\n{}",
                issues.len(),
                list.join("\n")
            );
        }
        let text = ron::to_string(&config).context("serializing the config")?;
        let loaded = LoadedConfig {
            config,
            path: "<in code>".into(),
            text_hash: config::fnv1a(text.as_bytes()),
        };
        Self::from_loaded(loaded, Backend::select(backend)?)
    }

    /// A loaded config on a backend already chosen. MoE builds and validates its neighbor
    /// cache here; weights are seeded from the config's seed (see [`Self::load_weights`]).
    pub fn from_loaded(loaded: LoadedConfig, backend: Backend) -> anyhow::Result<Self> {
        let seed = loaded.config.seed;
        let model = match &loaded.config.simulation {
            Sim::Moe(m) => {
                let start = Instant::now();
                let cache = build_cache(&loaded, &m.lattice)?;
                let st = cache.stats();
                tracing::info!(
                    "neighbor cache: {} active cells, K = {}, neighbors per cell {}..{} (mean {:.1}), validated in {:.3} s",
                    st.active_cells,
                    st.stencil_offsets,
                    st.total.min,
                    st.total.max,
                    st.total.mean,
                    start.elapsed().as_secs_f64()
                );
                Model::Moe {
                    cfg: m.clone(),
                    cache: Box::new(cache),
                    weights: MoeWeights::seeded(ParamLayout::new(MoeShape::from_config(m)), seed),
                }
            }
            Sim::Flows(f) => {
                let t = Instant::now();
                let weights = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(f)), seed);
                tracing::info!(
                    "flow networks: {} parameters, ready in {:.2} s",
                    weights.data.len(),
                    t.elapsed().as_secs_f64()
                );
                Model::Flows {
                    cfg: f.clone(),
                    weights,
                }
            }
        };
        Ok(Self {
            loaded,
            backend,
            model,
        })
    }

    /// Replaces the seeded weights with a `.safetensors` file's (docs/weights.md lists the
    /// tensors); a missing, extra or mis-shaped tensor is an error naming it.
    pub fn load_weights(&mut self, path: &Path) -> anyhow::Result<()> {
        match &mut self.model {
            Model::Moe { weights, .. } => {
                *weights = MoeWeights::load(weights.layout.clone(), path)?;
            }
            Model::Flows { weights, .. } => {
                *weights = FlowWeights::load(weights.layout.clone(), path)?;
            }
        }
        Ok(())
    }

    /// Overrides the config's step count (MoE `steps`, flows `max_steps`).
    pub fn set_steps(&mut self, steps: u32) {
        match &mut self.model {
            Model::Moe { cfg, .. } => cfg.steps = steps,
            Model::Flows { cfg, .. } => cfg.max_steps = Some(steps),
        }
    }

    /// Steps an item runs (flows: at most).
    pub fn steps(&self) -> u32 {
        match &self.model {
            Model::Moe { cfg, .. } => cfg.steps,
            Model::Flows { cfg, .. } => cfg.steps(),
        }
    }

    pub fn config(&self) -> &RunConfig {
        &self.loaded.config
    }
    pub fn loaded(&self) -> &LoadedConfig {
        &self.loaded
    }
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// MoE: the validated neighbor cache.
    pub fn cache(&self) -> Option<&NeighborCache> {
        match &self.model {
            Model::Moe { cache, .. } => Some(cache),
            Model::Flows { .. } => None,
        }
    }

    /// The MoE config as this simulation runs it (with [`Self::set_steps`] applied).
    pub fn moe_config(&self) -> Option<&MoeConfig> {
        match &self.model {
            Model::Moe { cfg, .. } => Some(cfg),
            Model::Flows { .. } => None,
        }
    }

    /// The flows config as this simulation runs it (with [`Self::set_steps`] applied).
    pub fn flows_config(&self) -> Option<&FlowsConfig> {
        match &self.model {
            Model::Flows { cfg, .. } => Some(cfg),
            Model::Moe { .. } => None,
        }
    }

    /// Flows: the networks' weights (the collector reads surfaces with them).
    pub fn flow_weights(&self) -> Option<&FlowWeights> {
        match &self.model {
            Model::Flows { weights, .. } => Some(weights),
            Model::Moe { .. } => None,
        }
    }

    /// The weights' parameter count.
    pub fn parameters(&self) -> usize {
        match &self.model {
            Model::Moe { weights, .. } => weights.data.len(),
            Model::Flows { weights, .. } => weights.data.len(),
        }
    }

    /// Writes the weights as `.safetensors` (atomically).
    pub fn save_weights(&self, path: &Path) -> anyhow::Result<()> {
        match &self.model {
            Model::Moe { weights, .. } => weights.save(path)?,
            Model::Flows { weights, .. } => weights.save(path)?,
        }
        Ok(())
    }

    /// The batch size a run of `items` items starts with: the config's `Fixed(b)` if b items
    /// fit this backend (an error naming the limit otherwise), with `Auto` as many as fit.
    pub fn batch_size(&self, items: usize) -> anyhow::Result<usize> {
        let (fits, limit) = match &self.model {
            Model::Moe { cfg, cache, .. } => moe::batch_limit(&self.backend, cfg, cache)?,
            Model::Flows { cfg, .. } => flows::batch_limit(&self.backend, cfg)?,
        };
        Ok(match self.loaded.config.batch.max_batch_size {
            BatchSize::Auto => fits.min(items).max(1),
            BatchSize::Fixed(b) if b as usize > fits => bail!(
                "batch.max_batch_size Fixed({b}) does not fit this backend: at most {fits} \
                 item(s) fit {limit}; lower it or use Auto"
            ),
            BatchSize::Fixed(b) => (b as usize).min(items).max(1),
        })
    }

    /// Runs `items` (ids must be distinct) and returns every item's result by id.
    pub fn run(&self, items: &[Item]) -> anyhow::Result<Results> {
        self.run_observed(items, &mut NoObserver)
    }

    /// [`Self::run`], reporting steps, snapshots and finished batches to `observer`.
    pub fn run_observed(
        &self,
        items: &[Item],
        observer: &mut dyn Observer,
    ) -> anyhow::Result<Results> {
        let mut ids: Vec<u64> = items.iter().map(|i| i.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            bail!("item id {} is submitted twice", w[0]);
        }
        let size = self.batch_size(items.len())?;
        let start = Instant::now();
        let mut tally = Tally::default();
        let (flow_steps, trace) = match &self.model {
            Model::Moe {
                cfg,
                cache,
                weights,
            } => {
                let run = moe::MoeRun {
                    sim: self,
                    cfg,
                    cache,
                    weights,
                };
                run.run(items, size, observer, &mut tally)?;
                (Vec::new(), None)
            }
            Model::Flows { cfg, weights } => {
                let run = flows::FlowsRun {
                    sim: self,
                    cfg,
                    weights,
                };
                run.run(items, size, observer, &mut tally)?
            }
        };
        let total_s = start.elapsed().as_secs_f64();
        let steps = tally.step_ms.len().max(1) as f64;
        Ok(Results {
            items: tally.results.into_iter().map(|r| (r.id, r)).collect(),
            stats: Stats {
                backend: self.backend.name(),
                total_s,
                items_per_s: items.len() as f64 / total_s,
                batch_size: size,
                batch_sizes: tally.batches.batch_sizes,
                halvings: tally.batches.halvings,
                mean_step_ms: tally.step_ms.iter().sum::<f64>() / steps,
                max_step_ms: tally.step_ms.iter().copied().fold(0.0, f64::max),
                work: tally.work,
                peak_host_memory_bytes: crate::runtime::peak_rss_bytes(),
            },
            flow_steps,
            trace,
        })
    }
}

/// What the runners accumulate while batches run.
#[derive(Default)]
struct Tally {
    batches: crate::runtime::BatchRun,
    results: Vec<ItemResult>,
    step_ms: Vec<f64>,
    work: u64,
}
