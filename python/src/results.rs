//! What `Simulation.run` returns: the outputs as numpy arrays in the order the items were
//! given, each item's ok/error, and the run's figures.

use lattice::core::flows::run::StepRecord;
use lattice::{Output, Results, Stats};
use numpy::{PyArray, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::f32_output;

/// A MoE run's results.
#[pyclass(frozen, module = "lattice")]
pub struct MoeResult {
    /// Item ids, in the order of the arrays' first axis.
    #[pyo3(get)]
    ids: Vec<u64>,
    /// Final states, float32 `[B, N, S]` (cell order x + y·W + z·W·H).
    #[pyo3(get)]
    states: Py<PyAny>,
    /// Per item: whether it finished without error.
    #[pyo3(get)]
    ok: Vec<bool>,
    /// Per item: why it failed (non-finite state, with step and cell), or None.
    #[pyo3(get)]
    errors: Vec<Option<String>>,
    /// The run's figures (those `lattice run` prints and writes to metrics.json).
    #[pyo3(get)]
    stats: Py<PyDict>,
}

/// A flows run's results.
#[pyclass(frozen, module = "lattice")]
pub struct FlowsResult {
    /// Item ids, in the order of the arrays' first axis.
    #[pyo3(get)]
    ids: Vec<u64>,
    /// Surfaces, float32 `[B, 2, H, W]` (front, back).
    #[pyo3(get)]
    surface: Py<PyAny>,
    /// Flows landed in each cell of `surface`, uint32 `[B, 2, H, W]` (where 0, the surface
    /// holds the empty softmax's 0, not a flow's energy).
    #[pyo3(get)]
    landed: Py<PyAny>,
    /// Both planes in one softmax, float32 `[B, H, W]`.
    #[pyo3(get)]
    merged: Py<PyAny>,
    /// With `collector` on: the embedding collected from each merged surface, `[B, E]`.
    #[pyo3(get)]
    embeddings_out: Option<Py<PyAny>>,
    /// Per item: flow counts, steps run, why it stopped, the mean steps of the flows that
    /// reached a plane (`mean_path_steps`) and `completed_per_created`.
    #[pyo3(get)]
    counts: Vec<Py<PyAny>>,
    /// Per step, summed over all items: live, spawned, completed, reflected, dropped, and
    /// the mean and variance of the moved flows' z movement (`z_move_mean`,
    /// `z_move_variance`).
    #[pyo3(get)]
    steps: Vec<Py<PyAny>>,
    /// With `trace` in the config: the newest spawn / reflect / terminate events of the run
    /// (what `events.jsonl` holds), one dict each; None without a trace.
    #[pyo3(get)]
    events: Option<Py<PyAny>>,
    /// Events pushed out of the trace's ring buffer (None without a trace).
    #[pyo3(get)]
    events_overwritten: Option<u64>,
    /// Per item: whether it finished without error.
    #[pyo3(get)]
    ok: Vec<bool>,
    /// Per item: why it failed, or None.
    #[pyo3(get)]
    errors: Vec<Option<String>>,
    /// The run's figures.
    #[pyo3(get)]
    stats: Py<PyDict>,
}

#[pymethods]
impl MoeResult {
    fn __len__(&self) -> usize {
        self.ids.len()
    }

    fn __repr__(&self) -> String {
        let failed = self.ok.iter().filter(|&&ok| !ok).count();
        format!("MoeResult({} items, {failed} failed)", self.ids.len())
    }
}

#[pymethods]
impl FlowsResult {
    fn __len__(&self) -> usize {
        self.ids.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "FlowsResult({} items, {} steps)",
            self.ids.len(),
            self.steps.len()
        )
    }
}

/// Item ids, outcome flags and errors in submission order.
fn outcomes(results: &Results, ids: &[u64]) -> (Vec<bool>, Vec<Option<String>>) {
    let get = |id| results.get(id).expect("every submitted item has a result");
    let ok = ids.iter().map(|&id| get(id).is_ok()).collect();
    let errors = (ids.iter())
        .map(|&id| get(id).error.as_ref().map(ToString::to_string))
        .collect();
    (ok, errors)
}

