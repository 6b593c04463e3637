//! A run under MPI: the checks every rank makes before step 1, and what a rank sends rank 0
//! when its share is done (its items' results, or its slab of every item, and its timing).
//! Rank 0 merges the parts in rank order, which is item (or plane) order, so the files it writes
//! are those of one process.

use std::ops::Range;
use std::path::Path;

use anyhow::bail;
use lattice_sim::{Model, Simulation, Stats};
use serde::{Deserialize, Serialize};

use lattice_core::moe::domain::Planes;

use crate::ranks::{HaloTally, Ranks, pack, unpack};

/// Before step 1: refuses what a run under MPI does not do yet (a flows trace), and checks that
/// every rank has rank 0's config, version and weights, and rank 0's value of each of `run`
/// (what else decides the results: backend kind, mask, input files, steps, split).
///
/// # Errors
/// An unsupported option, a rank that differs, or the injected failure.
pub fn check(sim: &Simulation, ranks: &Ranks, run: &[(&str, String)]) -> anyhow::Result<()> {
    if ranks.size() == 1 {
        return Ok(());
    }
    if let lattice_core::config::Simulation::Flows(f) = &sim.config().simulation
        && f.trace.is_some()
    {
        bail!("a flows trace is not supported under MPI yet; remove trace from the config");
    }
    if let Some(why) = crate::test_hooks::fail_rank(ranks.rank()) {
        bail!("{why} (a test of the job's failure path)");
    }
    // The packed weights, hashed in place (a flows preset's are gigabytes: no copy).
    let weights: &[f32] = match sim.model() {
        Model::Moe(m) => &m.weights.data,
        Model::Flows(f) => &f.weights.data,
    };
    ranks.agree("the config", sim.loaded().text_hash)?;
    let version = lattice_core::config::fnv1a(env!("CARGO_PKG_VERSION").as_bytes());
    ranks.agree("the version", version)?;
    let weights_hash = lattice_core::config::fnv1a(bytemuck::cast_slice(weights));
    ranks.agree("the weights", weights_hash)?;
    for (what, value) in run {
        ranks.agree_on(what, value)?;
    }
    Ok(())
}

/// What, besides the config, version and weights, decides a run's results and so must be the
/// same on every rank.
///
/// # Errors
/// An input file that cannot be read.
pub fn run_facts(
    sim: &Simulation,
    split: lattice_core::config::Split,
    inputs: &[(&'static str, Option<&Path>)],
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let backend = match sim.backend() {
        lattice_sim::Backend::Gpu(_) => "gpu",
        lattice_sim::Backend::Cpu => "cpu",
    };
    let mut facts = vec![
        ("the backend", backend.to_string()),
        ("the step count", sim.steps().to_string()),
        ("the split", format!("{split:?}")),
    ];
    if let Model::Moe(m) = sim.model() {
        let cells = m.cache.dims().cells();
        let active: Vec<u8> = (0..cells).map(|c| u8::from(m.cache.is_active(c))).collect();
        let on = active.iter().filter(|&&a| a == 1).count();
        let hash = lattice_core::config::fnv1a(&active);
        facts.push(("the mask", format!("{on} active cells, hash {hash:016x}")));
    }
    for (what, path) in inputs {
        let value = match path {
            Some(p) => format!("{} (hash {})", p.display(), digest(p)?),
            None => "seeded".into(),
        };
        facts.push((what, value));
    }
    Ok(facts)
}

/// A hash of a file's bytes, or of a folder's files (names and bytes, in name order).
fn digest(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    if !path.is_dir() {
        return Ok(format!(
            "{:016x}",
            lattice_core::config::fnv1a(&read(path)?)
        ));
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read the folder {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut listing = String::new();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let hash = lattice_core::config::fnv1a(&read(f)?);
        listing.push_str(&format!("{}:{hash:016x};", name.unwrap_or_default()));
    }
    Ok(format!(
        "{:016x}",
        lattice_core::config::fnv1a(listing.as_bytes())
    ))
}

/// One rank's figures, as written to `metrics.json` under `ranks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankTiming {
    pub rank: usize,
    /// Its items, `[first, end)`.
    pub items: [usize; 2],
    pub backend: String,
    pub compute_s: f64,
    pub mean_step_ms: f64,
    /// Cell-updates (MoE) or flow-steps (flows) per second.
    pub work_per_s: f64,
    /// With `--split z-slabs`: the rank's planes `[z0, z1)`, and per step the halo bytes it
    /// sent and the time its exchange took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planes: Option<[u32; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halo_bytes_per_step: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_ms_per_step: Option<f64>,
}

impl RankTiming {
    pub fn new(ranks: &Ranks, share: &Range<usize>, st: &Stats) -> Self {
        Self {
            rank: ranks.rank(),
            items: [share.start, share.end],
            backend: st.backend.clone(),
            compute_s: st.total_s,
            mean_step_ms: st.mean_step_ms,
            work_per_s: st.work_per_s(),
            planes: None,
            halo_bytes_per_step: None,
            exchange_ms_per_step: None,
        }
    }

    /// Adds a z-slab rank's planes and halo figures; its throughput counts its own cells.
    pub fn with_slab(mut self, planes: &Planes, tally: &HaloTally) -> Self {
        let (bytes, ms) = tally.per_step();
        self.work_per_s *= planes.owned.len() as f64 / f64::from(planes.depth);
        self.planes = Some([planes.owned.start, planes.owned.end]);
        self.halo_bytes_per_step = Some(bytes);
        self.exchange_ms_per_step = Some(ms);
        self
    }
}

/// What a rank sends: its timing, its items' records, and its arrays.
#[derive(Serialize, Deserialize)]
struct Part<R> {
    timing: RankTiming,
    records: R,
}

/// Sends this rank's part to rank 0; there, returns every rank's (its own first, in rank
/// order) as (timing, records, arrays).
///
/// # Errors
/// A malformed message.
#[allow(clippy::type_complexity)]
pub fn gather<R: Serialize + serde::de::DeserializeOwned>(
    ranks: &Ranks,
    timing: RankTiming,
    records: R,
    arrays: &[&[f32]],
) -> anyhow::Result<Option<Vec<(RankTiming, R, Vec<Vec<f32>>)>>> {
    let bytes = pack(&Part { timing, records }, arrays);
    let Some(all) = ranks.gather(bytes) else {
        return Ok(None);
    };
    let parts = all
        .iter()
        .map(|b| {
            let (p, arrays): (Part<R>, _) = unpack(b, arrays.len())?;
            Ok((p.timing, p.records, arrays))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Some(parts))
}
