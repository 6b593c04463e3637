//! Everything that can go wrong between a model folder or a texts file and the embeddings, each
//! naming the file and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error(
        "{dir} is not a folder; give the folder of a Hugging Face model (config.json, tokenizer.json, model.safetensors)"
    )]
    NotAFolder { dir: PathBuf },
    #[error("the model folder {dir} has no {file}: {hint}")]
    MissingFile {
        dir: PathBuf,
        file: &'static str,
        hint: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON for this model: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} describes a model of type \"{model_type}\"; lattice encodes with {supported} models"
    )]
    Unsupported {
        path: PathBuf,
        model_type: String,
        supported: &'static str,
    },
    #[error("{path}: {message}")]
    Pooling { path: PathBuf, message: String },
    #[error("cannot load the tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("cannot load the weights {path} as a {model_type} model: {message}")]
    Weights {
        path: PathBuf,
        model_type: String,
        message: String,
    },
    #[error("tokenizing text {index}: {message}")]
    Tokenize { index: usize, message: String },
    #[error("encoding a batch of {texts} texts: {source}")]
    Encode {
        texts: usize,
        #[source]
        source: candle_core::Error,
    },
    #[error("{path} holds no text; put one text per line (or JSON lines with a \"text\" field)")]
    NoTexts { path: PathBuf },
    #[error(
        "{path}, line {line}: not UTF-8 (invalid byte at column {column}); save the file as UTF-8"
    )]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{path}, line {line}: {message}")]
    JsonLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("max_batch_size is 0; give at least 1")]
    ZeroBatch,
}