/// MoE results; `shape` is `[N, S]`.
pub fn moe(
    py: Python<'_>,
    results: &Results,
    ids: Vec<u64>,
    shape: [usize; 2],
) -> PyResult<Py<PyAny>> {
    let mut states = Vec::with_capacity(ids.len() * shape[0] * shape[1]);
    for id in &ids {
        states.extend_from_slice(results.get(*id).expect("submitted").output.states());
    }
    let (ok, errors) = outcomes(results, &ids);
    let states = f32_output(py, states, &[ids.len(), shape[0], shape[1]])?.unbind();
    let stats = stats(py, &results.stats)?.unbind();
    let r = MoeResult {
        ids,
        states,
        ok,
        errors,
        stats,
    };
    Ok(Py::new(py, r)?.into_any())
}

/// Flows results; `hw` is `[H, W]`, `embedding_dim` the collector's width.
pub fn flows(
    py: Python<'_>,
    results: &Results,
    ids: Vec<u64>,
    hw: [usize; 2],
    embedding_dim: usize,
) -> PyResult<Py<PyAny>> {
    let (mut planes, mut merged, mut collected) = (Vec::new(), Vec::new(), Vec::new());
    let mut landed = Vec::new();
    let mut counts = Vec::with_capacity(ids.len());
    for id in &ids {
        let Output::Flows {
            planes: p,
            merged: m,
            landed: l,
            totals,
            embedding_out,
        } = &results.get(*id).expect("submitted").output
        else {
            unreachable!("a flows run gives flows outputs");
        };
        planes.extend_from_slice(p);
        merged.extend_from_slice(m);
        landed.extend_from_slice(l);
        collected.extend(embedding_out.iter().flatten());
        counts.push(pythonize::pythonize(py, totals.as_ref())?.unbind());
    }
    let b = ids.len();
    let [h, w] = hw;
    let embeddings_out = if collected.is_empty() {
        None
    } else {
        Some(f32_output(py, collected, &[b, embedding_dim])?.unbind())
    };
    let steps = (results.flow_steps.iter())
        .map(|s| Ok(step_dict(py, s)?.into_any().unbind()))
        .collect::<PyResult<_>>()?;
    let (ok, errors) = outcomes(results, &ids);
    let events = match &results.trace {
        Some(t) => {
            let list: Vec<_> = t.events().collect();
            Some(pythonize::pythonize(py, &list)?.unbind())
        }
        None => None,
    };
    let r = FlowsResult {
        events,
        events_overwritten: results.trace.as_ref().map(|t| t.overwritten),
        surface: f32_output(py, planes, &[b, 2, h, w])?.unbind(),
        landed: PyArray::from_vec(py, landed)
            .reshape([b, 2, h, w])?
            .into_any()
            .unbind(),
        merged: f32_output(py, merged, &[b, h, w])?.unbind(),
        embeddings_out,
        counts,
        steps,
        ok,
        errors,
        stats: stats(py, &results.stats)?.unbind(),
        ids,
    };
    Ok(Py::new(py, r)?.into_any())
}

/// One step's counts with the mean and variance of its z movement.
fn step_dict<'py>(py: Python<'py>, s: &StepRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = pythonize::pythonize(py, s)?.cast_into::<PyDict>()?;
    d.set_item("z_move_mean", s.z_move_mean())?;
    d.set_item("z_move_variance", s.z_move_variance())?;
    Ok(d)
}

/// The run's figures as a dict.
fn stats<'py>(py: Python<'py>, st: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("backend", &st.backend)?;
    d.set_item("total_s", st.total_s)?;
    d.set_item("items_per_s", st.items_per_s)?;
    d.set_item("work", st.work)?;
    d.set_item("work_per_s", st.work_per_s())?;
    d.set_item("batch_size", st.batch_size)?;
    d.set_item("batch_sizes", &st.batch_sizes)?;
    d.set_item("halvings", st.halvings)?;
    d.set_item("mean_step_ms", st.mean_step_ms)?;
    d.set_item("max_step_ms", st.max_step_ms)?;
    d.set_item("mean_item_s", st.mean_item_s)?;
    d.set_item("peak_host_memory_bytes", st.peak_host_memory_bytes)?;
    d.set_item("host_bytes_per_item", st.host_bytes_per_item)?;
    d.set_item("device_bytes_per_item", st.device_bytes_per_item)?;
    Ok(d)
}
