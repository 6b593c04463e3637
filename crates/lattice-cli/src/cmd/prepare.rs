//! `lattice prepare`: the inputs a run would generate (MoE initial states, flows embeddings
//! seeded or of texts), written as numbered batch files with a manifest, so runs can read
//! them back (`inputs:` in the config, `--init-states DIR`, `--embeddings DIR`) instead of
//! generating them: the same items, bit for bit.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use lattice_core::config::{self, BatchSize, LoadedConfig, Simulation};
use lattice_core::flows::mapper::seeded_embedding;
use lattice_core::formats;
use lattice_core::geometry::Dims;
use lattice_core::io::{write_atomic, write_f32};
use lattice_core::moe::initial_states;
use serde::Serialize;

use crate::summary::print_summary;

/// Items per batch file when the config's batch size is `Auto`.
const DEFAULT_BATCH: u32 = 64;
/// The manifest beside the batch files.
pub const MANIFEST: &str = "batches.json";

#[derive(Args)]
pub struct PrepareArgs {
    /// The RON config whose inputs are written.
    pub config: PathBuf,
    /// Folder for the batch files (created; it must not hold .npy files already).
    #[arg(long)]
    pub out: PathBuf,
    /// Items per batch file (default: the config's Fixed max_batch_size, else 64).
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Flows: embed these texts (one item per text) instead of seeding the embeddings
    /// (default: the config's `texts`).
    #[arg(long)]
    pub texts: Option<PathBuf>,
    /// The sentence encoder for the texts (default: the config's `texts.encoder`).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
}

/// What `batches.json` says.
#[derive(Serialize)]
struct Manifest {
    format_version: u32,
    cell_index: &'static str,
    config: String,
    config_hash: String,
    seed: u64,
    /// "initial_states" (MoE) or "embeddings" (flows).
    kind: &'static str,
    /// "seeded", or the texts and encoder they were embedded with.
    source: String,
    /// Shape of one item: [cells, state_size] or [embedding_dim].
    item_shape: Vec<u64>,
    items: usize,
    batch_size: usize,
    batches: Vec<BatchFile>,
    /// Flows from texts: item i is text `text_ids[i]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    text_ids: Option<Vec<String>>,
}

#[derive(Serialize)]
struct BatchFile {
    file: String,
    /// The batch's item ids (item indices of the run).
    ids: Vec<u64>,
}

/// The items' inputs, all of them, and where they came from.
struct Inputs {
    kind: &'static str,
    source: String,
    item_shape: Vec<u64>,
    values: Vec<f32>,
    text_ids: Option<Vec<String>>,
}

pub fn run(args: &PrepareArgs, quiet: bool) -> anyhow::Result<()> {
    let loaded = config::load(&args.config)?;
    let items = loaded.config.batch.items as usize;
    let batch = match (args.batch_size, loaded.config.batch.max_batch_size) {
        (Some(0), _) => bail!("--batch-size 0 holds no item; give 1 or more"),
        (Some(b), _) | (None, BatchSize::Fixed(b)) => b as usize,
        (None, BatchSize::Auto) => DEFAULT_BATCH as usize,
    };
    prepare_folder(&args.out)?;
    let inputs = generate(args, &loaded, items)?;
    let per = inputs.values.len() / items;
    let mut batches = Vec::new();
    for (k, first) in (0..items).step_by(batch).enumerate() {
        let end = (first + batch).min(items);
        let file = format!("batch-{k:05}.npy");
        let mut shape = vec![(end - first) as u64];
        shape.extend(&inputs.item_shape);
        write_f32(
            &args.out.join(&file),
            &shape,
            &inputs.values[first * per..end * per],
        )?;
        tracing::info!("wrote {file}: items {first}..{end}");
        batches.push(BatchFile {
            file,
            ids: (first as u64..end as u64).collect(),
        });
    }
    let manifest = Manifest {
        format_version: formats::FORMAT_VERSION,
        cell_index: formats::CELL_INDEX,
        config: args.config.display().to_string(),
        config_hash: format!("{:016x}", loaded.text_hash),
        seed: loaded.config.seed,
        kind: inputs.kind,
        source: inputs.source,
        item_shape: inputs.item_shape,
        items,
        batch_size: batch,
        batches,
        text_ids: inputs.text_ids,
    };
    let path = args.out.join(MANIFEST);
    write_atomic(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest).map_err(std::io::Error::other)
    })?;
    if !quiet {
        print_summary(
            &format!("prepared the inputs of {}", args.config.display()),
            &[
                ("inputs", format!("{} ({})", manifest.kind, manifest.source)),
                (
                    "batches",
                    format!(
                        "{} file(s) of ≤ {batch} item(s), {items} in all",
                        manifest.batches.len()
                    ),
                ),
                ("wrote", format!("{} and {MANIFEST}", args.out.display())),
                (
                    "run them",
                    format!(
                        "inputs: Some((dir: \"{}\")) in the config, or --{} {}",
                        args.out.display(),
                        if manifest.kind == "embeddings" {
                            "embeddings"
                        } else {
                            "init-states"
                        },
                        args.out.display()
                    ),
                ),
            ],
        );
    }
    Ok(())
}

