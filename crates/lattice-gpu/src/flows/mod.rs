//! GPU twin of `lattice_core::flows`: the six-stage flow step (live lists, neuron, GRU layers,
//! heads, plan, copy) on structure-of-arrays buffers that mirror [`FlowState`] slot for slot.
//! The hidden states ping-pong between two buffers, with a per-slot note of which one holds a
//! flow's latest state (flows that stopped moving keep theirs where they left it).
//!
//! Sizes and tensor offsets are baked into each pipeline through a generated header of WGSL
//! `const`s. A step needs nothing from the host: `flow_live` applies the stop rule (B8) to
//! each item, freezing those that stop, and turns the per-item counts left by the previous
//! step into list offsets and the other kernels' workgroup grids (indirect dispatch). A window
//! of steps (`FlowEngine::steps`) runs back to back; each step's counts are copied into a
//! history buffer that is read back once, with the items' stop states, at the window's end,
//! and `run_batch` confirms the device's stops against its own.

use bytemuck::{Pod, Zeroable};
use lattice_core::flows::convergence::StopReason;
use lattice_core::flows::params::DISP_HIDDEN;
use lattice_core::flows::run::{FlowEngine, WINDOW_STEPS};
use lattice_core::flows::state::{DoneFlow, done_capacity};
use lattice_core::flows::{FlowLayout, FlowShape, FlowState, ItemCounts, MoveRule};
use lattice_core::tensors::TensorSpec;

use crate::context::{GpuContext, GpuError};
use crate::header::Header;
use crate::kernel::{
    Kernel, Staging, allocating, grid, indirect_args, read_back, storage, storage_zeroed, uniform,
};
use crate::profile::{Profiler, kernel_pass};
use crate::shaders::{self, KernelSpec};

/// Flows per GRU workgroup (`TILE` in shaders/flow_gru.wgsl): 16 groups of 2, each group 16
/// invocations of 4 hidden units, so each weight a workgroup loads serves 32 flows.
pub const TILE: u32 = 32;

mod buffers;
mod engine;
mod header;
mod kernels;
#[cfg(test)]
mod tests;
mod uniforms;

use buffers::*;
use header::*;

pub use engine::GpuFlows;
pub use header::{KERNELS, gate_stride, gpu_range, header, heads_tile, sources};
pub use kernels::FlowKernels;
pub use uniforms::{FlowParams, LayerParams, LiveDispatch, StopState};
