//! The batched encoder: tokenize every text (truncated to the model's length), sort by length
//! so each batch pads little, run batches of at most `max_batch_size` through the transformer
//! with their attention masks, pool, normalize, and put the rows back in input order. A text's
//! embedding does not depend on its batch: padding is masked out of attention and pooling.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use crate::TextError;
use crate::folder::{ModelFolder, Pooling, TOKENIZER};
use crate::model::Transformer;
use crate::pooling::{l2_normalize, pool};

/// Texts per batch when the caller has no preference.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 32;

/// Below this many tokens a text never starts a batch of its own: short texts batch fully.
const SHORT_TOKENS: usize = 32;

/// Batches over texts sorted longest first: at most `max` texts each, and a new batch where a
/// text is less than half as long as its batch's first (once that is past [`SHORT_TOKENS`]),
/// so a few long texts do not pad many short ones to their length. Depends only on the
/// lengths, so the same texts always batch the same way.
fn batch_ranges(lengths: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=lengths.len() {
        let ends = i == lengths.len()
            || i - start == max
            || (lengths[start] > SHORT_TOKENS && 2 * lengths[i] < lengths[start]);
        if ends {
            out.push(start..i);
            start = i;
        }
    }
    out
}

/// A sentence encoder loaded from a local model folder.
pub struct Encoder {
    folder: ModelFolder,
    tokenizer: Tokenizer,
    model: Transformer,
    max_tokens: usize,
    device: Device,
}

/// What one batch did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchReport {
    pub texts: usize,
    /// Real tokens (special tokens included, padding not).
    pub tokens: usize,
    /// Tokens the transformer ran, padding included (texts × longest text).
    pub padded_tokens: usize,
    pub seconds: f64,
    pub tokens_per_s: f64,
    /// The process's peak resident memory during the batch (Linux; else none).
    pub peak_memory_bytes: Option<u64>,
}

/// The embeddings of a list of texts, with how they were made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Encoded {
    /// `texts × dim`, row `i` the embedding of text `i`, each of unit L2 norm.
    pub embeddings: Vec<f32>,
    pub dim: usize,
    /// Texts cut at the model's length.
    pub truncated: usize,
    pub batches: Vec<BatchReport>,
    pub seconds: f64,
}

impl Encoded {
    pub fn texts(&self) -> usize {
        self.embeddings.len() / self.dim.max(1)
    }

    pub fn tokens(&self) -> usize {
        self.batches.iter().map(|b| b.tokens).sum()
    }

    pub fn texts_per_s(&self) -> f64 {
        self.texts() as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }

    pub fn tokens_per_s(&self) -> f64 {
        self.tokens() as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }
}

