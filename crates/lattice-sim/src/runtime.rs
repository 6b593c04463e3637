//! The batch runtime shared by both simulations: items grouped into batches of at most the
//! chosen size; a batch that fails to allocate is retried at half the size (logged), down to 1
//! before the run fails. Per-item results are kept by the runners.

use std::ops::Range;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::items::{ItemResult, Stats};

/// How a run's batches went.
#[derive(Debug, Default, Clone)]
pub struct BatchRun {
    /// Items per batch, in run order.
    pub batch_sizes: Vec<usize>,
    /// Batches that failed to allocate and were retried at half size.
    pub halvings: u32,
    /// Fault injection: the next batch fails as if it could not allocate.
    pub fail_next: bool,
    /// The process's peak resident memory over the batches (Linux).
    pub peak_host_bytes: Option<u64>,
    /// The most host memory one item took: over the batches, the growth of resident memory
    /// from a batch's start to its peak, divided by its items (Linux).
    pub host_bytes_per_item: Option<u64>,
}

/// Host memory of one batch: where resident memory started, once the peak was reset.
struct BatchMemory {
    start: Option<u64>,
}

impl BatchMemory {
    /// Records the peak so far into `out`, then starts a new one for the batch.
    fn start(out: &mut BatchRun) -> Self {
        out.peak_host_bytes = out.peak_host_bytes.max(peak_rss_bytes());
        let start = lattice_core::memory::reset_peak_rss()
            .then(lattice_core::memory::rss_bytes)
            .flatten();
        Self { start }
    }

    /// The batch's peak into `out`, and its growth per item when it succeeded.
    fn finish(self, out: &mut BatchRun, items: usize, ok: bool) {
        let peak = peak_rss_bytes();
        out.peak_host_bytes = out.peak_host_bytes.max(peak);
        if let (true, Some(start), Some(peak)) = (ok, self.start, peak) {
            let per_item = peak.saturating_sub(start) / items.max(1) as u64;
            out.host_bytes_per_item = out.host_bytes_per_item.max(Some(per_item));
        }
    }
}

