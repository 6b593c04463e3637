//! The transformer of a folder on candle's CPU device: token ids in, token embeddings out.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert::BertModel, nomic_bert::NomicBertModel};

use crate::TextError;
use crate::folder::{Architecture, ModelFolder, WEIGHTS};

pub enum Transformer {
    Bert(BertModel),
    NomicBert(NomicBertModel),
}

impl Transformer {
    pub fn load(folder: &ModelFolder, device: &Device) -> Result<Self, TextError> {
        let path = folder.dir.join(WEIGHTS);
        let bytes = std::fs::read(&path).map_err(|source| TextError::Read {
            path: path.clone(),
            source,
        })?;
        let weights_error = |e: candle_core::Error| TextError::Weights {
            path: path.clone(),
            model_type: folder.architecture.name().into(),
            message: e.to_string(),
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .map_err(weights_error)?;
        match &folder.architecture {
            Architecture::Bert(c) => BertModel::load(vb, c).map(Self::Bert),
            Architecture::NomicBert(c) => NomicBertModel::load(vb, c).map(Self::NomicBert),
        }
        .map_err(weights_error)
    }

    /// Token embeddings `[batch, tokens, dim]` of `ids` `[batch, tokens]` (u32) under `mask`
    /// (1 for a real token, 0 for padding).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let types = ids.zeros_like()?;
        match self {
            Self::Bert(m) => m.forward(ids, &types, Some(mask)),
            Self::NomicBert(m) => m.forward(ids, Some(&types), Some(mask)),
        }
    }
}
