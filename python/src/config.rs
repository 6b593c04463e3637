//! The `config` argument of `Simulation(config, backend)`: a path (`str` or `os.PathLike`), a
//! RON string (what a config file holds), or a dict with the same fields.

use std::path::PathBuf;

use lattice::{BackendChoice, RunConfig, Simulation};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pythonize::Depythonizer;

use crate::errors::{config_error, to_py};

/// `"auto"`, `"gpu"` or `"cpu"`.
pub fn backend(name: &str) -> PyResult<BackendChoice> {
    match name {
        "auto" => Ok(BackendChoice::Auto),
        "gpu" => Ok(BackendChoice::Gpu),
        "cpu" => Ok(BackendChoice::Cpu),
        other => Err(config_error(format!(
            "backend must be \"auto\", \"gpu\" or \"cpu\", not {other:?}"
        ))),
    }
}

/// Builds the simulation from whichever form `config` takes. A `str` is a path when it names
/// an existing file or ends in `.ron`, otherwise RON text.
pub fn simulation(config: &Bound<'_, PyAny>, backend: BackendChoice) -> PyResult<Simulation> {
    let py = config.py();
    if let Ok(dict) = config.cast::<PyDict>() {
        let run_config = from_dict(dict)?;
        return py
            .detach(|| Simulation::new(run_config, backend))
            .map_err(to_py);
    }
    if let Ok(text) = config.cast::<PyString>() {
        let text: String = text.extract()?;
        let path = PathBuf::from(&text);
        if path.is_file() || text.trim_end().ends_with(".ron") {
            return py
                .detach(|| Simulation::from_file(&path, backend))
                .map_err(to_py);
        }
        return (py.detach(|| Simulation::from_ron(&text, "<config string>", backend)))
            .map_err(to_py);
    }
    if let Ok(path) = config.extract::<PathBuf>() {
        return py
            .detach(|| Simulation::from_file(&path, backend))
            .map_err(to_py);
    }
    Err(PyTypeError::new_err(format!(
        "config must be a path, a RON string or a dict, not {}",
        config.get_type().name()?
    )))
}

/// A dict with the fields of a RON config (enums as `"Auto"` or `{"Fixed": 8}`, structs as
/// dicts); an error names the field path.
fn from_dict(dict: &Bound<'_, PyDict>) -> PyResult<RunConfig> {
    let mut de = Depythonizer::from_object(dict.as_any());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        config_error(format!("config dict: at field {field}: {}", e.into_inner()))
    })
}
