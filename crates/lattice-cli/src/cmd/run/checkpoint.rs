//! MoE checkpoints: every `--checkpoint-every N` steps, `OUT/checkpoint/` gets the states of
//! every item (finished, in flight, or not started), how many steps each has done, the results
//! so far, the weights and the config hash. `--resume DIR` continues from there and ends
//! bit-identical to an uninterrupted run: the step is deterministic and there is no random
//! stream to restore (per-item seeds are hashes of (seed, item id)).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lattice_core::config::LoadedConfig;
use lattice_core::io::{read_f32, write_atomic, write_f32};
use serde::{Deserialize, Serialize};

use crate::runtime::ItemResult;

/// Test switch: stop the run (as if killed) right after its first checkpoint is written.
pub const STOP_AFTER_CHECKPOINT_ENV: &str = "LATTICE_STOP_AFTER_CHECKPOINT";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: String,
    pub config: PathBuf,
    pub config_hash: String,
    pub seed: u64,
    /// "seeded" or the weights file the run was started with.
    pub weights: String,
    /// Steps every item runs in all.
    pub steps: u32,
    /// Steps done, per item.
    pub done: Vec<u32>,
    /// First non-finite state per item so far.
    pub errors: Vec<Option<String>>,
    /// Results of the items that finished.
    pub results: Vec<Option<ItemResult>>,
    /// The states file, relative to the checkpoint folder.
    pub states: String,
    /// How the run's randomness is reproduced.
    pub rng: String,
}

pub fn dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

impl Checkpoint {
    pub fn new(loaded: &LoadedConfig, weights: String, steps: u32, items: usize) -> Self {
        Self {
            weights,
            version: env!("CARGO_PKG_VERSION").into(),
            config: loaded.path.clone(),
            config_hash: format!("{:016x}", loaded.text_hash),
            seed: loaded.config.seed,
            steps,
            done: vec![0; items],
            errors: vec![None; items],
            results: vec![None; items],
            states: String::new(),
            rng: "none to restore: weights, states and per-item seeds are derived from \
                  (seed, name, item id) by hashing"
                .into(),
        }
    }

    /// Writes `states` ([items, N, S]) under a new name, then the JSON that points at it, then
    /// removes the previous states file: a crash at any point leaves a consistent checkpoint.
    pub fn save(&mut self, out: &Path, shape: [u64; 3], states: &[f32]) -> anyhow::Result<()> {
        let d = dir(out);
        std::fs::create_dir_all(&d)
            .with_context(|| format!("cannot create checkpoint folder {}", d.display()))?;
        let step_total: u64 = self.done.iter().map(|&s| u64::from(s)).sum();
        let name = format!("states_{step_total:012}.npy");
        write_f32(&d.join(&name), &shape, states)?;
        let old = std::mem::replace(&mut self.states, name);
        write_atomic(&d.join("checkpoint.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)
        })?;
        if !old.is_empty() && old != self.states {
            let _ = std::fs::remove_file(d.join(old));
        }
        Ok(())
    }

    /// Loads `DIR/checkpoint/` and refuses one written by another config, version or step
    /// count; returns it with the saved states.
    pub fn load(
        resume: &Path,
        loaded: &LoadedConfig,
        weights: &str,
        steps: u32,
        shape: [u64; 3],
    ) -> anyhow::Result<(Self, Vec<f32>)> {
        let d = dir(resume);
        let path = d.join("checkpoint.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no checkpoint to resume in {} (expected {}); runs write one with --checkpoint-every N",
                resume.display(),
                path.display()
            )
        })?;
        let c: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a lattice checkpoint", path.display()))?;
        let hash = format!("{:016x}", loaded.text_hash);
        if c.config_hash != hash {
            bail!(
                "the checkpoint in {} was written for another config ({}, hash {}); {} hashes to {hash}. \
                 Resume with the config it was written for",
                resume.display(),
                c.config.display(),
                c.config_hash,
                loaded.path.display()
            );
        }
        if c.version != env!("CARGO_PKG_VERSION") {
            bail!(
                "the checkpoint in {} was written by lattice {}, this is {}; finish it with that version",
                resume.display(),
                c.version,
                env!("CARGO_PKG_VERSION")
            );
        }
        if c.steps != steps {
            bail!(
                "the checkpoint in {} is for a run of {} steps, this run asks for {steps}; drop --steps or match it",
                resume.display(),
                c.steps
            );
        }
        if c.weights != weights {
            bail!(
                "the checkpoint in {} was written with weights {}, this run uses {weights}; pass the same --weights",
                resume.display(),
                c.weights
            );
        }
        let want = shape.map(Some);
        let states = read_f32(&d.join(&c.states), &want, "[items, cells, state_size]")?.0;
        Ok((c, states))
    }
}