/// Runs the items `range` in batches of at most `size`, recording them in `out`.
/// `run(batch_index, items, inject)` runs one batch; with `inject` it fails its allocation
/// ([`injected_failure`]) where the real one would fail.
///
/// # Errors
/// The first error that is not an allocation failure, or [`Error::BatchOfOneFailed`].
pub fn run_batches(
    out: &mut BatchRun,
    range: Range<usize>,
    size: usize,
    mut run: impl FnMut(usize, Range<usize>, bool) -> Result<()>,
) -> Result<()> {
    let mut size = size.max(1);
    let (mut first, items) = (range.start, range.end);
    while first < items {
        let count = size.min(items - first);
        let batch = out.batch_sizes.len();
        let inject = std::mem::take(&mut out.fail_next);
        let memory = BatchMemory::start(out);
        let result = run(batch, first..first + count, inject);
        memory.finish(out, count, result.is_ok());
        match result {
            Ok(()) => {
                out.batch_sizes.push(count);
                first += count;
            }
            Err(e) if e.is_allocation() && count > 1 => {
                size = count / 2;
                out.halvings += 1;
                tracing::warn!(
                    "a batch of {count} item(s) could not be allocated ({e}); retrying with {size}"
                );
            }
            Err(e) if e.is_allocation() => return Err(Error::BatchOfOneFailed(Box::new(e))),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The allocation failure a batch injects for testing (`Ok` when `inject` is off).
///
/// # Errors
/// The injected out-of-memory error.
#[cfg(feature = "test-support")]
pub fn injected_failure(inject: bool) -> Result<()> {
    if inject {
        return Err(Error::Gpu {
            context: "allocating a batch",
            source: lattice_gpu::GpuError::InjectedOutOfMemory,
        });
    }
    Ok(())
}

/// Without `test-support` nothing injects a failure.
///
/// # Errors
/// None.
#[cfg(not(feature = "test-support"))]
pub fn injected_failure(_inject: bool) -> Result<()> {
    Ok(())
}

pub use lattice_core::memory::{available_memory_bytes, peak_rss_bytes};

/// Items that fit in 80 % of the host's available memory at `bytes_per_item` each (at least 1).
pub fn host_batch_limit(bytes_per_item: u64) -> usize {
    available_memory_bytes().map_or(usize::MAX, |avail| {
        ((avail / 10 * 8) / bytes_per_item.max(1)).max(1) as usize
    })
}

/// What the runners accumulate while batches run: how the batches went, and what they
/// produced (two fields, so a runner can lend them apart: one to [`run_batches`], the other
/// to the batch it runs).
#[derive(Default)]
pub(crate) struct Tally {
    pub batches: BatchRun,
    pub measured: Measured,
}

/// The items' results and the work and time of every step.
#[derive(Default)]
pub(crate) struct Measured {
    pub results: Vec<ItemResult>,
    pub step_ms: Vec<f64>,
    pub work: u64,
    /// GPU memory one item takes, from the kernels' buffer sizes (None on the CPU).
    pub device_bytes_per_item: Option<u64>,
}

impl Tally {
    pub(crate) fn stats(
        &self,
        backend: String,
        size: usize,
        items: usize,
        start: Instant,
    ) -> Stats {
        let total_s = start.elapsed().as_secs_f64();
        let m = &self.measured;
        let steps = m.step_ms.len().max(1) as f64;
        Stats {
            backend,
            total_s,
            items_per_s: items as f64 / total_s,
            batch_size: size,
            batch_sizes: self.batches.batch_sizes.clone(),
            halvings: self.batches.halvings,
            mean_step_ms: m.step_ms.iter().sum::<f64>() / steps,
            max_step_ms: m.step_ms.iter().copied().fold(0.0, f64::max),
            work: m.work,
            mean_item_s: total_s / items.max(1) as f64,
            peak_host_memory_bytes: self.batches.peak_host_bytes.max(peak_rss_bytes()),
            host_bytes_per_item: self.batches.host_bytes_per_item,
            device_bytes_per_item: m.device_bytes_per_item,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_big() -> Error {
        Error::Gpu {
            context: "test",
            source: lattice_gpu::GpuError::TooLarge {
                what: "a test batch",
                need: 2,
                limit: 1,
                fix: "none",
            },
        }
    }

    #[test]
    fn alloc_failures_halve_down_to_one() {
        let mut calls = Vec::new();
        let mut run = BatchRun::default();
        run_batches(&mut run, 0..5, 4, |_, r, _| {
            calls.push(r.clone());
            if r.len() > 1 { Err(too_big()) } else { Ok(()) }
        })
        .unwrap();
        assert_eq!(run.batch_sizes, [1, 1, 1, 1, 1]);
        assert_eq!(run.halvings, 2);
        assert_eq!(calls[..3], [0..4, 0..2, 0..1]);
        assert_eq!(calls.len(), 3 + 4, "every item ran once after the halvings");
    }

    #[test]
    fn other_errors_end_the_run_and_one_item_that_cannot_fit_is_named() {
        let mut run = BatchRun::default();
        let e = run_batches(&mut run, 0..3, 2, |_, r, _| {
            Err(Error::Input {
                item: r.start as u64,
                message: "bad".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(e, Error::Input { item: 0, .. }), "{e}");
        assert_eq!(run.halvings, 0);
        let e =
            run_batches(&mut BatchRun::default(), 0..2, 2, |_, _, _| Err(too_big())).unwrap_err();
        assert!(matches!(e, Error::BatchOfOneFailed(_)), "{e}");
    }

    #[cfg(feature = "test-support")]
    #[test]
    fn an_injected_failure_reaches_the_first_batch_only_and_halves_it() {
        let mut run = BatchRun {
            fail_next: true,
            ..BatchRun::default()
        };
        let mut seen = Vec::new();
        run_batches(&mut run, 0..4, 4, |_, r, inject| {
            seen.push((r.clone(), inject));
            injected_failure(inject)
        })
        .unwrap();
        assert_eq!(seen, [(0..4, true), (0..2, false), (2..4, false)]);
        assert_eq!((run.batch_sizes, run.halvings), (vec![2, 2], 1));
    }
}
