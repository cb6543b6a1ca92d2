//! Stores from Python, one file per store of `crate::store`.

pub(crate) mod knocks;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    knocks::register(m)
}