impl Encoder {
    /// Loads the model in `dir` (config, tokenizer, safetensors weights), reading nothing
    /// from the network.
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let folder = ModelFolder::read(dir)?;
        let tok_path = dir.join(TOKENIZER);
        let tok_error = |message: String| TextError::Tokenizer {
            path: tok_path.clone(),
            message,
        };
        let mut tokenizer =
            Tokenizer::from_file(&tok_path).map_err(|e| tok_error(e.to_string()))?;
        let max_tokens = folder.truncation(tokenizer.get_truncation().map(|t| t.max_length));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| tok_error(e.to_string()))?;
        // Batches are padded here, to their own longest text.
        tokenizer.with_padding(None);
        let device = Device::Cpu;
        let model = Transformer::load(&folder, &device)?;
        tracing::info!(
            model = %dir.display(),
            architecture = folder.architecture.name(),
            dim = folder.architecture.dim(),
            max_tokens,
            "encoder loaded"
        );
        Ok(Self {
            folder,
            tokenizer,
            model,
            max_tokens,
            device,
        })
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.folder.architecture.dim()
    }

    /// Tokens per text (special tokens included); longer texts are truncated to it.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// `"bert"` or `"nomic_bert"`.
    pub fn architecture(&self) -> &'static str {
        self.folder.architecture.name()
    }

    pub fn pooling(&self) -> Pooling {
        self.folder.pooling
    }

    pub fn dir(&self) -> &Path {
        &self.folder.dir
    }

    /// Unit embeddings of `texts`, in batches of at most `max_batch_size`.
    pub fn encode<S: AsRef<str>>(
        &self,
        texts: &[S],
        max_batch_size: usize,
    ) -> Result<Encoded, TextError> {
        self.encode_with(texts, max_batch_size, |_| {})
    }

    /// As [`Self::encode`], calling `on_batch` after every batch (for progress).
    pub fn encode_with<S: AsRef<str>>(
        &self,
        texts: &[S],
        max_batch_size: usize,
        mut on_batch: impl FnMut(&BatchReport),
    ) -> Result<Encoded, TextError> {
        if max_batch_size == 0 {
            return Err(TextError::ZeroBatch);
        }
        let start = Instant::now();
        let encodings = self.tokenize(texts)?;
        let truncated = encodings
            .iter()
            .filter(|e| !e.get_overflowing().is_empty())
            .count();
        // Longest first, ties in input order: batches of similar lengths pad little.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let lengths: Vec<usize> = order.iter().map(|&i| encodings[i].len()).collect();
        let dim = self.dim();
        let mut embeddings = vec![0f32; texts.len() * dim];
        let mut batches = Vec::new();
        for range in batch_ranges(&lengths, max_batch_size) {
            let chunk = &order[range];
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let (rows, report) = self.run_batch(&batch)?;
            for (k, &i) in chunk.iter().enumerate() {
                let out = &mut embeddings[i * dim..(i + 1) * dim];
                out.copy_from_slice(&rows[k * dim..(k + 1) * dim]);
                l2_normalize(out);
            }
            on_batch(&report);
            batches.push(report);
        }
        Ok(Encoded {
            embeddings,
            dim,
            truncated,
            batches,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn tokenize<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Encoding>, TextError> {
        texts
            .iter()
            .enumerate()
            .map(|(index, t)| {
                self.tokenizer
                    .encode(t.as_ref(), true)
                    .map_err(|e| TextError::Tokenize {
                        index,
                        message: e.to_string(),
                    })
            })
            .collect()
    }

    /// The pooled (not yet normalized) rows of one batch, padded to its longest text.
    fn run_batch(&self, batch: &[&Encoding]) -> Result<(Vec<f32>, BatchReport), TextError> {
        let started = Instant::now();
        let reset = lattice_core::memory::reset_peak_rss();
        let longest = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; batch.len() * longest];
        let mut mask = vec![0f32; batch.len() * longest];
        for (b, e) in batch.iter().enumerate() {
            let row = b * longest;
            ids[row..row + e.len()].copy_from_slice(e.get_ids());
            for (m, &a) in mask[row..row + e.len()]
                .iter_mut()
                .zip(e.get_attention_mask())
            {
                *m = a as f32;
            }
        }
        let encode_error = |source| TextError::Encode {
            texts: batch.len(),
            source,
        };
        let rows = self
            .forward(ids, mask, (batch.len(), longest))
            .map_err(encode_error)?;
        let seconds = started.elapsed().as_secs_f64();
        let tokens: usize = batch.iter().map(|e| e.len()).sum();
        let report = BatchReport {
            texts: batch.len(),
            tokens,
            padded_tokens: batch.len() * longest,
            seconds,
            tokens_per_s: tokens as f64 / seconds.max(f64::MIN_POSITIVE),
            peak_memory_bytes: reset.then(lattice_core::memory::peak_rss_bytes).flatten(),
        };
        tracing::debug!(
            texts = report.texts,
            tokens = report.tokens,
            ms = seconds * 1e3,
            "encoded a batch"
        );
        Ok((rows, report))
    }

    fn forward(
        &self,
        ids: Vec<u32>,
        mask: Vec<f32>,
        shape: (usize, usize),
    ) -> candle_core::Result<Vec<f32>> {
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        // The models take the mask as integers (NomicBERT selects with it), pooling as floats.
        let hidden = self.model.forward(&ids, &mask.to_dtype(DType::U32)?)?;
        let pooled = pool(&hidden, &mask, self.folder.pooling)?;
        pooled.flatten_all()?.to_vec1()
    }
}

#[cfg(test)]
mod tests {
    use super::batch_ranges;

    #[test]
    fn long_texts_batch_apart_and_short_ones_fill_their_batches() {
        let lengths = [256, 250, 120, 40, 30, 12, 12, 11, 10, 9, 8, 5];
        assert_eq!(batch_ranges(&lengths, 4), [0..2, 2..3, 3..5, 5..9, 9..12]);
        assert_eq!(batch_ranges(&[10; 5], 2), [0..2, 2..4, 4..5]);
        assert!(batch_ranges(&[], 4).is_empty());
    }
}
