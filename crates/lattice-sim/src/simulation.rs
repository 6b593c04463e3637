//! [`Simulation`]: a config and its model (weights, and for MoE the validated neighbor cache)
//! on a chosen backend; runs submitted items in batches.

use std::path::Path;
use std::time::Instant;

use lattice_core::config::{
    self, BatchSize, ConfigError, LoadedConfig, MoeConfig, RunConfig, Simulation as Sim,
};
use lattice_core::flows::{FlowLayout, FlowShape, FlowWeights};
use lattice_core::lattice::build_cache;
use lattice_core::moe::domain::Domain;
use lattice_core::moe::{MoeShape, MoeWeights, ParamLayout};
use lattice_core::tensors::NamedTensors;

use crate::backend::{Backend, BackendChoice};
use crate::error::{Error, Result};
use crate::items::{Item, Results};
use crate::model::{FlowsModel, Model, MoeModel};
use crate::observer::{NoObserver, Observer};
use crate::runtime::Tally;
use crate::{flows, moe};

/// A configured simulation on a chosen backend.
pub struct Simulation {
    loaded: LoadedConfig,
    backend: Backend,
    model: Model,
    fail_first_batch: bool,
    domain: Option<Domain>,
}

impl Simulation {
    /// Loads and checks a RON config file and opens the backend.
    ///
    /// # Errors
    /// [`Error::Config`] (with line, column and field), [`Error::Lattice`], [`Error::Gpu`].
    pub fn from_file(path: &Path, backend: BackendChoice) -> Result<Self> {
        Self::from_loaded(config::load(path)?, Backend::select(backend)?)
    }

    /// A config given as RON text (what a config file holds), parsed and checked like a file;
    /// `origin` names it in errors, and relative mask paths are taken from the current folder.
    ///
    /// # Errors
    /// As [`Self::from_file`].
    pub fn from_ron(text: &str, origin: &str, backend: BackendChoice) -> Result<Self> {
        let loaded = config::load_str(text, Path::new(origin))?;
        Self::from_loaded(loaded, Backend::select(backend)?)
    }

    /// A config made in code, checked like a file (relative mask paths are taken from the
    /// current folder).
    ///
    /// # Errors
    /// As [`Self::from_file`]; every problem of the config is listed at once.
    pub fn new(config: RunConfig, backend: BackendChoice) -> Result<Self> {
        if let Err(issues) = config::check(&config) {
            let path = "<in code>".into();
            return Err(ConfigError::Invalid { path, issues }.into());
        }
        let text = ron::to_string(&config)?;
        let loaded = LoadedConfig {
            config,
            path: "<in code>".into(),
            text_hash: config::fnv1a(text.as_bytes()),
        };
        Self::from_loaded(loaded, Backend::select(backend)?)
    }

