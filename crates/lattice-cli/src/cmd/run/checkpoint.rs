//! Checkpoints and `--resume`. Both simulations write `OUT/checkpoint/checkpoint.json` plus the
//! arrays it names; a resumed run ends bit-identical to an uninterrupted one, because every
//! step is deterministic and there is no random stream to restore (every seed is a hash of
//! (seed, name, item id), and flow noise is keyed by (item seed, slot, step)).
//!
//! * MoE: every `--checkpoint-every N` steps, the states of every item (finished, in flight or
//!   not started) and the steps each has done.
//! * Flows: at the end of a batch once N or more steps have run since the last checkpoint, the
//!   surfaces and totals of the finished items (a flows batch is at most `max_steps` steps).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lattice_core::config::LoadedConfig;
use lattice_core::flows::run::{ItemOutcome, StepRecord};
use lattice_core::formats;
use lattice_core::io::{read_f32, write_atomic, write_f32};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use lattice_sim::ItemRecord;

use super::RunLayout;

/// What a checkpoint must match to be resumed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub simulation: String,
    pub version: String,
    pub config: PathBuf,
    pub config_hash: String,
    pub seed: u64,
    /// "seeded" or the weights file the run was started with.
    pub weights: String,
    /// Steps every item runs (MoE `steps`, flows `max_steps`).
    pub steps: u32,
    /// How the run's randomness is reproduced.
    pub rng: String,
    /// Processes the run was divided over (each keeps its own share in its checkpoint).
    #[serde(default = "one")]
    pub ranks: usize,
    /// How they divided it (`Items`, `ZSlabs`); absent for one process (and only then).
    #[serde(default)]
    pub split: Option<String>,
    /// The engine's file-format version and cell numbering (lattice_core::formats).
    #[serde(default)]
    pub format_version: Option<String>,
    #[serde(default)]
    pub cell_index: Option<String>,
}

fn one() -> usize {
    1
}

impl Header {
    pub fn new(
        simulation: &str,
        loaded: &LoadedConfig,
        weights: String,
        steps: u32,
        layout: RunLayout,
    ) -> Self {
        let ranks = layout.ranks.max(1);
        Self {
            ranks,
            split: (ranks > 1).then(|| format!("{:?}", layout.split)),
            simulation: simulation.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config: loaded.path.clone(),
            config_hash: format!("{:016x}", loaded.text_hash),
            seed: loaded.config.seed,
            weights,
            steps,
            format_version: Some(formats::FORMAT_VERSION.to_string()),
            cell_index: Some(formats::CELL_INDEX.into()),
            rng: "none to restore: weights, inputs and per-item seeds are hashes of \
                  (seed, name, item id); flow noise is keyed by (item seed, slot, step)"
                .into(),
        }
    }

    /// "one process" or "2 ranks split by ZSlabs".
    fn layout(&self) -> String {
        match &self.split {
            Some(split) => format!("{} ranks split by {split}", self.ranks),
            None => "one process".into(),
        }
    }

    /// Refuses a checkpoint written for another config, version, step count, weights or
    /// division over ranks.
    fn verify(&self, want: &Self, resume: &Path) -> anyhow::Result<()> {
        let at = resume.display();
        let recorded = |v: &Option<String>| v.clone().unwrap_or("(none recorded)".into());
        let (version, cells) = (recorded(&self.format_version), recorded(&self.cell_index));
        if let Err(e) = formats::check(Some(&version), Some(&cells)) {
            bail!("the checkpoint in {at} cannot be resumed: {e}");
        }
        if self.layout() != want.layout() {
            return Err(other_division(resume, &self.layout(), want));
        }
        if self.simulation != want.simulation || self.config_hash != want.config_hash {
            bail!(
                "the checkpoint in {at} was written for another config ({}, hash {}); {} hashes to {}. \
                 Resume with the config it was written for",
                self.config.display(),
                self.config_hash,
                want.config.display(),
                want.config_hash
            );
        }
        if self.version != want.version {
            bail!(
                "the checkpoint in {at} was written by lattice {}, this is {}; finish it with that version",
                self.version,
                want.version
            );
        }
        if self.steps != want.steps {
            bail!(
                "the checkpoint in {at} is for a run of {} steps, this run asks for {}; drop --steps or match it",
                self.steps,
                want.steps
            );
        }
        if self.weights != want.weights {
            bail!(
                "the checkpoint in {at} was written with weights {}, this run uses {}; pass the same --weights",
                self.weights,
                want.weights
            );
        }
        Ok(())
    }
}

/// A MoE checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(flatten)]
    pub header: Header,
    /// Steps done, per item.
    pub done: Vec<u32>,
    /// First non-finite state per item so far.
    pub errors: Vec<Option<String>>,
    /// Results of the items that finished.
    pub results: Vec<Option<ItemRecord>>,
    /// The states file, relative to the checkpoint folder.
    pub states: String,
}

/// A flows checkpoint: everything about the items before `done_items`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowsCheckpoint {
    #[serde(flatten)]
    pub header: Header,
    pub done_items: usize,
    pub step_records: Vec<StepRecord>,
    pub outcomes: Vec<ItemOutcome>,
    pub results: Vec<ItemRecord>,
    /// `[done_items, 2, H, W]` and `[done_items, H, W]`, relative to the checkpoint folder.
    pub planes: String,
    pub merged: String,
    /// Item 0's flows per surface cell `[2, H, W]`, for its picture.
    pub item0_landed: Vec<u32>,
}

