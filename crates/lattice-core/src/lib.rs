//! Core of the lattice engine: geometry, the neighbor cache, configs, weights and the CPU
//! reference kernels that every WGSL shader mirrors.

pub mod config;
pub mod flows;
pub mod formats;
pub mod geometry;
pub mod inputs;
pub mod io;
#[cfg(feature = "test-support")]
pub mod kernels;
pub mod lattice;
pub mod math;
pub mod memory;
pub mod moe;
pub mod neighbors;
pub mod seeds;
pub mod tensors;

pub use geometry::{Boundary, Dims};
pub use neighbors::{NeighborCache, NeighborClass, Radius};
