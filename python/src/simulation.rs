//! `lattice.Simulation`: a config and its model on a backend, run on numpy inputs.

use std::path::PathBuf;

use lattice::core::flows::FlowShape;
use lattice::core::tensors::NamedTensors;
use lattice::{Item, Model};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::{Dim, f32_input, f32_output};
use crate::encoder::Encoder;
use crate::errors::{input_error, to_py};
use crate::watch::Watch;
use crate::{config, results};

/// A configured simulation (MoE or flows) on a chosen backend.
#[pyclass(module = "lattice")]
pub struct Simulation {
    inner: lattice::Simulation,
}

#[pymethods]
impl Simulation {
    /// `config`: a path, a RON string or a dict; `backend`: "auto", "gpu" or "cpu".
    #[new]
    #[pyo3(signature = (config, backend = "auto"))]
    fn new(config: &Bound<'_, PyAny>, backend: &str) -> PyResult<Self> {
        let inner = config::simulation(config, config::backend(backend)?)?;
        Ok(Self { inner })
    }

    /// "moe" or "flows".
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner.model() {
            Model::Moe(_) => "moe",
            Model::Flows(_) => "flows",
        }
    }

    /// The backend it runs on, e.g. "cpu (2 threads)".
    #[getter]
    fn backend(&self) -> String {
        self.inner.backend().name()
    }

    /// Steps an item runs (flows: at most).
    #[getter]
    fn steps(&self) -> u32 {
        self.inner.steps()
    }

    /// The config's `batch.items`: the items a run without inputs or ids runs.
    #[getter]
    fn items(&self) -> u32 {
        self.inner.config().batch.items
    }

    /// The config's seed.
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.config().seed
    }

    /// Lattice size (W, H, D).
    #[getter]
    fn dims(&self) -> (u32, u32, u32) {
        match self.inner.model() {
            Model::Moe(m) => {
                let [w, h, d] = m.cache.dims().as_array();
                (w, h, d)
            }
            Model::Flows(f) => {
                let s = FlowShape::from_config(&f.cfg);
                (s.w, s.h, s.d)
            }
        }
    }

    /// The shape of one item's input: MoE `(N, S)`, flows `(embedding_dim,)`.
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        match self.inner.model() {
            Model::Moe(m) => {
                vec![m.cache.dims().cells_usize(), m.cfg.state_size as usize]
            }
            Model::Flows(f) => vec![f.cfg.embedding_dim as usize],
        }
    }

    /// The config as RON text (what a config file would hold).
    fn config_ron(&self) -> PyResult<String> {
        let pretty = ron::ser::PrettyConfig::default();
        ron::ser::to_string_pretty(self.inner.config(), pretty)
            .map_err(|e| input_error(e.to_string()))
    }

    /// Every weight tensor as a float32 array, by the names of docs/weights.md.
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, shape, values) in self.inner.weights() {
            let shape: Vec<usize> = shape.iter().map(|&s| s as usize).collect();
            d.set_item(name, f32_output(py, values.to_vec(), &shape)?)?;
        }
        Ok(d)
    }

    /// Replaces the weights: a dict of float32 arrays under the names of docs/weights.md
    /// (exactly those tensors, with their shapes), or a `.safetensors` path.
    fn load_weights(&mut self, py: Python<'_>, weights: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(dict) = weights.cast::<PyDict>() {
            let named = named_tensors(dict)?;
            return (self.inner.set_weights("weights dict", named)).map_err(to_py);
        }
        let Ok(path) = weights.extract::<PathBuf>() else {
            return Err(PyTypeError::new_err(
                "weights must be a dict of numpy arrays or a .safetensors path",
            ));
        };
        let inner = &mut self.inner;
        py.detach(|| inner.load_weights(&path)).map_err(to_py)
    }

    /// Writes the weights as `.safetensors`.
    fn save_weights(&self, path: PathBuf) -> PyResult<()> {
        self.inner.save_weights(&path).map_err(to_py)
    }

    /// Runs items and returns their results, in the order given.
    ///
    /// MoE: `states` float32 `[B, N, S]`, or None for states seeded by item id. Flows:
    /// `embeddings` float32 `[B, embedding_dim]`, or `texts` (one item per text, embedded by
    /// `encoder`: an `Encoder`, a model folder, or by default the config's `texts.encoder`),
    /// or None for the config's texts if it has them, else seeded embeddings. `ids` name the
    /// items (default 0..B, or 0..config items without inputs); `steps` overrides the
    /// config's for this run; `callback(event: dict)` is called after every step.
    #[pyo3(signature = (states = None, *, embeddings = None, texts = None, encoder = None, ids = None, steps = None, callback = None))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        py: Python<'_>,
        states: Option<&Bound<'_, PyAny>>,
        embeddings: Option<&Bound<'_, PyAny>>,
        texts: Option<Vec<String>>,
        encoder: Option<&Bound<'_, PyAny>>,
        ids: Option<Vec<u64>>,
        steps: Option<u32>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let given = states.is_some() || embeddings.is_some();
        let texts = match texts {
            Some(_) if given => {
                return Err(input_error(
                    "texts= gives the embeddings; pass texts= or embeddings=/states=, not both",
                ));
            }
            None if encoder.is_some() => {
                return Err(input_error("encoder= embeds texts; pass them as texts="));
            }
            None if !given => self.inner.config_texts().map_err(to_py)?.map(|t| t.texts),
            t => t,
        };
        let items = match texts {
            Some(t) => self.text_items(py, &t, encoder, ids)?,
            None => self.items_of(states, embeddings, ids)?,
        };
        let ids: Vec<u64> = items.iter().map(|i| i.id).collect();
        let mut watch = Watch::new(callback);
        let configured = self.inner.steps();
        if let Some(s) = steps {
            self.inner.set_steps(s);
        }
        let inner = &self.inner;
        let outcome = py.detach(|| inner.run_observed(&items, &mut watch));
        self.inner.set_steps(configured);
        let results = outcome.map_err(|e| watch.error(e))?;
        match self.inner.model() {
            Model::Moe(m) => {
                let shape = [m.cache.dims().cells_usize(), m.cfg.state_size as usize];
                results::moe(py, &results, ids, shape)
            }
            Model::Flows(f) => {
                let s = FlowShape::from_config(&f.cfg);
                let hw = [s.h as usize, s.w as usize];
                results::flows(py, &results, ids, hw, f.cfg.embedding_dim as usize)
            }
        }
    }

    fn __repr__(&self) -> String {
        let (w, h, d) = self.dims();
        format!(
            "Simulation({} {w}×{h}×{d}, {} steps, backend {:?})",
            self.kind(),
            self.steps(),
            self.backend()
        )
    }
}

