//! [`GpuMoeEngine`]: [`GpuMoe`] on its device, the GPU's [`MoeEngine`].

use super::*;

/// [`GpuMoe`] on its device: the GPU implementation of [`MoeEngine`].
pub struct GpuMoeEngine<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) moe: GpuMoe,
}

impl<'a> GpuMoeEngine<'a> {
    /// Wraps a batch uploaded to `ctx`.
    pub fn new(ctx: &'a GpuContext, moe: GpuMoe) -> Self {
        Self { ctx, moe }
    }

    /// Times every kernel from now on ([`GpuMoe::enable_profiling`]).
    pub fn enable_profiling(&mut self) -> bool {
        self.moe.enable_profiling(self.ctx)
    }

    /// The kernel times so far, when profiling.
    pub fn profiler_mut(&mut self) -> Option<&mut Profiler> {
        self.moe.profiler_mut()
    }
}

impl MoeEngine for GpuMoeEngine<'_> {
    type Error = GpuError;

    fn step(&mut self) -> Result<Vec<NonFinite>, GpuError> {
        Ok(self.steps(1)?.pop().unwrap_or_default())
    }

    fn steps_per_check(&self) -> u32 {
        STEPS_PER_CHECK
    }

    /// One submission of `k` steps and one read of their flags.
    fn steps(&mut self, k: u32) -> Result<Vec<Vec<NonFinite>>, GpuError> {
        assert!(
            k <= STEPS_PER_CHECK,
            "at most STEPS_PER_CHECK steps between checks"
        );
        self.moe.submit_steps(self.ctx, k);
        let per_step = self.moe.non_finite_steps(self.ctx)?;
        self.moe.collect_profile(self.ctx)?;
        Ok(per_step
            .into_iter()
            .map(|flags| {
                let bad = flags.into_iter().enumerate();
                bad.filter_map(|(item, c)| c.map(|cell| NonFinite { item, cell }))
                    .collect()
            })
            .collect())
    }

    fn run_unchecked(&mut self, steps: u32) -> Result<(), GpuError> {
        if self.moe.profiler_mut().is_none() {
            self.moe.submit_steps(self.ctx, steps);
            return self.moe.wait(self.ctx);
        }
        // A profiled submission holds at most STEPS_PER_CHECK steps' timestamps.
        let mut left = steps;
        while left > 0 {
            let k = left.min(STEPS_PER_CHECK);
            self.moe.submit_steps(self.ctx, k);
            self.moe.wait(self.ctx)?;
            self.moe.collect_profile(self.ctx)?;
            left -= k;
        }
        Ok(())
    }

    fn states(&self) -> Result<Vec<f32>, GpuError> {
        self.moe.states(self.ctx)
    }
}
