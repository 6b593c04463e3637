//! Texts into the flows: an encoder whose width is checked against the flows' `embedding_dim`
//! before its weights load, texts embedded in batches, one item per text.

use std::path::Path;

use lattice_core::config::{Simulation as Sim, TextsConfig};
use lattice_text::{Encoded, Encoder, ModelFolder, Texts};

use crate::error::{Error, Result};
use crate::simulation::Simulation;

impl Simulation {
    /// Loads the encoder in `dir` for this simulation: a MoE config, or an encoder whose width
    /// is not `embedding_dim`, is refused before the weights are read.
    ///
    /// # Errors
    /// [`Error::Texts`] for a MoE config, [`Error::EncoderWidth`], [`Error::Text`] for a folder
    /// that is missing a file or holds an unsupported architecture.
    pub fn load_encoder(&self, dir: &Path) -> Result<Encoder> {
        load_encoder_for(self.flows_embedding_dim()?, dir)
    }

    /// The encoder the config names (`simulation.Flows.texts.encoder`, relative to the
    /// config's folder), loaded; `None` when the config has no texts.
    ///
    /// # Errors
    /// As [`Self::load_encoder`].
    pub fn config_encoder(&self) -> Result<Option<Encoder>> {
        let Some(t) = self.texts_config() else {
            return Ok(None);
        };
        Ok(Some(self.load_encoder(&self.loaded().resolve(&t.encoder))?))
    }

    /// The texts the config names (`simulation.Flows.texts.file`), read; `None` when the
    /// config has no texts.
    ///
    /// # Errors
    /// [`Error::Text`] for an unreadable, empty or non-UTF-8 file.
    pub fn config_texts(&self) -> Result<Option<Texts>> {
        let Some(t) = self.texts_config() else {
            return Ok(None);
        };
        Ok(Some(lattice_text::read_texts(
            &self.loaded().resolve(&t.file),
        )?))
    }

    /// Texts per encoder batch: the config's `texts.max_batch_size`, else the default.
    pub fn encoder_batch_size(&self) -> usize {
        self.texts_config()
            .map_or(lattice_text::DEFAULT_MAX_BATCH_SIZE, |t| {
                t.max_batch_size as usize
            })
    }

    fn texts_config(&self) -> Option<&TextsConfig> {
        match &self.config().simulation {
            Sim::Flows(f) => f.texts.as_ref(),
            Sim::Moe(_) => None,
        }
    }

    /// Embeds `texts` with `encoder` (loaded by [`Self::load_encoder`]) in batches of at most
    /// `max_batch_size`, calling `on_batch` after each with the texts done so far.
    ///
    /// # Errors
    /// [`Error::EncoderWidth`], [`Error::Text`] when a text cannot be encoded.
    pub fn embed_texts<S: AsRef<str>>(
        &self,
        encoder: &Encoder,
        texts: &[S],
        max_batch_size: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<Encoded> {
        let embedding_dim = self.flows_embedding_dim()?;
        if encoder.dim() != embedding_dim as usize {
            return Err(Error::EncoderWidth {
                encoder: encoder.dir().display().to_string(),
                dim: encoder.dim(),
                embedding_dim,
            });
        }
        let mut done = 0;
        Ok(encoder.encode_with(texts, max_batch_size, |b| {
            done += b.texts;
            on_batch(done);
        })?)
    }

    /// The flows' `embedding_dim`, or an error for a MoE simulation.
    fn flows_embedding_dim(&self) -> Result<u32> {
        match &self.config().simulation {
            Sim::Flows(f) => Ok(f.embedding_dim),
            Sim::Moe(_) => Err(Error::Texts(format!(
                "{} is a Moe config; texts go into Flows runs",
                self.loaded().path.display()
            ))),
        }
    }
}

/// Loads the encoder in `dir` for flows of `embedding_dim`: one of another width is refused
/// before its weights are read.
///
/// # Errors
/// [`Error::EncoderWidth`], [`Error::Text`] for a folder that is missing a file or holds an
/// unsupported architecture.
pub fn load_encoder_for(embedding_dim: u32, dir: &Path) -> Result<Encoder> {
    let folder = ModelFolder::read(dir)?;
    let dim = folder.architecture.dim();
    if dim != embedding_dim as usize {
        return Err(Error::EncoderWidth {
            encoder: dir.display().to_string(),
            dim,
            embedding_dim,
        });
    }
    Ok(Encoder::load(dir)?)
}

/// The texts of a run of `items` items: one item per text, so the file must hold `items`.
///
/// # Errors
/// [`Error::Text`] for an unreadable, empty or non-UTF-8 file; [`Error::Texts`] naming both
/// counts and the fix when they differ.
pub fn read_texts_for(path: &Path, items: usize) -> Result<Texts> {
    let texts = lattice_text::read_texts(path)?;
    if texts.len() != items {
        return Err(Error::Texts(format!(
            "{} holds {} text(s) and the config runs batch.items = {items}: one item runs per text, so set batch.items: {}",
            path.display(),
            texts.len(),
            texts.len()
        )));
    }
    Ok(texts)
}
