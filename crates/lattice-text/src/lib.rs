//! Texts in: seed 002's pipeline (tokenizer → transformer → mean pooling → L2 normalization,
//! batched with chunking) on candle and Hugging Face's tokenizers, giving the unit embeddings
//! the flows take. Models load from a local folder in the Hugging Face layout; nothing is
//! fetched at run time.

mod encoder;
mod error;
mod folder;
mod model;
mod pooling;
mod texts;

pub use encoder::{BatchReport, DEFAULT_MAX_BATCH_SIZE, Encoded, Encoder};
pub use error::TextError;
pub use folder::{Architecture, ModelFolder, Pooling, SUPPORTED};
pub use texts::{Texts, read_texts};
