//! Runs by items under MPI, as a user launches them: `mpirun -n 2` and `-n 3` against one
//! process, byte for byte on the CPU (MoE and flows, item counts the ranks do not divide), and
//! a failing rank ending the whole job, named, within 30 s. Needs the binary built with
//! `--features mpi` and `mpirun` on PATH: `cargo test --features mpi --test mpi`. Without
//! them the tests say so and pass, unless LATTICE_REQUIRE_MPI=1 (.ci/run sets it), which makes
//! a missing MPI a failure.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

const REQUIRE_MPI_ENV: &str = "LATTICE_REQUIRE_MPI";

const MOE: &str = "(seed: 3, batch: (items: 5, max_batch_size: Fixed(2)), simulation: \
                   Moe((lattice: (dims: (6, 5, 4), radius_ratio: 0.5), steps: 3)))";
const FLOWS: &str = "(seed: 5, batch: (items: 5, max_batch_size: Fixed(2)), simulation: \
    Flows((dims: (7, 6, 8), embedding_dim: 16, carrier: (hidden: 16, layers: 2), \
    neuron: (hidden: 8, output: 12), displacement_scale: 40.0, noise: 0.05, collector: true, \
    spawn: Some((threshold: 0.15)))))";

/// Whether MPI tests can run here; panics when they must and cannot.
fn mpi_ready() -> bool {
    let built = cfg!(feature = "mpi");
    let mpirun = Command::new("mpirun").arg("--version").output().is_ok();
    if built && mpirun {
        return true;
    }
    let why = match (built, mpirun) {
        (false, _) => "the binary is built without --features mpi",
        _ => "mpirun is not on PATH (install MPICH or Open MPI)",
    };
    assert!(
        std::env::var_os(REQUIRE_MPI_ENV).is_none(),
        "{REQUIRE_MPI_ENV} is set but {why}"
    );
    eprintln!("note: MPI tests skipped: {why} (cargo test --features mpi --test mpi)");
    false
}

fn lattice(dir: &Path, ranks: Option<u32>, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let bin = env!("CARGO_BIN_EXE_lattice");
    let mut cmd = match ranks {
        Some(n) => {
            let mut c = Command::new("mpirun");
            c.args(["-n", &n.to_string(), bin]);
            c
        }
        None => Command::new(bin),
    };
    cmd.current_dir(dir).args(args).envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

fn same_files(dir: &Path, a: &str, b: &str, files: &[&str]) {
    for f in files {
        let (x, y) = (
            std::fs::read(dir.join(a).join(f)).unwrap(),
            std::fs::read(dir.join(b).join(f)).unwrap(),
        );
        assert!(x == y, "{a}/{f} and {b}/{f} differ");
    }
}

#[test]
fn runs_by_items_equal_one_process_byte_for_byte() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    std::fs::write(d.join("flows.ron"), FLOWS).unwrap();
    let cases: [(&str, &[&str]); 2] = [
        ("moe.ron", &["states.npy", "states.png", "states.vtk"]),
        (
            "flows.ron",
            &[
                "surface.npy",
                "surface_merged.npy",
                "embeddings_out.npy",
                "surface.png",
            ],
        ),
    ];
    for (cfg, files) in cases {
        let run = |ranks: Option<u32>, out: &str| {
            let args = ["-q", "run", cfg, "--backend", "cpu", "--out", out];
            let (code, err) = lattice(d, ranks, &args, &[]);
            assert_eq!(code, 0, "{cfg} on {ranks:?} ranks: {err}");
        };
        run(None, "one");
        for p in [2, 3] {
            let out = format!("n{p}");
            run(Some(p), &out);
            // Parts cut in pieces of 1000 bytes arrive whole.
            let pieces = format!("pieces{p}");
            let args = ["-q", "run", cfg, "--backend", "cpu", "--out", &pieces];
            let (code, err) = lattice(d, Some(p), &args, &[("LATTICE_MPI_PIECE_BYTES", "1000")]);
            assert_eq!(code, 0, "{err}");
            same_files(d, "one", &pieces, files);
            std::fs::remove_dir_all(d.join(&pieces)).unwrap();
            same_files(d, "one", &out, files);
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join(&out).join("metrics.json")).unwrap())
                    .unwrap();
            let ranks = m["ranks"].as_array().expect("metrics name the ranks");
            assert_eq!(ranks.len(), p as usize);
            let shares: Vec<[u64; 2]> = ranks
                .iter()
                .map(|r| serde_json::from_value(r["items"].clone()).unwrap())
                .collect();
            assert_eq!(shares.first().unwrap()[0], 0);
            assert_eq!(shares.last().unwrap()[1], 5);
            assert!(
                ranks
                    .iter()
                    .all(|r| r["compute_s"].as_f64().unwrap() >= 0.0)
            );
            assert_eq!(m["per_item"].as_array().unwrap().len(), 5);
        }
        rm(d, "one");
    }
}

