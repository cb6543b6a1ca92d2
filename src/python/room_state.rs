//! Room state from Python: `servership.RoomState`, and how every check reads its state argument.
//!
//! Every state argument accepts a `RoomState`, a `list` of state event `dict`s, or JSON text of
//! such a list; building from a list is the expensive part, so callers that ask several questions
//! about one room build a `RoomState` once.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::args::Text;
use super::convert::{json_input, to_value};
use crate::error::Error;
use crate::json::Value;
use crate::room_state::RoomState;

/// A read-only view of a room's current state. Later events with the same `(type, state_key)`
/// replace earlier ones. Immutable and safe to share between threads.
#[pyclass(frozen, module = "servership", name = "RoomState")]
pub(crate) struct PyRoomState {
    inner: RoomState,
}

#[pymethods]
impl PyRoomState {
    /// Builds the view from a `list` of state event `dict`s or JSON text of such a list. Each
    /// event needs a string `type` and `state_key`; errors name the index (`state[2].type ...`).
    #[staticmethod]
    fn from_events(py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyRoomState {
            inner: build_state(py, events)?,
        })
    }

    /// The `membership` of `user_id`, or `None`.
    fn membership(&self, user_id: Text) -> Option<String> {
        self.inner.membership(&user_id).map(str::to_owned)
    }

    /// The join rule, or `None`.
    #[getter]
    fn join_rule(&self) -> Option<String> {
        self.inner.join_rule().map(str::to_owned)
    }

    /// The room type from the create event, or `None`.
    #[getter]
    fn room_type(&self) -> Option<String> {
        self.inner.room_type().map(str::to_owned)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("RoomState(events={})", self.inner.len())
    }
}

pub(crate) fn build_state(py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<RoomState> {
    if let Some(input) = json_input(events)? {
        let bytes = input.bytes();
        return Ok(py.detach(|| RoomState::from_json(bytes))?);
    }
    if !events.is_instance_of::<PyList>() && !events.is_instance_of::<PyTuple>() {
        return Err(Error::bad_json(format!(
            "state must be a RoomState, a list of events or JSON text, not {}",
            type_name(events)
        ))
        .into());
    }
    let Value::Array(items) = to_value(events, "state")? else {
        return Err(Error::bad_json("state must be a list of events").into());
    };
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(o) => list.push(o),
            other => {
                return Err(Error::bad_json(format!(
                    "state[{i}] must be an object, not {}",
                    other.type_name()
                ))
                .into());
            }
        }
    }
    Ok(py.detach(|| RoomState::from_events(&list))?)
}

/// Python's own `repr` of a string (quotes and escapes as Python writes them).
pub(crate) fn py_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(pyo3::types::PyString::new(py, s).repr()?.to_string())
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Runs `f` on the state given as a `RoomState` (borrowed, no copy) or built from events.
pub(crate) fn with_state<T>(
    state: &Bound<'_, PyAny>,
    f: impl FnOnce(&RoomState) -> PyResult<T>,
) -> PyResult<T> {
    if let Ok(s) = state.cast::<PyRoomState>() {
        return f(&s.get().inner);
    }
    let built = build_state(state.py(), state)?;
    f(&built)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRoomState>()?;
    Ok(())
}
