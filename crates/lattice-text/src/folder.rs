//! A local model folder in the Hugging Face layout: which architecture `config.json` names,
//! how sentence-transformers pools it (`modules.json`, `1_Pooling/config.json`) and how many
//! tokens it reads (`sentence_bert_config.json`). Nothing is fetched: a missing file is an error.

use std::path::{Path, PathBuf};

use candle_transformers::models::{bert, nomic_bert};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::TextError;

pub const CONFIG: &str = "config.json";
pub const TOKENIZER: &str = "tokenizer.json";
pub const WEIGHTS: &str = "model.safetensors";
const MODULES: &str = "modules.json";
const SENTENCE_CONFIG: &str = "sentence_bert_config.json";
const DEFAULT_POOLING_DIR: &str = "1_Pooling";

/// The architectures lattice runs, as `config.json` names them in `model_type`.
pub const SUPPORTED: &str = "BERT (model_type \"bert\") and NomicBERT (\"nomic_bert\")";

/// The transformer a folder holds, with its own config.
#[derive(Debug, Clone)]
pub enum Architecture {
    Bert(bert::Config),
    NomicBert(nomic_bert::Config),
}

impl Architecture {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bert(_) => "bert",
            Self::NomicBert(_) => "nomic_bert",
        }
    }

    /// Width of the token (and sentence) embeddings.
    pub fn dim(&self) -> usize {
        match self {
            Self::Bert(c) => c.hidden_size,
            Self::NomicBert(c) => c.n_embd,
        }
    }

    /// Longest input the position embeddings cover.
    fn max_positions(&self) -> usize {
        match self {
            Self::Bert(c) => c.max_position_embeddings,
            Self::NomicBert(c) => c.n_positions,
        }
    }
}

/// How token embeddings become one sentence embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the real tokens (the attention mask), sentence-transformers' default.
    Mean,
    /// The first token's ([CLS]) embedding.
    Cls,
}

/// What the folder says about the model, read without loading weights.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    pub dir: PathBuf,
    pub architecture: Architecture,
    pub pooling: Pooling,
    /// Tokens per text, special tokens included; longer texts are truncated to it.
    pub max_tokens: Option<usize>,
}

impl ModelFolder {
    /// Reads the folder's configuration files; the tokenizer and weights must be there too.
    pub fn read(dir: &Path) -> Result<Self, TextError> {
        if !dir.is_dir() {
            return Err(TextError::NotAFolder { dir: dir.into() });
        }
        let architecture = read_architecture(dir)?;
        for (file, hint) in [
            (
                TOKENIZER,
                "lattice needs the fast-tokenizer file (save the model with a recent transformers or sentence-transformers)",
            ),
            (
                WEIGHTS,
                "lattice reads safetensors weights only (convert pytorch_model.bin with safetensors' convert script)",
            ),
        ] {
            require(dir, file, hint)?;
        }
        Ok(Self {
            dir: dir.into(),
            pooling: read_pooling(dir)?,
            max_tokens: read_max_tokens(dir)?,
            architecture,
        })
    }

    /// The truncation length: the folder's own, else the tokenizer's, else the positions the
    /// model has, never more than those.
    pub fn truncation(&self, tokenizer_max: Option<usize>) -> usize {
        let positions = self.architecture.max_positions();
        self.max_tokens
            .or(tokenizer_max)
            .unwrap_or(positions)
            .min(positions)
    }
}

fn require(dir: &Path, file: &'static str, hint: &'static str) -> Result<PathBuf, TextError> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TextError::MissingFile {
            dir: dir.into(),
            file,
            hint,
        })
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TextError> {
    let text = std::fs::read_to_string(path).map_err(|source| TextError::Read {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| TextError::Json {
        path: path.into(),
        source,
    })
}

fn read_architecture(dir: &Path) -> Result<Architecture, TextError> {
    let path = require(
        dir,
        CONFIG,
        "it names the architecture and its sizes (the transformers config)",
    )?;
    #[derive(Deserialize)]
    struct Kind {
        model_type: Option<String>,
    }
    let kind: Kind = read_json(&path)?;
    match kind.model_type.as_deref() {
        Some("bert") => Ok(Architecture::Bert(read_json(&path)?)),
        Some("nomic_bert") => Ok(Architecture::NomicBert(read_json(&path)?)),
        other => Err(TextError::Unsupported {
            path,
            model_type: other.unwrap_or("(none given)").into(),
            supported: SUPPORTED,
        }),
    }
}

/// sentence-transformers' pooling: the Pooling module named in `modules.json` (default folder
/// `1_Pooling`); mean pooling where the folder has none.
fn read_pooling(dir: &Path) -> Result<Pooling, TextError> {
    #[derive(Deserialize)]
    struct Module {
        path: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let modules_path = dir.join(MODULES);
    let pooling_dir = if modules_path.is_file() {
        let modules: Vec<Module> = read_json(&modules_path)?;
        modules
            .into_iter()
            .find(|m| m.kind.ends_with(".Pooling"))
            .map(|m| m.path)
    } else {
        None
    };
    let path = dir
        .join(pooling_dir.as_deref().unwrap_or(DEFAULT_POOLING_DIR))
        .join(CONFIG);
    if !path.is_file() {
        return Ok(Pooling::Mean);
    }
    let modes: serde_json::Map<String, serde_json::Value> = read_json(&path)?;
    let on: Vec<&str> = modes
        .iter()
        .filter(|(k, v)| k.starts_with("pooling_mode_") && v.as_bool() == Some(true))
        .map(|(k, _)| k.as_str())
        .collect();
    match on.as_slice() {
        [] | ["pooling_mode_mean_tokens"] => Ok(Pooling::Mean),
        ["pooling_mode_cls_token"] => Ok(Pooling::Cls),
        _ => Err(TextError::Pooling {
            path,
            message: format!(
                "pooling {} is not supported; lattice pools by the mean of the tokens or by the CLS token",
                on.join(" + ")
            ),
        }),
    }
}

fn read_max_tokens(dir: &Path) -> Result<Option<usize>, TextError> {
    #[derive(Deserialize)]
    struct SentenceConfig {
        max_seq_length: Option<usize>,
    }
    let path = dir.join(SENTENCE_CONFIG);
    if !path.is_file() {
        return Ok(None);
    }
    Ok(read_json::<SentenceConfig>(&path)?.max_seq_length)
}
