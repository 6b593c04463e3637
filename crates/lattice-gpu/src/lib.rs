//! GPU path of the lattice engine: wgpu device setup, buffer and pipeline helpers, and one
//! module per WGSL kernel, each the twin of a CPU kernel in `lattice_core::kernels`.

pub mod adapters;
pub mod context;
pub mod flows;
pub mod gather;
pub mod gather_tile;
pub mod header;
pub mod kernel;
pub mod layout;
pub mod moe;
pub mod profile;
pub mod shaders;
pub mod slab;
#[cfg(feature = "test-support")]
pub mod standalone_gather;

pub use adapters::{GpuRequest, Verdict};
pub use context::{GpuContext, GpuError, list_adapters};
#[cfg(feature = "test-support")]
pub use context::{REQUIRE_GPU_ENV, test_context};