pub fn dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Writes the arrays under new names, then the JSON that points at them, then removes the
/// files of the previous checkpoint: a crash at any point leaves a consistent checkpoint.
fn save_json<T: Serialize>(
    out: &Path,
    value: &T,
    old: &[String],
    new: &[String],
) -> anyhow::Result<()> {
    let d = dir(out);
    write_atomic(&d.join("checkpoint.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)
    })?;
    for f in old.iter().filter(|f| !f.is_empty() && !new.contains(f)) {
        let _ = std::fs::remove_file(d.join(f));
    }
    Ok(())
}

fn create_dir(out: &Path) -> anyhow::Result<PathBuf> {
    let d = dir(out);
    std::fs::create_dir_all(&d)
        .with_context(|| format!("cannot create checkpoint folder {}", d.display()))?;
    Ok(d)
}

/// Reads `DIR/checkpoint/checkpoint.json` and checks its header against this run's. Where
/// this process has none but the resumed folder holds one written under another division over
/// ranks, the refusal names both.
fn load_json<T: DeserializeOwned>(
    resume: &Path,
    want: &Header,
    header: impl Fn(&T) -> &Header,
) -> anyhow::Result<T> {
    let path = dir(resume).join("checkpoint.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        if let Some(other) = other_layout(resume) {
            return Err(other_division(resume, &other, want));
        }
        bail!(
            "no checkpoint to resume in {} (expected {}); runs write one with --checkpoint-every N",
            resume.display(),
            path.display()
        );
    };
    let c: T = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a lattice checkpoint for this simulation",
            path.display()
        )
    })?;
    header(&c).verify(want, resume)?;
    Ok(c)
}

/// The refusal of a checkpoint in `resume` written under the division `written`.
fn other_division(resume: &Path, written: &str, want: &Header) -> anyhow::Error {
    anyhow::anyhow!(
        "the checkpoint in {} was written by a run of {written}, this run is {}; resume with the \
         same rank count and --split",
        resume.display(),
        want.layout()
    )
}

/// The division over ranks of a checkpoint in the run folder that holds `home` (`home` itself,
/// or its `rank-R-of-P` folder) or in one of its rank folders, if any.
fn other_layout(home: &Path) -> Option<String> {
    let is_rank_folder = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("rank-"))
    };
    let root = if is_rank_folder(home) {
        home.parent()?
    } else {
        home
    };
    let mut places = vec![root.to_path_buf()];
    let mut ranks: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_rank_folder(p))
        .collect();
    ranks.sort();
    places.extend(ranks);
    places.iter().find_map(|p| {
        let text = std::fs::read_to_string(dir(p).join("checkpoint.json")).ok()?;
        let h: Header = serde_json::from_str(&text).ok()?;
        Some(h.layout())
    })
}

impl Checkpoint {
    pub fn new(header: Header, items: usize) -> Self {
        Self {
            header,
            done: vec![0; items],
            errors: vec![None; items],
            results: vec![None; items],
            states: String::new(),
        }
    }

    pub fn save(&mut self, out: &Path, shape: [u64; 3], states: &[f32]) -> anyhow::Result<()> {
        let d = create_dir(out)?;
        let step_total: u64 = self.done.iter().map(|&s| u64::from(s)).sum();
        let name = format!("states_{step_total:012}.npy");
        write_f32(&d.join(&name), &shape, states)?;
        let old = std::mem::replace(&mut self.states, name);
        save_json(out, self, &[old], std::slice::from_ref(&self.states))
    }

    /// The checkpoint in `resume` and its states, if it matches this run.
    pub fn load(resume: &Path, want: &Header, shape: [u64; 3]) -> anyhow::Result<(Self, Vec<f32>)> {
        let c: Self = load_json(resume, want, |c: &Self| &c.header)?;
        let states = read_f32(
            &dir(resume).join(&c.states),
            &shape.map(Some),
            "[items, cells, state_size]",
        )?
        .0;
        Ok((c, states))
    }
}

impl FlowsCheckpoint {
    pub fn new(header: Header) -> Self {
        Self {
            header,
            done_items: 0,
            step_records: Vec::new(),
            outcomes: Vec::new(),
            results: Vec::new(),
            planes: String::new(),
            merged: String::new(),
            item0_landed: Vec::new(),
        }
    }

    /// Saves the finished items' surfaces (`[done, 2, H, W]`, `[done, H, W]`).
    pub fn save(
        &mut self,
        out: &Path,
        hw: [u64; 2],
        planes: &[f32],
        merged: &[f32],
    ) -> anyhow::Result<()> {
        let d = create_dir(out)?;
        let n = self.done_items as u64;
        let (p, m) = (format!("planes_{n:09}.npy"), format!("merged_{n:09}.npy"));
        write_f32(&d.join(&p), &[n, 2, hw[0], hw[1]], planes)?;
        write_f32(&d.join(&m), &[n, hw[0], hw[1]], merged)?;
        let old = [
            std::mem::replace(&mut self.planes, p),
            std::mem::replace(&mut self.merged, m),
        ];
        let new = [self.planes.clone(), self.merged.clone()];
        save_json(out, self, &old, &new)
    }

    /// The checkpoint in `resume` and its surfaces, if it matches this run.
    pub fn load(
        resume: &Path,
        want: &Header,
        hw: [u64; 2],
    ) -> anyhow::Result<(Self, Vec<f32>, Vec<f32>)> {
        let c: Self = load_json(resume, want, |c: &Self| &c.header)?;
        let n = Some(c.done_items as u64);
        let d = dir(resume);
        let planes = read_f32(
            &d.join(&c.planes),
            &[n, Some(2), Some(hw[0]), Some(hw[1])],
            "[items, 2, H, W]",
        )?
        .0;
        let merged = read_f32(
            &d.join(&c.merged),
            &[n, Some(hw[0]), Some(hw[1])],
            "[items, H, W]",
        )?
        .0;
        Ok((c, planes, merged))
    }
}
