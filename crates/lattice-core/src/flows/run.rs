//! One batch of flow items from placement to the final state, on any backend: the step loop,
//! per-item early stop (so an item's result does not depend on the batch it runs in), step
//! metrics, the optional trace, and what happens to flows still moving at the end.
//!
//! Steps run in windows: the engine runs several steps back to back and reports their counts
//! together, so a GPU reads its counts back once a window instead of once a step. The host
//! replays the window step by step, exactly as if it had seen every step. A window lasts up to
//! [`WINDOW_STEPS`] where the engine applies the stop rule itself (the GPU; the host confirms
//! its decisions), else only while no item can be stopped by the rule (B8 waits for its
//! `min_steps`; without convergence nothing stops an item but its own end).

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use super::convergence::{Convergence, StopReason, StopRule, stop_reason};
use super::net::MoveRule;
use super::state::{FlowState, ItemCounts, status};
use super::trace::Trace;
use crate::config::{FlowsConfig, Unfinished};

/// Most steps in one window.
pub const WINDOW_STEPS: u32 = 16;

/// A backend that steps a batch of flows.
pub trait FlowEngine {
    type Error;
    /// One step of every live flow; the per-item counts after it.
    fn step(&mut self, rule: &MoveRule) -> Result<Vec<ItemCounts>, Self::Error>;
    /// `rules.len()` (at most [`WINDOW_STEPS`]) steps back to back; the per-item counts after
    /// each. An item without live flows stays as it is.
    fn steps(&mut self, rules: &[MoveRule]) -> Result<Vec<Vec<ItemCounts>>, Self::Error> {
        rules.iter().map(|r| self.step(r)).collect()
    }
    /// Stops moving these items' flows (their live lists become empty). An engine that
    /// [decides stops](Self::decides_stops) has already done so, or will before the step.
    fn freeze(&mut self, items: &[u32]) -> Result<(), Self::Error>;
    /// Whether the engine applies the stop rule itself before every step, from the counts on
    /// its side and [`MoveRule::stop`], as [`run_batch`] does on the host: then a window
    /// need not end where the rule may act, and [`Self::confirm_stops`] checks the engine's
    /// decisions against the host's after each window.
    fn decides_stops(&self) -> bool {
        false
    }
    /// Fails unless the engine stopped the items as the host did: per item, the step before
    /// which it stopped and why (`None`: still running).
    fn confirm_stops(&mut self, _host: &[Option<(u32, StopReason)>]) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The whole state, hidden states included.
    fn state(&mut self) -> Result<FlowState, Self::Error>;
}

/// Totals of one step over the batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: u32,
    /// Flows that moved this step.
    pub live: u32,
    pub spawned: u32,
    pub completed_front: u32,
    pub completed_back: u32,
    pub reflected: u32,
    /// Still moving after the step.
    pub moving: u32,
    pub dropped_by_capacity: u32,
    /// Σ Δz over the flows that moved (Δz: z after the step − z before it, normalized), in
    /// units of 2⁻²⁴: each item's sum is rounded to the unit once, so adding items and batches
    /// is exact and the run's figure does not depend on how items were batched.
    #[serde(default)]
    pub z_moved_fx: i64,
    /// Σ Δz² over the same flows, in the same units.
    #[serde(default)]
    pub z_moved_sq_fx: i64,
}

/// The fixed-point unit of [`StepRecord::z_moved_fx`]: 2⁻²⁴.
const Z_UNIT: f64 = (1u64 << 24) as f64;

fn to_fixed(v: f32) -> i64 {
    (f64::from(v) * Z_UNIT).round() as i64
}

impl StepRecord {
    /// Mean Δz of the flows that moved this step (None when none moved).
    pub fn z_move_mean(&self) -> Option<f64> {
        (self.live > 0).then(|| self.z_moved_fx as f64 / Z_UNIT / f64::from(self.live))
    }

