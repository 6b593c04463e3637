//! One batch of MoE lattices on either backend, stepped one step at a time, and the GPU
//! set-up of flow batches.

use anyhow::{Context, bail};
use lattice_core::NeighborCache;
use lattice_core::config::FlowsConfig;
use lattice_core::config::MoeConfig;
use lattice_core::flows::mapper::place_batch;
use lattice_core::flows::run::{BatchOutcome, StepRecord};
use lattice_core::flows::trace::Trace;
use lattice_core::flows::{
    CpuFlows, FlowLayout, FlowNet, FlowShape, FlowState, FlowWeights, run_batch,
};

use crate::runtime::{BatchError, classify};
use lattice_core::moe::{MoeNet, MoeWeights, cpu};
use lattice_gpu::GpuContext;
use lattice_gpu::flows::{FlowKernels, GpuFlows};
use lattice_gpu::gather::GpuNeighbors;
use lattice_gpu::moe::{GpuMoe, MoeKernels};

/// A non-finite state: which item of the batch, which cell, and the step that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFinite {
    pub item: usize,
    pub cell: u32,
}

pub enum MoeBatch<'a> {
    Cpu {
        net: Box<MoeNet<'a>>,
        cache: &'a NeighborCache,
        states: Vec<f32>,
        next: Vec<f32>,
        items: usize,
    },
    Gpu {
        ctx: &'a GpuContext,
        moe: Box<GpuMoe>,
    },
}

impl<'a> MoeBatch<'a> {
    pub fn new(
        gpu: Option<(&'a GpuContext, &'a GpuNeighbors, &'a MoeKernels)>,
        cache: &'a NeighborCache,
        moe: &MoeConfig,
        weights: &'a MoeWeights,
        states: Vec<f32>,
        items: usize,
    ) -> anyhow::Result<Self> {
        Ok(match gpu {
            None => Self::Cpu {
                net: Box::new(MoeNet::new(
                    &weights.layout,
                    &weights.data,
                    moe.combine,
                    moe.ode_steps,
                )),
                cache,
                next: vec![0.0; states.len()],
                states,
                items,
            },
            Some((ctx, neighbors, kernels)) => Self::Gpu {
                ctx,
                moe: Box::new(
                    GpuMoe::new(
                        ctx,
                        cache,
                        neighbors,
                        kernels,
                        &weights.data,
                        moe.combine,
                        &states,
                        items as u32,
                    )
                    .context("setting up the MoE step on the GPU")?,
                ),
            },
        })
    }

    /// One synchronous step; returns, per item that has one, its first non-finite state.
    pub fn step(&mut self) -> anyhow::Result<Vec<NonFinite>> {
        match self {
            Self::Cpu {
                net,
                cache,
                states,
                next,
                items,
            } => {
                cpu::step(net, cache, states, next, *items);
                std::mem::swap(states, next);
                let n = cache.dims().cells_usize();
                let s = net.sh.s as usize;
                Ok(states
                    .chunks(n * s)
                    .take(*items)
                    .enumerate()
                    .filter_map(|(item, st)| {
                        cpu::find_non_finite(st, n, s).map(|(_, cell, _)| NonFinite {
                            item,
                            cell: cell as u32,
                        })
                    })
                    .collect())
            }
            Self::Gpu { ctx, moe } => {
                moe.submit_steps(ctx, 1);
                let bad = moe.non_finite(ctx)?;
                Ok(bad
                    .iter()
                    .enumerate()
                    .filter_map(|(item, c)| c.map(|cell| NonFinite { item, cell }))
                    .collect())
            }
        }
    }

    /// `steps` steps without per-step checks, then waits (for benchmarks).
    pub fn run_unchecked(&mut self, steps: u32) -> anyhow::Result<()> {
        match self {
            Self::Cpu { .. } => {
                for _ in 0..steps {
                    self.step()?;
                }
            }
            Self::Gpu { ctx, moe } => {
                moe.submit_steps(ctx, steps);
                moe.wait(ctx)?;
            }
        }
        Ok(())
    }

    pub fn states(&self) -> anyhow::Result<Vec<f32>> {
        match self {
            Self::Cpu { states, .. } => Ok(states.clone()),
            Self::Gpu { ctx, moe } => Ok(moe.states(ctx)?),
        }
    }
}

/// Everything a GPU batch needs that does not depend on the items: the device, the uploaded
/// neighbor cache, and the compiled kernels.
pub struct GpuSetup<'a> {
    pub ctx: &'a GpuContext,
    pub neighbors: GpuNeighbors,
    pub kernels: MoeKernels,
}

