//! `lattice embed`: texts to unit embeddings with a local sentence encoder, written as `.npy`
//! `[texts, dim]` beside a JSON report (ids, encoder, per-batch figures) that `lattice run
//! --embeddings` and Python read like any other embeddings.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lattice_core::io::{write_atomic, write_f32};
use lattice_sim::text::{BatchReport, DEFAULT_MAX_BATCH_SIZE, Encoded, Encoder, read_texts};
use serde::Serialize;

use crate::summary::{peak_line, print_summary};

#[derive(Args)]
pub struct EmbedArgs {
    /// Texts: one per line, or JSON lines (`.jsonl`) of {"id": ..., "text": ...}.
    pub texts: PathBuf,
    /// A local model folder in the Hugging Face layout (config.json, tokenizer.json,
    /// model.safetensors; sentence-transformers' pooling settings if present).
    #[arg(long)]
    pub encoder: PathBuf,
    /// Where the embeddings go: `.npy` f32 [texts, dim]; the report goes beside it as `.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// Texts per encoder batch.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_SIZE)]
    pub max_batch_size: usize,
}

/// What `lattice embed` writes beside the embeddings.
#[derive(Serialize)]
struct Report<'a> {
    texts_file: String,
    encoder: String,
    architecture: &'static str,
    dim: usize,
    max_tokens: usize,
    texts: usize,
    tokens: usize,
    truncated: usize,
    seconds: f64,
    texts_per_s: f64,
    tokens_per_s: f64,
    ids: &'a [String],
    batches: &'a [BatchReport],
}

pub fn run(args: &EmbedArgs, quiet: bool) -> anyhow::Result<()> {
    let texts = read_texts(&args.texts)?;
    // Fail now, not after the encoding, if the output cannot be written.
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    }
    let encoder = Encoder::load(&args.encoder)?;
    let bar = texts_bar(texts.len(), quiet);
    let encoded = encoder.encode_with(&texts.texts, args.max_batch_size, |b| {
        bar_batch(bar.as_ref(), b);
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let n = encoded.texts() as u64;
    write_f32(&args.out, &[n, encoded.dim as u64], &encoded.embeddings)?;
    let report = Report {
        texts_file: args.texts.display().to_string(),
        encoder: args.encoder.display().to_string(),
        architecture: encoder.architecture(),
        dim: encoded.dim,
        max_tokens: encoder.max_tokens(),
        texts: encoded.texts(),
        tokens: encoded.tokens(),
        truncated: encoded.truncated,
        seconds: encoded.seconds,
        texts_per_s: encoded.texts_per_s(),
        tokens_per_s: encoded.tokens_per_s(),
        ids: &texts.ids,
        batches: &encoded.batches,
    };
    let report_path = report_path(&args.out);
    write_atomic(&report_path, |w| {
        serde_json::to_writer_pretty(&mut *w, &report).map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", report_path.display()))?;
    if !quiet {
        print_embed_summary(args, &encoder, &encoded, &report_path);
    }
    Ok(())
}

/// `emb.npy` → `emb.json`.
pub fn report_path(out: &Path) -> PathBuf {
    out.with_extension("json")
}

fn texts_bar(total: usize, quiet: bool) -> Option<ProgressBar> {
    (std::io::stderr().is_terminal() && !quiet).then(|| {
        let b = ProgressBar::new(total as u64);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} texts {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    })
}

fn bar_batch(bar: Option<&ProgressBar>, b: &BatchReport) {
    match bar {
        Some(bar) => {
            bar.set_message(format!("{:.0} tokens/s", b.tokens_per_s));
            bar.inc(b.texts as u64);
        }
        None => tracing::info!(
            "encoded {} texts, {} tokens in {:.2} s ({:.0} tokens/s)",
            b.texts,
            b.tokens,
            b.seconds,
            b.tokens_per_s
        ),
    }
}

fn print_embed_summary(args: &EmbedArgs, encoder: &Encoder, e: &Encoded, report: &Path) {
    let peak = e.batches.iter().filter_map(|b| b.peak_memory_bytes).max();
    print_summary(
        &format!("embedded {}", args.texts.display()),
        &[
            (
                "encoder",
                format!(
                    "{} ({}, {}-d, ≤ {} tokens)",
                    encoder.dir().display(),
                    encoder.architecture(),
                    e.dim,
                    encoder.max_tokens()
                ),
            ),
            (
                "texts",
                format!(
                    "{} ({} truncated), {} tokens",
                    e.texts(),
                    e.truncated,
                    e.tokens()
                ),
            ),
            (
                "throughput",
                format!(
                    "{:.1} texts/s, {:.0} tokens/s in {} batch(es) of ≤ {}",
                    e.texts_per_s(),
                    e.tokens_per_s(),
                    e.batches.len(),
                    args.max_batch_size
                ),
            ),
            ("peak memory", peak_line(peak)),
            (
                "wrote",
                format!("{} and {}", args.out.display(), report.display()),
            ),
        ],
    );
}