    /// Variance of Δz over the flows that moved this step (population variance; None when
    /// none moved). Near 0 means the flows stopped moving along z (seed 001's stall check).
    pub fn z_move_variance(&self) -> Option<f64> {
        let mean = self.z_move_mean()?;
        let sq = self.z_moved_sq_fx as f64 / Z_UNIT / f64::from(self.live);
        Some((sq - mean * mean).max(0.0))
    }

    /// Adds the counts of the same step of another batch into this one.
    pub fn add(&mut self, other: &Self) {
        self.live += other.live;
        self.spawned += other.spawned;
        self.completed_front += other.completed_front;
        self.completed_back += other.completed_back;
        self.reflected += other.reflected;
        self.moving += other.moving;
        self.dropped_by_capacity += other.dropped_by_capacity;
        self.z_moved_fx += other.z_moved_fx;
        self.z_moved_sq_fx += other.z_moved_sq_fx;
    }

    /// Merges a batch's steps into run-wide ones (step k adds into entry k).
    pub fn merge_into(run: &mut Vec<Self>, batch: &[Self]) {
        for r in batch {
            match run.get_mut(r.step as usize) {
                Some(acc) => acc.add(r),
                None => run.push(r.clone()),
            }
        }
    }
}

/// One item's totals over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemOutcome {
    /// Steps the item ran before it stopped.
    pub steps: u32,
    pub stop: StopReason,
    pub created: u64,
    pub spawned: u64,
    pub dropped_by_capacity: u64,
    pub completed_front: u64,
    pub completed_back: u64,
    pub reflected: u64,
    /// Flows still moving when the item ended.
    pub unfinished: u64,
    /// Of those, how many were projected onto a plane (`unfinished: Project`).
    pub projected: u64,
    /// Σ of the steps each flow that reached a plane took (projected flows not counted).
    pub completed_path_steps: u64,
    /// Mean steps of the flows that reached a plane (seed 001's path length; 0 when none
    /// did).
    pub mean_path_steps: f64,
    /// Flows that reached a plane per flow created (roots and children).
    pub completed_per_created: f64,
}

impl ItemOutcome {
    /// Flows that reached a plane.
    pub fn completed(&self) -> u64 {
        self.completed_front + self.completed_back
    }

