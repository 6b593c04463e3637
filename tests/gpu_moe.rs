//! GPU vs CPU for the MoE step on lavapipe (or any adapter): DEBUG preset (15³, S = 24), B = 2,
//! 3 steps, plus a masked, a periodic and a sparse lattice (tiles mixing empty classes); GPU
//! run-to-run determinism; an item's states independent of its batch.
//! Skips without an adapter unless LATTICE_REQUIRE_GPU=1 (CI sets it).

mod common;

use std::sync::OnceLock;

use lattice_core::config::Combine;
use lattice_core::moe::{MoeNet, MoeShape, MoeWeights, ParamLayout, cpu, initial_states};
use lattice_core::{Boundary, Dims, NeighborCache, Radius};
use lattice_gpu::GpuContext;
use lattice_gpu::gather::GpuNeighbors;
use lattice_gpu::moe::{GpuMoe, MoeKernels};

/// One device and one compiled set of DEBUG-shaped kernels for every test here: on lavapipe
/// with a cold shader cache a compile takes over a minute, and parallel tests would each pay it.
fn shared() -> Option<&'static (GpuContext, MoeKernels)> {
    static SHARED: OnceLock<Option<(GpuContext, MoeKernels)>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let ctx = lattice_gpu::test_context()?;
            let kernels =
                MoeKernels::new(&ctx, &ParamLayout::new(MoeShape::DEBUG), 3).expect("DEBUG fits");
            Some((ctx, kernels))
        })
        .as_ref()
}

/// Both sides evaluate the same formulas in the same order; the remaining differences are the
/// driver's exp/tanh/sqrt and FMA contraction, compounded over 3 steps.
const REL_TOL: f32 = 1e-4;

fn debug_shape() -> MoeShape {
    MoeShape::DEBUG
}

fn cpu_run(
    cache: &NeighborCache,
    w: &MoeWeights,
    combine: Combine,
    states: &[f32],
    items: usize,
    steps: u32,
) -> Vec<f32> {
    let net = MoeNet::new(&w.layout, &w.data, combine, 3);
    let mut a = states.to_vec();
    let mut b = vec![0.0; a.len()];
    for _ in 0..steps {
        cpu::step(&net, cache, &a, &mut b, items);
        std::mem::swap(&mut a, &mut b);
    }
    a
}

#[allow(clippy::too_many_arguments)]
fn gpu_run(
    (ctx, kernels): (&GpuContext, &MoeKernels),
    cache: &NeighborCache,
    w: &MoeWeights,
    combine: Combine,
    states: &[f32],
    items: u32,
    steps: u32,
) -> Vec<f32> {
    let up = GpuNeighbors::upload(ctx, cache).unwrap();
    let mut moe = GpuMoe::new(ctx, cache, &up, kernels, &w.data, combine, states, items).unwrap();
    moe.submit_steps(ctx, steps);
    moe.wait(ctx).unwrap();
    assert!(moe.non_finite(ctx).unwrap().iter().all(Option::is_none));
    moe.states(ctx).unwrap()
}

fn states_for(cache: &NeighborCache, items: usize, s: usize) -> Vec<f32> {
    (0..items)
        .flat_map(|b| initial_states(42, b as u64, cache.dims().cells_usize(), s, 0.1))
        .collect()
}

fn compare(cache: &NeighborCache, combine: Combine, items: u32, steps: u32) {
    let Some(shared) = shared() else {
        return;
    };
    let w = MoeWeights::seeded(ParamLayout::new(debug_shape()), 7);
    compare_on((&shared.0, &shared.1), &w, cache, combine, items, steps);
}

fn compare_on(
    gpu: (&GpuContext, &MoeKernels),
    w: &MoeWeights,
    cache: &NeighborCache,
    combine: Combine,
    items: u32,
    steps: u32,
) {
    let states = states_for(cache, items as usize, w.layout.shape.s as usize);
    let cpu = cpu_run(cache, w, combine, &states, items as usize, steps);
    let gpu = gpu_run(gpu, cache, w, combine, &states, items, steps);
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for (k, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        // Relative to the element, floored at 1 % of the largest magnitude so that values
        // near zero are compared on the scale of the state.
        let err = (a - b).abs() / a.abs().max(0.01 * scale);
        worst = worst.max(err);
        assert!(
            approx::relative_eq!(
                *a,
                *b,
                epsilon = REL_TOL * 0.01 * scale,
                max_relative = REL_TOL
            ),
            "element {k}: cpu {a} gpu {b} (relative {err:e})"
        );
    }
    assert_ne!(states, cpu, "the step changed the states");
    eprintln!(
        "moe {:?} {combine:?}: {} values, worst relative error {worst:e}",
        cache.dims(),
        cpu.len()
    );
}

#[test]
fn debug_preset_two_items_three_steps() {
    let cache = common::debug_cache();
    compare(&cache, Combine::Residual, 2, 3);
}

#[test]
fn periodic_and_replace_combine() {
    let dims = Dims::new(9, 7, 6).unwrap();
    let cache = NeighborCache::build(dims, Boundary::Periodic, Radius::from_r(2.7), None).unwrap();
    compare(&cache, Combine::Replace, 2, 3);
}

