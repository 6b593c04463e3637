//! Early stop on the completion rate (docs/model.md B8), evaluated at the top of each
//! step from the run's cumulative counts.
//!
//! Every comparison is exact, in integers: the rate against the threshold (an f32, so exactly
//! `m / 2^s`), the 1 % improvement of the 5-step moving average (`100·(S − P) ≥ P` on the
//! window sums), the 0.5 and 0.8 rates. The reference computes them in float64, which agrees
//! except where a value lands exactly on a bound (e.g. an improvement of exactly 1 %), where its
//! rounding decides; here the bound decides. `lattice-gpu/shaders/flow_live.wgsl` applies the
//! same rule on the GPU with the same integers ([`StopRule`], the `code`s of [`StopReason`]).

use crate::config::ConvergenceConfig;

/// Moving-average window of completed counts.
const WINDOW: usize = 5;

/// B8's parameters as both backends compare with them: the threshold exactly as
/// `threshold_m / 2^threshold_shift`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopRule {
    pub min_steps: u32,
    pub patience: u32,
    pub threshold_m: u32,
    pub threshold_shift: u32,
}

impl StopRule {
    /// # Panics
    /// Unless the threshold is in (0, 1] (the config's validation guarantees it).
    pub fn new(cfg: &ConvergenceConfig) -> Self {
        let t = cfg.threshold;
        assert!(t > 0.0 && t <= 1.0, "a completion rate in (0, 1]");
        let bits = t.to_bits();
        let (exp, frac) = (bits >> 23, bits & 0x7f_ffff);
        // Normal: (2^23 + frac)·2^(exp − 150); subnormal: frac·2^−149.
        let (mut m, mut shift) = match exp {
            0 => (frac, 149),
            e => (frac | 0x80_0000, 150 - e),
        };
        while m % 2 == 0 && shift > 0 {
            m /= 2;
            shift -= 1;
        }
        Self {
            min_steps: cfg.min_steps,
            patience: cfg.patience,
            threshold_m: m,
            threshold_shift: shift,
        }
    }

