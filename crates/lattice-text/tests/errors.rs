//! Model folders that cannot be used fail with an error naming the file and what to do.

use std::path::{Path, PathBuf};

use lattice_text::{Encoder, TextError};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/texts/tiny-bert")
}

/// A copy of the tiny BERT's folder, changed by `edit`.
fn edited(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
    ] {
        std::fs::copy(tiny().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::copy(
        tiny().join("1_Pooling/config.json"),
        dir.path().join("1_Pooling/config.json"),
    )
    .unwrap();
    edit(dir.path());
    dir
}

fn load_error(dir: &Path) -> String {
    match Encoder::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_tokenizer_or_weights_file_is_named() {
    let d = edited(|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    let e = load_error(d.path());
    assert!(e.contains("has no tokenizer.json"), "{e}");
    let d = edited(|d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    let e = load_error(d.path());
    assert!(
        e.contains("model.safetensors") && e.contains("safetensors weights only"),
        "{e}"
    );
    let d = edited(|d| std::fs::remove_file(d.join("config.json")).unwrap());
    assert!(load_error(d.path()).contains("has no config.json"));
    let e = load_error(&tiny().join("no-such-model"));
    assert!(e.contains("is not a folder"), "{e}");
}

#[test]
fn an_unsupported_architecture_is_named_with_the_supported_ones() {
    let d = edited(|d| {
        let p = d.join("config.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"bert\"", "\"roberta\"")).unwrap();
    });
    let e = load_error(d.path());
    assert!(e.contains("\"roberta\"") && e.contains("nomic_bert"), "{e}");
}

#[test]
fn broken_files_and_unsupported_pooling_are_refused() {
    let d = edited(|d| std::fs::write(d.join("tokenizer.json"), "{ not json").unwrap());
    let e = load_error(d.path());
    assert!(e.contains("cannot load the tokenizer"), "{e}");
    let d = edited(|d| std::fs::write(d.join("model.safetensors"), b"12345678").unwrap());
    let e = load_error(d.path());
    assert!(e.contains("cannot load the weights"), "{e}");
    let d = edited(|d| {
        let p = d.join("1_Pooling/config.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            text.replace(
                "\"pooling_mode_max_tokens\": false",
                "\"pooling_mode_max_tokens\": true",
            ),
        )
        .unwrap();
    });
    let e = load_error(d.path());
    assert!(
        e.contains("pooling_mode_max_tokens") && e.contains("not supported"),
        "{e}"
    );
}

#[test]
fn cls_pooling_is_read_from_the_folder() {
    let d = edited(|d| {
        let p = d.join("1_Pooling/config.json");
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace(
                "\"pooling_mode_mean_tokens\": true",
                "\"pooling_mode_mean_tokens\": false",
            )
            .replace(
                "\"pooling_mode_cls_token\": false",
                "\"pooling_mode_cls_token\": true",
            );
        std::fs::write(&p, text).unwrap();
    });
    let enc = Encoder::load(d.path()).unwrap();
    assert_eq!(enc.pooling(), lattice_text::Pooling::Cls);
    let mean = Encoder::load(&tiny()).unwrap();
    let a = enc.encode(&["hello world"], 1).unwrap();
    let b = mean.encode(&["hello world"], 1).unwrap();
    assert_ne!(a.embeddings, b.embeddings);
}

#[test]
fn a_zero_batch_is_refused_and_no_texts_give_no_rows() {
    let enc = Encoder::load(&tiny()).unwrap();
    assert!(matches!(enc.encode(&["a"], 0), Err(TextError::ZeroBatch)));
    let none: [&str; 0] = [];
    let e = enc.encode(&none, 4).unwrap();
    assert_eq!((e.texts(), e.batches.len()), (0, 0));
}