#[test]
fn masked_lattice() {
    let dims = Dims::new(10, 8, 6).unwrap();
    let mask: Vec<bool> = (0..dims.cells()).map(|i| i % 5 != 2).collect();
    let cache =
        NeighborCache::build(dims, Boundary::Bounded, Radius::from_r(3.0), Some(mask)).unwrap();
    compare(&cache, Combine::Residual, 2, 3);
}

#[test]
fn gpu_runs_are_bit_identical() {
    let Some((ctx, kernels)) = shared() else {
        return;
    };
    let dims = Dims::new(8, 8, 8).unwrap();
    let cache = NeighborCache::build(dims, Boundary::Bounded, Radius::from_r(3.0), None).unwrap();
    let w = MoeWeights::seeded(ParamLayout::new(debug_shape()), 3);
    let states = states_for(&cache, 3, 24);
    // One GpuMoe, run twice from the same states.
    let up = GpuNeighbors::upload(ctx, &cache).unwrap();
    let mut moe = GpuMoe::new(
        ctx,
        &cache,
        &up,
        kernels,
        &w.data,
        Combine::Residual,
        &states,
        3,
    )
    .unwrap();
    let mut run = || {
        moe.set_states(ctx, &states);
        moe.submit_steps(ctx, 2);
        moe.states(ctx).unwrap()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, states);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// The update kernel computes a tile of rows together and replaces an empty class's output
/// afterwards: here one tile holds masked-off rows, a pair of cells with LOCAL neighbors only
/// and a pair with FUNCTIONAL ones only (R = 3: LOCAL d < 1.2, FUNCTIONAL d <= 2.4, DISTANT
/// d <= 2.97); a DISTANT-only pair and a full block (every class) are elsewhere.
#[test]
fn tiles_mixing_rows_with_and_without_each_class() {
    let dims = Dims::new(9, 8, 7).unwrap();
    let pairs = [[0, 0], [1, 0], [4, 0], [6, 0], [0, 5], [2, 7]];
    let mask: Vec<bool> = (0..dims.cells())
        .map(|i| {
            let (x, y, z) = (i % 9, (i / 9) % 8, i / 72);
            z >= 3 || (z == 0 && pairs.contains(&[x, y]))
        })
        .collect();
    let cache =
        NeighborCache::build(dims, Boundary::Bounded, Radius::from_r(3.0), Some(mask)).unwrap();
    let at = |x: u32, y: u32| cache.class_counts(x + 9 * y);
    assert_eq!(at(0, 0), [1, 0, 0]);
    assert_eq!(at(4, 0), [0, 1, 0]);
    assert_eq!(at(0, 5), [0, 0, 1]);
    assert!(
        cache
            .class_counts(4 + 9 * 4 + 72 * 4)
            .iter()
            .all(|&n| n > 0)
    );
    compare(&cache, Combine::Residual, 2, 3);
}

/// An item's result does not depend on its batch: the update's tiles of 7 rows straddle the
/// items of a batch (480 cells per item), yet every row's result is one invocation's sums in
/// that row's order, so the middle item of three equals the item run alone, bit for bit.
#[test]
fn an_items_states_do_not_depend_on_its_batch() {
    let Some(shared) = shared() else {
        return;
    };
    let dims = Dims::new(10, 8, 6).unwrap();
    let cache = NeighborCache::build(dims, Boundary::Bounded, Radius::from_r(3.0), None).unwrap();
    let w = MoeWeights::seeded(ParamLayout::new(debug_shape()), 11);
    let batch = states_for(&cache, 3, 24);
    let one = batch.len() / 3;
    let middle = &batch[one..2 * one];
    let together = gpu_run(
        (&shared.0, &shared.1),
        &cache,
        &w,
        Combine::Residual,
        &batch,
        3,
        2,
    );
    let alone = gpu_run(
        (&shared.0, &shared.1),
        &cache,
        &w,
        Combine::Residual,
        middle,
        1,
        2,
    );
    assert_ne!(alone, middle, "the step changed the states");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&together[one..2 * one]), bits(&alone));
}

/// A message width whose two-pair gather chunk, or staged weights, would not fit 16 KiB of
/// workgroup memory: the gather takes one neighbor per invocation and reads the per-pair weights
/// from the weight buffer (PAIRS = 1, STAGE = false: the OPTIMIZED preset's path).
#[test]
fn a_wide_message_gathers_one_pair_per_invocation() {
    let Some((ctx, _)) = shared() else {
        return;
    };
    let shape = MoeShape {
        s: 8,
        local_h1: 4,
        local_h2: 4,
        local_ph: 4,
        func_hidden: 6,
        func_msg: 40,
        ode_hidden: 8,
        gate_hidden: 8,
    };
    let layout = ParamLayout::new(shape);
    let header = lattice_gpu::moe::header(&layout, 3);
    assert!(header.contains("const PAIRS: u32 = 1u;"));
    assert!(header.contains("const STAGE: bool = false;"));
    let kernels = MoeKernels::new(ctx, &layout, 3).unwrap();
    let w = MoeWeights::seeded(layout, 5);
    let dims = Dims::new(7, 6, 5).unwrap();
    let cache = NeighborCache::build(dims, Boundary::Bounded, Radius::from_r(3.0), None).unwrap();
    compare_on((ctx, &kernels), &w, &cache, Combine::Residual, 2, 2);
}
