//! Texts in through the real binary, CPU path, with the tiny random encoder of
//! tests/data/texts (16-d, so the flows take embedding_dim 16): `lattice embed`, `lattice run
//! --texts` equal to `lattice run --embeddings` of the same vectors byte for byte, the config's
//! `texts` field, and every bad input refused with a message and no panic.

use std::path::{Path, PathBuf};

mod common;
use common::{Ran, lattice_in, read_json, read_npy};

const TEXTS: &str =
    "hello world\nenergy flows to the surface\n\nthe lattice of cells\nÜber ∑ 数据 🚀\nshort\n";
const ITEMS: usize = 6;

fn flows_config(embedding_dim: u32, items: usize, texts: &str) -> String {
    format!(
        "(seed: 3, batch: (items: {items}, max_batch_size: Fixed(4)), simulation: Flows((\
         dims: (6, 5, 8), embedding_dim: {embedding_dim}, carrier: (hidden: 8, layers: 1), \
         neuron: (hidden: 8, output: 8), displacement_scale: 40.0, noise: 0.05, \
         spawn: Some((threshold: 0.15)), collector: true{texts})))"
    )
}

fn tiny_encoder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/texts/tiny-bert")
}

struct Case {
    dir: tempfile::TempDir,
    encoder: String,
}

impl Case {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("flows.ron"), config).unwrap();
        std::fs::write(dir.path().join("texts.txt"), TEXTS).unwrap();
        let encoder = tiny_encoder().display().to_string();
        Self { dir, encoder }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lattice(&self, args: &[&str]) -> Ran {
        lattice_in(self.path(), args, &[])
    }

    /// `lattice embed` of texts.txt with the tiny encoder into `out`.
    fn embed(&self, out: &str) -> Ran {
        self.lattice(&[
            "embed",
            "-q",
            "--encoder",
            &self.encoder,
            "texts.txt",
            "--out",
            out,
        ])
    }

    fn run(&self, args: &[&str]) -> Ran {
        let mut all = vec!["run", "flows.ron", "--backend", "cpu"];
        all.extend_from_slice(args);
        self.lattice(&all)
    }
}

fn ok(r: &Ran) {
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn refused(r: &Ran, wants: &[&str]) {
    assert_eq!(r.code, 2, "expected a refusal: {}", r.stderr);
    for w in wants {
        assert!(r.stderr.contains(w), "missing {w:?} in: {}", r.stderr);
    }
}

#[test]
fn a_run_from_texts_equals_a_run_from_their_embeddings_byte_for_byte() {
    let c = Case::new(&flows_config(16, ITEMS, ""));
    let enc = c.encoder.clone();
    ok(&c.embed("e/emb.npy"));
    let emb = read_npy(&c.path().join("e/emb.npy"));
    assert_eq!(emb.len(), ITEMS * 16);
    let report = read_json(&c.path().join("e/emb.json"));
    assert_eq!(report["texts"], ITEMS);
    assert_eq!(report["ids"][2], "3", "plain lines are numbered from 1");
    ok(&c.run(&[
        "--out",
        "from-texts",
        "--texts",
        "texts.txt",
        "--encoder",
        &enc,
    ]));
    ok(&c.run(&["--out", "from-npy", "--embeddings", "e/emb.npy"]));
    for f in ["surface.npy", "surface_merged.npy", "embeddings_out.npy"] {
        let a = std::fs::read(c.path().join("from-texts").join(f)).unwrap();
        let b = std::fs::read(c.path().join("from-npy").join(f)).unwrap();
        assert!(a == b, "{f} differs");
    }
    let m = read_json(&c.path().join("from-texts/metrics.json"));
    assert_eq!(m["texts"]["ids"].as_array().unwrap().len(), ITEMS);
    assert!(m["embeddings"].as_str().unwrap().starts_with("texts "));
    // A seeded run differs: the texts really went in.
    ok(&c.run(&["--out", "seeded"]));
    let a = std::fs::read(c.path().join("seeded/surface.npy")).unwrap();
    assert!(a != std::fs::read(c.path().join("from-npy/surface.npy")).unwrap());
}

#[test]
fn the_config_field_runs_the_same_texts() {
    let enc = tiny_encoder().display().to_string();
    // The encoder's default batch (32) on both sides: other batches agree within 1e-5, not
    // bit for bit.
    let field = format!(", texts: Some((file: \"texts.txt\", encoder: \"{enc}\"))");
    let c = Case::new(&flows_config(16, ITEMS, &field));
    ok(&c.run(&["--out", "field"]));
    let d = Case::new(&flows_config(16, ITEMS, ""));
    std::fs::copy(c.path().join("texts.txt"), d.path().join("texts.txt")).unwrap();
    ok(&d.run(&["--out", "flag", "--texts", "texts.txt", "--encoder", &enc]));
    let a = std::fs::read(c.path().join("field/surface.npy")).unwrap();
    let b = std::fs::read(d.path().join("flag/surface.npy")).unwrap();
    assert!(a == b, "the field and the flags gave different surfaces");
    // --embeddings on the command line wins over the config's texts.
    ok(&c.embed("emb.npy"));
    ok(&c.run(&["--out", "over", "--embeddings", "emb.npy"]));
    let m = read_json(&c.path().join("over/metrics.json"));
    assert_eq!(m["embeddings"], "emb.npy");
}

#[test]
fn bad_texts_and_encoders_are_refused_before_the_run() {
    let c = Case::new(&flows_config(16, ITEMS, ""));
    let enc = c.encoder.clone();
    let p = c.path();
    std::fs::write(p.join("empty.txt"), "").unwrap();
    std::fs::write(p.join("latin1.txt"), b"caf\xe9\n").unwrap();
    let texts_run =
        |file: &str, encoder: &str| c.run(&["--out", "o", "--texts", file, "--encoder", encoder]);
    refused(&texts_run("empty.txt", &enc), &["holds no text"]);
    refused(
        &texts_run("latin1.txt", &enc),
        &["line 1", "not UTF-8", "column 4"],
    );
    refused(
        &texts_run("missing.txt", &enc),
        &["cannot read", "missing.txt"],
    );
    // A folder without its tokenizer, and one of an unsupported architecture.
    let broken = p.join("broken");
    std::fs::create_dir(&broken).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny_encoder().join(f), broken.join(f)).unwrap();
    }
    refused(
        &texts_run("texts.txt", "broken"),
        &["has no tokenizer.json"],
    );
    let config = std::fs::read_to_string(broken.join("config.json")).unwrap();
    std::fs::write(
        broken.join("config.json"),
        config.replace("\"bert\"", "\"t5\""),
    )
    .unwrap();
    refused(&texts_run("texts.txt", "broken"), &["\"t5\"", "BERT"]);
    // Counts and flags that do not fit the run.
    std::fs::write(p.join("three.txt"), "a\nb\nc\n").unwrap();
    refused(
        &texts_run("three.txt", &enc),
        &["3 text(s)", "batch.items: 3"],
    );
    refused(
        &c.run(&["--out", "o", "--texts", "texts.txt"]),
        &["--texts needs an encoder"],
    );
    refused(
        &c.run(&["--out", "o", "--encoder", &enc]),
        &["give them with --texts"],
    );
    let r = c.run(&[
        "--out",
        "o",
        "--texts",
        "texts.txt",
        "--embeddings",
        "x.npy",
    ]);
    assert_eq!(r.code, 2, "clap refuses both: {}", r.stderr);
    assert!(!p.join("o/metrics.json").exists(), "no run happened");
}

