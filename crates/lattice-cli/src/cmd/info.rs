//! `lattice info`: what the GPU side sees.

use lattice_gpu::{GpuContext, GpuRequest, list_adapters};
use serde_json::json;

use crate::ranks::Ranks;

pub fn run(json_out: bool, ranks: &Ranks, req: &GpuRequest) -> anyhow::Result<()> {
    let adapters = list_adapters(req);
    // Opening is enough here: an untrusted adapter's self-check runs when a run takes it.
    let chosen = GpuContext::open_requested(req);
    let describe = |a: &lattice_gpu::context::summary::AdapterSummary| {
        json!({
            "name": a.name, "backend": a.backend, "type": a.device_type, "driver": a.driver,
            "max_storage_binding_bytes": a.max_storage_binding, "max_buffer_bytes": a.max_buffer,
            "max_workgroups_per_dimension": a.max_workgroups_per_dim,
            "max_workgroup_storage_bytes": a.max_workgroup_storage,
            "timestamp_query": a.timestamps, "shader_f16": a.f16, "subgroups": a.subgroups,
            "device_memory_bytes": a.device_memory,
        })
    };
    let report = json!({
        "wgpu_backend_env": std::env::var("WGPU_BACKEND").ok(),
        "adapters": adapters.iter().map(|(a, verdict)| {
            let mut d = describe(a);
            d["usable"] = json!(matches!(verdict, lattice_gpu::Verdict::Usable { .. }));
            d["verdict"] = json!(verdict.to_string());
            d
        }).collect::<Vec<_>>(),
        "chosen": chosen.as_ref().ok().map(|c| describe(&c.adapter)),
        "why_none": chosen.as_ref().err().map(|e| e.to_string()),
        "cpu_threads": lattice_sim::rayon_threads(),
        "mpi": {
            "built_with": Ranks::built_with_mpi(), "rank": ranks.rank(), "ranks": ranks.size(),
            "local_rank": ranks.local_rank(),
        },
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("adapters found: {}", adapters.len());
    for (k, (a, verdict)) in adapters.iter().enumerate() {
        println!(
            "  {k}. {} ({}, {}, driver {}): {verdict}",
            a.name, a.backend, a.device_type, a.driver
        );
    }
    match &chosen {
        Ok(ctx) => {
            let a = &ctx.adapter;
            println!("chosen: {} ({})", a.name, a.backend);
            if !ctx.trusted {
                println!("  a run checks it against the CPU path before using it");
            }
            println!("  max storage binding: {} MiB", a.max_storage_binding >> 20);
            println!("  max buffer:          {} MiB", a.max_buffer >> 20);
            match a.device_memory {
                Some(m) => println!(
                    "  device memory:       {} MiB (batches plan for 80 %)",
                    m >> 20
                ),
                None => println!(
                    "  device memory:       not reported by this backend (batches are sized by the binding limit)"
                ),
            }
            println!("  workgroups per dim:  {}", a.max_workgroups_per_dim);
            println!(
                "  workgroup storage:   {} KiB",
                a.max_workgroup_storage >> 10
            );
            println!(
                "  features: timestamps {}, f16 {}, subgroups {}",
                a.timestamps, a.f16, a.subgroups
            );
        }
        Err(e) => {
            println!("chosen: none");
            println!("  why: {e}");
        }
    }
    println!(
        "cpu path: rayon on {} threads",
        lattice_sim::rayon_threads()
    );
    print_mpi(ranks);
    Ok(())
}

/// Whether MPI is built in, and this process's place in the job.
fn print_mpi(ranks: &Ranks) {
    let local = ranks.local_rank().unwrap_or(0);
    match (Ranks::built_with_mpi(), ranks.size()) {
        (false, _) => println!("mpi: not built in (cargo build --release --features mpi)"),
        (true, 1) => println!("mpi: built in; one process (launch with mpirun -n P or srun)"),
        (true, p) => println!(
            "mpi: rank {} of {p}, local rank {local} (on the GPU it takes the machine's GPU \
             {local}, counting around)",
            ranks.rank()
        ),
    }
}