    /// A loaded config on a backend already chosen. MoE builds and validates its neighbor
    /// cache here; weights are seeded from the config's seed (see [`Self::load_weights`]).
    ///
    /// # Errors
    /// [`Error::Lattice`] when the mask or the neighbor cache cannot be built.
    pub fn from_loaded(loaded: LoadedConfig, backend: Backend) -> Result<Self> {
        let seed = loaded.config.seed;
        let model = match &loaded.config.simulation {
            Sim::Moe(m) => Model::Moe(Box::new(moe_model(&loaded, m, seed)?)),
            Sim::Flows(f) => {
                let t = Instant::now();
                let weights = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(f)), seed);
                tracing::info!(
                    "flow networks: {} parameters, ready in {:.2} s",
                    weights.data.len(),
                    t.elapsed().as_secs_f64()
                );
                let cfg = f.clone();
                Model::Flows(Box::new(FlowsModel { cfg, weights }))
            }
        };
        Ok(Self {
            loaded,
            backend,
            model,
            fail_first_batch: false,
            domain: None,
        })
    }

    /// Replaces the seeded weights with a `.safetensors` file's (docs/weights.md lists the
    /// tensors).
    ///
    /// # Errors
    /// [`Error::Weights`] naming a missing, extra or mis-shaped tensor, or an unreadable file.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        match &mut self.model {
            Model::Moe(m) => m.weights = MoeWeights::load(m.weights.layout.clone(), path)?,
            Model::Flows(f) => f.weights = FlowWeights::load(f.weights.layout.clone(), path)?,
        }
        Ok(())
    }

    /// Replaces the weights with named tensors (`name → (shape, values)`, the names of
    /// docs/weights.md), checked as a file is; `origin` names them in errors.
    ///
    /// # Errors
    /// [`Error::Weights`] naming a missing, extra or mis-shaped tensor.
    pub fn set_weights(&mut self, origin: &str, named: NamedTensors) -> Result<()> {
        let origin = Path::new(origin);
        match &mut self.model {
            Model::Moe(m) => {
                m.weights = MoeWeights::from_named(m.weights.layout.clone(), origin, named)?;
            }
            Model::Flows(f) => {
                f.weights = FlowWeights::from_named(f.weights.layout.clone(), origin, named)?;
            }
        }
        Ok(())
    }

    /// Every weight tensor as `(name, shape, values)`, in the order of docs/weights.md.
    pub fn weights(&self) -> Vec<(&str, &[u32], &[f32])> {
        match &self.model {
            Model::Moe(m) => m.weights.named().collect(),
            Model::Flows(f) => f.weights.named().collect(),
        }
    }

    /// Overrides the config's step count (MoE `steps`, flows `max_steps`).
    pub fn set_steps(&mut self, steps: u32) {
        match &mut self.model {
            Model::Moe(m) => m.cfg.steps = steps,
            Model::Flows(f) => f.cfg.max_steps = Some(steps),
        }
    }

    /// Runs only `domain`'s slab of every MoE lattice from now on, exchanging halos through it
    /// (one rank of a lattice split across processes); results then hold current states in
    /// the slab's planes only.
    ///
    /// # Errors
    /// [`Error::Domain`] for a flows simulation (flows are per item: they split by items).
    pub fn set_domain(&mut self, domain: Domain) -> Result<()> {
        if !matches!(self.model, Model::Moe(_)) {
            return Err(Error::Domain(
                "only a MoE lattice can be split across ranks".into(),
            ));
        }
        self.domain = Some(domain);
        Ok(())
    }

    /// This rank's slab, when the lattice is split across ranks ([`Self::set_domain`]).
    pub fn domain(&self) -> Option<&Domain> {
        self.domain.as_ref()
    }

    /// Fault injection for tests of the halving path: the run's first batch fails as if it
    /// could not allocate, on any machine.
    #[cfg(feature = "test-support")]
    pub fn set_fail_first_batch(&mut self, on: bool) {
        self.fail_first_batch = on;
    }

    /// Steps an item runs (flows: at most).
    pub fn steps(&self) -> u32 {
        match &self.model {
            Model::Moe(m) => m.cfg.steps,
            Model::Flows(f) => f.cfg.steps(),
        }
    }

    /// The config as loaded (before [`Self::set_steps`]).
    pub fn config(&self) -> &RunConfig {
        &self.loaded.config
    }

    /// The config with its path and hash.
    pub fn loaded(&self) -> &LoadedConfig {
        &self.loaded
    }

    /// The backend the simulation runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The backend, handed back for another simulation.
    pub(crate) fn into_backend(self) -> Backend {
        self.backend
    }

    /// The model: config as run, weights, and for MoE the neighbor cache.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The weights' parameter count.
    pub fn parameters(&self) -> usize {
        match &self.model {
            Model::Moe(m) => m.weights.data.len(),
            Model::Flows(f) => f.weights.data.len(),
        }
    }

    /// Writes the weights as `.safetensors` (atomically).
    ///
    /// # Errors
    /// [`Error::Weights`] when the file cannot be written.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        match &self.model {
            Model::Moe(m) => m.weights.save(path)?,
            Model::Flows(f) => f.weights.save(path)?,
        }
        Ok(())
    }

    /// The batch size a run of `items` items starts with: the config's `Fixed(b)` if b items
    /// fit this backend, with `Auto` as many as fit.
    ///
    /// # Errors
    /// [`Error::BatchTooLarge`] naming the limit, [`Error::OutOfMemory`] when no item fits.
    pub fn batch_size(&self, items: usize) -> Result<usize> {
        let (fits, limit) = match &self.model {
            Model::Moe(m) => moe::batch_limit(&self.backend, m)?,
            Model::Flows(f) => flows::batch_limit(&self.backend, &f.cfg)?,
        };
        Ok(match self.loaded.config.batch.max_batch_size {
            BatchSize::Auto => fits.min(items).max(1),
            BatchSize::Fixed(asked) if asked as usize > fits => {
                return Err(Error::BatchTooLarge { asked, fits, limit });
            }
            BatchSize::Fixed(b) => (b as usize).min(items).max(1),
        })
    }

    /// Runs `items` (ids must be distinct) and returns every item's result by id.
    ///
    /// # Errors
    /// As [`Self::run_observed`].
    pub fn run(&self, items: &[Item]) -> Result<Results> {
        self.run_observed(items, &mut NoObserver)
    }

    /// [`Self::run`], reporting steps, snapshots and finished batches to `observer`.
    ///
    /// # Errors
    /// [`Error::DuplicateItem`], [`Error::Input`] (checked before anything runs),
    /// [`Error::BatchTooLarge`], [`Error::Gpu`], [`Error::BatchOfOneFailed`],
    /// [`Error::Observer`]. An item whose states turn non-finite fails alone, in its result.
    pub fn run_observed(&self, items: &[Item], observer: &mut dyn Observer) -> Result<Results> {
        let mut ids: Vec<u64> = items.iter().map(|i| i.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::DuplicateItem(w[0]));
        }
        let mut size = self.batch_size(items.len())?;
        if let Some(domain) = &self.domain {
            // The ranks of a split lattice run rank 0's plan, so their batches match.
            size = domain.exchange().batch_size_of_root(size);
        }
        let start = Instant::now();
        let mut tally = Tally::default();
        tally.batches.fail_next = self.fail_first_batch;
        let seed = self.loaded.config.seed;
        let (flow_steps, trace) = match &self.model {
            Model::Moe(m) => {
                let run = moe::MoeRun::new(&self.backend, m, seed, self.domain.as_ref());
                run.run(items, size, observer, &mut tally)?;
                (Vec::new(), None)
            }
            Model::Flows(f) => {
                let run = flows::FlowsRun::new(&self.backend, f, seed);
                run.run(items, size, observer, &mut tally)?
            }
        };
        let stats = tally.stats(self.backend.name(), size, items.len(), start);
        Ok(Results {
            items: (tally.measured.results.into_iter())
                .map(|r| (r.id, r))
                .collect(),
            stats,
            flow_steps,
            trace,
        })
    }
}

/// Builds and validates the neighbor cache and seeds the weights.
fn moe_model(loaded: &LoadedConfig, m: &MoeConfig, seed: u64) -> Result<MoeModel> {
    let start = Instant::now();
    let cache = build_cache(loaded, &m.lattice)?;
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
    let weights = MoeWeights::seeded(ParamLayout::new(MoeShape::from_config(m)), seed);
    Ok(MoeModel {
        cfg: m.clone(),
        cache,
        weights,
    })
}
