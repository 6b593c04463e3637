//! `lattice run`: load and check the config, prepare the output folder and the backend, then
//! run the configured simulation ([`moe`] or [`flows`]) and write its outputs.

mod by_items;
mod checkpoint;
mod flows;
mod metrics;
mod moe;
mod slabs;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use lattice_core::config::{self, Simulation};

use lattice_sim as api;
use lattice_sim::{Backend, BackendChoice, GpuRequest};

use crate::ranks::Ranks;

#[derive(Args)]
pub struct RunArgs {
    /// The RON config to run.
    pub config: PathBuf,
    /// Output folder (created if missing); with --resume, the folder resumed.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Write a checkpoint to OUT/checkpoint/ every N steps (0 = never); flows checkpoint at
    /// the end of a batch once N steps have run since the last one.
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u32,
    /// Continue the run whose checkpoint is in DIR/checkpoint/ (same config); outputs go to DIR.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Without a terminal, log a progress line every N steps (0 = about ten per batch).
    #[arg(long, default_value_t = 0)]
    pub log_every: u64,
    /// MoE: initial states, `.npy` f32 of shape [items, N, S] in cell order x + y·W + z·W·H,
    /// or a directory of such batches `[k, N, S]` (default: the config's `inputs`, else seeded
    /// from the config's seed, per item).
    #[arg(long)]
    pub init_states: Option<PathBuf>,
    /// Flows: input embeddings, `.npy` f32 of shape [items, embedding_dim], or a directory of
    /// such batches (default: the config's `inputs` or `texts`, else seeded).
    #[arg(long, conflicts_with = "texts")]
    pub embeddings: Option<PathBuf>,
    /// How a directory of input batches is read (default: the config's `inputs.order`, else
    /// in order).
    #[arg(long, value_enum)]
    pub input_order: Option<Order>,
    /// Flows: run from texts, one item per text (lines, or JSON lines `.jsonl` with ids),
    /// embedded with --encoder (default: the config's `texts`).
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// The sentence encoder for the texts: a local Hugging Face model folder (default: the
    /// config's `texts.encoder`).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Weights, `.safetensors` with the tensors of docs/weights.md (default: seeded).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Override the config's number of steps (MoE `steps`, flows `max_steps`).
    #[arg(long)]
    pub steps: Option<u32>,
    /// Under MPI: `items` gives each rank a share of the items; `z-slabs` splits every MoE
    /// lattice into z-slabs, one per rank, exchanging halo planes every step (default: the
    /// config's `batch.split`, itself `Items` by default).
    #[arg(long, value_enum)]
    pub split: Option<Split>,
    /// Under MPI: this rank's checkpoint folder under OUT (each rank keeps its own).
    #[arg(skip)]
    pub rank_folder: Option<String>,
    /// How the run is divided over processes, as its checkpoints record it.
    #[arg(skip)]
    pub layout: RunLayout,
    /// MoE: the state channel drawn in `states.png` and `states.vtk`.
    #[arg(long, default_value_t = 0)]
    pub channel: u32,
    /// MoE: the z-slice drawn in `states.png` (default D/2).
    #[arg(long)]
    pub slice_z: Option<u32>,
}

impl RunArgs {
    /// The folder whose `checkpoint/` this process writes and resumes from: OUT (the resumed
    /// folder with `--resume`), or under MPI its rank's folder in it.
    fn checkpoint_home(&self) -> PathBuf {
        match &self.rank_folder {
            Some(r) => self.out.join(r),
            None => self.out.clone(),
        }
    }

    /// Where the weights come from, as recorded in metrics and checkpoints.
    fn weights_origin(&self) -> String {
        origin(self.weights.as_deref())
    }
}

/// "seeded" or the file an input came from.
fn origin(path: Option<&Path>) -> String {
    path.map_or("seeded".into(), |p| p.display().to_string())
}

/// How a run is divided: the split and the rank count (a checkpoint resumes only under the
/// same, since each rank's checkpoint holds its own share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunLayout {
    pub split: config::Split,
    pub ranks: usize,
}

/// How an MPI job divides a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// Each rank runs a contiguous share of the items.
    Items,
    /// Every rank runs every item, each its own z-slab of the lattice.
    ZSlabs,
}

impl From<Split> for config::Split {
    fn from(s: Split) -> Self {
        match s {
            Split::Items => Self::Items,
            Split::ZSlabs => Self::ZSlabs,
        }
    }
}

/// How a directory of precomputed input batches is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// The files' items one after the other (files in name order).
    InOrder,
    /// One item from each file in turn.
    RoundRobin,
}

impl From<Order> for lattice_core::inputs::InputOrder {
    fn from(o: Order) -> Self {
        match o {
            Order::InOrder => Self::InOrder,
            Order::RoundRobin => Self::RoundRobin,
        }
    }
}

impl From<lattice_core::inputs::InputOrder> for Order {
    fn from(o: lattice_core::inputs::InputOrder) -> Self {
        match o {
            lattice_core::inputs::InputOrder::InOrder => Self::InOrder,
            lattice_core::inputs::InputOrder::RoundRobin => Self::RoundRobin,
        }
    }
}