    /// Sets the path figures from the item's completion records (the ones that reached a
    /// plane come first; projected ones, if any, are the last `projected`).
    fn set_paths(&mut self, records: &[super::state::DoneFlow]) {
        let reached = records.len() - self.projected as usize;
        self.completed_path_steps = records[..reached].iter().map(|r| u64::from(r.steps)).sum();
        self.mean_path_steps = ratio(self.completed_path_steps, self.completed());
        self.completed_per_created = ratio(self.completed(), self.created);
    }
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

pub struct BatchOutcome {
    pub state: FlowState,
    pub steps: Vec<StepRecord>,
    pub items: Vec<ItemOutcome>,
}

impl FlowsConfig {
    /// The move rule of step `step`.
    pub fn rule(&self, step: u32) -> MoveRule {
        MoveRule {
            displacement_scale: self.displacement_scale,
            noise: self.noise,
            reflection: self.reflection,
            spawn_threshold: self.spawn.as_ref().map_or(0.0, |s| s.threshold),
            spawn_max: self.spawn.as_ref().map_or(0, |s| s.max_per_step),
            step,
            stop: self.convergence.as_ref().map(StopRule::new),
        }
    }
}

/// Runs a placed batch to the end. `first_item` numbers the batch's items in the trace;
/// `on_window` sees the totals of every window's steps as the window ends (progress, logs;
/// one step a window with a trace); when it breaks, the batch stops there and returns what it
/// has (its caller says why).
///
/// # Errors
/// The engine's own failure.
pub fn run_batch<E: FlowEngine>(
    engine: &mut E,
    cfg: &FlowsConfig,
    items: u32,
    first_item: u64,
    mut trace: Option<&mut Trace>,
    mut on_window: impl FnMut(&[StepRecord]) -> ControlFlow<()>,
) -> Result<BatchOutcome, E::Error> {
    let mut run = Items::new(cfg, items);
    let mut records = Vec::new();
    let decides = engine.decides_stops();
    let mut step = 0;
    while step < cfg.steps() {
        let freeze = run.stop_before(step);
        if !freeze.is_empty() {
            engine.freeze(&freeze)?;
        }
        if run.all_stopped() {
            break;
        }
        let len = match trace {
            Some(_) => 1,
            None => run.window(step, cfg.steps() - step, decides),
        };
        let before = match trace {
            Some(_) => Some(engine.state()?),
            None => None,
        };
        let rules: Vec<MoveRule> = (step..step + len).map(|s| cfg.rule(s)).collect();
        let counts = engine.steps(&rules)?;
        let window = run.replay(step, &counts, decides);
        if decides {
            engine.confirm_stops(&run.stops())?;
        }
        if let (Some(t), Some(before)) = (trace.as_deref_mut(), before) {
            t.record(step, first_item, &before, &engine.state()?, &run.stopped);
        }
        let flow = on_window(&window);
        let ended = window.len() < counts.len();
        records.extend(window);
        if flow.is_break() || ended {
            break;
        }
        step += len;
    }
    let mut state = engine.state()?;
    finish_unfinished(&mut state, cfg.unfinished, &mut run.outcomes);
    for (b, o) in run.outcomes.iter_mut().enumerate() {
        o.set_paths(state.done_of(b as u32));
    }
    Ok(BatchOutcome {
        state,
        steps: records,
        items: run.outcomes,
    })
}

/// Each item's totals, early-stop state and live count while its batch runs.
struct Items {
    outcomes: Vec<ItemOutcome>,
    conv: Vec<Option<Convergence>>,
    live: Vec<u32>,
    stopped: Vec<bool>,
    /// The step before which each stopped item stopped.
    stopped_at: Vec<Option<u32>>,
}

impl Items {
    fn new(cfg: &FlowsConfig, items: u32) -> Self {
        let n = items as usize;
        let created = u64::from(cfg.surface());
        Self {
            outcomes: vec![
                ItemOutcome {
                    created,
                    ..Default::default()
                };
                n
            ],
            conv: (0..n)
                .map(|_| cfg.convergence.clone().map(Convergence::new))
                .collect(),
            live: vec![cfg.surface(); n],
            stopped: vec![false; n],
            stopped_at: vec![None; n],
        }
    }

    /// Per item, the step before which it stopped and why.
    fn stops(&self) -> Vec<Option<(u32, StopReason)>> {
        (self.stopped_at.iter().zip(&self.outcomes))
            .map(|(at, o)| at.map(|s| (s, o.stop)))
            .collect()
    }

    fn all_stopped(&self) -> bool {
        self.stopped.iter().all(|&s| s)
    }

    /// Steps from `step` on (at most `left` and [`WINDOW_STEPS`]) that may run without the
    /// host: all of them for an engine that `decides` stops; else, after the first, the stop
    /// rule cannot stop an item that still has live flows (it waits for `min_steps`; an item
    /// whose flows are all done stops with nothing to freeze, and its engine leaves it as it
    /// is).
    fn window(&self, step: u32, left: u32, decides: bool) -> u32 {
        if decides {
            return left.min(WINDOW_STEPS);
        }
        let running = (0..self.conv.len()).filter(|&b| !self.stopped[b]);
        let first_check = running
            .filter_map(|b| self.conv[b].as_ref())
            .map(Convergence::min_steps)
            .min()
            .unwrap_or(u32::MAX);
        let free = first_check.saturating_sub(step).max(1);
        free.min(left).min(WINDOW_STEPS)
    }

