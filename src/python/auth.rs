//! The members rules from Python: `check_members_rules`, the additions of room version
//! `org.servership.v12.members.1` on top of v12 (`docs/protocol.md`).

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::args::Text;
use super::convert::{json_input, to_object, to_value};
use super::decision::PyDecision;
use super::room_state::type_name;
use crate::auth::{members, members_auth_additions as additions};
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

/// The `(type, state_key)` pairs the members rules add to v12's auth events selection for
/// `event` (a dict or JSON text): for a join, the joining server's
/// `m.server.is_able_to_subscribe` and a pseudouser's `via_user` membership; for an
/// `m.server.subscription`, its server's grant. A homeserver that computes v12's selection
/// itself adds these in a room with the rules. A malformed event (no string `type`, a
/// `via_user` that is not a string...) raises `BadJsonError`.
#[pyfunction]
fn members_auth_additions(
    py: Python<'_>,
    event: &Bound<'_, PyAny>,
) -> PyResult<Vec<(String, String)>> {
    let event = to_object(event, "event")?;
    py.detach(|| additions(&event))
        .map_err(|d| Error::bad_json(d.detail).into())
}

/// Whether `create` (an `m.room.create` event, dict or JSON text) makes a room with the members
/// rules: its `room_version` is the experimental identifier, or `12` with the marker exactly. A
/// create event whose version is unknown or missing raises.
#[pyfunction]
fn members_rules_apply(create: &Bound<'_, PyAny>) -> PyResult<bool> {
    let create = to_object(create, "create")?;
    Ok(RoomVersion::from_create_event(&create)?
        .auth
        .servership_members)
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
    m.add_function(wrap_pyfunction!(members_auth_additions, m)?)?;
    m.add_function(wrap_pyfunction!(members_rules_apply, m)?)?;
    constants(m)
}