#[test]
fn an_encoder_of_another_width_is_refused_naming_both() {
    let c = Case::new(&flows_config(32, ITEMS, ""));
    let enc = c.encoder.clone();
    let r = c.run(&["--out", "o", "--texts", "texts.txt", "--encoder", &enc]);
    refused(&r, &["16-d", "embedding_dim = 32", "embedding_dim: 16"]);
    let moe = "(simulation: Moe((lattice: (dims: (4, 4, 4)))))";
    std::fs::write(c.path().join("moe.ron"), moe).unwrap();
    let r = c.lattice(&["run", "moe.ron", "--texts", "texts.txt", "--encoder", &enc]);
    refused(&r, &["--texts applies to Flows configs"]);
}

#[test]
fn embed_refuses_bad_inputs_without_writing() {
    let c = Case::new(&flows_config(16, ITEMS, ""));
    let enc = c.encoder.clone();
    std::fs::write(
        c.path().join("bad.jsonl"),
        "{\"id\": 1, \"text\": \"a\"}\n{\"id\": 2}\n",
    )
    .unwrap();
    let r = c.lattice(&["embed", "--encoder", &enc, "bad.jsonl", "--out", "x.npy"]);
    refused(&r, &["bad.jsonl, line 2", "text"]);
    let r = c.lattice(&[
        "embed",
        "--encoder",
        "nowhere",
        "texts.txt",
        "--out",
        "x.npy",
    ]);
    refused(&r, &["nowhere is not a folder"]);
    assert!(!c.path().join("x.npy").exists());
}

/// The shipped texts config validates everywhere, and runs where the real encoder is
/// downloaded (`LATTICE_TEST_ENCODER_DIR`, set by `.ci/run`; scripts/fetch-encoder.sh).
#[test]
fn the_shipped_texts_config_runs_on_all_minilm_l6_v2() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let r = lattice_in(root, &["validate", "configs/flows_texts.ron"], &[]);
    ok(&r);
    let Some(model) = std::env::var_os("LATTICE_TEST_ENCODER_DIR") else {
        assert!(
            std::env::var_os("LATTICE_REQUIRE_ENCODER").is_none(),
            "LATTICE_REQUIRE_ENCODER is set but LATTICE_TEST_ENCODER_DIR is not"
        );
        eprintln!("skipped the run: LATTICE_TEST_ENCODER_DIR names no all-MiniLM-L6-v2 folder");
        return;
    };
    let (model, out) = (model.to_str().unwrap(), out.path().to_str().unwrap());
    let (config, steps) = ("configs/flows_texts.ron", ["--steps", "2"]);
    let args = [
        "run",
        config,
        "--backend",
        "cpu",
        "--encoder",
        model,
        "--out",
        out,
    ];
    let r = lattice_in(root, &[&args[..], &steps].concat(), &[]);
    ok(&r);
    let m = read_json(&Path::new(out).join("metrics.json"));
    assert_eq!(m["texts"]["ids"].as_array().unwrap().len(), 8);
    assert!(m["texts"]["tokens"].as_u64().unwrap() > 8 * 3);
}
