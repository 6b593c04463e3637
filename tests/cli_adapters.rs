//! What `lattice` does with the adapters a machine has: `lattice info` judges each one, and a
//! machine whose only adapter is on an API the kernels are not validated on (OpenGL, e.g. Mesa's
//! llvmpipe without a Vulkan driver) refuses `--backend gpu` with a message, or, asked with
//! `--allow-untrusted-gpu`, runs only after the self-check and then matches the CPU. The
//! fresh-machine stage of `.ci/run` hides the Vulkan driver so these run against GL.

use std::path::Path;

mod common;
use common::{lattice_in, read_npy};

const SMALL: &str = "(seed: 9, batch: (items: 2), simulation: Moe((lattice: (dims: (6, 5, 4), \
                     radius_ratio: 0.5), steps: 2)))";

/// The self-check's network sizes: Mesa's llvmpipe through GL compiles a kernel for minutes at
/// the presets' sizes (its compile, not the run, is what takes the time), seconds at these.
const TINY: &str = "(seed: 9, batch: (items: 2), simulation: Moe((lattice: (dims: (5, 4, 3), \
    radius_ratio: 0.7), steps: 2, state_size: 8, local: (h1: 8, h2: 8, processor_hidden: 8), \
    functional: (hidden_dim: 8, message_dim: 4), distant: (ode_hidden: 8), \
    gating: (hidden_dim: 8))))";

fn info(dir: &Path) -> serde_json::Value {
    let ran = lattice_in(dir, &["info", "--json"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    serde_json::from_str(&ran.stdout).unwrap()
}

fn adapters(info: &serde_json::Value) -> Vec<serde_json::Value> {
    info["adapters"].as_array().unwrap().clone()
}

#[test]
fn info_judges_every_adapter_and_chooses_a_usable_one() {
    let dir = tempfile::tempdir().unwrap();
    let info = info(dir.path());
    let list = adapters(&info);
    for a in &list {
        let verdict = a["verdict"].as_str().unwrap();
        assert_eq!(
            a["usable"].as_bool().unwrap(),
            verdict.starts_with("usable"),
            "{a}"
        );
        if a["backend"] == "Gl" {
            assert!(
                !a["usable"].as_bool().unwrap(),
                "GL is never trusted by default: {a}"
            );
        }
    }
    match list.iter().find(|a| a["usable"] == true) {
        Some(first) => assert_eq!(info["chosen"]["name"], first["name"], "{info}"),
        None => {
            let why = info["why_none"].as_str().unwrap();
            assert!(why.contains("no usable GPU adapter"), "{why}");
        }
    }
}

#[test]
fn gpu_backend_without_a_trusted_adapter_refuses_with_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    if adapters(&info(d)).iter().any(|a| a["usable"] == true) {
        eprintln!("note: a trusted adapter exists here; the refusal is tested where none does");
        return;
    }
    std::fs::write(d.join("small.ron"), SMALL).unwrap();
    let ran = lattice_in(
        d,
        &["run", "small.ron", "--backend", "gpu", "--out", "o"],
        &[],
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("mesa-vulkan-drivers"), "{}", ran.stderr);
    assert!(!d.join("o/states.npy").exists());
    // Auto runs on the CPU path instead, and says so.
    let ran = lattice_in(d, &["run", "small.ron", "--out", "auto"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("running on the CPU path"),
        "{}",
        ran.stderr
    );
}

#[test]
fn an_untrusted_adapter_runs_only_after_its_self_check_and_then_matches_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let list = adapters(&info(d));
    if list.iter().any(|a| a["usable"] == true) || list.is_empty() {
        eprintln!("note: no untrusted-only machine here; tested where only GL is present");
        return;
    }
    std::fs::write(d.join("small.ron"), TINY).unwrap();
    let args = [
        "run",
        "small.ron",
        "--backend",
        "gpu",
        "--allow-untrusted-gpu",
        "--out",
        "gl",
    ];
    let ran = lattice_in(d, &args, &[]);
    if ran.code != 0 {
        assert!(
            ran.stderr.contains("failed the self-check"),
            "{}",
            ran.stderr
        );
        assert!(!d.join("gl/states.npy").exists());
        return;
    }
    assert!(
        ran.stderr.contains("passed the self-check"),
        "{}",
        ran.stderr
    );
    let ran = lattice_in(
        d,
        &["run", "small.ron", "--backend", "cpu", "--out", "cpu"],
        &[],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (gpu, cpu) = (
        read_npy(&d.join("gl/states.npy")),
        read_npy(&d.join("cpu/states.npy")),
    );
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (k, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        // tests/gpu_product.rs: 1e-4 relative, floored at 1 % of the largest magnitude.
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(0.01 * scale),
            "{k}: cpu {a} gpu {b}"
        );
    }
}

#[test]
fn a_gpu_that_is_not_an_index_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("small.ron"), SMALL).unwrap();
    let args = ["run", "small.ron", "--backend", "gpu", "--out", "o"];
    let ran = lattice_in(d, &args, &[("LATTICE_GPU", "first")]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("LATTICE_GPU=\"first\" is not a GPU index"),
        "{}",
        ran.stderr
    );
    // The library reads it too.
    let lib = lattice_in(
        d,
        &["run", "small.ron", "--out", "p"],
        &[("LATTICE_GPU", "7")],
    );
    assert_eq!(
        lib.code, 0,
        "auto with an absent GPU runs on the CPU: {}",
        lib.stderr
    );
    assert!(!d.join("o/states.npy").exists());
}