    /// Adds a window's counts (those of steps `step`, `step + 1`, …), deciding the stop rule
    /// before each step after the first as [`run_batch`] does (the engine froze those items
    /// itself where it `decides` stops); the window's records, fewer than its steps when
    /// every item stopped within it.
    ///
    /// # Panics
    /// When the stop rule would freeze an item inside the window of an engine that does not
    /// decide stops (a wrong [`Self::window`]).
    fn replay(&mut self, step: u32, counts: &[Vec<ItemCounts>], decides: bool) -> Vec<StepRecord> {
        let mut records = Vec::with_capacity(counts.len());
        for (at, c) in (step..).zip(counts) {
            if at > step {
                let freeze = self.stop_before(at);
                assert!(
                    decides || freeze.is_empty(),
                    "the window from step {step} ran past a stop at step {at}"
                );
                if self.all_stopped() {
                    break;
                }
            }
            records.push(self.add_step(at, c));
        }
        records
    }

    /// Decides, on each item's own history, which items stop before `step`; returns those
    /// that still have live flows to freeze.
    fn stop_before(&mut self, step: u32) -> Vec<u32> {
        let mut freeze = Vec::new();
        for b in 0..self.outcomes.len() {
            if self.stopped[b] {
                continue;
            }
            let o = &self.outcomes[b];
            let live = u64::from(self.live[b]);
            let done = o.completed_front + o.completed_back;
            let reason = stop_reason(self.conv[b].as_mut(), step, done, o.created, live);
            if let Some(reason) = reason {
                self.stopped[b] = true;
                self.stopped_at[b] = Some(step);
                self.outcomes[b].stop = reason;
                if live > 0 {
                    freeze.push(b as u32);
                }
            }
        }
        freeze
    }

    /// Adds one step's per-item counts (of the items still running) into the totals; the
    /// step's record summed over them.
    fn add_step(&mut self, step: u32, counts: &[ItemCounts]) -> StepRecord {
        let mut rec = StepRecord {
            step,
            ..Default::default()
        };
        for (b, c) in counts.iter().enumerate() {
            if self.stopped[b] {
                continue;
            }
            if self.live[b] > 0 {
                rec.z_moved_fx += to_fixed(c.z_moved);
                rec.z_moved_sq_fx += to_fixed(c.z_moved_sq);
            }
            rec.live += self.live[b];
            rec.spawned += c.spawned;
            rec.completed_front += c.front;
            rec.completed_back += c.back;
            rec.reflected += c.reflected;
            rec.moving += c.moving;
            rec.dropped_by_capacity += c.dropped;
            let o = &mut self.outcomes[b];
            o.steps = step + 1;
            o.created += u64::from(c.spawned);
            o.spawned += u64::from(c.spawned);
            o.dropped_by_capacity += u64::from(c.dropped);
            o.completed_front += u64::from(c.front);
            o.completed_back += u64::from(c.back);
            o.reflected += u64::from(c.reflected);
            self.live[b] = c.moving;
        }
        rec
    }
}

/// Counts the flows still moving when their item ended and, with `Unfinished::Project`,
/// records each on the nearer plane (z ≤ 0 goes to the front), in slot order.
fn finish_unfinished(state: &mut FlowState, unfinished: Unfinished, outcomes: &mut [ItemOutcome]) {
    for (b, o) in outcomes.iter_mut().enumerate() {
        let b = b as u32;
        let base = state.slot(b, 0);
        for s in base..base + state.capacity as usize {
            if state.status[s] != status::MOVING {
                continue;
            }
            o.unfinished += 1;
            if unfinished == Unfinished::Project {
                let front = state.pos[s][2] <= 0.0;
                let plane = if front { status::FRONT } else { status::BACK };
                let mut record = state.done_record(s, plane);
                record.pos[2] = if front { -1.0 } else { 1.0 };
                record.event = 0;
                state.push_done(b, record);
                state.status[s] = status::FREE;
                o.projected += 1;
            }
        }
    }
}
