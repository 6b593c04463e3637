//! Engine errors as Python exceptions of `lattice.errors` (each a `LatticeError` and the
//! builtin it stands for: bad input a `ValueError`, a device failure a `RuntimeError`, no
//! room for one item a `MemoryError`); the message is the engine's own.

use lattice::Error;
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// The class of `lattice.errors` an engine error is raised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Config,
    Input,
    Weights,
    Device,
    OutOfMemory,
}

impl Kind {
    fn of(e: &Error) -> Self {
        match e {
            Error::Config(_) | Error::Serialize(_) => Self::Config,
            Error::Weights(_) => Self::Weights,
            Error::Lattice(_)
            | Error::Input { .. }
            | Error::NonFiniteInput { .. }
            | Error::DuplicateItem(_)
            | Error::BatchTooLarge { .. }
            | Error::Domain(_)
            | Error::Text(_)
            | Error::EncoderWidth { .. }
            | Error::Texts(_) => Self::Input,
            Error::OutOfMemory { .. } => Self::OutOfMemory,
            Error::Gpu { .. }
            | Error::SelfCheck { .. }
            | Error::BatchOfOneFailed(_)
            | Error::RankAllocation
            | Error::Observer(_) => Self::Device,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Self::Config => "ConfigError",
            Self::Input => "InputError",
            Self::Weights => "WeightsError",
            Self::Device => "DeviceError",
            Self::OutOfMemory => "OutOfMemoryError",
        }
    }

    /// The exception, of the `lattice.errors` class (the plain builtin if that module cannot be
    /// imported, which only a broken installation causes).
    pub fn err(self, message: String) -> PyErr {
        Python::attach(|py| {
            let class = py
                .import("lattice.errors")
                .and_then(|m| m.getattr(self.class()));
            match class.and_then(|c| c.call1((message.clone(),))) {
                Ok(value) => PyErr::from_value(value),
                Err(_) => match self {
                    Self::Config | Self::Input | Self::Weights => PyValueError::new_err(message),
                    Self::Device => PyRuntimeError::new_err(message),
                    Self::OutOfMemory => PyMemoryError::new_err(message),
                },
            }
        })
    }
}

/// The Python exception for an engine error (an observer's error is handled by the caller,
/// which holds the Python exception that caused it).
pub fn to_py(e: Error) -> PyErr {
    Kind::of(&e).err(e.to_string())
}

/// A `lattice.errors.InputError` for bad input found on the Python side.
pub fn input_error(message: impl Into<String>) -> PyErr {
    Kind::Input.err(message.into())
}

/// A `lattice.errors.ConfigError` for a config given in a form the engine cannot read.
pub fn config_error(message: impl Into<String>) -> PyErr {
    Kind::Config.err(message.into())
}
