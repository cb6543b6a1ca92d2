//! The members rules from Python: `check_members_rules`, the additions of room version
//! `org.servership.v12.members.1` on top of v12 (`docs/protocol.md`).

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::args::Text;
use super::convert::{json_input, to_object, to_value};
use super::decision::PyDecision;
use super::room_state::type_name;
use crate::auth::members;
use crate::error::Error;
use crate::json;
use crate::room_version::RoomVersion;

/// The members rules (b–f) for `event`, after the homeserver's own v12 auth (with `peekable` read
/// as `public`). `auth_events` is a list of event dicts (or JSON text of one): the event's auth
/// events plus the room's `m.room.create`. A deny rejects the event; an allow leaves it to v12;
/// in a room without the members rules the answer is allow with reason `no_additions`.
#[pyfunction]
fn check_members_rules(
    py: Python<'_>,
    event: &Bound<'_, PyAny>,
    auth_events: &Bound<'_, PyAny>,
    room_version: Text,
) -> PyResult<PyDecision> {
    let version = RoomVersion::from_id(&room_version)?;
    let event = to_object(event, "event")?;
    let list = if let Some(input) = json_input(auth_events)? {
        let bytes = input.bytes();
        py.detach(|| json::parse(bytes))
            .map_err(|e| e.at("auth_events"))?
    } else if auth_events.is_instance_of::<PyList>() || auth_events.is_instance_of::<PyTuple>() {
        to_value(auth_events, "auth_events")?
    } else {
        return Err(Error::bad_json(format!(
            "auth_events must be a list of events or JSON text, not {}",
            type_name(auth_events)
        ))
        .into());
    };
    let decision = py.detach(|| -> crate::error::Result<_> {
        let objects = members::auth_event_objects(&list)?;
        Ok(members::check_members_rules(&event, &objects, version))
    })?;
    Ok(decision.into())
}

/// The identifier of the experimental room version and the create-content keys it reads, for
/// callers that build such rooms.
fn constants(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MEMBERS_ROOM_VERSION", RoomVersion::SERVERSHIP_MEMBERS_1.id)?;
    m.add("MEMBERS_MARKER", crate::room_version::MEMBERS_MARKER)?;
    m.add("MEMBERS_GATED", members::GATED)?;
    m.add("MEMBERS_VIA_USER", members::VIA_USER)?;
    Ok(())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_members_rules, m)?)?;
    constants(m)
}
