//! The per-batch engines behind the runners: what a GPU batch needs that does not depend on
//! the items (device, uploaded neighbor cache, compiled kernels), how many items fit one batch,
//! and one batch's engine on either backend.

use std::ops::ControlFlow;

use lattice_core::NeighborCache;
use lattice_core::config::{FlowsConfig, MoeConfig};
use lattice_core::flows::mapper::place_batch;
use lattice_core::flows::run::{BatchOutcome, StepRecord};
use lattice_core::flows::trace::Trace;
use lattice_core::flows::{CpuFlows, FlowLayout, FlowNet, FlowShape, FlowWeights, run_batch};
use lattice_core::moe::domain::Domain;
use lattice_core::moe::{CpuMoe, MoeEngine, MoeNet, MoeWeights, NonFinite, ParamLayout};
use lattice_gpu::GpuContext;
use lattice_gpu::flows::{FlowKernels, GpuFlows};
use lattice_gpu::gather::GpuNeighbors;
use lattice_gpu::moe::{GpuMoe, GpuMoeEngine, MoeKernels};
use lattice_gpu::profile::Profiler;
use lattice_gpu::slab::GpuSlabEngine;

use crate::error::{Error, Result};

/// Everything a GPU MoE batch needs that does not depend on the items.
pub struct GpuMoeSetup<'a> {
    /// The device.
    pub ctx: &'a GpuContext,
    /// The neighbor cache on the device.
    pub neighbors: GpuNeighbors,
    /// The compiled MoE kernels.
    pub kernels: MoeKernels,
}

impl<'a> GpuMoeSetup<'a> {
    /// Uploads the neighbor cache and compiles the kernels for this model.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the cache or the update kernel's tile does not fit the device.
    pub fn new(
        ctx: &'a GpuContext,
        cache: &NeighborCache,
        moe: &MoeConfig,
        weights: &MoeWeights,
    ) -> Result<Self> {
        Ok(Self {
            ctx,
            neighbors: GpuNeighbors::upload(ctx, cache)
                .map_err(Error::gpu("uploading the neighbor cache"))?,
            kernels: MoeKernels::new(ctx, &weights.layout, moe.ode_steps)
                .map_err(Error::gpu("compiling the MoE kernels"))?,
        })
    }
}