    /// The fewest completed flows out of `created` that reach the threshold:
    /// ⌈created·m / 2^shift⌉.
    pub fn completions_needed(&self, created: u64) -> u64 {
        let q = u128::from(created) * u128::from(self.threshold_m);
        match self.threshold_shift {
            s @ 0..=127 => q.div_ceil(1u128 << s) as u64,
            _ => u64::from(q > 0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Convergence {
    rule: StopRule,
    history: Vec<u64>,
    no_improvement: u32,
}

/// Why an item stopped: one of the early-stop rules (B8) or the run's two natural ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every step up to `max_steps` ran.
    #[default]
    StepLimit,
    /// No flow of the item was still moving.
    AllFlowsCompleted,
    ThresholdReached,
    NoLiveFlowsBelowHalf,
    Patience,
    PlateauAboveEightyPercent,
}

impl StopReason {
    /// The reason's number on the GPU (0: still running).
    pub fn code(self) -> u32 {
        match self {
            Self::StepLimit => 0,
            Self::AllFlowsCompleted => 1,
            Self::ThresholdReached => 2,
            Self::NoLiveFlowsBelowHalf => 3,
            Self::Patience => 4,
            Self::PlateauAboveEightyPercent => 5,
        }
    }
}

/// Whether an item stops before `step`: the convergence test when there is one, else (or
/// then) when it has no live flow. The one decision both backends make (`flow_live`).
pub fn stop_reason(
    conv: Option<&mut Convergence>,
    step: u32,
    completed: u64,
    created: u64,
    live: u64,
) -> Option<StopReason> {
    let reason = conv.and_then(|c| c.check(step, completed, created, live));
    reason.or((live == 0).then_some(StopReason::AllFlowsCompleted))
}

impl Convergence {
    pub fn new(cfg: ConvergenceConfig) -> Self {
        Self {
            rule: StopRule::new(&cfg),
            history: Vec::new(),
            no_improvement: 0,
        }
    }

    /// The first step whose check can stop the run.
    pub fn min_steps(&self) -> u32 {
        self.rule.min_steps
    }

    /// Called before step `step` with totals so far; `Some` stops the run.
    pub fn check(
        &mut self,
        step: u32,
        completed: u64,
        created: u64,
        live: u64,
    ) -> Option<StopReason> {
        if step < self.rule.min_steps {
            return None;
        }
        self.history.push(completed);
        let n = self.history.len();
        if n > WINDOW {
            // The moving average against the one a check earlier, as window sums.
            let now: u64 = self.history[n - WINDOW..].iter().sum();
            let before: u64 = self.history[n - WINDOW - 1..n - 1].iter().sum();
            let improved = match before {
                0 => now > 0,
                p => 100 * (i128::from(now) - i128::from(p)) >= i128::from(p),
            };
            self.no_improvement = if improved { 0 } else { self.no_improvement + 1 };
        }
        let created = created.max(1);
        let patience = self.rule.patience;
        if completed >= self.rule.completions_needed(created) {
            Some(StopReason::ThresholdReached)
        } else if live == 0 && 2 * completed < created {
            Some(StopReason::NoLiveFlowsBelowHalf)
        } else if self.no_improvement >= patience {
            Some(StopReason::Patience)
        } else if step > 10
            && 5 * u128::from(completed) > 4 * u128::from(created)
            && self.no_improvement > patience / 2
        {
            Some(StopReason::PlateauAboveEightyPercent)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ConvergenceConfig {
        ConvergenceConfig {
            threshold: 0.8,
            min_steps: 2,
            patience: 3,
        }
    }

    #[test]
    fn threshold_stops_only_after_min_steps() {
        let mut c = Convergence::new(cfg());
        assert_eq!(c.check(1, 90, 100, 10), None);
        assert_eq!(c.check(2, 90, 100, 10), Some(StopReason::ThresholdReached));
        let mut c = Convergence::new(cfg());
        assert_eq!(c.check(2, 50, 100, 50), None);
    }

    #[test]
    fn stalled_completion_stops_after_patience() {
        let mut c = Convergence::new(cfg());
        let mut stopped = None;
        for step in 2..30 {
            if let Some(r) = c.check(step, 10, 100, 90) {
                stopped = Some((step, r));
                break;
            }
        }
        // Five entries fill the window (steps 2..=6), the sixth compares averages.
        assert_eq!(stopped, Some((9, StopReason::Patience)));
    }

    #[test]
    fn thresholds_are_exact_fractions() {
        let rule = |t: f32| {
            StopRule::new(&ConvergenceConfig {
                threshold: t,
                ..cfg()
            })
        };
        assert_eq!((rule(1.0).threshold_m, rule(1.0).threshold_shift), (1, 0));
        assert_eq!((rule(0.75).threshold_m, rule(0.75).threshold_shift), (3, 2));
        // 0.8f32 = 13421773 / 2^24, a hair above 4/5: 4 of 5 is not enough, 5 of 6 is.
        assert_eq!(
            (rule(0.8).threshold_m, rule(0.8).threshold_shift),
            (13421773, 24)
        );
        assert_eq!(rule(0.8).completions_needed(5), 5);
        assert_eq!(rule(0.75).completions_needed(4), 3);
        assert_eq!(rule(0.75).completions_needed(0), 0);
        // The smallest subnormal: any completion reaches it.
        assert_eq!(rule(f32::from_bits(1)).completions_needed(1000), 1);
    }

    #[test]
    fn an_improvement_of_exactly_one_percent_counts_as_improving() {
        // Window sums 500 then 505: exactly 1 %.
        let mut c = Convergence::new(ConvergenceConfig {
            threshold: 1.0,
            min_steps: 0,
            patience: 1,
        });
        for (step, done) in [100, 100, 100, 100, 100, 105].into_iter().enumerate() {
            assert_eq!(c.check(step as u32, done, 1000, 10), None, "step {step}");
        }
        // Then 505 -> 510: under 1 %, and patience 1 is used up.
        assert_eq!(c.check(6, 105, 1000, 10), Some(StopReason::Patience));
    }

    /// A rule that only `check`'s later branches can end: threshold 1, from step 0.
    fn open(patience: u32) -> Convergence {
        Convergence::new(ConvergenceConfig {
            threshold: 1.0,
            min_steps: 0,
            patience,
        })
    }

    /// The first step at which `check` stops, feeding `completed(step)` of 100 created flows
    /// with `live` still moving.
    fn first_stop(
        c: &mut Convergence,
        completed: impl Fn(u32) -> u64,
        live: u64,
    ) -> Option<(u32, StopReason)> {
        (0..40).find_map(|step| c.check(step, completed(step), 100, live).map(|r| (step, r)))
    }

    #[test]
    fn a_window_summing_to_zero_improves_only_when_a_flow_completes() {
        // Five zeros fill the window; the sixth check compares 0 with 0: no improvement.
        assert_eq!(
            first_stop(&mut open(1), |_| 0, 10),
            Some((5, StopReason::Patience))
        );
        // A first completion after an empty window is an improvement.
        let mut c = open(1);
        for step in 0..5 {
            assert_eq!(c.check(step, 0, 100, 10), None);
        }
        assert_eq!(c.check(5, 1, 100, 10), None, "0 -> 1 improves");
        // The window sums 0 then 1: the next comparison, 1 -> 2, is an improvement too.
        assert_eq!(c.check(6, 1, 100, 10), None);
    }

    #[test]
    fn a_steadily_growing_count_keeps_improving() {
        // One more completion a step: each window sum is 5 above the one a step earlier, over
        // 1 % of it while the counts stay small, so patience 1 is never used up.
        assert_eq!(
            first_stop(&mut open(1), |step| 10 + u64::from(step), 10),
            None
        );
    }

    #[test]
    fn no_live_flows_stops_below_half_of_the_created_not_at_half() {
        assert_eq!(open(100).check(0, 50, 100, 0), None, "exactly half");
        assert_eq!(
            open(100).check(0, 49, 100, 0),
            Some(StopReason::NoLiveFlowsBelowHalf)
        );
        assert_eq!(open(100).check(0, 49, 100, 1), None, "a flow still moves");
    }

    #[test]
    fn the_plateau_rule_needs_step_over_10_rate_over_80_percent_and_half_the_patience() {
        // A flat history: no improvement from the sixth check on, so at step s it is s − 4.
        // Patience 10: half is 5, exceeded from step 10; the step bound decides (11).
        assert_eq!(
            first_stop(&mut open(10), |_| 81, 10),
            Some((11, StopReason::PlateauAboveEightyPercent))
        );
        // Exactly 80 % is not above it: patience ends the run instead (step 14).
        assert_eq!(
            first_stop(&mut open(10), |_| 80, 10),
            Some((14, StopReason::Patience))
        );
        // Patience 14: half is 7, reached at step 11 and exceeded at step 12.
        assert_eq!(
            first_stop(&mut open(14), |_| 81, 10),
            Some((12, StopReason::PlateauAboveEightyPercent))
        );
    }

    #[test]
    fn a_subnormal_threshold_needs_no_completion_of_no_flow() {
        let rule = StopRule::new(&ConvergenceConfig {
            threshold: f32::from_bits(1),
            ..cfg()
        });
        assert_eq!(rule.completions_needed(0), 0);
        assert_eq!(rule.completions_needed(1), 1);
    }

    #[test]
    fn stop_codes_are_distinct_and_zero_is_the_step_limit() {
        // flow_live.wgsl writes these numbers; 0 also means "still running" there.
        let all = [
            StopReason::StepLimit,
            StopReason::AllFlowsCompleted,
            StopReason::ThresholdReached,
            StopReason::NoLiveFlowsBelowHalf,
            StopReason::Patience,
            StopReason::PlateauAboveEightyPercent,
        ];
        let codes: Vec<u32> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
    }
}
