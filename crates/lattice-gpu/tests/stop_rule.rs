//! The early-stop rule (B8) in `flow_live` against the host's `stop_reason`, on made-up count
//! sequences for 300 items (more than one workgroup's chunk): every item stops before the same
//! step for the same reason on both sides, and a stopped item with live flows is frozen. The
//! sequences reach every reason and an exact tie (an improvement of exactly 1 %). Skips without an adapter unless LATTICE_REQUIRE_GPU=1 (CI sets it).

use std::collections::BTreeSet;

use lattice_core::config::ConvergenceConfig;
use lattice_core::flows::convergence::{Convergence, StopRule, stop_reason};
use lattice_core::flows::{FlowLayout, FlowShape, ItemCounts};
use lattice_gpu::flows::{FlowParams, StopState, header};
use lattice_gpu::kernel::{Kernel, indirect_args, read_back, storage, storage_zeroed, uniform};
use lattice_gpu::{GpuContext, shaders};

const ITEMS: usize = 300;
const STEPS: u32 = 30;

/// A small xorshift: the sequences only need to vary, not to be good random numbers.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}

/// Each item's counts before every step: completions and children arrive at an item-specific
/// pace (some stall, some finish), live flows now and then drop to 0.
fn sequences() -> Vec<Vec<ItemCounts>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..ITEMS)
        .map(|b| {
            let (pace, spawn) = (1 + rng.below(8), rng.below(3));
            let mut c = ItemCounts {
                created: 4 + rng.below(40),
                moving: 1,
                ..Default::default()
            };
            (0..STEPS)
                .map(|step| {
                    if b == 1 {
                        // 90 of 100 by step 5, then a plateau at 0.9.
                        c.created = 100;
                        c.done = (18 * step).min(90);
                        c.moving = 5;
                        return c;
                    }
                    if b == 0 {
                        // From step 0 on: window sums 500 then 505 (exactly 1 %, improving)
                        // at step 5, then 510 (under 1 %) at step 6.
                        c.created = 1000;
                        c.done = if step < 5 { 100 } else { 105 };
                        c.moving = 5;
                        return c;
                    }
                    c.created += rng.below(spawn + 1);
                    c.done = (c.done + rng.below(pace + 1) * rng.below(2)).min(c.created);
                    c.moving = if rng.below(12) == 0 {
                        0
                    } else {
                        1 + rng.below(20)
                    };
                    c
                })
                .collect()
        })
        .collect()
}

/// The host's decisions: per item, the step it stops before and the reason's code.
fn host_stops(
    rule: Option<&ConvergenceConfig>,
    seqs: &[Vec<ItemCounts>],
) -> Vec<Option<(u32, u32)>> {
    seqs.iter()
        .map(|seq| {
            let mut conv = rule.cloned().map(Convergence::new);
            (0..STEPS).find_map(|step| {
                let c = seq[step as usize];
                let (done, created) = (u64::from(c.done), u64::from(c.created));
                stop_reason(conv.as_mut(), step, done, created, u64::from(c.moving))
                    .map(|r| (step, r.code()))
            })
        })
        .collect()
}

/// The device's decisions: `flow_live` alone, step after step, on the same counts.
fn device_stops(
    ctx: &GpuContext,
    rule: Option<&ConvergenceConfig>,
    seqs: &[Vec<ItemCounts>],
) -> Vec<Option<(u32, u32)>> {
    let cfg = lattice_core::config::parse(
        "(simulation: Flows((dims: (6, 5, 8), carrier: (hidden: 64, layers: 1))))",
        "t.ron".as_ref(),
    )
    .unwrap();
    let lattice_core::config::Simulation::Flows(f) = &cfg.simulation else {
        unreachable!()
    };
    let shape = FlowShape::from_config(f);
    let kernel = Kernel::new(
        ctx,
        &shaders::FLOW_LIVE,
        &header(&FlowLayout::new(shape), 64),
    );
    let stop = rule.map(StopRule::new);
    let params = uniform(ctx, "params", &FlowParams::default());
    let counts = storage_zeroed(ctx, "counts", (ITEMS * size_of::<ItemCounts>()) as u64);
    let live_off = storage_zeroed(ctx, "live_off", (ITEMS as u64 + 1) * 4);
    let args = indirect_args(ctx, "args", 48);
    let stops = storage(ctx, "stops", &vec![StopState::default(); ITEMS]);
    let group = kernel.bind(ctx, &[&params, &counts, &live_off, &args, &stops]);
    let mut decided = vec![None; ITEMS];
    for step in 0..STEPS {
        let p = FlowParams {
            items: ITEMS as u32,
            max_groups: 65535,
            step,
            stop_on: u32::from(stop.is_some()),
            min_steps: stop.map_or(0, |s| s.min_steps),
            patience: stop.map_or(0, |s| s.patience),
            stop_m: stop.map_or(0, |s| s.threshold_m),
            stop_shift: stop.map_or(0, |s| s.threshold_shift),
            ..Default::default()
        };
        let now: Vec<ItemCounts> = seqs.iter().map(|s| s[step as usize]).collect();
        ctx.queue.write_buffer(&params, 0, bytemuck::bytes_of(&p));
        ctx.queue
            .write_buffer(&counts, 0, bytemuck::cast_slice(&now));
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let mut pass = enc.begin_compute_pass(&Default::default());
        kernel.dispatch_groups(&mut pass, &group, 1, 1, 1);
        drop(pass);
        ctx.queue.submit([enc.finish()]);
        let after: Vec<StopState> = read_back(ctx, &stops, ITEMS).unwrap();
        let frozen: Vec<ItemCounts> = read_back(ctx, &counts, ITEMS).unwrap();
        for b in 0..ITEMS {
            if decided[b].is_none() && after[b].decision().is_some() {
                decided[b] = after[b].decision();
                assert_eq!(frozen[b].moving, 0, "item {b} frozen when it stops");
            } else if decided[b].is_none() {
                assert_eq!(frozen[b].moving, now[b].moving, "item {b} runs on");
            }
        }
    }
    decided
}

#[test]
fn the_gpu_stop_rule_decides_as_the_host_does() {
    let Some(ctx) = lattice_gpu::test_context() else {
        return;
    };
    let seqs = sequences();
    let rules = [
        None,
        Some(ConvergenceConfig {
            threshold: 0.8,
            min_steps: 3,
            patience: 5,
        }),
        Some(ConvergenceConfig {
            threshold: 0.75,
            min_steps: 0,
            patience: 1,
        }),
        Some(ConvergenceConfig {
            threshold: 1.0,
            min_steps: 2,
            patience: 6,
        }),
    ];
    let mut reasons = BTreeSet::new();
    for rule in &rules {
        let host = host_stops(rule.as_ref(), &seqs);
        if rule.as_ref().is_some_and(|r| r.patience == 1) {
            assert_eq!(
                host[0],
                Some((6, 4)),
                "the 1 % tie improves; patience stops a step later"
            );
        }
        let device = device_stops(&ctx, rule.as_ref(), &seqs);
        for b in 0..ITEMS {
            assert_eq!(device[b], host[b], "item {b} under {rule:?}");
        }
        reasons.extend(host.iter().flatten().map(|&(_, r)| r));
    }
    // Every reason: all flows completed, threshold, no live flows below half, patience, plateau.
    assert_eq!(reasons, BTreeSet::from([1, 2, 3, 4, 5]));
}
