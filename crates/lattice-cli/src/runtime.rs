//! The batch runtime shared by both simulations: items grouped into batches of at most the
//! chosen size; a batch that fails to allocate is retried at half the size (logged), down to 1
//! before the run fails. Per-item results (id, batch, duration, success or error, so one bad
//! item never loses the others) are kept by the runners in `api`.

use std::ops::Range;

use serde::Serialize;

/// Test switch: when set, the first batch of a run fails as if it could not allocate, so the
/// halving path runs on any machine (tests/cli_runtime.rs).
pub const FAIL_FIRST_BATCH_ENV: &str = "LATTICE_FAIL_FIRST_BATCH";

/// Why a batch did not run.
pub enum BatchError {
    /// Out of memory or over a binding limit: worth retrying with fewer items.
    Alloc(anyhow::Error),
    /// Anything else ends the run.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for BatchError {
    fn from(e: anyhow::Error) -> Self {
        Self::Fatal(e)
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ItemResult {
    pub id: u64,
    pub batch: usize,
    /// Wall time of the item's batch (items of a batch run together).
    pub duration_s: f64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a run's batches went. Per-item results are the caller's (`api::ItemResult`).
#[derive(Debug, Default, Clone)]
pub struct BatchRun {
    /// Items per batch, in run order.
    pub batch_sizes: Vec<usize>,
    /// Batches that failed to allocate and were retried at half size.
    pub halvings: u32,
}

/// Runs the items `range` in batches of at most `size`, appending to `out`.
/// `run(batch_index, items)` runs one batch.
pub fn run_batches(
    out: &mut BatchRun,
    range: Range<usize>,
    size: usize,
    mut run: impl FnMut(usize, Range<usize>) -> Result<(), BatchError>,
) -> anyhow::Result<()> {
    let mut size = size.max(1);
    let mut forced = out.batch_sizes.is_empty() && std::env::var_os(FAIL_FIRST_BATCH_ENV).is_some();
    let (mut first, items) = (range.start, range.end);
    while first < items {
        let count = size.min(items - first);
        let batch = out.batch_sizes.len();
        let result = if forced {
            forced = false;
            Err(BatchError::Alloc(anyhow::anyhow!(
                "allocation failure forced by {FAIL_FIRST_BATCH_ENV}"
            )))
        } else {
            run(batch, first..first + count)
        };
        match result {
            Ok(()) => {
                out.batch_sizes.push(count);
                first += count;
            }
            Err(BatchError::Alloc(e)) if count > 1 => {
                size = count / 2;
                out.halvings += 1;
                tracing::warn!(
                    "a batch of {count} item(s) could not be allocated ({e:#}); retrying with {size}"
                );
            }
            Err(BatchError::Alloc(e)) => {
                return Err(e.context(
                    "even a batch of 1 item could not be allocated; use a smaller lattice or --backend cpu",
                ));
            }
            Err(BatchError::Fatal(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Peak resident memory of this process in bytes (Linux; None elsewhere).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Memory available to new allocations in bytes (Linux `MemAvailable`; None elsewhere).
pub fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Items that fit in 80 % of the host's available memory at `bytes_per_item` each (at least 1).
pub fn host_batch_limit(bytes_per_item: u64) -> usize {
    available_memory_bytes().map_or(usize::MAX, |avail| {
        ((avail / 10 * 8) / bytes_per_item.max(1)).max(1) as usize
    })
}

/// Sorts an error into retry-smaller (a GPU allocation failure anywhere in its chain) or fatal.
pub fn classify(e: anyhow::Error) -> BatchError {
    let alloc = e.chain().any(|c| {
        c.downcast_ref::<lattice_gpu::GpuError>()
            .is_some_and(lattice_gpu::GpuError::is_allocation)
    });
    if alloc {
        BatchError::Alloc(e)
    } else {
        BatchError::Fatal(e)
    }
}

/// "N batch(es) of ≤ B", with the halvings if there were any.
pub fn batches_line(st: &crate::api::Stats) -> String {
    let halved = if st.halvings > 0 {
        format!(" ({} halving(s) after allocation failures)", st.halvings)
    } else {
        String::new()
    };
    format!(
        "{} batch(es) of ≤ {}{halved}",
        st.batch_sizes.len(),
        st.batch_size
    )
}

/// Peak host memory for a summary line.
pub fn peak_line(peak: Option<u64>) -> String {
    peak.map_or("unknown".into(), |b| {
        format!("{:.0} MiB (host)", b as f64 / 1048576.0)
    })
}

/// A compact two-column table of a run's figures, on stdout.
pub fn print_summary(title: &str, rows: &[(&str, String)]) {
    println!("{title}");
    for (k, v) in rows {
        println!("  {k:<12} {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_failures_halve_down_to_one() {
        let mut calls = Vec::new();
        let mut run = BatchRun::default();
        run_batches(&mut run, 0..5, 4, |_, r| {
            calls.push(r.clone());
            if r.len() > 1 {
                Err(BatchError::Alloc(anyhow::anyhow!("too big")))
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(run.batch_sizes, [1, 1, 1, 1, 1]);
        assert_eq!(run.halvings, 2);
        assert_eq!(calls[..3], [0..4, 0..2, 0..1]);
        assert_eq!(calls.len(), 3 + 4, "every item ran once after the halvings");
    }
}
