//! The sending side: from an invite event and the room's create PDU, the MSC4329 request.

use crate::error::{Error, Result};
use crate::ids;
use crate::json::{Object, Value};

use super::PATH_UNSTABLE_PREFIX;

/// A request ready to send: `PUT` to `path` with `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRequestParts {
    /// The request path, with the room ID percent-encoded, e.g.
    /// `/_matrix/federation/unstable/org.matrix.msc4329/invite/%21abc`.
    pub path: String,
    /// The canonical JSON body `{event, invite_room_state, state}`.
    pub body: Vec<u8>,
}

/// Builds the MSC4329 request for `invite_event` (signed, as for the v2 endpoint). `state` gets
/// the create PDU first, then `extra_state` (events whose auth chains the receiver can then
/// verify); `invite_room_state` is sent without any `m.room.create` (the seed: senders SHOULD NOT
/// put it there).
pub fn build_invite_request(
    invite_event: &Object,
    create_event: &Object,
    extra_state: &[Object],
    invite_room_state: &[Value],
) -> Result<InviteRequestParts> {
    if create_event.get("type").and_then(Value::as_str) != Some("m.room.create") {
        return Err(Error::invalid_param(
            "create_event must be the room's m.room.create PDU",
        ));
    }
    if invite_event.get("type").and_then(Value::as_str) != Some("m.room.member")
        || invite_event
            .get("content")
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str)
            != Some("invite")
    {
        return Err(Error::invalid_param(
            "invite_event must be an m.room.member invite",
        ));
    }
    let room_id = invite_event
        .get("room_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid_param("invite_event.room_id is required"))?;
    let room_id = ids::RoomId::parse(room_id).map_err(|e| e.at("invite_event.room_id"))?;
    // Room versions 1–5 carry numbers canonical JSON does not (Synapse's events may hold floats
    // and large integers there); later versions, and versions we do not know, refuse them, as
    // their receivers will.
    let version = crate::room_version::RoomVersion::from_create_event(create_event).ok();
    if version.is_none_or(|v| v.strict_canonical_json) {
        let what = version
            .map(|v| format!("room version {}", v.id))
            .unwrap_or_else(|| "a room of an unknown version".into());
        for (name, pdu) in [
            ("invite_event", invite_event),
            ("create_event", create_event),
        ]
        .into_iter()
        .chain(extra_state.iter().map(|e| ("extra_state[]", e)))
        {
            super::check::refuse_numbers(pdu, &what, name)?;
        }
        if let Some((i, path)) = invite_room_state
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.first_number_path().map(|p| (i, p)))
        {
            return Err(Error::bad_json(format!(
                "invite_room_state[{i}]{path}: numbers with a fraction or an exponent, and \
                 integers outside ±(2^53 - 1), are not allowed in {what}"
            )));
        }
    }
    let mut state = vec![Value::Object(create_event.clone())];
    state.extend(extra_state.iter().cloned().map(Value::Object));
    let stripped: Vec<Value> = invite_room_state
        .iter()
        .filter(|v| v.get("type").and_then(Value::as_str) != Some("m.room.create"))
        .cloned()
        .collect();
    let mut body = Object::new();
    body.insert("event".into(), Value::Object(invite_event.clone()));
    body.insert("invite_room_state".into(), Value::Array(stripped));
    body.insert("state".into(), Value::Array(state));
    Ok(InviteRequestParts {
        path: format!(
            "{PATH_UNSTABLE_PREFIX}{}",
            ids::percent_encode_path_segment(room_id.as_str())
        ),
        body: Value::Object(body).to_canonical(),
    })
}