fn rm(d: &Path, out: &str) {
    std::fs::remove_dir_all(d.join(out)).unwrap();
    for p in [2, 3] {
        std::fs::remove_dir_all(d.join(format!("n{p}"))).unwrap();
    }
}

#[test]
fn a_failing_rank_ends_the_job_named_within_30_s() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    let start = Instant::now();
    let args = ["-q", "run", "moe.ron", "--backend", "cpu", "--out", "o"];
    let (code, err) = lattice(d, Some(3), &args, &[("LATTICE_FAIL_RANK", "1")]);
    assert_ne!(code, 0);
    assert!(err.contains("error: rank 1 of 3"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(
        !d.join("o/states.npy").exists(),
        "no output after a failed job"
    );
}

/// Ranks that were given different configs (MPMD launch: rank 1 runs another file) stop before
/// step 1, naming what differs; the job ends, it does not hang.
#[test]
fn ranks_that_disagree_on_the_config_stop_before_step_1() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.ron"), MOE).unwrap();
    std::fs::write(d.join("b.ron"), MOE.replace("seed: 3", "seed: 4")).unwrap();
    let a = ["-q", "run", "a.ron", "--backend", "cpu", "--out", "o"];
    let b = ["-q", "run", "b.ron", "--backend", "cpu", "--out", "o"];
    stops_before_step_1(d, (".", &a), (".", &b), "the config differs from rank 0's");
}

/// An MPMD launch of two ranks, each `(working folder, lattice arguments)`, that must fail
/// within 30 s naming `expect`, without writing the states.
fn stops_before_step_1(d: &Path, a: (&str, &[&str]), b: (&str, &[&str]), expect: &str) {
    let bin = env!("CARGO_BIN_EXE_lattice");
    let start = Instant::now();
    let out = Command::new("mpirun")
        .current_dir(d)
        .args(["-n", "1", "-wdir", a.0, bin])
        .args(a.1)
        .args([":", "-n", "1", "-wdir", b.0, bin])
        .args(b.1)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{a:?} {b:?}");
    assert!(err.contains(expect), "{expect}: {err}");
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(!d.join("o/states.npy").exists());
}

#[test]
fn gpu_runs_by_items_equal_one_gpu_process() {
    if !mpi_ready() || lattice::gpu::test_context().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    let run = |ranks: Option<u32>, out: &str| {
        let args = ["-q", "run", "moe.ron", "--backend", "gpu", "--out", out];
        let (code, err) = lattice(d, ranks, &args, &[]);
        assert_eq!(code, 0, "{ranks:?} ranks: {err}");
    };
    run(None, "one");
    run(Some(2), "n2");
    same_files(d, "one", "n2", &["states.npy"]);
}

/// R = 0.2 · 10 (or 11) = 2: a halo of 2 planes; 10 and 11 planes split 2 and 3 ways unevenly
/// for 3 ranks.
const SLABS: [(&str, &str); 3] = [
    (
        "bounded.ron",
        "(seed: 3, batch: (items: 3, max_batch_size: Fixed(2)), simulation: Moe((lattice: \
         (dims: (6, 5, 10), radius_ratio: 0.2), steps: 3)))",
    ),
    (
        "periodic.ron",
        "(seed: 4, batch: (items: 2, split: ZSlabs), simulation: Moe((lattice: (dims: \
         (5, 6, 11), boundary: Periodic, radius_ratio: 0.2), steps: 3)))",
    ),
    (
        "masked.ron",
        "(seed: 5, batch: (items: 2), simulation: Moe((lattice: (dims: (6, 5, 10), \
         radius_ratio: 0.2, mask: Some(\"mask.npy\")), steps: 3)))",
    ),
];

#[test]
fn a_lattice_split_in_z_slabs_equals_one_process_byte_for_byte() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mask = (0..10 * 5 * 6).map(|i| u8::from(i % 5 != 2));
    common::write_npy(&d.join("mask.npy"), &[10, 5, 6], mask);
    for (file, text) in SLABS {
        std::fs::write(d.join(file), text).unwrap();
        let one = format!("{file}-one");
        let args = ["-q", "run", file, "--backend", "cpu", "--out", &one];
        let (code, err) = lattice(d, None, &args, &[]);
        assert_eq!(code, 0, "{file}: {err}");
        for p in [2, 3] {
            let out = format!("{file}-n{p}");
            let mut args = vec!["-q", "run", file, "--backend", "cpu", "--out", &out];
            // The periodic config asks for slabs itself (batch.split); the others by flag.
            if !text.contains("ZSlabs") {
                args.extend(["--split", "z-slabs"]);
            }
            let (code, err) = lattice(d, Some(p), &args, &[]);
            assert_eq!(code, 0, "{file} on {p} ranks: {err}");
            same_files(d, &one, &out, &["states.npy"]);
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join(&out).join("metrics.json")).unwrap())
                    .unwrap();
            let ranks = m["ranks"].as_array().unwrap();
            assert_eq!(ranks.len(), p as usize);
            for r in ranks {
                assert!(r["halo_bytes_per_step"].as_f64().unwrap() > 0.0, "{r}");
                assert!(r["exchange_ms_per_step"].as_f64().unwrap() >= 0.0, "{r}");
            }
            assert_eq!(
                ranks.last().unwrap()["planes"][1],
                if file == "periodic.ron" { 11 } else { 10 }
            );
        }
    }
}