impl Simulation {
    /// One item per text, embedded by `encoder` (an `Encoder`, a model folder, or the
    /// config's).
    fn text_items(
        &self,
        py: Python<'_>,
        texts: &[String],
        encoder: Option<&Bound<'_, PyAny>>,
        ids: Option<Vec<u64>>,
    ) -> PyResult<Vec<Item>> {
        let held: Bound<'_, Encoder>;
        let loaded: lattice::Encoder;
        let enc: &lattice::Encoder = match encoder {
            Some(obj) if obj.is_instance_of::<Encoder>() => {
                held = obj.cast::<Encoder>()?.clone();
                &held.get().inner
            }
            Some(obj) => {
                let path: PathBuf = obj.extract().map_err(|_| {
                    PyTypeError::new_err("encoder= takes an Encoder or a model folder's path")
                })?;
                loaded = py
                    .detach(|| self.inner.load_encoder(&path))
                    .map_err(to_py)?;
                &loaded
            }
            None => match py.detach(|| self.inner.config_encoder()).map_err(to_py)? {
                Some(e) => {
                    loaded = e;
                    &loaded
                }
                None => {
                    return Err(input_error(
                        "texts= needs an encoder: pass encoder= (an Encoder or a model folder), or set texts.encoder in the config",
                    ));
                }
            },
        };
        let ids = ids.unwrap_or_else(|| (0..texts.len() as u64).collect());
        if ids.len() != texts.len() {
            return Err(input_error(format!(
                "ids has {} entries but texts has {}",
                ids.len(),
                texts.len()
            )));
        }
        let batch = self.inner.encoder_batch_size();
        let inner = &self.inner;
        let encoded = py
            .detach(|| inner.embed_texts(enc, texts, batch, |_| {}))
            .map_err(to_py)?;
        Ok(ids
            .into_iter()
            .enumerate()
            .map(|(k, id)| Item::embedding(id, encoded.row(k).to_vec()))
            .collect())
    }

    /// The items of a run from its inputs (checked as arrays here, as items by the engine).
    fn items_of(
        &self,
        states: Option<&Bound<'_, PyAny>>,
        embeddings: Option<&Bound<'_, PyAny>>,
        ids: Option<Vec<u64>>,
    ) -> PyResult<Vec<Item>> {
        let input = self.input_shape();
        let (given, what) = match (self.inner.model(), states, embeddings) {
            (Model::Moe(_), _, Some(_)) => {
                return Err(input_error(
                    "a MoE simulation takes states=, not embeddings=",
                ));
            }
            (Model::Flows(_), Some(_), _) => {
                return Err(input_error(
                    "a flows simulation takes embeddings=, not states",
                ));
            }
            (Model::Moe(_), s, None) => (s, "states"),
            (Model::Flows(_), None, e) => (e, "embeddings"),
        };
        let Some(array) = given else {
            let ids = ids.unwrap_or_else(|| (0..u64::from(self.items())).collect());
            return Ok(ids.into_iter().map(Item::seeded).collect());
        };
        let want: Vec<Dim> = std::iter::once(Dim::Any)
            .chain(input.iter().map(|&n| Dim::Is(n)))
            .collect();
        let shape = format!("[B, {}]", join(&input));
        let (got, values) = f32_input(array, what, &shape, &want)?;
        let b = got[0];
        let ids = ids.unwrap_or_else(|| (0..b as u64).collect());
        if ids.len() != b {
            return Err(input_error(format!(
                "ids has {} entries but {what} has {b} items",
                ids.len()
            )));
        }
        let per = values.len() / b;
        let make = |(k, id): (usize, u64)| {
            let v = values[k * per..(k + 1) * per].to_vec();
            match self.inner.model() {
                Model::Moe(_) => Item::states(id, v),
                Model::Flows(_) => Item::embedding(id, v),
            }
        };
        Ok(ids.into_iter().enumerate().map(make).collect())
    }
}

/// `name → (shape, values)` from a dict of float32 arrays; every value checked finite.
fn named_tensors(dict: &Bound<'_, PyDict>) -> PyResult<NamedTensors> {
    let mut named = NamedTensors::new();
    for (key, value) in dict.iter() {
        let name: String = key
            .extract()
            .map_err(|_| PyTypeError::new_err("weights dict keys must be tensor names (str)"))?;
        let ndim = value
            .getattr("ndim")
            .and_then(|n| n.extract::<usize>())
            .unwrap_or(0);
        let what = format!("weights[{name:?}]");
        let want = vec![Dim::Any; ndim];
        let (shape, values) = f32_input(&value, &what, "of docs/weights.md", &want)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(input_error(format!(
                "{what} is not finite at flat index {i} ({})",
                values[i]
            )));
        }
        named.insert(name, (shape, values));
    }
    Ok(named)
}

fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
