//! `metrics.json`, from typed structs: the fields every run has, and each simulation's own.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lattice_core::flows::run::{ItemOutcome, StepRecord, ratio};
use lattice_core::neighbors::NeighborStats;
use lattice_sim::ItemRecord;
use lattice_sim::{Simulation, Stats};
use serde::Serialize;

use super::by_items::RankTiming;
use super::{RunArgs, origin};

/// The fields every run has, with the simulation's own flattened in.
#[derive(Serialize)]
pub struct Metrics<'a, S: Serialize> {
    config: &'a std::path::Path,
    config_hash: String,
    version: &'static str,
    backend: &'a str,
    seed: u64,
    items: u32,
    batch_size: usize,
    batch_sizes: &'a [usize],
    halvings: u32,
    resumed_from: Option<&'a PathBuf>,
    weights: String,
    timing: Timing,
    /// Under MPI: each rank's share and timing.
    #[serde(skip_serializing_if = "Option::is_none")]
    ranks: Option<Vec<RankTiming>>,
    #[serde(flatten)]
    specific: S,
}

#[derive(Serialize)]
struct Timing {
    total_s: f64,
    mean_step_ms: f64,
    max_step_ms: f64,
    #[serde(flatten)]
    rate: Rate,
    items_per_s: f64,
    /// The run's wall time over its items (each item's own time is in its per-item record).
    mean_item_s: f64,
    peak_host_memory_bytes: Option<u64>,
    /// Host memory one item took (the largest growth during a batch over its items).
    host_bytes_per_item: Option<u64>,
    /// GPU memory one item takes (its buffers); absent on the CPU.
    device_bytes_per_item: Option<u64>,
}

/// The run's throughput, named by its unit.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    CellUpdatesPerS(f64),
    FlowStepsPerS(f64),
}

impl<'a, S: Serialize> Metrics<'a, S> {
    /// The common fields from the run's arguments, simulation and figures.
    pub fn new(
        args: &'a RunArgs,
        sim: &'a Simulation,
        st: &'a Stats,
        batch: usize,
        rate: Rate,
        specific: S,
    ) -> Self {
        Self {
            config: &sim.loaded().path,
            config_hash: format!("{:016x}", sim.loaded().text_hash),
            version: env!("CARGO_PKG_VERSION"),
            backend: &st.backend,
            seed: sim.config().seed,
            items: sim.config().batch.items,
            batch_size: batch,
            batch_sizes: &st.batch_sizes,
            halvings: st.halvings,
            resumed_from: args.resume.as_ref(),
            weights: origin(args.weights.as_deref()),
            timing: Timing {
                total_s: st.total_s,
                mean_step_ms: st.mean_step_ms,
                max_step_ms: st.max_step_ms,
                rate,
                items_per_s: st.items_per_s,
                mean_item_s: st.mean_item_s,
                peak_host_memory_bytes: st.peak_host_memory_bytes,
                host_bytes_per_item: st.host_bytes_per_item,
                device_bytes_per_item: st.device_bytes_per_item,
            },
            ranks: None,
            specific,
        }
    }

    /// Writes `OUT/metrics.json` atomically.
    /// Under MPI (more than one rank): each rank's share and timing.
    pub fn with_ranks(mut self, ranks: Vec<RankTiming>) -> Self {
        self.ranks = (ranks.len() > 1).then_some(ranks);
        self
    }

    pub fn write(&self, args: &RunArgs) -> anyhow::Result<()> {
        lattice_core::io::write_atomic(&args.out.join("metrics.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)
        })?;
        Ok(())
    }
}

/// A MoE run's own fields.
#[derive(Serialize)]
pub struct MoeMetrics<'a> {
    pub simulation: &'static str,
    pub dims: [u32; 3],
    pub steps: u32,
    pub state_size: usize,
    pub neighbors: &'a NeighborStats,
    pub init_states: String,
    pub per_item: &'a [ItemRecord],
    pub outputs: MoeOutputs,
}