#[test]
fn slabs_thinner_than_the_halo_are_refused() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // R = 0.5 · 10 = 5: a halo of 5 planes; 3 ranks would own 3 planes each.
    let thick = "(seed: 3, batch: (items: 1), simulation: Moe((lattice: (dims: (6, 5, 10), \
                 radius_ratio: 0.5), steps: 1)))";
    std::fs::write(d.join("thick.ron"), thick).unwrap();
    let args = [
        "-q",
        "run",
        "thick.ron",
        "--backend",
        "cpu",
        "--split",
        "z-slabs",
    ];
    let (code, err) = lattice(d, Some(3), &args, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("use at most 2 ranks"), "{err}");
}

/// On the GPU the slabs' halos travel device → host → MPI → host → device: the states equal
/// one GPU process's bit for bit, and the CPU's within the GPU-vs-CPU tolerance.
#[test]
fn gpu_slabs_equal_one_gpu_process_and_the_cpu_within_tolerance() {
    if !mpi_ready() || lattice::gpu::test_context().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, text) = SLABS[1];
    std::fs::write(d.join(file), text).unwrap();
    let run = |ranks: Option<u32>, backend: &str, out: &str| {
        let mut args = vec!["-q", "run", file, "--backend", backend, "--out", out];
        if ranks.is_some() {
            args.extend(["--split", "z-slabs"]);
        }
        let (code, err) = lattice(d, ranks, &args, &[]);
        assert_eq!(code, 0, "{ranks:?} ranks on {backend}: {err}");
    };
    run(None, "cpu", "cpu");
    run(None, "gpu", "gpu");
    run(Some(3), "gpu", "gpu-n3");
    same_files(d, "gpu", "gpu-n3", &["states.npy"]);
    let (cpu, gpu) = (
        common::read_npy(&d.join("cpu/states.npy")),
        common::read_npy(&d.join("gpu-n3/states.npy")),
    );
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (k, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        // tests/gpu_product.rs: 1e-4 relative, floored at 1 % of the largest magnitude.
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(0.01 * scale),
            "{k}: cpu {a} gpu {b}"
        );
    }
}

/// `--checkpoint-every` under MPI: each rank keeps its checkpoint in OUT/rank-R-of-P/; a run
/// resumed from them (the outputs removed, so the resumed run must recompute what it writes)
/// ends byte-identical to one uninterrupted process, by items and by z-slabs.
#[test]
fn checkpoints_and_resume_work_under_mpi() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 12 items on 3 ranks in batches of 2: every rank checkpoints after its first batch.
    let flows = FLOWS.replace("items: 5", "items: 12");
    std::fs::write(d.join("flows.ron"), flows).unwrap();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    std::fs::write(d.join(SLABS[0].0), SLABS[0].1).unwrap();
    let cases: [(&str, &[&str], &str); 3] = [
        ("moe.ron", &[], "states.npy"),
        ("flows.ron", &[], "surface.npy"),
        (SLABS[0].0, &["--split", "z-slabs"], "states.npy"),
    ];
    for (cfg, split, file) in cases {
        let run = |ranks, extra: &[&str]| {
            let mut args = vec!["-q", "run", cfg, "--backend", "cpu"];
            args.extend_from_slice(extra);
            let (code, err) = lattice(d, ranks, &args, &[]);
            assert_eq!(code, 0, "{cfg} {extra:?}: {err}");
        };
        run(None, &["--out", "one"]);
        let mut first = vec!["--checkpoint-every", "1", "--out", "ck"];
        first.extend_from_slice(split);
        run(Some(3), &first);
        assert!(
            d.join("ck/rank-1-of-3/checkpoint/checkpoint.json").exists(),
            "{cfg}"
        );
        std::fs::remove_file(d.join("ck").join(file)).unwrap();
        let mut resume = vec!["--resume", "ck"];
        resume.extend_from_slice(split);
        run(Some(3), &resume);
        same_files(d, "one", "ck", &[file]);
        std::fs::remove_dir_all(d.join("one")).unwrap();
        std::fs::remove_dir_all(d.join("ck")).unwrap();
    }
}

