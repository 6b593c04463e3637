//! MoE step benchmarks: one DEBUG step (15³, S = 24) for B = 1 and 8 on the CPU path, and on the
//! GPU when a hardware adapter exists (software adapters are skipped: they measure the CPU).
//! `lattice bench moe` covers the full matrix with FLOP/s figures.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use lattice_core::NeighborCache;
use lattice_core::config::Combine;
use lattice_core::moe::{MoeNet, MoeShape, MoeWeights, ParamLayout, cpu, initial_states};
use lattice_gpu::GpuContext;
use lattice_gpu::gather::GpuNeighbors;
use lattice_gpu::moe::{GpuMoe, MoeKernels};

fn setup(items: usize) -> (NeighborCache, MoeWeights, Vec<f32>) {
    let cache = common::debug_cache();
    let shape = MoeShape::DEBUG;
    let weights = MoeWeights::seeded(ParamLayout::new(shape), 42);
    let states = (0..items)
        .flat_map(|b| initial_states(42, b as u64, cache.dims().cells_usize(), 24, 0.1))
        .collect();
    (cache, weights, states)
}

fn moe_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("moe_step_debug");
    g.sample_size(10);
    for items in [1usize, 8] {
        let (cache, w, states) = setup(items);
        let net = MoeNet::new(&w.layout, &w.data, Combine::Residual, 3);
        let mut next = vec![0.0; states.len()];
        g.bench_function(format!("cpu/B={items}"), |b| {
            b.iter(|| cpu::step(&net, &cache, &states, &mut next, items))
        });
    }
    if let Ok(ctx) = GpuContext::new().map_err(|e| eprintln!("GPU benches skipped: {e}")) {
        if ctx.adapter.device_type == "Cpu" {
            eprintln!(
                "GPU benches skipped: {} is a software adapter",
                ctx.adapter.name
            );
        } else {
            let kernels =
                MoeKernels::new(&ctx, &ParamLayout::new(MoeShape::DEBUG), 3).expect("DEBUG fits");
            for items in [1usize, 8] {
                let (cache, w, states) = setup(items);
                let up = GpuNeighbors::upload(&ctx, &cache).unwrap();
                let mut moe = GpuMoe::new(
                    &ctx,
                    &cache,
                    &up,
                    &kernels,
                    &w.data,
                    Combine::Residual,
                    &states,
                    items as u32,
                )
                .unwrap();
                g.bench_function(format!("gpu/B={items}"), |b| {
                    b.iter(|| {
                        moe.submit_steps(&ctx, 1);
                        moe.wait(&ctx).unwrap();
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, moe_step);
criterion_main!(benches);
