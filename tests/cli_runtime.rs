//! The batch runtime through the real binary, CPU path: chunked equals unchunked, resume equals
//! uninterrupted, a forced allocation failure halves and gives the same results, a failing
//! item is reported while the others complete, and checkpoints or batch sizes that cannot be
//! used are refused with a clear message.

use std::path::Path;

mod common;
use common::write_npy;

fn config(batch: &str) -> String {
    format!(
        "(seed: 3, batch: (items: 3, max_batch_size: {batch}), simulation: Moe((lattice: \
         (dims: (5, 4, 3), radius_ratio: 0.5), steps: 4)))"
    )
}

fn lattice(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let args = [args, &["--backend", "cpu"]].concat();
    let ran = common::lattice_in(dir, &args, env);
    (ran.code, ran.stderr)
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

fn metrics(dir: &Path, out: &str) -> serde_json::Value {
    serde_json::from_slice(&read(dir, &format!("{out}/metrics.json"))).unwrap()
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, batch) in [
        ("one.ron", "Fixed(1)"),
        ("all.ron", "Fixed(3)"),
        ("two.ron", "Fixed(2)"),
    ] {
        std::fs::write(dir.path().join(name), config(batch)).unwrap();
    }
    dir
}

#[test]
fn chunked_equals_unchunked_and_a_forced_allocation_failure_halves() {
    let dir = setup();
    let d = dir.path();
    assert_eq!(lattice(d, &["run", "one.ron", "--out", "one"], &[]).0, 0);
    assert_eq!(lattice(d, &["run", "all.ron", "--out", "all"], &[]).0, 0);
    assert_eq!(read(d, "one/states.npy"), read(d, "all/states.npy"));
    assert_eq!(
        metrics(d, "one")["batch_sizes"],
        serde_json::json!([1, 1, 1])
    );

    let (code, err) = lattice(
        d,
        &["run", "two.ron", "--out", "halved"],
        &[("LATTICE_FAIL_FIRST_BATCH", "1")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("retrying with 1"), "{err}");
    let m = metrics(d, "halved");
    assert_eq!(m["halvings"], 1);
    assert_eq!(m["batch_sizes"], serde_json::json!([1, 1, 1]));
    assert_eq!(read(d, "halved/states.npy"), read(d, "all/states.npy"));
    let items = m["per_item"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|r| r["ok"] == true && r["duration_s"].is_f64())
    );
}

#[test]
fn resume_equals_uninterrupted() {
    let dir = setup();
    let d = dir.path();
    assert_eq!(lattice(d, &["run", "two.ron", "--out", "full"], &[]).0, 0);
    let (code, err) = lattice(
        d,
        &["run", "two.ron", "--out", "cut", "--checkpoint-every", "2"],
        &[("LATTICE_STOP_AFTER_CHECKPOINT", "1")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--resume cut"), "{err}");
    assert!(
        !d.join("cut/states.npy").exists(),
        "an interrupted run writes no outputs"
    );
    let (code, err) = lattice(
        d,
        &[
            "run",
            "two.ron",
            "--resume",
            "cut",
            "--checkpoint-every",
            "2",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(read(d, "cut/states.npy"), read(d, "full/states.npy"));

    // A checkpoint from another config is refused, saying which.
    let (code, err) = lattice(d, &["run", "one.ron", "--resume", "cut"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("another config") && err.contains("two.ron"),
        "{err}"
    );
    let (code, err) = lattice(d, &["run", "one.ron", "--resume", "nowhere"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no checkpoint to resume"), "{err}");
}

#[test]
fn a_failing_item_is_reported_while_the_others_complete() {
    let dir = setup();
    let d = dir.path();
    // Item 1 starts near f32::MAX everywhere: its first step overflows.
    let n = 5 * 4 * 3 * 24;
    let path = d.join("init.npy");
    write_npy(
        &path,
        &[3, 60, 24],
        (0..3 * n).map(|k| if k / n == 1 { f32::MAX / 2.0 } else { 0.01 }),
    );
    let (code, err) = lattice(
        d,
        &["run", "all.ron", "--out", "o", "--init-states", "init.npy"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("1 of 3 item(s) failed") && err.contains("item 1: non-finite"),
        "{err}"
    );
    let m = metrics(d, "o");
    let items = m["per_item"].as_array().unwrap();
    assert_eq!(items[1]["ok"], false);
    assert!(items[1]["error"].as_str().unwrap().contains("step 1"));
    assert_eq!(items[0]["ok"], true);
    assert_eq!(items[2]["ok"], true);
    assert!(d.join("o/states.npy").exists());
}

#[test]
fn a_batch_size_that_cannot_fit_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One item needs 3 × 300³ × 256 × 4 bytes ≈ 83 GB on the CPU path.
    std::fs::write(
        d.join("huge.ron"),
        "(batch: (items: 2, max_batch_size: Fixed(2)), simulation: Moe((lattice: \
         (dims: (300, 300, 300), radius_ratio: 0.001, radius_min: 1.5), state_size: 256)))",
    )
    .unwrap();
    let (code, err) = lattice(d, &["run", "huge.ron", "--out", "o"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("Fixed(2) does not fit") && err.contains("host memory"),
        "{err}"
    );
    assert!(!d.join("o/states.npy").exists());
}

#[test]
fn a_directory_of_precomputed_batches_gives_the_same_run_as_one_file() {
    let dir = setup();
    let d = dir.path();
    let per = 60 * 24;
    let all: Vec<f32> = (0..3 * per).map(|k| ((k % 97) as f32) * 0.001).collect();
    write_npy(&d.join("init.npy"), &[3, 60, 24], all.iter().copied());
    std::fs::create_dir(d.join("batches")).unwrap();
    write_npy(
        &d.join("batches/000.npy"),
        &[2, 60, 24],
        all[..2 * per].iter().copied(),
    );
    write_npy(
        &d.join("batches/001.npy"),
        &[1, 60, 24],
        all[2 * per..].iter().copied(),
    );
    let run = |init: &str, out: &str| {
        lattice(
            d,
            &["run", "all.ron", "--out", out, "--init-states", init],
            &[],
        )
    };
    assert_eq!(run("init.npy", "file").0, 0);
    assert_eq!(run("batches", "dir").0, 0);
    assert_eq!(read(d, "file/states.npy"), read(d, "dir/states.npy"));
    // A batch of the wrong dtype is named.
    write_npy(&d.join("batches/002.npy"), &[1, 60, 24], vec![0.0f64; per]);
    let (code, err) = run("batches", "bad");
    assert_eq!(code, 2);
    assert!(err.contains("002.npy") && err.contains("float32"), "{err}");
    assert!(!d.join("bad/states.npy").exists());
}
