//! The library API: build a simulation from a config (a RON file or a [`RunConfig`] made in
//! code), submit items with ids, get each item's result back by id, with the run's statistics.
//!
//! ```no_run
//! use lattice_cli::api::{BackendChoice, Item, Simulation};
//!
//! let sim = Simulation::from_file("configs/debug.ron".as_ref(), BackendChoice::Cpu)?;
//! let results = sim.run(&[Item::seeded(7), Item::seeded(8)])?;
//! println!("{} of {} items ok", results.succeeded(), results.len());
//! let states = results.get(7).unwrap().output.as_ref().unwrap().states();
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Items run in batches exactly as `lattice run` runs them (the same batch runtime: halving on
//! allocation failure, per-item errors); seeded inputs are keyed by the item's id, so an item's
//! result depends only on the config, the seed and its id. Nothing is written to disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use lattice_core::NeighborCache;
use lattice_core::config::{self, BatchSize, LoadedConfig, RunConfig, Simulation as Sim};
use lattice_core::flows::aggregate::aggregate;
use lattice_core::flows::mapper::seeded_embedding;
use lattice_core::flows::run::ItemOutcome;
use lattice_core::flows::{FlowLayout, FlowShape, FlowWeights};
use lattice_core::lattice::build_cache;
use lattice_core::moe::{MoeShape, MoeWeights, ParamLayout, initial_states};

pub use crate::backend::{Backend, BackendChoice};
use crate::runtime::{BatchRun, classify, run_batches};
use crate::sim::{GpuFlowSetup, GpuSetup, MoeBatch, run_flow_batch};

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
}

impl Item {
    pub fn seeded(id: u64) -> Self {
        Self {
            id,
            input: Input::Seeded,
        }
    }
    pub fn states(id: u64, states: Vec<f32>) -> Self {
        Self {
            id,
            input: Input::States(states),
        }
    }
    pub fn embedding(id: u64, embedding: Vec<f32>) -> Self {
        Self {
            id,
            input: Input::Embedding(embedding),
        }
    }
}

/// What an item produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Final MoE states `[N, S]`.
    Moe { states: Vec<f32> },
    /// Flow surfaces: `planes` `[2, H, W]` (front, back), `merged` `[H, W]`, and the item's
    /// flow totals.
    Flows {
        planes: Vec<f32>,
        merged: Vec<f32>,
        totals: Box<ItemOutcome>,
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
    /// The output, or why the item failed (e.g. a non-finite state, with step and cell).
    pub output: Result<Output, String>,
}

/// Figures of a run.
#[derive(Debug, Clone)]
pub struct Stats {
    pub backend: String,
    pub total_s: f64,
    pub items_per_s: f64,
    pub batch_sizes: Vec<usize>,
    pub halvings: u32,
    pub peak_host_memory_bytes: Option<u64>,
}

/// Results by item id.
#[derive(Debug, Clone)]
pub struct Results {
    pub items: BTreeMap<u64, ItemResult>,
    pub stats: Stats,
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
        self.items.values().filter(|r| r.output.is_ok()).count()
    }
}

/// A configured simulation on a chosen backend.
pub struct Simulation {
    loaded: LoadedConfig,
    backend: Backend,
    cache: Option<NeighborCache>,
}

impl Simulation {
    /// Loads and checks a RON config file.
    pub fn from_file(path: &Path, backend: BackendChoice) -> anyhow::Result<Self> {
        Self::from_loaded(config::load(path)?, backend)
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
        Self::from_loaded(loaded, backend)
    }

    fn from_loaded(loaded: LoadedConfig, backend: BackendChoice) -> anyhow::Result<Self> {
        let cache = match &loaded.config.simulation {
            Sim::Moe(m) => Some(build_cache(&loaded, &m.lattice)?),
            Sim::Flows(_) => None,
        };
        Ok(Self {
            backend: Backend::select(backend)?,
            loaded,
            cache,
        })
    }

    pub fn config(&self) -> &RunConfig {
        &self.loaded.config
    }

    /// Runs `items` (ids must be distinct) and returns every item's result by id.
    pub fn run(&self, items: &[Item]) -> anyhow::Result<Results> {
        let mut ids: Vec<u64> = items.iter().map(|i| i.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            bail!("item id {} is submitted twice", w[0]);
        }
        let start = Instant::now();
        let mut outputs: Vec<Option<Result<Output, String>>> = vec![None; items.len()];
        let mut run = BatchRun::default();
        let size = match self.loaded.config.batch.max_batch_size {
            BatchSize::Auto => items.len(),
            BatchSize::Fixed(b) => b as usize,
        };
        match &self.loaded.config.simulation {
            Sim::Moe(_) => self.run_moe(items, size, &mut run, &mut outputs)?,
            Sim::Flows(_) => self.run_flows(items, size, &mut run, &mut outputs)?,
        }
        let total_s = start.elapsed().as_secs_f64();
        let mut by_id = BTreeMap::new();
        for (k, r) in run.items.iter().enumerate() {
            let item = &items[k];
            by_id.insert(
                item.id,
                ItemResult {
                    id: item.id,
                    batch: r.batch,
                    duration_s: r.duration_s,
                    output: outputs[k].take().expect("every item ran"),
                },
            );
        }
        Ok(Results {
            items: by_id,
            stats: Stats {
                backend: self.backend.name(),
                total_s,
                items_per_s: items.len() as f64 / total_s,
                batch_sizes: run.batch_sizes,
                halvings: run.halvings,
                peak_host_memory_bytes: crate::runtime::peak_rss_bytes(),
            },
        })
    }

