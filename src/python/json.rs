//! Canonical JSON from Python.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::convert::{json_input, to_canonical_bytes, to_python};
use crate::error::Error;
use crate::json;

/// Encodes a Python value (`dict`, `list`, `tuple`, `str`, `int`, `bool`, `None`) as canonical
/// JSON. A `str` is a JSON string: `canonical_json("a")` is `b'"a"'`; to canonicalize JSON
/// *text*, use `canonicalize`.
#[pyfunction]
fn canonical_json<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = to_canonical_bytes(value, "value")?;
    Ok(PyBytes::new(py, &bytes))
}

/// Parses JSON text (`bytes`, `bytearray` or `str`) with the strict Matrix rules and returns its
/// canonical encoding.
#[pyfunction]
fn canonicalize<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let Some(input) = json_input(data)? else {
        return Err(Error::bad_json("data must be JSON text: bytes, bytearray or str").into());
    };
    let bytes = input.bytes();
    let canonical = py.detach(|| json::canonicalize(bytes))?;
    Ok(PyBytes::new(py, &canonical))
}

/// Parses JSON text (`bytes`, `bytearray` or `str`) with the strict Matrix rules into Python
/// values.
#[pyfunction]
fn parse_json<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let Some(input) = json_input(data)? else {
        return Err(Error::bad_json("data must be JSON text: bytes, bytearray or str").into());
    };
    let bytes = input.bytes();
    let value = py.detach(|| json::parse(bytes))?;
    to_python(py, &value)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(canonicalize, m)?)?;
    m.add_function(wrap_pyfunction!(parse_json, m)?)?;
    Ok(())
}
