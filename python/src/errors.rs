//! Engine errors as Python exceptions: bad input (config, arrays, weights) is a `ValueError`,
//! a device failure a `RuntimeError`, a batch that fits no memory a `MemoryError`; the
//! message is the engine's own.

use lattice::Error;
use pyo3::PyErr;
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyValueError};

/// The Python exception for an engine error (an observer's error is handled by the caller,
/// which holds the Python exception that caused it).
pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Config(_)
        | Error::Lattice(_)
        | Error::Weights(_)
        | Error::Input { .. }
        | Error::NonFiniteInput { .. }
        | Error::DuplicateItem(_)
        | Error::BatchTooLarge { .. }
        | Error::Domain(_)
        | Error::Text(_)
        | Error::EncoderWidth { .. }
        | Error::Texts(_)
        | Error::Serialize(_) => PyValueError::new_err(message),
        Error::OutOfMemory { .. } => PyMemoryError::new_err(message),
        Error::Gpu { .. }
        | Error::SelfCheck { .. }
        | Error::BatchOfOneFailed(_)
        | Error::RankAllocation
        | Error::Observer(_) => PyRuntimeError::new_err(message),
    }
}