/// Creates the folder; refuses one that already holds batches (a run reads every .npy in it).
fn prepare_folder(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let has_npy = std::fs::read_dir(out)
        .with_context(|| format!("cannot list {}", out.display()))?
        .filter_map(Result::ok)
        .any(|e| e.path().extension().is_some_and(|x| x == "npy"));
    if has_npy {
        bail!(
            "{} already holds .npy files, and a run reads every one of them; give an empty or new folder",
            out.display()
        );
    }
    Ok(())
}

fn generate(args: &PrepareArgs, loaded: &LoadedConfig, items: usize) -> anyhow::Result<Inputs> {
    let seed = loaded.config.seed;
    match &loaded.config.simulation {
        Simulation::Moe(m) => {
            if args.texts.is_some() || args.encoder.is_some() {
                bail!(
                    "--texts and --encoder prepare Flows inputs; {} is a Moe config",
                    args.config.display()
                );
            }
            let (w, h, d) = m.lattice.dims;
            let n = Dims::new(w, h, d)?.cells_usize();
            let s = m.state_size as usize;
            Ok(Inputs {
                kind: "initial_states",
                source: "seeded".into(),
                item_shape: vec![n as u64, s as u64],
                values: (0..items)
                    .flat_map(|b| initial_states(seed, b as u64, n, s, m.init_scale))
                    .collect(),
                text_ids: None,
            })
        }
        Simulation::Flows(f) => {
            let e = f.embedding_dim as usize;
            let from_config = f.texts.as_ref();
            let texts = args
                .texts
                .clone()
                .or_else(|| from_config.map(|t| loaded.resolve(&t.file)));
            let Some(texts) = texts else {
                if args.encoder.is_some() {
                    bail!("--encoder embeds texts; give them with --texts FILE");
                }
                return Ok(Inputs {
                    kind: "embeddings",
                    source: "seeded".into(),
                    item_shape: vec![e as u64],
                    values: (0..items)
                        .flat_map(|b| seeded_embedding(seed, b as u64, e))
                        .collect(),
                    text_ids: None,
                });
            };
            let encoder = args
                .encoder
                .clone()
                .or_else(|| from_config.map(|t| loaded.resolve(&t.encoder)))
                .context("--texts needs an encoder: give --encoder DIR or set texts.encoder in the config")?;
            let batch = from_config.map_or(lattice_sim::text::DEFAULT_MAX_BATCH_SIZE, |t| {
                t.max_batch_size as usize
            });
            embedded(f.embedding_dim, (&texts, &encoder), items, batch)
        }
    }
}

/// The texts' embeddings, one item per text.
fn embedded(
    embedding_dim: u32,
    (texts_path, encoder_dir): (&Path, &Path),
    items: usize,
    batch: usize,
) -> anyhow::Result<Inputs> {
    let texts = lattice_sim::read_texts_for(texts_path, items)?;
    let encoder = lattice_sim::load_encoder_for(embedding_dim, encoder_dir)?;
    let encoded = encoder.encode(&texts.texts, batch)?;
    Ok(Inputs {
        kind: "embeddings",
        source: format!(
            "texts {} via encoder {}",
            texts_path.display(),
            encoder_dir.display()
        ),
        item_shape: vec![u64::from(embedding_dim)],
        values: encoded.embeddings,
        text_ids: Some(texts.ids),
    })
}
