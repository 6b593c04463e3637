//! The rows `lattice bench` prints, as typed structs: the JSON on stdout and the table on
//! stderr come from the same values.

use std::collections::BTreeMap;

use crate::cost::{Device, KernelCost};
use lattice_gpu::profile::KernelTime;
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
    /// With `--profile` on a GPU: each kernel's time against its cost model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernels: Option<Vec<KernelRow>>,
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
    /// With `--profile` on a GPU: each kernel's time against its cost model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernels: Option<Vec<KernelRow>>,
}

/// One kernel of a profiled case: GPU time per step (timestamp queries) next to the cost
/// model (`crate::cost`) and the roofline bounds it gives.
#[derive(Debug, Serialize)]
pub struct KernelRow {
    pub kernel: &'static str,
    pub dispatches_per_step: f64,
    pub ms_per_step: f64,
    pub flop_per_step: f64,
    pub bytes_per_step: f64,
    pub achieved_flops: f64,
    pub achieved_bytes_per_s: f64,
    /// Where the device's limits are known.
    pub fraction_of_fp32_peak: Option<f64>,
    pub fraction_of_bandwidth: Option<f64>,
    /// Modeled: the roofline bound on this device, where its limits are known.
    pub modeled_ms_this_device: Option<f64>,
    /// Modeled: the roofline bound on an H100 (67 TFLOP/s FP32, 3.35 TB/s).
    pub modeled_ms_h100: f64,
}

/// The kernel rows of a profiled case: `totals` over `steps` steps of `units` cell-updates
/// or flow-steps per step, costed by `costs`, on `device` (its limits, if known).
pub fn kernel_rows(
    totals: &BTreeMap<&'static str, KernelTime>,
    costs: &[KernelCost],
    units: f64,
    steps: u32,
    device: Option<Device>,
) -> Vec<KernelRow> {
    let steps = f64::from(steps.max(1));
    costs
        .iter()
        .filter_map(|c| {
            let t = totals.get(c.kernel)?;
            let ms = t.ms / steps;
            let (flop, bytes) = (c.flop * units, c.bytes * units);
            let per_s = |v: f64| if ms > 0.0 { v / (ms * 1e-3) } else { 0.0 };
            let (achieved_flops, achieved_bytes) = (per_s(flop), per_s(bytes));
            Some(KernelRow {
                kernel: c.kernel,
                dispatches_per_step: t.dispatches as f64 / steps,
                ms_per_step: ms,
                flop_per_step: flop,
                bytes_per_step: bytes,
                achieved_flops,
                achieved_bytes_per_s: achieved_bytes,
                fraction_of_fp32_peak: device.map(|d| achieved_flops / d.fp32_flops),
                fraction_of_bandwidth: device.map(|d| achieved_bytes / d.bandwidth),
                modeled_ms_this_device: device.map(|d| d.bound_s(c, units) * 1e3),
                modeled_ms_h100: Device::H100.bound_s(c, units) * 1e3,
            })
        })
        .collect()
}

impl KernelRow {
    /// The table line, under the case's columns (ms/step, GFLOP/s, % FP32), then GB/s and
    /// the modeled H100 bound.
    pub fn table_line(&self) -> String {
        let pct = self
            .fraction_of_fp32_peak
            .map_or("—".to_string(), |f| format!("{:.2}", f * 100.0));
        format!(
            "  {:<32} {:>12.3} {:>16} {:>14.2} {:>10}   {:.2} GB/s, modeled H100 {:.4} ms",
            self.kernel,
            self.ms_per_step,
            "",
            self.achieved_flops * 1e-9,
            pct,
            self.achieved_bytes_per_s * 1e-9,
            self.modeled_ms_h100
        )
    }
}

/// Seed 003's batching figure: how much less time one item's step takes in a batch of
/// `batched` than alone (same preset, backend and steps).
#[derive(Debug, Serialize)]
pub struct Speedup {
    pub case: String,
    pub batched: usize,
    pub single_ms_per_item_step: f64,
    pub batched_ms_per_item_step: f64,
    pub speedup: f64,
}

/// The B = 64 over B = 1 speedup of every case measured at both sizes ("moe/debug/B=64/cpu"
/// against "moe/debug/B=1/cpu").
pub fn speedups(rows: &[Row]) -> Vec<Speedup> {
    let all: Vec<(&str, usize, f64)> = rows.iter().filter_map(Row::per_item_step).collect();
    all.iter()
        .filter(|(_, items, _)| *items == 64)
        .filter_map(|&(case, items, batched)| {
            let single_case = case.replace("/B=64/", "/B=1/");
            let (_, _, single) = all.iter().find(|(c, _, _)| *c == single_case)?;
            Some(Speedup {
                case: case.replace("/B=64", ""),
                batched: items,
                single_ms_per_item_step: *single,
                batched_ms_per_item_step: batched,
                speedup: single / batched,
            })
        })
        .collect()
}

impl Row {
    /// Case, items and ms per item-step of a step case.
    fn per_item_step(&self) -> Option<(&str, usize, f64)> {
        match self {
            Self::Moe(m) => Some((&m.case, m.items, m.ms_per_step / m.items as f64)),
            Self::Flows(f) => Some((
                &f.case,
                f.items as usize,
                f.ms_per_step / f64::from(f.items),
            )),
            Self::Neighbors(_) => None,
        }
    }

    /// The kernel rows of a profiled case.
    pub fn kernels(&self) -> &[KernelRow] {
        match self {
            Self::Moe(r) => r.kernels.as_deref().unwrap_or(&[]),
            Self::Flows(r) => r.kernels.as_deref().unwrap_or(&[]),
            Self::Neighbors(_) => &[],
        }
    }

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