    fn run_moe(
        &self,
        items: &[Item],
        size: usize,
        run: &mut BatchRun,
        outputs: &mut [Option<Result<Output, String>>],
    ) -> anyhow::Result<()> {
        let Sim::Moe(moe) = &self.loaded.config.simulation else {
            unreachable!("called for Moe configs")
        };
        let cache = self.cache.as_ref().expect("Moe simulations hold a cache");
        let (n, s) = (cache.dims().cells_usize(), moe.state_size as usize);
        let weights = MoeWeights::seeded(
            ParamLayout::new(MoeShape::from_config(moe)),
            self.loaded.config.seed,
        );
        let mut states = Vec::with_capacity(items.len() * n * s);
        for item in items {
            match &item.input {
                Input::Seeded => states.extend(initial_states(
                    self.loaded.config.seed,
                    item.id,
                    n,
                    s,
                    moe.init_scale,
                )),
                Input::States(v) if v.len() == n * s => states.extend_from_slice(v),
                Input::States(v) => bail!(
                    "item {}: {} initial values, expected N·S = {}",
                    item.id,
                    v.len(),
                    n * s
                ),
                Input::Embedding(_) => bail!(
                    "item {}: a Moe simulation takes states, not an embedding",
                    item.id
                ),
            }
        }
        let gpu = match &self.backend {
            Backend::Gpu(ctx) => Some(GpuSetup::new(ctx, cache, moe, &weights)?),
            Backend::Cpu => None,
        };
        run_batches(run, 0..items.len(), size, |_, r| {
            let (first, count) = (r.start, r.len());
            let mut sim = MoeBatch::new(
                gpu.as_ref().map(GpuSetup::parts),
                cache,
                moe,
                &weights,
                states[first * n * s..(first + count) * n * s].to_vec(),
                count,
            )
            .map_err(classify)?;
            let mut errors: Vec<Option<String>> = vec![None; count];
            for step in 1..=moe.steps {
                for bad in sim.step()? {
                    errors[bad.item].get_or_insert_with(|| {
                        format!(
                            "non-finite state at step {step}, cell {} {:?}",
                            bad.cell,
                            cache.dims().coord(bad.cell)
                        )
                    });
                }
            }
            let out = sim.states()?;
            for (k, e) in errors.iter().enumerate() {
                outputs[first + k] = Some(match e {
                    Some(msg) => Err(msg.clone()),
                    None => Ok(Output::Moe {
                        states: out[k * n * s..(k + 1) * n * s].to_vec(),
                    }),
                });
            }
            Ok(errors)
        })
    }

    fn run_flows(
        &self,
        items: &[Item],
        size: usize,
        run: &mut BatchRun,
        outputs: &mut [Option<Result<Output, String>>],
    ) -> anyhow::Result<()> {
        let Sim::Flows(cfg) = &self.loaded.config.simulation else {
            unreachable!("called for Flows configs")
        };
        let seed = self.loaded.config.seed;
        let shape = FlowShape::from_config(cfg);
        let weights = FlowWeights::seeded(FlowLayout::new(shape), seed);
        let e = cfg.embedding_dim as usize;
        let mut embeddings = Vec::with_capacity(items.len() * e);
        for item in items {
            match &item.input {
                Input::Seeded => embeddings.extend(seeded_embedding(seed, item.id, e)),
                Input::Embedding(v) if v.len() == e => embeddings.extend_from_slice(v),
                Input::Embedding(v) => bail!(
                    "item {}: embedding of {} values, expected {e}",
                    item.id,
                    v.len()
                ),
                Input::States(_) => bail!(
                    "item {}: a Flows simulation takes an embedding, not states",
                    item.id
                ),
            }
        }
        let gpu = match &self.backend {
            Backend::Gpu(ctx) => Some(GpuFlowSetup::new(ctx, &weights, cfg.capacity())?),
            Backend::Cpu => None,
        };
        let wh = shape.surface() as usize;
        run_batches(run, 0..items.len(), size, |_, r| {
            let (first, count) = (r.start, r.len());
            let ids: Vec<u64> = r.clone().map(|k| items[k].id).collect();
            let outcome = run_flow_batch(
                gpu.as_ref(),
                &weights,
                cfg,
                seed,
                &ids,
                &embeddings[first * e..(first + count) * e],
                None,
                |_| {},
            )?;
            let surf = aggregate(&shape, &outcome.state);
            for (k, totals) in outcome.items.into_iter().enumerate() {
                outputs[first + k] = Some(Ok(Output::Flows {
                    planes: surf.planes[k * 2 * wh..(k + 1) * 2 * wh].to_vec(),
                    merged: surf.merged[k * wh..(k + 1) * wh].to_vec(),
                    totals: Box::new(totals),
                }));
            }
            Ok(vec![None; count])
        })
    }
}
