//! `lattice prepare` (seed 004's precomputed batches) through the real binary, CPU path: the
//! batch files and manifest, and runs that read them back (the config's `inputs`, or
//! --init-states/--embeddings DIR) equal runs that generated the same inputs, byte for byte.

use std::path::Path;

mod common;
use common::{Ran, lattice_in, read_json, read_npy};

const MOE: &str = "(seed: 3, batch: (items: 5, max_batch_size: Fixed(2)), simulation: \
                   Moe((lattice: (dims: (6, 5, 4), radius_ratio: 0.5), steps: 2, state_size: 8)))";
const FLOWS: &str = "(seed: 5, batch: (items: 4), simulation: Flows((dims: (6, 5, 8), \
    embedding_dim: 16, carrier: (hidden: 8, layers: 1), neuron: (hidden: 8, output: 8), \
    displacement_scale: 40.0, noise: 0.05, spawn: Some((threshold: 0.15)))))";

fn ok(r: &Ran) {
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn same(d: &Path, a: &str, b: &str, file: &str) -> bool {
    std::fs::read(d.join(a).join(file)).unwrap() == std::fs::read(d.join(b).join(file)).unwrap()
}

/// The config with `inputs` pointing at `dir`, read in `order`.
fn with_inputs(config: &str, dir: &str, order: &str) -> String {
    config.replacen(
        "simulation:",
        &format!("inputs: Some((dir: \"{dir}\", order: {order})), simulation:"),
        1,
    )
}

#[test]
fn prepared_moe_states_run_as_the_seeded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    ok(&lattice_in(
        d,
        &["prepare", "moe.ron", "--out", "prep"],
        &[],
    ));
    let m = read_json(&d.join("prep/batches.json"));
    assert_eq!(m["kind"], "initial_states");
    assert_eq!(m["items"], 5);
    assert_eq!(m["item_shape"], serde_json::json!([120, 8]));
    let files: Vec<_> = m["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["file"].clone())
        .collect();
    assert_eq!(
        files,
        ["batch-00000.npy", "batch-00001.npy", "batch-00002.npy"]
    );
    assert_eq!(m["batches"][2]["ids"], serde_json::json!([4]));
    assert_eq!(read_npy(&d.join("prep/batch-00001.npy")).len(), 2 * 120 * 8);
    let run = |config: &str, out: &str, extra: &[&str]| {
        let mut a = vec!["run", config, "--backend", "cpu", "--out", out];
        a.extend_from_slice(extra);
        ok(&lattice_in(d, &a, &[]));
    };
    run("moe.ron", "seeded", &[]);
    run("moe.ron", "flag", &["--init-states", "prep"]);
    std::fs::write(d.join("in.ron"), with_inputs(MOE, "prep", "InOrder")).unwrap();
    run("in.ron", "field", &[]);
    assert!(same(d, "seeded", "flag", "states.npy"));
    assert!(same(d, "seeded", "field", "states.npy"));
    // Round-robin over the three files reads items 0, 2, 4, 1, 3.
    std::fs::write(d.join("rr.ron"), with_inputs(MOE, "prep", "RoundRobin")).unwrap();
    run("rr.ron", "rr", &[]);
    let (seeded, rr) = (
        read_npy(&d.join("seeded/states.npy")),
        read_npy(&d.join("rr/states.npy")),
    );
    let item = |v: &[f32], i: usize| v[i * 960..(i + 1) * 960].to_vec();
    assert_eq!(item(&rr, 1), item(&seeded, 2));
    assert_eq!(item(&rr, 3), item(&seeded, 1));
}

#[test]
fn prepared_flow_embeddings_seeded_and_of_texts_run_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("flows.ron"), FLOWS).unwrap();
    ok(&lattice_in(
        d,
        &["prepare", "flows.ron", "--out", "prep", "--batch-size", "3"],
        &[],
    ));
    let run = |config: &str, out: &str, extra: &[&str]| {
        let mut a = vec!["run", config, "--backend", "cpu", "--out", out];
        a.extend_from_slice(extra);
        ok(&lattice_in(d, &a, &[]));
    };
    run("flows.ron", "seeded", &[]);
    std::fs::write(d.join("in.ron"), with_inputs(FLOWS, "prep", "InOrder")).unwrap();
    run("in.ron", "field", &[]);
    assert!(same(d, "seeded", "field", "surface.npy"));
    // Texts: prepared embeddings equal those a run from the texts makes.
    let enc = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/texts/tiny-bert");
    let enc = enc.to_str().unwrap();
    std::fs::write(d.join("t.jsonl"), "{\"id\": \"a\", \"text\": \"hello\"}\n{\"id\": \"b\", \"text\": \"energy flows\"}\n{\"id\": \"c\", \"text\": \"\"}\n{\"id\": \"d\", \"text\": \"the lattice\"}\n").unwrap();
    let prep = [
        "prepare",
        "flows.ron",
        "--out",
        "tp",
        "--texts",
        "t.jsonl",
        "--encoder",
        enc,
    ];
    ok(&lattice_in(d, &prep, &[]));
    let m = read_json(&d.join("tp/batches.json"));
    assert_eq!(m["text_ids"], serde_json::json!(["a", "b", "c", "d"]));
    run(
        "flows.ron",
        "texts",
        &["--texts", "t.jsonl", "--encoder", enc],
    );
    run("flows.ron", "prepared", &["--embeddings", "tp"]);
    assert!(same(d, "texts", "prepared", "surface.npy"));
    assert!(!same(d, "texts", "seeded", "surface.npy"));
}

#[test]
fn prepare_refuses_a_folder_with_batches_and_an_empty_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("flows.ron"), FLOWS).unwrap();
    ok(&lattice_in(
        d,
        &["prepare", "flows.ron", "--out", "prep"],
        &[],
    ));
    let again = lattice_in(d, &["prepare", "flows.ron", "--out", "prep"], &[]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("already holds .npy files"),
        "{}",
        again.stderr
    );
    let zero = lattice_in(
        d,
        &["prepare", "flows.ron", "--out", "z", "--batch-size", "0"],
        &[],
    );
    assert!(
        zero.code == 2 && zero.stderr.contains("holds no item"),
        "{}",
        zero.stderr
    );
    let both = with_inputs(FLOWS, "prep", "InOrder").replace(
        "spawn:",
        "texts: Some((file: \"t.txt\", encoder: \"e\")), spawn:",
    );
    std::fs::write(d.join("both.ron"), both).unwrap();
    let r = lattice_in(d, &["run", "both.ron", "--backend", "cpu"], &[]);
    assert!(
        r.code == 2 && r.stderr.contains("texts and inputs both"),
        "{}",
        r.stderr
    );
}
