//! Event signatures and content hashes from Python
//! ([spec](https://spec.matrix.org/v1.16/server-server-api/#signing-events)).

use pyo3::prelude::*;
use pyo3::types::{PyAny, PyDict};

use super::convert::{to_object, to_python};
use super::signing::{PySigningKey, verify_keys};
use crate::error::Error;
use crate::event;
use crate::json::Value;
use crate::room_version::RoomVersion;

/// Signs an event (`dict` or JSON text) as `server_name` for `room_version`: adds the content hash
/// when `hashes.sha256` is missing (an existing one is kept, as when co-signing an invite) and the
/// signature under `signatures[server_name][key_id]`. Returns a new `dict`.
#[pyfunction]
fn sign_event<'py>(
    py: Python<'py>,
    event: &Bound<'py, PyAny>,
    server_name: &str,
    signing_key: &PySigningKey,
    room_version: &str,
) -> PyResult<Bound<'py, PyDict>> {
    if server_name.is_empty() {
        return Err(Error::invalid_param("server_name must not be empty").into());
    }
    let version = RoomVersion::from_id(room_version)?;
    let mut event = to_object(event, "event")?;
    let key = signing_key.signing_key();
    py.detach(|| event::sign_event(&mut event, server_name, key, version))?;
    Ok(to_python(py, &Value::Object(event))?.cast_into::<PyDict>()?)
}

/// Checks `server_name`'s signature on an event (over its redacted form for `room_version`)
/// against `keys` (a `VerifyKey` or an iterable of them); raises `UnauthorizedError` when no known
/// key signed it or a signature does not verify.
#[pyfunction]
fn verify_event_signature(
    py: Python<'_>,
    event: &Bound<'_, PyAny>,
    server_name: &str,
    keys: &Bound<'_, PyAny>,
    room_version: &str,
) -> PyResult<()> {
    let version = RoomVersion::from_id(room_version)?;
    let keys = verify_keys(keys)?;
    let event = to_object(event, "event")?;
    py.detach(|| event::verify_event_signature(&event, server_name, &keys, version))?;
    Ok(())
}

/// Whether the event's `hashes.sha256` matches its content; raises `BadJsonError` when the hash
/// is missing or malformed.
#[pyfunction]
fn check_content_hash(py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<bool> {
    let event = to_object(event, "event")?;
    Ok(py.detach(|| event::check_content_hash(&event))?)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sign_event, m)?)?;
    m.add_function(wrap_pyfunction!(verify_event_signature, m)?)?;
    m.add_function(wrap_pyfunction!(check_content_hash, m)?)?;
    Ok(())
}
