//! Flow step benchmarks: the first step of the debug preset (20×20×10, GRU 256×2, B = 8) on the
//! CPU path, and on the GPU when a hardware adapter exists (software adapters are skipped: they
//! measure the CPU). `lattice bench flows` covers the full matrix with FLOP/s figures.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lattice_core::config::{self, Simulation};
use lattice_core::flows::mapper::{place_batch, seeded_embeddings};
use lattice_core::flows::run::FlowEngine;
use lattice_core::flows::{CpuFlows, FlowLayout, FlowNet, FlowShape, FlowWeights};
use lattice_gpu::GpuContext;
use lattice_gpu::flows::{FlowKernels, GpuFlows};

const ITEMS: u32 = 8;

fn flow_step(c: &mut Criterion) {
    let text = include_str!("../configs/flows_debug.ron");
    let cfg = config::parse(text, std::path::Path::new("flows_debug.ron")).unwrap();
    let Simulation::Flows(f) = cfg.simulation else {
        panic!("flows_debug.ron is a Flows config")
    };
    let w = FlowWeights::seeded(FlowLayout::new(FlowShape::from_config(&f)), 42);
    let ids: Vec<u64> = (0..u64::from(ITEMS)).collect();
    let embeddings = seeded_embeddings(42, &ids, f.embedding_dim as usize);
    let (state, seeds) = place_batch(&w, &f, 42, &ids, &embeddings);
    let rule = f.rule(0);
    let mut g = c.benchmark_group("flow_step_debug");
    g.sample_size(10);
    g.bench_function(format!("cpu/B={ITEMS}"), |b| {
        b.iter_batched(
            || CpuFlows {
                net: FlowNet::new(&w.layout, &w.data),
                state: state.clone(),
                seeds: seeds.clone(),
            },
            |mut e| e.step(&rule).unwrap(),
            BatchSize::LargeInput,
        )
    });
    match GpuContext::new() {
        Err(e) => eprintln!("GPU benches skipped: {e}"),
        Ok(ctx) if ctx.adapter.device_type == "Cpu" => {
            eprintln!(
                "GPU benches skipped: {} is a software adapter",
                ctx.adapter.name
            )
        }
        Ok(ctx) => {
            let k = FlowKernels::new(&ctx, &w.layout, &w.data, f.capacity()).unwrap();
            g.bench_function(format!("gpu/B={ITEMS}"), |b| {
                b.iter_batched(
                    || GpuFlows::new(&ctx, &k, &state, &seeds).unwrap(),
                    |mut e| e.step(&rule).unwrap(),
                    BatchSize::LargeInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, flow_step);
criterion_main!(benches);
