//! The check an adapter reached through an API the kernels are not validated on (OpenGL) must
//! pass before a run uses it: a small MoE lattice and a small flows batch run on it and on the
//! CPU path, and must agree as the GPU-vs-CPU tests require.

use std::path::Path;

use lattice_core::config;
use lattice_gpu::GpuContext;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::items::{Item, Output, Results};
use crate::simulation::Simulation;

/// Largest difference allowed, relative to the largest magnitude of the CPU's values: the
/// GPU-vs-CPU tests' tolerance.
const REL_TOL: f32 = 1e-4;

/// One item of a bounded 5×4×3 lattice with every neighbor class present, one step.
const MOE: &str = "(seed: 7, batch: (items: 1, max_batch_size: Auto), simulation: Moe((
    lattice: (dims: (5, 4, 3), boundary: Bounded, radius_ratio: 0.7), steps: 1, state_size: 8,
    local: (h1: 8, h2: 8, processor_hidden: 8), functional: (hidden_dim: 8, message_dim: 4),
    distant: (ode_hidden: 8), gating: (hidden_dim: 8), combine: Residual, ode_steps: 3,
    init_scale: 0.1)))";

/// One item of a 5×4×6 flows lattice whose flows move, reflect, spawn and complete.
const FLOWS: &str = "(seed: 7, batch: (items: 1, max_batch_size: Auto), simulation: Flows((
    dims: (5, 4, 6), embedding_dim: 16, carrier: (hidden: 8, layers: 1),
    neuron: (hidden: 8, output: 8), displacement_scale: 40.0, noise: 0.0, reflection: true,
    spawn: Some((threshold: 0.15, max_per_step: 2)), convergence: None)))";

/// Runs the check on `ctx`; gives the context back when the adapter agrees with the CPU.
///
/// # Errors
/// [`Error::SelfCheck`] naming the adapter, the case and the difference; any error of the runs.
pub(crate) fn self_check(ctx: GpuContext) -> Result<GpuContext> {
    let adapter = format!("{} ({})", ctx.adapter.name, ctx.adapter.backend);
    tracing::info!("self-check of {adapter} against the CPU path");
    let mut backend = Backend::Gpu(Box::new(ctx));
    for (case, text) in [("MoE", MOE), ("flows", FLOWS)] {
        let loaded = config::load_str(text, Path::new("<self-check>"))?;
        let items = [Item::seeded(0)];
        let gpu_sim = Simulation::from_loaded(loaded.clone(), backend)?;
        let gpu = gpu_sim.run(&items)?;
        backend = gpu_sim.into_backend();
        let cpu = Simulation::from_loaded(loaded, Backend::Cpu)?.run(&items)?;
        if let Some(why) = disagreement(&gpu, &cpu) {
            return Err(Error::SelfCheck { adapter, case, why });
        }
    }
    match backend {
        Backend::Gpu(ctx) => {
            tracing::info!("{adapter} passed the self-check");
            Ok(*ctx)
        }
        Backend::Cpu => unreachable!("the GPU backend was handed back"),
    }
}

/// What differs between the GPU's and the CPU's results, if anything does beyond the
/// tolerance: MoE states, and flows' counts and surfaces.
fn disagreement(gpu: &Results, cpu: &Results) -> Option<String> {
    for (id, c) in &cpu.items {
        let Some(g) = gpu.items.get(id) else {
            return Some(format!("item {id} is missing from the GPU's results"));
        };
        let (gv, cv): (&[f32], &[f32]) = match (&g.output, &c.output) {
            (Output::Moe { states: a }, Output::Moe { states: b }) => (a, b),
            (
                Output::Flows {
                    planes: a,
                    totals: ta,
                    ..
                },
                Output::Flows {
                    planes: b,
                    totals: tb,
                    ..
                },
            ) => {
                if ta != tb {
                    return Some(format!(
                        "item {id}: flow counts {ta:?} on the GPU, {tb:?} on the CPU"
                    ));
                }
                (a, b)
            }
            _ => {
                return Some(format!(
                    "item {id}: the GPU returned another kind of output"
                ));
            }
        };
        let d = relative_difference(gv, cv);
        if d.is_nan() || d > REL_TOL {
            return Some(format!(
                "item {id}: values differ by {d:e} of their largest magnitude (allowed {REL_TOL:e})"
            ));
        }
    }
    None
}

/// The largest |a − b| over the largest |b|: NaN where either holds a NaN, infinite where the
/// lengths differ.
fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    let scale = b
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, |m, d| {
            if d.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        });
    worst / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_relative_to_the_largest_value_and_nan_fails() {
        assert_eq!(relative_difference(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(relative_difference(&[1.0, 2.5], &[1.0, 2.0]), 0.25);
        assert!(relative_difference(&[f32::NAN, 2.0], &[1.0, 2.0]).is_nan());
        assert_eq!(relative_difference(&[1.0], &[1.0, 2.0]), f32::INFINITY);
    }

    #[test]
    fn the_check_configs_load_and_agree_on_the_cpu() {
        for text in [MOE, FLOWS] {
            let loaded = config::load_str(text, Path::new("<self-check>")).unwrap();
            let items = [Item::seeded(0)];
            let a = Simulation::from_loaded(loaded.clone(), Backend::Cpu).unwrap();
            let b = Simulation::from_loaded(loaded, Backend::Cpu).unwrap();
            let (a, b) = (a.run(&items).unwrap(), b.run(&items).unwrap());
            assert_eq!(disagreement(&a, &b), None);
        }
    }
}
