//! The format checks any PDU needs before anything else reads it: the members every PDU of a room
//! version has, with the right types; user ID members; and the signature and content hash of
//! the sender's server. Used by the invite checks and by promotion alike.

use crate::error::{ErrCode, Error, Result};
use crate::ids::UserId;
use crate::json::{Object, Value};
use crate::room_version::{EventIdFormat, RoomIdFormat, RoomVersion};
use crate::signing::KeyRing;

/// Verifies `server`'s signature and the content hash of a PDU.
pub(crate) fn verify_signed(
    pdu: &Object,
    server: &str,
    ring: &KeyRing,
    room_version: RoomVersion,
    place: &str,
) -> Result<()> {
    let keys = ring.keys_for(server);
    if keys.is_empty() {
        return Err(Error::invalid_param(format!(
            "{place}: no verify key is known for {server}"
        )));
    }
    super::verify_event_signature(pdu, server, keys, room_version)
        .map_err(|e| invalid(e, &format!("{place} signature")))?;
    if !super::check_content_hash(pdu).map_err(|e| invalid(e, place))? {
        return Err(Error::invalid_param(format!(
            "{place}.hashes.sha256 does not match the event"
        )));
    }
    Ok(())
}

/// Checks the members every PDU of the room version must have, with the right types.
pub(crate) fn check_pdu_format(pdu: &Object, room_version: RoomVersion, place: &str) -> Result<()> {
    let want = |key: &str, what: &str| -> Result<()> {
        match pdu.get(key) {
            None => Err(Error::invalid_param(format!("{place}.{key} is required"))),
            Some(v) if !ok_type(v, what) => Err(Error::invalid_param(format!(
                "{place}.{key} must be {what}, found {}",
                v.type_name()
            ))),
            Some(_) => Ok(()),
        }
    };
    for (key, what) in [
        ("type", "a string"),
        ("sender", "a string"),
        ("content", "an object"),
        ("origin_server_ts", "an integer"),
        ("depth", "an integer"),
        ("prev_events", "an array"),
        ("auth_events", "an array"),
        ("hashes", "an object"),
        ("signatures", "an object"),
    ] {
        want(key, what)?;
    }
    if let Some(v) = pdu.get("state_key") {
        if v.as_str().is_none() {
            return Err(Error::invalid_param(format!(
                "{place}.state_key must be a string, found {}",
                v.type_name()
            )));
        }
    }
    if pdu
        .get("depth")
        .and_then(Value::as_int)
        .is_some_and(|d| d < 0)
    {
        return Err(Error::invalid_param(format!(
            "{place}.depth must not be negative"
        )));
    }
    // v12: the create event is implied, and an event that lists it is malformed (Synapse's
    // `event_from_pdu_json` refuses it with 400 before anything else looks at the event).
    if room_version.room_id_format == RoomIdFormat::CreateEventHash {
        if let (Some(hash), Some(Value::Array(auth))) = (
            pdu.get("room_id")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('!')),
            pdu.get("auth_events"),
        ) {
            if auth
                .iter()
                .any(|a| a.as_str().and_then(|a| a.strip_prefix('$')) == Some(hash))
            {
                return Err(Error::invalid_param(format!(
                    "{place}.auth_events lists the m.room.create event, which room version {} \
                     forbids",
                    room_version.id
                )));
            }
        }
    }
    if room_version.event_id_format != EventIdFormat::Opaque {
        for key in ["prev_events", "auth_events"] {
            if let Some(Value::Array(ids)) = pdu.get(key) {
                if let Some(i) = ids.iter().position(|v| v.as_str().is_none()) {
                    return Err(Error::invalid_param(format!(
                        "{place}.{key}[{i}] must be an event ID string"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn ok_type(v: &Value, what: &str) -> bool {
    match what {
        "a string" => v.as_str().is_some(),
        "an object" => v.as_object().is_some(),
        "an integer" => v.as_int().is_some(),
        "an array" => v.as_array().is_some(),
        _ => false,
    }
}

/// A user ID member of a PDU, parsed.
pub(crate) fn user_id_field(pdu: &Object, key: &str, place: &str) -> Result<UserId> {
    let raw = match pdu.get(key) {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "{place}.{key} must be a user ID, found {}",
                other.type_name()
            )));
        }
        None => return Err(Error::invalid_param(format!("{place}.{key} is required"))),
    };
    UserId::parse(raw).map_err(|e| invalid(e, &format!("{place}.{key}")))
}

/// Any failure inside an invite is `M_INVALID_PARAM` (spec: "servers SHOULD return
/// M_INVALID_PARAM"), except size and room-version errors, which keep their own codes.
pub(crate) fn invalid(e: Error, place: &str) -> Error {
    let e = e.at(place);
    match e.errcode() {
        ErrCode::TooLarge | ErrCode::IncompatibleRoomVersion => e,
        _ => e.with_errcode(ErrCode::InvalidParam),
    }
}

/// The most `auth_events` a PDU may list: 10, as the v1/v2 PDU schema says and as Synapse applies
/// to every room version when it receives an event (`_sanity_check_event`).
pub const MAX_AUTH_EVENTS: usize = 10;

/// The most `prev_events` a PDU may list: 20 (same sources as [`MAX_AUTH_EVENTS`]).
pub const MAX_PREV_EVENTS: usize = 20;

/// Refuses a PDU listing more than [`MAX_AUTH_EVENTS`] auth events or [`MAX_PREV_EVENTS`] prev
/// events (`M_INVALID_PARAM`). Arrays of another type are [`check_pdu_format`]'s to refuse.
pub(crate) fn check_reference_counts(pdu: &Object, place: &str) -> Result<()> {
    for (key, max) in [
        ("auth_events", MAX_AUTH_EVENTS),
        ("prev_events", MAX_PREV_EVENTS),
    ] {
        if let Some(Value::Array(list)) = pdu.get(key) {
            if list.len() > max {
                return Err(Error::invalid_param(format!(
                    "{place}.{key} lists {} events; at most {max} are allowed",
                    list.len()
                )));
            }
        }
    }
    Ok(())
}
