//! The `m.server.knock` EDU: `{"edu_type": "m.server.knock", "content": {"room_id": "!…"}}`.
//!
//! [`parse_knock`] accepts the whole EDU or just its content (as bytes or a parsed value); the
//! room ID must be a string that is a valid room ID in either form: `!opaque:server` (room
//! versions 1–11) or `!` + 43 URL-safe base64 characters (v12, MSC4291). Extra keys are ignored,
//! as Matrix does for unknown fields. The sending server is the transaction's origin, which the
//! homeserver already authenticated; it is not part of the EDU.

use crate::error::{Error, Result};
use crate::json::{self, Value};

/// The EDU type.
pub const EDU_TYPE: &str = "m.server.knock";
/// The largest EDU accepted, in bytes (the real thing is under 300 bytes).
pub const MAX_KNOCK_BYTES: usize = 65_536;

/// A validated knock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKnock {
    /// The room the server wants to join.
    pub room_id: String,
}

/// Parses a knock EDU (or its content) from JSON bytes.
pub fn parse_knock(bytes: &[u8]) -> Result<ServerKnock> {
    if bytes.len() > MAX_KNOCK_BYTES {
        return Err(Error::too_large(format!(
            "a knock EDU must not exceed {MAX_KNOCK_BYTES} bytes"
        )));
    }
    parse_knock_value(&json::parse(bytes)?)
}

/// Parses a knock EDU (or its content) from a parsed value.
pub fn parse_knock_value(value: &Value) -> Result<ServerKnock> {
    let Value::Object(o) = value else {
        return Err(Error::bad_json(format!(
            "a knock must be an object, not {}",
            value.type_name()
        )));
    };
    let (content, place) = if o.contains_key("edu_type")
        || (o.contains_key("content") && !o.contains_key("room_id"))
    {
        match o.get("edu_type") {
            Some(Value::String(t)) if t == EDU_TYPE => {}
            Some(Value::String(t)) => {
                return Err(Error::bad_json(format!(
                    "edu_type must be {EDU_TYPE:?}, not {t:?}"
                )));
            }
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "edu_type must be a string, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::missing_param("edu_type is missing")),
        }
        match o.get("content") {
            Some(Value::Object(c)) => (c, "content.room_id"),
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "content must be an object, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::missing_param("content is missing")),
        }
    } else {
        (o, "room_id")
    };
    let room_id = match content.get("room_id") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "{place} must be a string, not {}",
                other.type_name()
            )));
        }
        None => return Err(Error::missing_param(format!("{place} is missing"))),
    };
    if !is_valid_room_id(room_id) {
        return Err(Error::invalid_param(format!(
            "{place} {room_id:?} is not a valid room ID"
        )));
    }
    Ok(ServerKnock {
        room_id: room_id.clone(),
    })
}

/// A room ID in either form, as [`crate::ids::RoomId`] validates it (so a knock names a room
/// that the rest of the library accepts; the fuzzer found `!ab:333` accepted here before), and
/// without control characters.
pub fn is_valid_room_id(room_id: &str) -> bool {
    crate::ids::RoomId::parse(room_id).is_ok() && !room_id.chars().any(char::is_control)
}
