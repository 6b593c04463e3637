//! `lattice.Encoder`: texts to unit embeddings with a local sentence encoder (the engine's
//! `lattice::Encoder`), as numpy arrays, the GIL released while it computes.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::f32_output;
use crate::errors::{input_error, to_py};

/// A sentence encoder loaded from a local Hugging Face model folder.
#[pyclass(module = "lattice._lattice", frozen)]
pub struct Encoder {
    pub inner: lattice::Encoder,
    report: std::sync::Mutex<Option<lattice::Encoded>>,
}

#[pymethods]
impl Encoder {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| lattice::Encoder::load(&path))
            .map_err(|e| to_py(e.into()))?;
        Ok(Self {
            inner,
            report: std::sync::Mutex::new(None),
        })
    }

    /// Width of the embeddings.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Tokens per text (special tokens included); longer texts are truncated.
    #[getter]
    fn max_tokens(&self) -> usize {
        self.inner.max_tokens()
    }

    /// "bert" or "nomic_bert".
    #[getter]
    fn architecture(&self) -> &'static str {
        self.inner.architecture()
    }

    /// The model folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.dir().to_path_buf()
    }

    /// Unit embeddings of `texts`, float32 [len(texts), dim], in batches of `batch_size`.
    #[pyo3(signature = (texts, *, batch_size = lattice::text::DEFAULT_MAX_BATCH_SIZE))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let encoded = encode(py, &self.inner, &texts, batch_size)?;
        let shape = [encoded.texts(), encoded.dim];
        let values = encoded.embeddings.clone();
        *self
            .report
            .lock()
            .expect("the report lock is never poisoned") = Some(encoded);
        f32_output(py, values, &shape)
    }

    /// Figures of the last `encode`: texts, tokens, truncated, seconds, texts_per_s,
    /// tokens_per_s, and per batch texts, tokens, padded_tokens, seconds, tokens_per_s,
    /// peak_memory_bytes. None before the first.
    #[getter]
    fn last_report<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let guard = self
            .report
            .lock()
            .expect("the report lock is never poisoned");
        let Some(e) = guard.as_ref() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("texts", e.texts())?;
        d.set_item("tokens", e.tokens())?;
        d.set_item("truncated", e.truncated)?;
        d.set_item("seconds", e.seconds)?;
        d.set_item("texts_per_s", e.texts_per_s())?;
        d.set_item("tokens_per_s", e.tokens_per_s())?;
        let batches =
            pythonize::pythonize(py, &e.batches).map_err(|err| input_error(err.to_string()))?;
        d.set_item("batches", batches)?;
        Ok(Some(d))
    }

    fn __repr__(&self) -> String {
        format!(
            "Encoder({:?}, {}, {}-d, max_tokens {})",
            self.inner.dir().display().to_string(),
            self.inner.architecture(),
            self.inner.dim(),
            self.inner.max_tokens()
        )
    }
}

/// Encodes with the GIL released.
pub fn encode(
    py: Python<'_>,
    encoder: &lattice::Encoder,
    texts: &[String],
    batch_size: usize,
) -> PyResult<lattice::Encoded> {
    py.detach(|| encoder.encode(texts, batch_size))
        .map_err(|e| to_py(e.into()))
}
