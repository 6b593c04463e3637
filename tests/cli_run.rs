//! `lattice run` end to end on the CPU path: outputs, determinism, and bad inputs that must fail
//! cleanly without leaving outputs behind.

use std::path::Path;

use assert_cmd::Command;

mod common;
use common::write_npy;

const SMALL: &str = "(seed: 9, batch: (items: 2), simulation: Moe((lattice: (dims: (6, 5, 4), radius_ratio: 0.5), steps: 2)))";

fn lattice(args: &[&str], dir: &Path) -> std::process::Output {
    Command::cargo_bin("lattice")
        .unwrap()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// `lattice run small.ron --backend cpu --out OUT --init-states INIT` in `dir`.
fn run_with_init(dir: &Path, out: &str, init: &str) -> (Option<i32>, String) {
    let o = lattice(
        &[
            "run",
            "small.ron",
            "--backend",
            "cpu",
            "--out",
            out,
            "--init-states",
            init,
        ],
        dir,
    );
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small.ron"), SMALL).unwrap();
    dir
}

#[test]
fn run_writes_states_metrics_and_weights_deterministically() {
    let dir = setup();
    for out in ["a", "b"] {
        let o = lattice(
            &["run", "small.ron", "--backend", "cpu", "--out", out],
            dir.path(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let a = std::fs::read(dir.path().join("a/states.npy")).unwrap();
    let b = std::fs::read(dir.path().join("b/states.npy")).unwrap();
    assert_eq!(a, b, "two runs of the same config are bit-identical");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["items"], 2);
    assert_eq!(metrics["steps"], 2);
    assert!(metrics["timing"]["cell_updates_per_s"].as_f64().unwrap() > 0.0);
    // The saved weights reproduce the run.
    let o = lattice(
        &[
            "run",
            "small.ron",
            "--backend",
            "cpu",
            "--out",
            "c",
            "--weights",
            "a/weights.safetensors",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(a, std::fs::read(dir.path().join("c/states.npy")).unwrap());
    // No temp files are left in the output folder.
    for entry in std::fs::read_dir(dir.path().join("a")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".lattice"), "{name}");
    }
}

#[test]
fn init_states_of_the_wrong_shape_or_missing_fail_cleanly() {
    let dir = setup();
    let (code, err) = run_with_init(dir.path(), "x", "none.npy");
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot open none.npy"), "{err}");

    write_npy(
        &dir.path().join("wrong.npy"),
        &[2, 120, 23],
        std::iter::repeat_n(0.0f32, 2 * 120 * 23),
    );
    let (code, err) = run_with_init(dir.path(), "y", "wrong.npy");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("[2, 120, 23]") && err.contains("[2, 120, 24]"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    assert!(!dir.path().join("y/states.npy").exists());
}

#[test]
fn non_finite_initial_states_are_reported_with_item_and_cell() {
    let dir = setup();
    let mut values = vec![0.01f32; 2 * 120 * 24];
    values[120 * 24 + 7 * 24 + 3] = f32::NAN; // item 1, cell 7
    write_npy(&dir.path().join("nan.npy"), &[2, 120, 24], values);
    let (code, err) = run_with_init(dir.path(), "z", "nan.npy");
    assert_eq!(code, Some(2));
    assert!(err.contains("item 1, cell 7"), "{err}");
    assert!(!dir.path().join("z/states.npy").exists());
}

#[test]
fn unwritable_output_folder_fails_before_running() {
    let dir = setup();
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let o = lattice(
        &["run", "small.ron", "--backend", "cpu", "--out", "file/sub"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot create output folder"));
}
