//! numpy arrays in and out. An input array must be float32, C-contiguous and of the stated
//! shape; anything else is a clear `TypeError` (not an array, wrong dtype) or `ValueError`
//! (shape, layout), never a crash. Values are copied, so the caller's array is never held.

use numpy::{PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray};
use numpy::{PyUntypedArrayMethods, dtype};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::input_error;

/// One expected dimension: a fixed size, or any size (the item count).
#[derive(Clone, Copy)]
pub enum Dim {
    Any,
    Is(usize),
}

/// Checks `obj` against `want` and copies its values out; `what` and `shape` (e.g.
/// `"states"`, `"[B, N, S] = [B, 3375, 24]"`) name it in errors.
pub fn f32_input(
    obj: &Bound<'_, PyAny>,
    what: &str,
    shape: &str,
    want: &[Dim],
) -> PyResult<(Vec<usize>, Vec<f32>)> {
    let py = obj.py();
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a numpy float32 array of shape {shape}, not {}",
            obj.get_type().name()?
        )));
    };
    if !arr.dtype().is_equiv_to(&dtype::<f32>(py)) {
        return Err(PyTypeError::new_err(format!(
            "{what} must be float32, not {} (convert with .astype(numpy.float32))",
            arr.dtype().str()?
        )));
    }
    let got = arr.shape().to_vec();
    let fits = got.len() == want.len()
        && got.iter().zip(want).all(|(&g, w)| match w {
            Dim::Any => g > 0,
            Dim::Is(n) => g == *n,
        });
    if !fits {
        return Err(input_error(format!(
            "{what} must have shape {shape}, not {got:?}"
        )));
    }
    if !arr.is_c_contiguous() {
        return Err(input_error(format!(
            "{what} must be C-contiguous (pass numpy.ascontiguousarray({what}))"
        )));
    }
    let typed = arr.cast::<PyArrayDyn<f32>>()?;
    let values = typed.readonly().as_slice()?.to_vec();
    Ok((got, values))
}

/// A new float32 array of `shape` holding `values`.
pub fn f32_output<'py>(
    py: Python<'py>,
    values: Vec<f32>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray::from_vec(py, values).reshape(shape)?.into_any())
}
