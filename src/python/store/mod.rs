//! Stores from Python, one file per store of `crate::store`.

pub(crate) mod knocks;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::Error;
use crate::python::args;
use crate::store::{Location, copy_sqlite_to_postgres};

/// copy_store_to_postgres(from_path, to)
/// --
///
/// Copies the SQLite store at `from_path` into the PostgreSQL database `to` (a connection
/// string): tags with their first-joined times, the audit queue and knocks. Idempotent: rows
/// already there are kept. Returns the counts read and copied per table.
#[pyfunction]
fn copy_store_to_postgres<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = args::location)] from_path: Location,
    #[pyo3(from_py_with = args::location)] to: Location,
) -> PyResult<Bound<'py, PyDict>> {
    let Location::Sqlite(from) = from_path else {
        return Err(Error::invalid_param("from_path must be an SQLite file path").into());
    };
    let Location::Postgres(to) = to else {
        return Err(Error::invalid_param("to must be a PostgreSQL connection string").into());
    };
    let report = py.detach(|| copy_sqlite_to_postgres(&from, &to))?;
    let out = PyDict::new(py);
    out.set_item("tags_read", report.tags_read)?;
    out.set_item("tags_copied", report.tags_copied)?;
    out.set_item("audits_read", report.audits_read)?;
    out.set_item("audits_copied", report.audits_copied)?;
    out.set_item("knocks_read", report.knocks_read)?;
    out.set_item("knocks_copied", report.knocks_copied)?;
    Ok(out)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(copy_store_to_postgres, m)?)?;
    knocks::register(m)
}
