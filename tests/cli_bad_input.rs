//! Bad configs through the real binary: a clear message with line, column, field path and fix,
//! a non-zero exit, and never a panic.

use assert_cmd::Command;

fn validate(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(&path, text).unwrap();
    let out = Command::cargo_bin("lattice")
        .unwrap()
        .args(["validate"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn typo_in_a_field_name() {
    let (code, err) = validate(
        "(\n  simulation: Moe((\n    lattice: (dims: (8, 8, 8)),\n    stat_size: 24,\n  )),\n)\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("bad.ron:4:"), "line and column: {err}");
    assert!(
        err.contains("simulation.Moe.stat_size"),
        "field path: {err}"
    );
    assert!(
        err.contains("fix:") && err.contains("state_size"),
        "fix lists the right name: {err}"
    );
}

#[test]
fn wrong_type() {
    let (code, err) =
        validate("(simulation: Moe((lattice: (dims: (8, 8, 8), radius_ratio: \"big\"))))");
    assert_eq!(code, 2);
    assert!(err.contains("bad.ron:1:"), "{err}");
    assert!(err.contains("simulation.Moe.lattice.radius_ratio"), "{err}");
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn out_of_range_values() {
    let (code, err) = validate(
        "(simulation: Moe((lattice: (dims: (8, 0, 8), radius_ratio: -0.2), state_size: 1000)))",
    );
    assert_eq!(code, 2);
    for field in [
        "simulation.Moe.lattice.dims",
        "simulation.Moe.lattice.radius_ratio",
        "simulation.Moe.state_size",
    ] {
        assert!(err.contains(field), "{field} missing: {err}");
    }
    assert!(err.contains("2..=256"), "valid range named: {err}");
}

#[test]
fn missing_file_and_bad_syntax() {
    let out = Command::cargo_bin("lattice")
        .unwrap()
        .args(["validate", "/nonexistent/x.ron"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config /nonexistent/x.ron"));
    let (code, err) = validate("(simulation: Moe((lattice: (dims: (8, 8, 8))))");
    assert_eq!(code, 2);
    assert!(err.contains("bad.ron:1:"), "{err}");
}

#[test]
fn shipped_configs_validate() {
    for cfg in [
        "configs/debug.ron",
        "configs/experiment.ron",
        "configs/periodic.ron",
        "configs/flows_debug.ron",
        "configs/flows_experiment.ron",
        "configs/flows_optimized.ron",
    ] {
        let out = Command::cargo_bin("lattice")
            .unwrap()
            .args(["validate", cfg])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cfg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn flow_settings_that_cannot_work_together_name_both_fields() {
    let flows = |extra: &str| validate(&format!("(simulation: Flows((dims: (6, 5, 8), {extra})))"));
    // Capacity counts live flows: room for the roots alone still lets children take the
    // slots that completed flows free.
    let (code, err) = flows("spawn: Some((threshold: 0.1)), capacity_per_item: Some(30)");
    assert_eq!(code, 0, "{err}");
    let (code, err) = flows("spawn: Some((threshold: 0.6))");
    assert_eq!(code, 2);
    assert!(
        err.contains("simulation.Flows.spawn.threshold") && err.contains("noise"),
        "{err}"
    );
    let (code, err) =
        flows("max_steps: Some(4), convergence: Some((threshold: 0.9, min_steps: 4))");
    assert_eq!(code, 2);
    assert!(
        err.contains("convergence.min_steps") && err.contains("max_steps"),
        "{err}"
    );
    let (code, err) = flows("capacity_per_item: Some(10)");
    assert_eq!(code, 2);
    assert!(
        err.contains("capacity_per_item") && err.contains("30 root flows"),
        "{err}"
    );
}
