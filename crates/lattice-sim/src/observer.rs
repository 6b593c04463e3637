//! Hooks into a run: what a caller sees while items run (progress), and where it can act
//! (checkpoints, stopping). `lattice run` drives its progress bar and its checkpoints through
//! these; a library user can do the same, or pass [`NoObserver`].

use std::ops::Range;

use lattice_core::flows::run::StepRecord;

use crate::error::{ItemError, ObserverError};
use crate::items::ItemResult;

/// One step of one batch finished.
#[derive(Debug)]
pub struct StepEvent<'a> {
    /// Batch number in run order (retries after an allocation failure get a new number).
    pub batch: usize,
    /// The batch's items, as indices into the submitted slice.
    pub items: Range<usize>,
    /// The step just done (1-based) and the steps an item runs in all.
    pub step: u32,
    /// Steps an item runs in all.
    pub steps: u32,
    /// Wall time of the step.
    pub ms: f64,
    /// Work done: cell-updates (MoE) or item-steps (flows).
    pub units: u64,
    /// Flows: what the step did, summed over the batch's items.
    pub flows: Option<&'a StepRecord>,
}

/// MoE: a batch's states mid-run, when [`Observer::snapshot_every`] asks for them.
#[derive(Debug)]
pub struct Snapshot<'a> {
    /// The batch's items, as indices into the submitted slice.
    pub items: Range<usize>,
    /// Steps every item of the batch has done.
    pub step: u32,
    /// `[items.len(), N, S]`.
    pub states: &'a [f32],
    /// Per item of the batch: its first non-finite state so far.
    pub errors: &'a [Option<ItemError>],
}

/// A batch finished: its items' results (outputs included).
#[derive(Debug)]
pub struct BatchDone<'a> {
    /// Batch number in run order.
    pub batch: usize,
    /// The batch's items, as indices into the submitted slice.
    pub items: Range<usize>,
    /// Their results, in the same order.
    pub results: &'a [ItemResult],
    /// Flows: the batch's steps, each summed over its items (empty for MoE).
    pub flow_steps: &'a [StepRecord],
}

/// Every method has a default that does nothing. An error returned from `step`, `snapshot` or
/// `batch_done` ends the run with [`crate::Error::Observer`].
pub trait Observer {
    /// A step of a batch finished (progress). An error stops the run here, between steps
    /// (an interrupt, a cancelled job).
    ///
    /// # Errors
    /// Whatever the observer fails with; it ends the run.
    fn step(&mut self, _event: &StepEvent<'_>) -> Result<(), ObserverError> {
        Ok(())
    }

    /// MoE: deliver [`Snapshot`]s every this many steps (0: never). A batch's last step is
    /// never snapshotted: its states arrive in `batch_done`.
    fn snapshot_every(&self) -> u32 {
        0
    }

    /// MoE: a batch's states mid-run (checkpoints).
    ///
    /// # Errors
    /// Whatever the observer fails with; it ends the run.
    fn snapshot(&mut self, _snapshot: &Snapshot<'_>) -> Result<(), ObserverError> {
        Ok(())
    }

    /// A batch finished, with its items' results.
    ///
    /// # Errors
    /// Whatever the observer fails with; it ends the run.
    fn batch_done(&mut self, _done: &BatchDone<'_>) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// An observer that watches nothing.
pub struct NoObserver;

impl Observer for NoObserver {}
