//! Early stop on the completion rate (reference-system.md B8), evaluated at the top of each
//! step from the run's cumulative counts.

use crate::config::ConvergenceConfig;

/// Moving-average window of completed counts.
const WINDOW: usize = 5;

#[derive(Debug, Clone)]
pub struct Convergence {
    cfg: ConvergenceConfig,
    history: Vec<u64>,
    prev_avg: Option<f64>,
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

impl Convergence {
    pub fn new(cfg: ConvergenceConfig) -> Self {
        Self {
            cfg,
            history: Vec::new(),
            prev_avg: None,
            no_improvement: 0,
        }
    }

    /// The first step whose check can stop the run.
    pub fn min_steps(&self) -> u32 {
        self.cfg.min_steps
    }

    /// Called before step `step` with totals so far; `Some` stops the run.
    pub fn check(
        &mut self,
        step: u32,
        completed: u64,
        created: u64,
        live: u64,
    ) -> Option<StopReason> {
        if step < self.cfg.min_steps {
            return None;
        }
        let rate = completed as f64 / created.max(1) as f64;
        self.history.push(completed);
        if self.history.len() >= WINDOW {
            let tail = &self.history[self.history.len() - WINDOW..];
            let avg = tail.iter().sum::<u64>() as f64 / WINDOW as f64;
            if let Some(prev) = self.prev_avg {
                let improvement = if prev > 0.0 {
                    (avg - prev) / prev
                } else if avg > 0.0 {
                    1.0
                } else {
                    0.0
                };
                if improvement < 0.01 {
                    self.no_improvement += 1;
                } else {
                    self.no_improvement = 0;
                }
            }
            self.prev_avg = Some(avg);
        }
        let patience = self.cfg.patience;
        if rate >= f64::from(self.cfg.threshold) {
            Some(StopReason::ThresholdReached)
        } else if live == 0 && rate < 0.5 {
            Some(StopReason::NoLiveFlowsBelowHalf)
        } else if self.no_improvement >= patience {
            Some(StopReason::Patience)
        } else if step > 10 && rate > 0.8 && self.no_improvement > patience / 2 {
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
}
