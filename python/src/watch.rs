//! The observer a Python run uses: between steps it takes the GIL back for a moment to run
//! Python's signal handlers (Ctrl-C raises `KeyboardInterrupt` there) and the caller's
//! per-step callback; an exception from either stops the run and is re-raised as it was.

use lattice::{Error, Observer, ObserverError, StepEvent};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub struct Watch {
    callback: Option<Py<PyAny>>,
    /// The Python exception that stopped the run.
    raised: Option<PyErr>,
}

impl Watch {
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        Self {
            callback,
            raised: None,
        }
    }

    /// A run's error as Python sees it: the exception that stopped it, else the engine's.
    pub fn error(&mut self, e: Error) -> PyErr {
        match (e, self.raised.take()) {
            (Error::Observer(_), Some(raised)) => raised,
            (e, _) => crate::errors::to_py(e),
        }
    }

    fn on_step(&self, py: Python<'_>, e: &StepEvent<'_>) -> PyResult<()> {
        py.check_signals()?;
        if let Some(cb) = &self.callback {
            cb.call1(py, (event(py, e)?,))?;
        }
        Ok(())
    }
}

impl Observer for Watch {
    fn step(&mut self, e: &StepEvent<'_>) -> Result<(), ObserverError> {
        Python::attach(|py| self.on_step(py, e)).map_err(|err| {
            let message = err.to_string();
            self.raised = Some(err);
            message.into()
        })
    }
}

/// The callback's argument: a dict of the step's figures.
fn event<'py>(py: Python<'py>, e: &StepEvent<'_>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("batch", e.batch)?;
    d.set_item("items", (e.items.start, e.items.end))?;
    d.set_item("step", e.step)?;
    d.set_item("steps", e.steps)?;
    d.set_item("ms", e.ms)?;
    d.set_item("units", e.units)?;
    let flows = e.flows.map(|r| pythonize::pythonize(py, r)).transpose()?;
    d.set_item("flows", flows)?;
    Ok(d)
}