/// One rank of a z-slab run fails to allocate its first batch (injected): every rank halves in
/// step (rank 0's plan), the job finishes, and the states equal one process's byte for byte.
/// A rank that halved alone would leave the others waiting on halo messages: the launcher's
/// timeout turns such a hang into a failure.
#[test]
fn an_allocation_failure_on_one_rank_halves_every_rank_together() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, text) = SLABS[0];
    std::fs::write(d.join(file), text).unwrap();
    let args = ["-q", "run", file, "--backend", "cpu", "--out", "one"];
    assert_eq!(lattice(d, None, &args, &[]).0, 0);
    let args = [
        "-q",
        "run",
        file,
        "--backend",
        "cpu",
        "--out",
        "n2",
        "--split",
        "z-slabs",
    ];
    let env = [
        ("LATTICE_FAIL_FIRST_BATCH_RANK", "1"),
        ("MPIEXEC_TIMEOUT", "60"),
    ];
    let (code, err) = lattice(d, Some(2), &args, &env);
    assert_eq!(code, 0, "{err}");
    same_files(d, "one", "n2", &["states.npy"]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("n2/metrics.json")).unwrap()).unwrap();
    assert_eq!(m["halvings"], 1, "{m}");
    assert_eq!(m["batch_sizes"], serde_json::json!([1, 1, 1]), "{m}");
}

/// A checkpoint records how the run was divided: a resume under another split, another rank
/// count or as one process is refused, naming both divisions.
#[test]
fn a_resume_under_another_split_or_rank_count_is_refused_naming_both() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, text) = SLABS[0];
    std::fs::write(d.join(file), text).unwrap();
    let args = [
        "-q",
        "run",
        file,
        "--backend",
        "cpu",
        "--out",
        "ck",
        "--checkpoint-every",
        "1",
        "--split",
        "z-slabs",
    ];
    let (code, err) = lattice(d, Some(2), &args, &[]);
    assert_eq!(code, 0, "{err}");
    let written = "2 ranks split by ZSlabs";
    let cases: [(Option<u32>, &[&str], &str); 3] = [
        (Some(2), &["--split", "items"], "2 ranks split by Items"),
        (Some(3), &["--split", "z-slabs"], "3 ranks split by ZSlabs"),
        (None, &[], "one process"),
    ];
    for (ranks, extra, this) in cases {
        let mut args = vec!["-q", "run", file, "--backend", "cpu", "--resume", "ck"];
        args.extend_from_slice(extra);
        let (code, err) = lattice(d, ranks, &args, &[]);
        assert_ne!(code, 0, "{ranks:?} {extra:?}");
        assert!(
            err.contains(&format!(
                "written by a run of {written}, this run is {this}"
            )),
            "{ranks:?} {extra:?}: {err}"
        );
    }
}

/// Ranks launched with different inputs (MPMD: each rank its own folder, or its own file)
/// stop before step 1, naming what differs: the mask behind the same config text, the initial
/// states, the step count.
#[test]
fn ranks_given_different_masks_or_inputs_stop_before_step_1() {
    if !mpi_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (file, text) = SLABS[2];
    for (k, sub) in ["a", "b"].iter().enumerate() {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        std::fs::write(d.join(sub).join(file), text).unwrap();
        let mask = (0..10 * 5 * 6).map(|i| u8::from(i % 5 != 2 + k));
        common::write_npy(&d.join(sub).join("mask.npy"), &[10, 5, 6], mask);
    }
    let states = |seed: f32| (0..2 * 300 * 24).map(move |i| (i as f32 * seed).sin() * 0.1);
    common::write_npy(&d.join("a/s.npy"), &[2, 300, 24], states(0.37));
    common::write_npy(&d.join("b/s.npy"), &[2, 300, 24], states(0.41));
    let mpmd = |a: &[&str], b: &[&str], expect: &str| {
        let base = ["-q", "run", file, "--backend", "cpu", "--out", "../o"];
        let (a, b) = ([&base[..], a].concat(), [&base[..], b].concat());
        stops_before_step_1(d, ("a", &a), ("b", &b), expect);
    };
    mpmd(&[], &[], "ranks disagree on the mask: 240 active cells");
    // The same mask from now on: the inputs and options differ.
    std::fs::copy(d.join("a/mask.npy"), d.join("b/mask.npy")).unwrap();
    let init = ["--init-states", "s.npy"];
    mpmd(
        &init,
        &init,
        "ranks disagree on the initial states: s.npy (hash",
    );
    mpmd(
        &["--steps", "2"],
        &["--steps", "3"],
        "ranks disagree on the step count: 3 here, 2 on rank 0",
    );
}