/// A batch of MoE lattices on the CPU or the GPU, behind [`MoeEngine`] with this crate's error.
pub enum MoeBatch<'a> {
    /// The rayon engine.
    Cpu(Box<CpuMoe<'a>>),
    /// The wgpu engine.
    Gpu(Box<GpuMoeEngine<'a>>),
    /// The wgpu engine on a rank's slab of each lattice (a lattice split across ranks).
    GpuSlab(Box<GpuSlabEngine<'a>>),
}

impl<'a> MoeBatch<'a> {
    /// Uploads (GPU) or holds (CPU) `items` lattices starting from `states` (`[items, N, S]`).
    ///
    /// # Errors
    /// [`Error::Gpu`] when the batch does not fit the device ([`Error::is_allocation`]).
    pub fn new(
        gpu: Option<&'a GpuMoeSetup<'_>>,
        cache: &'a NeighborCache,
        moe: &MoeConfig,
        weights: &'a MoeWeights,
        states: Vec<f32>,
        items: usize,
        domain: Option<&'a Domain>,
    ) -> Result<Self> {
        Ok(match gpu {
            None => {
                let net = MoeNet::new(&weights.layout, &weights.data, moe.combine, moe.ode_steps);
                let engine = CpuMoe::new(net, cache, states, items);
                Self::Cpu(Box::new(match domain {
                    Some(d) => engine.with_domain(d),
                    None => engine,
                }))
            }
            Some(g) => {
                let (ctx, neighbors, kernels) = (g.ctx, &g.neighbors, &g.kernels);
                let (w, combine, n) = (&weights.data, moe.combine, items as u32);
                let setting_up = Error::gpu("setting up the MoE step on the GPU");
                match domain {
                    None => {
                        let moe =
                            GpuMoe::new(ctx, cache, neighbors, kernels, w, combine, &states, n)
                                .map_err(setting_up)?;
                        Self::Gpu(Box::new(GpuMoeEngine::new(ctx, moe)))
                    }
                    Some(d) => {
                        let plane = cache.dims().w() * cache.dims().h();
                        let owned = d.planes.owned.start * plane..d.planes.owned.end * plane;
                        let moe = GpuMoe::new_slab(
                            ctx, cache, neighbors, kernels, w, combine, &states, n, owned,
                        )
                        .map_err(setting_up)?;
                        Self::GpuSlab(Box::new(GpuSlabEngine::new(ctx, moe, d, plane, states)))
                    }
                }
            }
        })
    }
}

impl MoeBatch<'_> {
    /// GPU: times every kernel from now on (`lattice bench --profile`); false on the CPU or
    /// when the adapter has no timestamp queries.
    pub fn enable_profiling(&mut self) -> bool {
        match self {
            Self::Cpu(_) | Self::GpuSlab(_) => false,
            Self::Gpu(e) => e.enable_profiling(),
        }
    }

    /// GPU, when profiling: the kernel times so far.
    pub fn profiler_mut(&mut self) -> Option<&mut Profiler> {
        match self {
            Self::Cpu(_) | Self::GpuSlab(_) => None,
            Self::Gpu(e) => e.profiler_mut(),
        }
    }
}

impl MoeEngine for MoeBatch<'_> {
    type Error = Error;

    fn step(&mut self) -> Result<Vec<NonFinite>> {
        match self {
            Self::Cpu(e) => e.step().map_err(|never| match never {}),
            Self::Gpu(e) => e.step().map_err(Error::gpu("a MoE step")),
            Self::GpuSlab(e) => e.step().map_err(Error::gpu("a MoE step on a slab")),
        }
    }

    fn steps_per_check(&self) -> u32 {
        match self {
            Self::Cpu(e) => e.steps_per_check(),
            Self::Gpu(e) => e.steps_per_check(),
            Self::GpuSlab(e) => e.steps_per_check(),
        }
    }

    fn steps(&mut self, k: u32) -> Result<Vec<Vec<NonFinite>>> {
        match self {
            Self::Cpu(e) => e.steps(k).map_err(|never| match never {}),
            Self::Gpu(e) => e.steps(k).map_err(Error::gpu("MoE steps")),
            Self::GpuSlab(e) => e.steps(k).map_err(Error::gpu("MoE steps on a slab")),
        }
    }

    fn run_unchecked(&mut self, steps: u32) -> Result<()> {
        match self {
            Self::Cpu(e) => e.run_unchecked(steps).map_err(|never| match never {}),
            Self::Gpu(e) => e.run_unchecked(steps).map_err(Error::gpu("MoE steps")),
            Self::GpuSlab(e) => (e.run_unchecked(steps)).map_err(Error::gpu("MoE steps on a slab")),
        }
    }

    fn states(&self) -> Result<Vec<f32>> {
        match self {
            Self::Cpu(e) => e.states().map_err(|never| match never {}),
            Self::Gpu(e) => e.states().map_err(Error::gpu("reading the MoE states")),
            Self::GpuSlab(e) => e.states().map_err(Error::gpu("reading the MoE states")),
        }
    }
}

/// Items per GPU MoE batch, and the limit that sets it: the states (the largest binding) must
/// fit one binding, and every buffer of the batch ([`lattice_gpu::moe::batch_bytes`]: weights,
/// states, prep vectors, chunk buffers, flags) 80 % of the GPU's memory where the adapter
/// reports it.
///
/// # Errors
/// [`Error::OutOfMemory`] when not even one lattice fits.
pub fn gpu_moe_batch_limit(
    ctx: &GpuContext,
    layout: &ParamLayout,
    cells: u32,
) -> Result<(usize, &'static str)> {
    let sh = &layout.shape;
    let per_cell = u64::from(cells) * 4;
    let binding = per_cell * u64::from(sh.s.max(sh.func_hidden));
    let one = lattice_gpu::moe::batch_bytes(ctx, layout, cells, 1)
        .map_err(Error::gpu("planning a MoE batch"))?;
    let over = |limit| Error::OutOfMemory {
        what: "lattice",
        binding_bytes: binding,
        total_bytes: one,
        limit,
        fix: "Use a smaller lattice or state_size, or --backend cpu",
    };
    let by_binding = (ctx.max_binding() / binding.max(1)).min(u64::from(u32::MAX)) as usize;
    if by_binding == 0 {
        return Err(over("one GPU binding"));
    }
    let Some(budget) = ctx.memory_budget() else {
        return Ok((by_binding, "one GPU binding"));
    };
    if one > budget {
        return Err(over("80 % of the GPU's memory"));
    }
    // batch_bytes grows with the items (and has a fixed part, the weights): the largest count
    // within the binding limit whose buffers fit the budget.
    let fits_budget = |n: usize| {
        lattice_gpu::moe::batch_bytes(ctx, layout, cells, n as u32).is_ok_and(|b| b <= budget)
    };
    let (mut lo, mut hi) = (1usize, by_binding);
    if fits_budget(hi) {
        return Ok((hi, "one GPU binding"));
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits_budget(mid) { lo = mid } else { hi = mid }
    }
    Ok((lo, "80 % of the GPU's memory"))
}

