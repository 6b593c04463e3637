//! Per-kernel GPU time from timestamp queries. A profiled submission records each kernel
//! dispatch in its own compute pass with pass-level `timestamp_writes` (TIMESTAMP_QUERY; no
//! writes inside passes needed, so lavapipe can profile too), resolves the queries into a
//! buffer, and reads them back after the submission; times accumulate per kernel label.

use std::collections::BTreeMap;

use crate::context::{GpuContext, GpuError};
use crate::kernel::Staging;

/// Time and dispatch count of one kernel over every profiled submission.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KernelTime {
    pub ms: f64,
    pub dispatches: u64,
}

/// Timestamp queries for the passes of one submission at a time, and the totals so far.
pub struct Profiler {
    set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    staging: Staging,
    capacity: u32,
    /// The label of each pass recorded in the current submission.
    pending: Vec<&'static str>,
    totals: BTreeMap<&'static str, KernelTime>,
    tick_ns: f64,
}

impl Profiler {
    /// Room for `passes` timed passes per submission; `None` when the adapter has no
    /// timestamp queries.
    pub fn new(ctx: &GpuContext, passes: u32) -> Option<Self> {
        if !ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let count = 2 * passes;
        let bytes = u64::from(count) * 8;
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("resolved timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(Self {
            set,
            resolved,
            staging: Staging::new(ctx, "timestamps", bytes),
            capacity: passes,
            pending: Vec::new(),
            totals: BTreeMap::new(),
            tick_ns: f64::from(ctx.queue.get_timestamp_period()),
        })
    }

    /// Passes one submission can time.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The timestamp writes of the next pass, labelled `kernel`.
    ///
    /// # Panics
    /// When the submission has more passes than [`Self::capacity`].
    pub fn writes(&mut self, kernel: &'static str) -> wgpu::ComputePassTimestampWrites<'_> {
        let k = self.pending.len() as u32;
        assert!(
            k < self.capacity,
            "more passes than the profiler was sized for"
        );
        self.pending.push(kernel);
        wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * k),
            end_of_pass_write_index: Some(2 * k + 1),
        }
    }

    /// Records the resolve and the copy of this submission's timestamps (after its passes).
    pub fn record_resolve(&self, enc: &mut wgpu::CommandEncoder) {
        let n = 2 * self.pending.len() as u32;
        if n > 0 {
            enc.resolve_query_set(&self.set, 0..n, &self.resolved, 0);
            self.staging
                .record_copy_at(enc, &self.resolved, 0, u64::from(n) * 8);
        }
    }

    /// After the submission: reads its timestamps and adds each pass to its kernel's total.
    ///
    /// # Errors
    /// A failed readback.
    pub fn collect(&mut self, ctx: &GpuContext) -> Result<(), GpuError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ticks: Vec<u64> = self.staging.read(ctx, 2 * self.pending.len())?;
        for (label, pair) in self.pending.drain(..).zip(ticks.chunks_exact(2)) {
            let t = self.totals.entry(label).or_default();
            t.ms += pair[1].saturating_sub(pair[0]) as f64 * self.tick_ns * 1e-6;
            t.dispatches += 1;
        }
        Ok(())
    }

    /// Time per kernel over every collected submission.
    pub fn totals(&self) -> &BTreeMap<&'static str, KernelTime> {
        &self.totals
    }

    /// Forgets the totals (e.g. after a warm-up).
    pub fn reset(&mut self) {
        self.totals.clear();
    }
}

/// One kernel's compute pass: timed when `profiler` is given.
pub fn kernel_pass<'e>(
    enc: &'e mut wgpu::CommandEncoder,
    profiler: Option<&mut Profiler>,
    kernel: &'static str,
) -> wgpu::ComputePass<'e> {
    enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(kernel),
        timestamp_writes: profiler.map(|p| p.writes(kernel)),
    })
}
