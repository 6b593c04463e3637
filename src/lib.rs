//! lattice: a 3D cellular lattice simulation engine (MoE cell updates and energy flows) on
//! the GPU (wgpu) or the CPU (rayon), batched over many independent lattices.
//!
//! This is the library users import; the `lattice` binary is a front end over it.
//!
//! ```no_run
//! use lattice::{BackendChoice, Item, Simulation};
//!
//! let sim = Simulation::from_file("configs/debug.ron".as_ref(), BackendChoice::Auto)?;
//! let results = sim.run(&[Item::seeded(0), Item::seeded(1)])?;
//! println!("{} of {} items ok on {}", results.succeeded(), results.len(), results.stats.backend);
//! # Ok::<(), lattice::Error>(())
//! ```
//!
//! The building blocks are re-exported too: [`core`] (configs, geometry, neighbor cache,
//! weights, the CPU engines) and [`gpu`] (device, kernels, the GPU engines).

pub use lattice_core as core;
pub use lattice_gpu as gpu;
pub use lattice_sim::*;
