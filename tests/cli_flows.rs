//! `lattice run` on Flows configs through the real binary, CPU path: outputs and their shapes,
//! per-step metrics, the event trace, determinism, and bad embeddings.

use std::path::Path;

use assert_cmd::Command;

mod common;

const SMALL: &str = "(seed: 5, batch: (items: 3, max_batch_size: Fixed(2)), simulation: Flows((\
    dims: (6, 5, 8), embedding_dim: 16, carrier: (hidden: 16, layers: 2), \
    neuron: (hidden: 8, output: 12), displacement_scale: 40.0, noise: 0.05, \
    spawn: Some((threshold: 0.15)), collector: true, trace: Some((capacity: 50)))))";

fn run(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::cargo_bin("lattice")
        .unwrap()
        .current_dir(dir)
        .args(["run", "flows.ron", "--backend", "cpu"])
        .args(extra)
        .output()
        .unwrap()
}

fn shape(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..]).unwrap().shape().to_vec()
}

#[test]
fn a_flows_run_writes_surfaces_metrics_and_trace_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flows.ron"), SMALL).unwrap();
    for out in ["a", "b"] {
        let o = run(dir.path(), &["--out", out]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The weights a run writes load back into the same run.
    let o = run(
        dir.path(),
        &["--out", "c", "--weights", "a/weights.safetensors"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = dir.path().join("a");
    assert!(
        std::fs::read(a.join("surface.npy")).unwrap()
            == std::fs::read(dir.path().join("c/surface.npy")).unwrap()
    );
    assert_eq!(shape(&a.join("surface.npy")), [3, 2, 5, 6]);
    assert_eq!(shape(&a.join("surface_merged.npy")), [3, 5, 6]);
    assert_eq!(shape(&a.join("embeddings_out.npy")), [3, 16]);
    for f in [
        "surface.npy",
        "surface_merged.npy",
        "embeddings_out.npy",
        "events.jsonl",
    ] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(dir.path().join("b").join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs");
    }
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["simulation"], "flows");
    assert_eq!(m["batch_size"], 2);
    let steps = m["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "D/2 steps");
    for key in [
        "live",
        "spawned",
        "completed_front",
        "completed_back",
        "reflected",
        "moving",
        "dropped_by_capacity",
    ] {
        assert!(steps[0][key].is_u64(), "{key}");
    }
    assert_eq!(steps[0]["live"], 90, "3 items × 30 roots");
    assert_eq!(m["per_item"].as_array().unwrap().len(), 3);
    let events = std::fs::read_to_string(a.join("events.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50, "the ring keeps the newest 50 events");
    assert!(m["trace_overwritten"].as_u64().unwrap() > 0);
    assert!(
        lines
            .iter()
            .all(|e| e["event"].is_string() && e["flow"].is_u64())
    );
}

#[test]
fn items_do_not_depend_on_the_batch_they_run_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flows.ron"), SMALL).unwrap();
    let one = SMALL.replace("max_batch_size: Fixed(2)", "max_batch_size: Fixed(1)");
    std::fs::write(dir.path().join("one.ron"), one).unwrap();
    assert!(run(dir.path(), &["--out", "a"]).status.success());
    let o = Command::cargo_bin("lattice")
        .unwrap()
        .current_dir(dir.path())
        .args(["run", "one.ron", "--backend", "cpu", "--out", "b"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let read = |d: &str| std::fs::read(dir.path().join(d).join("surface.npy")).unwrap();
    assert!(read("a") == read("b"));
}

#[test]
fn embeddings_of_the_wrong_shape_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flows.ron"), SMALL).unwrap();
    let path = dir.path().join("emb.npy");
    common::write_npy(&path, &[3, 15], (0..45).map(|v| v as f32));
    let o = run(dir.path(), &["--out", "out", "--embeddings", "emb.npy"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[3, 15]") && err.contains("embedding_dim"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    assert!(!dir.path().join("out/surface.npy").exists());
}

#[test]
fn a_resumed_flows_run_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = SMALL
        .replace("max_batch_size: Fixed(2)", "max_batch_size: Fixed(1)")
        .replace(", trace: Some((capacity: 50))", "");
    std::fs::write(d.join("flows.ron"), cfg).unwrap();
    assert!(run(d, &["--out", "full"]).status.success());
    let cut = Command::cargo_bin("lattice")
        .unwrap()
        .current_dir(d)
        .env("LATTICE_STOP_AFTER_CHECKPOINT", "1")
        .args([
            "run",
            "flows.ron",
            "--backend",
            "cpu",
            "--out",
            "cut",
            "--checkpoint-every",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&cut.stderr);
    assert_eq!(cut.status.code(), Some(2), "{err}");
    assert!(err.contains("--resume cut"), "{err}");
    assert!(!d.join("cut/surface.npy").exists());
    let o = run(d, &["--resume", "cut", "--checkpoint-every", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["surface.npy", "surface_merged.npy", "embeddings_out.npy"] {
        assert!(
            std::fs::read(d.join("full").join(f)).unwrap()
                == std::fs::read(d.join("cut").join(f)).unwrap(),
            "{f}"
        );
    }
    let m = |dir: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join(dir).join("metrics.json")).unwrap()).unwrap()
    };
    assert_eq!(m("full")["totals"], m("cut")["totals"]);
    assert_eq!(m("full")["steps"], m("cut")["steps"]);
    assert_eq!(m("cut")["per_item_runs"].as_array().unwrap().len(), 3);
}

/// docs/model.md B5/B7 on a shipped case (tests/data/flows-spawn-minimal: one item, one
/// step, noise 0): L is measured after the clamp, so step 0 spawns 45 children and reflects 55
/// flows, on both backends (measuring before the clamp gives 52 children).
#[test]
fn the_minimal_spawn_case_gives_45_children_and_55_reflections_on_both_backends() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows-spawn-minimal");
    let gpu = lattice_gpu::test_context().is_some();
    for backend in ["cpu", "gpu"].into_iter().filter(|&b| b == "cpu" || gpu) {
        let out = tempfile::tempdir().unwrap();
        let o = Command::cargo_bin("lattice")
            .unwrap()
            .current_dir(&case)
            .args(["run", "config.ron", "--steps", "1", "--backend", backend])
            .args(["--weights", "weights.safetensors"])
            .args(["--embeddings", "embeddings.npy", "--out"])
            .arg(out.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).unwrap())
                .unwrap();
        let step = &m["steps"][0];
        assert_eq!(
            (step["spawned"].as_u64(), step["reflected"].as_u64()),
            (Some(45), Some(55)),
            "{backend}: {step}"
        );
        assert_eq!(step["dropped_by_capacity"], 0, "{backend}");
    }
}

/// Seed 001's metrics in metrics.json: the run's mean path length and completion ratio are
/// those of its items, and every step that moved flows has a z-movement variance.
#[test]
fn metrics_hold_path_lengths_completion_ratios_and_z_movement() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flows.ron"), SMALL).unwrap();
    let o = run(dir.path(), &["--out", "m"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = common::read_json(&dir.path().join("m/metrics.json"));
    let items = m["per_item"].as_array().unwrap();
    let sum = |k: &str| items.iter().map(|i| i[k].as_u64().unwrap()).sum::<u64>();
    let completed = sum("completed_front") + sum("completed_back");
    assert!(completed > 0);
    let t = &m["totals"];
    let mean = sum("completed_path_steps") as f64 / completed as f64;
    assert!((t["mean_path_steps"].as_f64().unwrap() - mean).abs() < 1e-12);
    let ratio = completed as f64 / sum("created") as f64;
    assert!((t["completed_per_created"].as_f64().unwrap() - ratio).abs() < 1e-12);
    for i in items {
        let own = i["completed_front"].as_u64().unwrap() + i["completed_back"].as_u64().unwrap();
        let per = i["completed_per_created"].as_f64().unwrap();
        assert!((per - own as f64 / i["created"].as_f64().unwrap()).abs() < 1e-12);
    }
    for s in m["steps"].as_array().unwrap() {
        let v = s["z_move_variance"].as_f64().unwrap();
        assert!(v > 0.0 && v < 1.0, "{s}");
    }
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("z-movement variance"), "{summary}");
    // Seed 003: each item's own time within its batch's, the mean per item, memory per item.
    for r in m["per_item_runs"].as_array().unwrap() {
        let (own, batch) = (
            r["duration_s"].as_f64().unwrap(),
            r["batch_s"].as_f64().unwrap(),
        );
        assert!(own > 0.0 && own <= batch, "{r}");
    }
    let t = &m["timing"];
    let mean = t["total_s"].as_f64().unwrap() / items.len() as f64;
    assert!((t["mean_item_s"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!(
        t["device_bytes_per_item"].is_null(),
        "the CPU reports no device memory"
    );
    assert!(summary.contains("per item"), "{summary}");
}