/// The files a MoE run writes.
#[derive(Serialize)]
pub struct MoeOutputs {
    pub states: &'static str,
    pub weights: &'static str,
    pub png: &'static str,
    pub vtk: &'static str,
    pub png_shows: String,
}

/// A flows run's own fields.
#[derive(Serialize)]
pub struct FlowsMetrics<'a> {
    pub simulation: &'static str,
    pub dims: [u32; 3],
    pub capacity_per_item: u32,
    pub max_steps: u32,
    pub embeddings: String,
    /// A run from texts: the file, the encoder, each item's text id and the encoder's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub texts: Option<TextsInput>,
    pub totals: FlowTotals,
    pub steps: Vec<StepMetrics<'a>>,
    pub per_item: &'a [ItemOutcome],
    pub per_item_runs: &'a [ItemRecord],
    pub trace_overwritten: Option<u64>,
    pub outputs: FlowOutputs,
}

/// Where a run's texts came from and how encoding them went.
#[derive(Serialize)]
pub struct TextsInput {
    pub file: String,
    pub encoder: String,
    /// Item i ran text `ids[i]` (the JSON line's id, or the line number).
    pub ids: Vec<String>,
    pub tokens: usize,
    pub truncated: usize,
    pub seconds: f64,
    pub texts_per_s: f64,
    pub tokens_per_s: f64,
}

/// One step over all items: its counts, and the mean and variance of the flows' z movement
/// (seed 001: a variance near 0 means the flows stall).
#[derive(Serialize)]
pub struct StepMetrics<'a> {
    #[serde(flatten)]
    pub counts: &'a StepRecord,
    pub z_move_mean: Option<f64>,
    pub z_move_variance: Option<f64>,
}

impl<'a> StepMetrics<'a> {
    pub fn of(steps: &'a [StepRecord]) -> Vec<Self> {
        steps
            .iter()
            .map(|r| Self {
                counts: r,
                z_move_mean: r.z_move_mean(),
                z_move_variance: r.z_move_variance(),
            })
            .collect()
    }
}

/// Flow counts summed over the items.
#[derive(Serialize)]
pub struct FlowTotals {
    pub created: u64,
    pub spawned: u64,
    pub completed_front: u64,
    pub completed_back: u64,
    pub reflected: u64,
    pub dropped_by_capacity: u64,
    pub unfinished: u64,
    pub projected: u64,
    pub flow_steps: u64,
    /// Mean steps of the flows that reached a plane, over all items.
    pub mean_path_steps: f64,
    /// Flows that reached a plane per flow created, over all items.
    pub completed_per_created: f64,
    /// Items per stop reason (each item stops on its own history).
    pub stops: BTreeMap<String, usize>,
}

impl FlowTotals {
    /// Sums the items' outcomes.
    pub fn new(outcomes: &[ItemOutcome], flow_steps: u64) -> Self {
        let sum = |f: fn(&ItemOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
        let mut stops = BTreeMap::new();
        for o in outcomes {
            let name = serde_json::to_value(o.stop)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *stops.entry(name).or_insert(0) += 1;
        }
        let completed = sum(ItemOutcome::completed);
        let created = sum(|o| o.created);
        Self {
            mean_path_steps: ratio(sum(|o| o.completed_path_steps), completed),
            completed_per_created: ratio(completed, created),
            created,
            spawned: sum(|o| o.spawned),
            completed_front: sum(|o| o.completed_front),
            completed_back: sum(|o| o.completed_back),
            reflected: sum(|o| o.reflected),
            dropped_by_capacity: sum(|o| o.dropped_by_capacity),
            unfinished: sum(|o| o.unfinished),
            projected: sum(|o| o.projected),
            flow_steps,
            stops,
        }
    }

    /// "step_limit (6), threshold_reached (2)".
    pub fn stops_line(&self) -> String {
        let parts: Vec<String> = self
            .stops
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        parts.join(", ")
    }
}

/// The files a flows run writes.
#[derive(Serialize)]
pub struct FlowOutputs {
    pub surface: &'static str,
    pub surface_merged: &'static str,
    pub png: &'static str,
    pub vtk: &'static str,
    pub png_shows: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings_out: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<&'static str>,
}
