//! Decisions from Python: `servership.Decision`, what every membership, peeking, s2s and knock
//! check returns.

use pyo3::prelude::*;

use super::convert::to_python;
use super::room_state::py_repr;
use crate::decision::Decision;

/// The outcome of a check: `allowed`, `verdict` (`"allow"`, `"deny"` or `"pending"`), a stable
/// `reason` code and a `detail` sentence. True in a boolean context exactly when allowed.
#[pyclass(frozen, eq, module = "servership", name = "Decision")]
#[derive(PartialEq)]
pub(crate) struct PyDecision {
    inner: Decision,
}

impl From<Decision> for PyDecision {
    fn from(inner: Decision) -> Self {
        PyDecision { inner }
    }
}

#[pymethods]
impl PyDecision {
    /// True only for the verdict `"allow"`.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.is_allowed()
    }

    /// `"allow"`, `"deny"` or `"pending"`.
    #[getter]
    fn verdict(&self) -> &'static str {
        self.inner.verdict.as_str()
    }

    /// The stable snake_case reason code (e.g. `"no_user_of_server"`).
    #[getter]
    fn reason(&self) -> &'static str {
        self.inner.reason.as_str()
    }

    /// A sentence for logs and moderators.
    #[getter]
    fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// `{"allowed", "verdict", "reason", "detail"}` as a `dict`.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.to_json())
    }

    fn __bool__(&self) -> bool {
        self.inner.is_allowed()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Decision(verdict={}, reason={}, detail={})",
            py_repr(py, self.inner.verdict.as_str())?,
            py_repr(py, self.inner.reason.as_str())?,
            py_repr(py, &self.inner.detail)?
        ))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDecision>()?;
    Ok(())
}
