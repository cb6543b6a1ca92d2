//! Events from Python: IDs, hashes, redaction, v12 room IDs.

use pyo3::prelude::*;

#[allow(unused_imports)]
use super::args::{self, Int, Text};
use pyo3::types::PyDict;

use super::convert::{json_input, to_object, to_python};
use crate::event;
use crate::ids;
use crate::json::{self, Value};
use crate::redaction;
use crate::room_version::RoomVersion;

/// The event ID of a PDU (`dict` or JSON text) in room version `room_version` (e.g. `"12"`).
#[pyfunction]
fn event_id(py: Python<'_>, event: &Bound<'_, PyAny>, room_version: Text) -> PyResult<String> {
    let version = RoomVersion::from_id(&room_version)?;
    // JSON text is parsed and hashed in one release of the interpreter lock, not two.
    if let Some(input) = json_input(event)? {
        let bytes = input.bytes();
        return Ok(py.detach(|| event::event_id_from_json(bytes, version))?);
    }
    let event = to_object(event, "event")?;
    Ok(py.detach(|| event::event_id(&event, version))?)
}

/// The room ID a v12 `m.room.create` event (`dict` or JSON text) starts.
#[pyfunction]
fn room_id_from_create_event(py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Some(input) = json_input(event)? {
        let bytes = input.bytes();
        return Ok(py.detach(|| {
            json::parse_object(bytes).and_then(|event| event::room_id_from_create_event(&event))
        })?);
    }
    let event = to_object(event, "event")?;
    Ok(py.detach(|| event::room_id_from_create_event(&event))?)
}

/// The redacted form of an event under the rules of `room_version`, as a new `dict`.
#[pyfunction]
fn redact<'py>(
    py: Python<'py>,
    event: &Bound<'py, PyAny>,
    room_version: Text,
) -> PyResult<Bound<'py, PyDict>> {
    let version = RoomVersion::from_id(&room_version)?;
    let event = to_object(event, "event")?;
    let redacted = py.detach(|| redaction::redact(&event, version))?;
    Ok(to_python(py, &Value::Object(redacted))?.cast_into::<PyDict>()?)
}

/// The event's content hash (unpadded standard base64 of SHA-256), as `hashes.sha256` holds it.
#[pyfunction]
fn content_hash(py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<String> {
    let event = to_object(event, "event")?;
    Ok(py.detach(|| event::content_hash_base64(&event)))
}

/// The event's reference hash (unpadded base64; URL-safe where the room version uses it for IDs).
#[pyfunction]
fn reference_hash(
    py: Python<'_>,
    event: &Bound<'_, PyAny>,
    room_version: Text,
) -> PyResult<String> {
    let version = RoomVersion::from_id(&room_version)?;
    let event = to_object(event, "event")?;
    Ok(py.detach(|| event::reference_hash_base64(&event, version))?)
}

/// True if `user_id` is a server pseudouser (`@:server`, empty localpart, valid server name).
#[pyfunction]
fn is_server_pseudouser(user_id: Text) -> bool {
    ids::is_server_pseudouser(&user_id)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(event_id, m)?)?;
    m.add_function(wrap_pyfunction!(room_id_from_create_event, m)?)?;
    m.add_function(wrap_pyfunction!(redact, m)?)?;
    m.add_function(wrap_pyfunction!(content_hash, m)?)?;
    m.add_function(wrap_pyfunction!(reference_hash, m)?)?;
    m.add_function(wrap_pyfunction!(is_server_pseudouser, m)?)?;
    Ok(())
}
