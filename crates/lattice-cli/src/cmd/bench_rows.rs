//! The rows `lattice bench` prints, as typed structs: the JSON on stdout and the table on
//! stderr come from the same values.

use serde::Serialize;

/// One benchmark case's result.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Row {
    Neighbors(NeighborRow),
    Moe(MoeRow),
    Flows(FlowRow),
}

/// A neighbor-cache build.
#[derive(Debug, Serialize)]
pub struct NeighborRow {
    pub case: String,
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stencil_offsets: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// Throughput against the device's FP32 peak, where it is known.
#[derive(Debug, Serialize)]
pub struct Flops {
    pub achieved_flops: f64,
    pub fp32_peak_flops: Option<f64>,
    pub fraction_of_fp32_peak: Option<f64>,
}

impl Flops {
    /// `per_unit` FLOPs per cell-update or flow-step at `rate` units per second.
    pub fn new(per_unit: f64, rate: f64, peak: Option<f64>) -> Self {
        let achieved = per_unit * rate;
        Self {
            achieved_flops: achieved,
            fp32_peak_flops: peak,
            fraction_of_fp32_peak: peak.map(|p| achieved / p),
        }
    }
}

/// A MoE step case.
#[derive(Debug, Serialize)]
pub struct MoeRow {
    pub case: String,
    pub backend: String,
    pub items: usize,
    pub cells: usize,
    pub steps: u32,
    pub ms: f64,
    pub ms_per_step: f64,
    pub cell_updates_per_s: f64,
    pub flops_per_cell_update: f64,
    #[serde(flatten)]
    pub flops: Flops,
}

/// A flow step case.
#[derive(Debug, Serialize)]
pub struct FlowRow {
    pub case: String,
    pub backend: String,
    pub items: u32,
    pub steps: u32,
    pub flow_steps: u64,
    pub ms: f64,
    pub ms_per_step: f64,
    pub flow_steps_per_s: f64,
    pub flops_per_flow_step: f64,
    #[serde(flatten)]
    pub flops: Flops,
}

impl Row {
    /// The table line: case, ms/step, cells|flows per s, GFLOP/s, % of FP32 peak.
    pub fn table_line(&self) -> String {
        let num = |v: Option<f64>, digits: usize, scale: f64| {
            v.map_or("—".to_string(), |x| format!("{:.*}", digits, x * scale))
        };
        let (case, ms, rate, flops) = match self {
            Self::Neighbors(r) => (&r.case, r.ms, None, None),
            Self::Moe(r) => (&r.case, r.ms, Some(r.cell_updates_per_s), Some(&r.flops)),
            Self::Flows(r) => (&r.case, r.ms, Some(r.flow_steps_per_s), Some(&r.flops)),
        };
        format!(
            "{case:<34} {:>12} {:>16} {:>14} {:>10}",
            num(Some(ms), 3, 1.0),
            num(rate, 0, 1.0),
            num(flops.map(|f| f.achieved_flops), 2, 1e-9),
            num(flops.and_then(|f| f.fraction_of_fp32_peak), 2, 100.0),
        )
    }
}