impl<'a> GpuSetup<'a> {
    pub fn new(
        ctx: &'a GpuContext,
        cache: &NeighborCache,
        moe: &MoeConfig,
        weights: &MoeWeights,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            ctx,
            neighbors: GpuNeighbors::upload(ctx, cache)?,
            kernels: MoeKernels::new(ctx, &weights.layout, moe.ode_steps),
        })
    }

    pub fn parts(&self) -> (&GpuContext, &GpuNeighbors, &MoeKernels) {
        (self.ctx, &self.neighbors, &self.kernels)
    }
}

/// Items per GPU batch, and the limit that sets it: the states (the largest binding) must fit
/// one binding, and the ping-pong states with the prep vectors 80 % of the GPU's memory where
/// the adapter reports it.
pub fn gpu_batch_limit(
    ctx: &GpuContext,
    cells: u32,
    s: u32,
    func_hidden: u32,
) -> anyhow::Result<(usize, &'static str)> {
    let cells = u64::from(cells);
    let binding = cells * u64::from(s.max(func_hidden)) * 4;
    let total = cells * u64::from(2 * s + func_hidden) * 4;
    let (n, limit) = ctx.items_that_fit(binding, total);
    if n == 0 {
        bail!(
            "one lattice needs {binding} bytes in one GPU binding and {total} bytes in all; {limit} \
             is less. Use a smaller lattice or state_size, or --backend cpu"
        );
    }
    Ok((n as usize, limit))
}

/// Everything a GPU flow batch needs that does not depend on the items: the device and the
/// compiled kernels with the uploaded carrier weights.
pub struct GpuFlowSetup<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: FlowKernels,
}

impl<'a> GpuFlowSetup<'a> {
    pub fn new(ctx: &'a GpuContext, weights: &FlowWeights, capacity: u32) -> anyhow::Result<Self> {
        Ok(Self {
            ctx,
            kernels: FlowKernels::new(ctx, &weights.layout, &weights.data, capacity)
                .context("setting up the flow kernels")?,
        })
    }

    /// Uploads one placed batch.
    pub fn batch(&self, state: &FlowState, seeds: &[[u32; 2]]) -> anyhow::Result<GpuFlows<'_>> {
        GpuFlows::new(self.ctx, &self.kernels, state, seeds)
            .context("setting up a flow batch on the GPU")
    }
}

/// Items per GPU flow batch, and the limit that sets it: the hidden states must fit one
/// binding, and every per-slot buffer 80 % of the GPU's memory where the adapter reports it.
pub fn flows_batch_limit(
    ctx: &GpuContext,
    shape: &FlowShape,
    capacity: u32,
    steps: u32,
) -> anyhow::Result<(usize, &'static str)> {
    let layout = FlowLayout::new(*shape);
    let binding = FlowKernels::bytes_per_item(&layout, capacity, steps);
    let total = FlowKernels::device_bytes_per_item(&layout, capacity, steps);
    let (n, limit) = ctx.items_that_fit(binding, total);
    let n = n.min(u64::from(ctx.limits.max_compute_workgroups_per_dimension));
    if n == 0 {
        bail!(
            "one item's {capacity} flow slots need {binding} bytes of hidden states or completion \
             records in one GPU binding and {total} bytes in all; {limit} is less. Lower capacity_per_item or the \
             carrier size, or use --backend cpu"
        );
    }
    Ok((n as usize, limit))
}

/// One batch of flow items from their embeddings (`[ids.len(), E]`) to the final state: the
/// mapper places the flows, the noise seeds come from (seed, id), and the batch runs on the GPU
/// when `gpu` is given, else on the CPU.
#[allow(clippy::too_many_arguments)]
pub fn run_flow_batch(
    gpu: Option<&GpuFlowSetup<'_>>,
    weights: &FlowWeights,
    cfg: &FlowsConfig,
    seed: u64,
    ids: &[u64],
    embeddings: &[f32],
    trace: Option<&mut Trace>,
    on_step: impl FnMut(&StepRecord),
) -> Result<BatchOutcome, BatchError> {
    let (state, seeds) = place_batch(weights, cfg, seed, ids, embeddings);
    let (count, first) = (ids.len() as u32, ids.first().copied().unwrap_or(0));
    Ok(match gpu {
        None => {
            let mut engine = CpuFlows {
                net: FlowNet::new(&weights.layout, &weights.data),
                state,
                seeds,
            };
            run_batch(&mut engine, cfg, count, first, trace, on_step).unwrap_or_else(|e| match e {})
        }
        Some(g) => {
            let mut engine = g.batch(&state, &seeds).map_err(classify)?;
            run_batch(&mut engine, cfg, count, first, trace, on_step)
                .map_err(anyhow::Error::from)?
        }
    })
}