impl RunArgs {
    /// How a directory of input batches is read.
    fn order(&self) -> lattice_core::inputs::InputOrder {
        self.input_order.map(Into::into).unwrap_or_default()
    }
}

/// The config's file name, for figure titles.
fn config_name(config: &Path) -> String {
    config.file_name().map_or_else(
        || config.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub fn run(
    mut args: RunArgs,
    (backend, gpu): (BackendChoice, &GpuRequest),
    quiet: bool,
    ranks: &Ranks,
) -> anyhow::Result<()> {
    let loaded = config::load(&args.config)?;
    if let Some(dir) = &args.resume {
        args.out = dir.clone();
    }
    let wrong = |flag: &str, sim: &str| {
        anyhow::anyhow!(
            "{flag} applies to {sim} configs; {} is not one",
            args.config.display()
        )
    };
    match &loaded.config.simulation {
        Simulation::Moe(_) if args.embeddings.is_some() => {
            return Err(wrong("--embeddings", "Flows"));
        }
        Simulation::Moe(_) if args.texts.is_some() || args.encoder.is_some() => {
            let flag = if args.texts.is_some() {
                "--texts"
            } else {
                "--encoder"
            };
            return Err(wrong(flag, "Flows"));
        }
        Simulation::Flows(_) if args.init_states.is_some() => {
            return Err(wrong("--init-states", "Moe"));
        }
        _ => {}
    }
    inputs_from_config(&mut args, &loaded);
    let _span = tracing::info_span!("run", config = %args.config.display()).entered();
    let _rank = (ranks.size() > 1).then(|| tracing::info_span!("rank", r = ranks.rank()).entered());
    if ranks.is_root() {
        prepare_out(&args.out)?;
    }
    // Ranks sharing a machine take its GPUs in turn (the request holds the local rank).
    let backend = Backend::select_with(backend, gpu)?;
    tracing::info!(backend = %backend.name(), "backend");
    let is_moe = matches!(loaded.config.simulation, Simulation::Moe(_));
    let mut sim = api::Simulation::from_loaded(loaded, backend)?;
    if let Some(p) = &args.weights {
        sim.load_weights(p)?;
    }
    if let Some(steps) = args.steps {
        sim.set_steps(steps);
    }
    #[cfg(feature = "test-support")]
    if crate::test_hooks::fail_first_batch(ranks.rank()) {
        sim.set_fail_first_batch(true);
    }
    let split = args.split.map_or(sim.config().batch.split, Into::into);
    if ranks.size() > 1 {
        let inputs = [
            ("the initial states", args.init_states.as_deref()),
            ("the embeddings", args.embeddings.as_deref()),
            ("the texts", args.texts.as_deref()),
            ("the encoder", args.encoder.as_deref()),
        ];
        let facts = by_items::run_facts(&sim, split, &inputs)?;
        by_items::check(&sim, ranks, &facts)?;
        args.rank_folder = Some(format!("rank-{}-of-{}", ranks.rank(), ranks.size()));
    }
    args.layout = RunLayout {
        split,
        ranks: ranks.size(),
    };
    let halo = match split {
        config::Split::ZSlabs if ranks.size() > 1 => Some(slabs::split(&mut sim, ranks)?),
        _ => None,
    };
    // Under MPI every rank but 0 keeps its progress to itself.
    let quiet = quiet || !ranks.is_root();
    if is_moe {
        moe::run(&args, &sim, quiet, ranks, halo.as_deref())
    } else {
        flows::run(&args, &sim, quiet, ranks)
    }
}

/// Fills the inputs the command line leaves open from the config (`inputs`, `texts`), its
/// relative paths taken from the config's folder: the command line wins.
fn inputs_from_config(args: &mut RunArgs, loaded: &config::LoadedConfig) {
    let given = args.init_states.is_some() || args.embeddings.is_some() || args.texts.is_some();
    if let Some(inputs) = loaded.config.inputs.as_ref().filter(|_| !given) {
        let dir = Some(loaded.resolve(&inputs.dir));
        match loaded.config.simulation {
            Simulation::Moe(_) => args.init_states = dir,
            Simulation::Flows(_) => args.embeddings = dir,
        }
        args.input_order = args.input_order.or(Some(inputs.order.into()));
    }
    if let Simulation::Flows(f) = &loaded.config.simulation
        && let Some(t) = &f.texts
    {
        if !given {
            args.texts = Some(loaded.resolve(&t.file));
        }
        if args.texts.is_some() && args.encoder.is_none() {
            args.encoder = Some(loaded.resolve(&t.encoder));
        }
    }
}

fn prepare_out(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    // Fail now, not after the simulation, if the folder is not writable.
    let probe = tempfile::Builder::new()
        .prefix(".lattice-probe-")
        .tempfile_in(out)
        .with_context(|| format!("output folder {} is not writable", out.display()))?;
    drop(probe);
    Ok(())
}