/// Items per GPU flow batch, and the limit that sets it: the hidden states or the completion
/// records must fit one binding, and every per-slot buffer 80 % of the GPU's memory where the
/// adapter reports it.
///
/// # Errors
/// [`Error::OutOfMemory`] when not even one item fits.
pub fn gpu_flows_batch_limit(
    ctx: &GpuContext,
    shape: &FlowShape,
    capacity: u32,
    steps: u32,
) -> Result<(usize, &'static str)> {
    let layout = FlowLayout::new(*shape);
    let binding = FlowKernels::bytes_per_item(&layout, capacity, steps);
    let total = FlowKernels::device_bytes_per_item(&layout, capacity, steps);
    let fix = "Lower capacity_per_item or the carrier size, or use --backend cpu";
    let (n, limit) = fits(ctx, binding, total, "flows item", fix)?;
    let per_dispatch = ctx.limits.max_compute_workgroups_per_dimension as usize;
    Ok((n.min(per_dispatch), limit))
}

fn fits(
    ctx: &GpuContext,
    binding: u64,
    total: u64,
    what: &'static str,
    fix: &'static str,
) -> Result<(usize, &'static str)> {
    let (n, limit) = ctx.items_that_fit(binding, total);
    if n == 0 {
        return Err(Error::OutOfMemory {
            what,
            binding_bytes: binding,
            total_bytes: total,
            limit,
            fix,
        });
    }
    Ok((n as usize, limit))
}

/// Everything a GPU flow batch needs that does not depend on the items: the device and the
/// compiled kernels with the uploaded carrier weights.
pub struct GpuFlowSetup<'a> {
    /// The device.
    pub ctx: &'a GpuContext,
    /// The compiled flow kernels with the carrier weights.
    pub kernels: FlowKernels,
}

impl<'a> GpuFlowSetup<'a> {
    /// Compiles the flow kernels and uploads the carrier weights.
    ///
    /// # Errors
    /// [`Error::Gpu`] when the weights do not fit the device.
    pub fn new(ctx: &'a GpuContext, weights: &FlowWeights, capacity: u32) -> Result<Self> {
        Ok(Self {
            ctx,
            kernels: FlowKernels::new(ctx, &weights.layout, &weights.data, capacity)
                .map_err(Error::gpu("setting up the flow kernels"))?,
        })
    }
}

/// One batch of flow items: the ids, their embeddings (`[ids.len(), E]`), the model.
pub struct FlowBatch<'a> {
    /// The flow networks.
    pub weights: &'a FlowWeights,
    /// The flows config as run.
    pub cfg: &'a FlowsConfig,
    /// The run's seed (noise seeds are hashed from it and the ids).
    pub seed: u64,
    /// The items' ids.
    pub ids: &'a [u64],
    /// `[ids.len(), embedding_dim]`.
    pub embeddings: &'a [f32],
}

impl FlowBatch<'_> {
    /// Runs the batch to its final state: the mapper places the flows, the noise seeds come
    /// from (seed, id), and the flows move on the GPU when `gpu` is given, else on the CPU.
    ///
    /// # Errors
    /// [`Error::Gpu`] (an allocation failure is retried smaller by the runtime).
    pub fn run(
        &self,
        gpu: Option<&GpuFlowSetup<'_>>,
        trace: Option<&mut Trace>,
        on_window: impl FnMut(&[StepRecord]) -> ControlFlow<()>,
    ) -> Result<BatchOutcome> {
        let (weights, cfg) = (self.weights, self.cfg);
        let (state, seeds) = place_batch(weights, cfg, self.seed, self.ids, self.embeddings);
        let count = self.ids.len() as u32;
        let first = self.ids.first().copied().unwrap_or(0);
        match gpu {
            None => {
                let net = FlowNet::new(&weights.layout, &weights.data);
                let mut engine = CpuFlows { net, state, seeds };
                Ok(run_batch(&mut engine, cfg, count, first, trace, on_window)
                    .unwrap_or_else(|e| match e {}))
            }
            Some(g) => {
                let mut engine = GpuFlows::new(g.ctx, &g.kernels, &state, &seeds)
                    .map_err(Error::gpu("setting up a flow batch on the GPU"))?;
                run_batch(&mut engine, cfg, count, first, trace, on_window)
                    .map_err(Error::gpu("a flow step"))
            }
        }
    }
}
