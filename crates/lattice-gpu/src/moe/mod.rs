//! GPU twin of `lattice_core::moe`: the three-stage MoE step (prep, gather, update) over
//! `[items, N, S]` states that stay on the GPU between steps (ping-pong buffers).
//!
//! Sizes and tensor offsets are baked into each pipeline through a generated header of WGSL
//! `const`s, so any preset works without editing shaders. Rows (item, cell) are processed in
//! chunks so no binding exceeds the adapter's limit.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use lattice_core::NeighborCache;
use lattice_core::config::Combine;
use lattice_core::moe::gather::record_width;
use lattice_core::moe::net::UpdateTile;
use lattice_core::moe::params::EXTERNAL_INPUT;
use lattice_core::moe::{MoeEngine, MoeShape, NonFinite, ParamLayout, STEPS_PER_CHECK};

use crate::context::{GpuContext, GpuError};
use crate::gather::GpuNeighbors;
use crate::gather_tile::GatherTile;
use crate::header::Header;
use crate::kernel::{Kernel, Staging, allocating, read_back, storage, storage_zeroed, uniform};
use crate::layout::LatticeParams;
use crate::profile::{Profiler, kernel_pass};
use crate::shaders::{self, KernelSpec};

mod batch;
mod buffers;
mod engine;
mod header;
mod kernels;

use buffers::*;

pub use batch::GpuMoe;
pub use buffers::batch_bytes;
pub use engine::GpuMoeEngine;
pub use header::{KERNELS, MoeParams, header, sources};
pub use kernels::MoeKernels;
