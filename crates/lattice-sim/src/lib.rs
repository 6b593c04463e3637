//! The lattice simulation API: build a simulation from a config (a RON file or a [`RunConfig`]
//! made in code), submit items with ids, get each item's result back by id, with the run's
//! statistics. No terminal, no files: `lattice run` is a thin layer over this crate that reads
//! the inputs, watches the run through an [`Observer`] (progress bar, checkpoints) and writes
//! the results.
//!
//! ```no_run
//! use lattice_sim::{BackendChoice, Item, Simulation};
//!
//! let sim = Simulation::from_file("configs/debug.ron".as_ref(), BackendChoice::Cpu)?;
//! let results = sim.run(&[Item::seeded(7), Item::seeded(8)])?;
//! println!("{} of {} items ok", results.succeeded(), results.len());
//! let states = results.get(7).unwrap().output.states();
//! # Ok::<(), lattice_sim::Error>(())
//! ```
//!
//! Items run in batches of at most [`Simulation::batch_size`] (the config's
//! `batch.max_batch_size`, or with `Auto` as many as fit in memory); a batch that fails to
//! allocate is retried at half size; an item whose states turn non-finite fails alone.
//! Seeded inputs are keyed by the item's id, so an item's result depends only on the config,
//! the seed and its id, whatever batch it runs in.

#![warn(missing_docs, clippy::missing_errors_doc)]

mod backend;
pub mod engines;
mod error;
mod flows;
mod items;
mod model;
mod moe;
mod observer;
pub mod runtime;
mod self_check;
mod simulation;
#[cfg(feature = "texts")]
mod texts;

pub use backend::{Backend, BackendChoice, rayon_threads};
pub use error::{Error, ItemError, ObserverError, Result};
pub use items::{Input, Item, ItemRecord, ItemResult, Output, Results, Stats};
pub use lattice_core::config::RunConfig;
pub use lattice_gpu::GpuRequest;
/// The sentence encoder and texts files (the `lattice-text` crate; feature `texts`).
#[cfg(feature = "texts")]
pub use lattice_text as text;
#[cfg(feature = "texts")]
pub use lattice_text::{Encoded, Encoder, Texts};
pub use model::{FlowsModel, Model, MoeModel};
pub use observer::{BatchDone, NoObserver, Observer, Snapshot, StepEvent};
pub use simulation::Simulation;
#[cfg(feature = "texts")]
pub use texts::{load_encoder_for, read_texts_for};
