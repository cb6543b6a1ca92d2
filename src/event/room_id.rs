//! Room IDs derived from `m.room.create` events (room version 12, MSC4291).

use crate::b64;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::json::{Object, Value};
use crate::room_version::{RoomIdFormat, RoomVersion};

use super::{hashes, str_field};

/// The room ID a v12 `m.room.create` event starts:
/// `!` + URL-safe unpadded base64 of its reference hash
/// ([spec](https://spec.matrix.org/v1.16/appendices/#room-ids),
/// [v12 auth rules](https://spec.matrix.org/v1.16/rooms/v12/#authorization-rules)).
///
/// The room version is read from the event's own `content.room_version`, which must name a
/// version whose room IDs are create-event hashes (else `M_INCOMPATIBLE_ROOM_VERSION`). A room
/// ID is only ever derived from a create event the auth rules would accept, so this refuses
/// (`M_BAD_JSON`, naming the field):
/// - a `type` other than `m.room.create`, or a `state_key` other than `""`;
/// - a `room_id` (auth rule 1.2): never derive a room ID from such an event;
/// - `prev_events` or `auth_events` that are missing or not empty arrays (rule 1.1);
/// - a `sender` that is not a user ID by [`UserId`]'s grammar, or a
///   `content.additional_creators` entry that is not one by the auth rules' grammar
///   ([`crate::auth::is_valid_user_id`], as Synapse reads rule 1.4).
///
/// Signatures and the content hash are not checked here; see [`super::verify_event`].
pub fn room_id_from_create_event(create: &Object) -> Result<String> {
    let event_type = str_field(create, "type")?;
    if event_type != "m.room.create" {
        return Err(Error::bad_json(format!(
            "type must be \"m.room.create\" to derive a room ID, not {event_type:?}"
        )));
    }
    if create.contains_key("room_id") {
        return Err(Error::bad_json(
            "room_id must be absent: a create event with a room_id is rejected \
             (room version 12 auth rule 1.2)",
        ));
    }
    if !str_field(create, "state_key")?.is_empty() {
        return Err(Error::bad_json(
            "state_key must be \"\" in an m.room.create event",
        ));
    }
    for key in ["prev_events", "auth_events"] {
        match create.get(key) {
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::Array(_)) => {
                return Err(Error::bad_json(format!(
                    "{key} must be empty in an m.room.create event"
                )));
            }
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "{key} must be an array, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::bad_json(format!("{key} is missing"))),
        }
    }
    let sender = str_field(create, "sender")?;
    if !looks_like_user_id(sender) {
        return Err(Error::bad_json(format!(
            "sender {sender:?} is not a user ID"
        )));
    }
    let version =
        RoomVersion::from_create_event(create).map_err(|e| e.at("content.room_version"))?;
    if version.room_id_format != RoomIdFormat::CreateEventHash {
        return Err(Error::incompatible_room_version(
            format!(
                "room version {} has room IDs chosen by the creating server; \
                 only create events of room version 12 and later define their room ID",
                version.id
            ),
            version.id,
        ));
    }
    // `from_create_event` has already seen that content is an object.
    if let Some(Value::Object(content)) = create.get("content") {
        match content.get("additional_creators") {
            None => {}
            Some(Value::Array(creators)) => {
                for (i, creator) in creators.iter().enumerate() {
                    // Rule 1.4 as Synapse applies it (`UserID.is_valid`, at most 255 bytes):
                    // looser than `ids::UserId` (`@x:e:0`, `@x:999.1.1.1` pass), so that every
                    // server derives the same room from the same create event.
                    let ok = creator
                        .as_str()
                        .is_some_and(|c| c.len() <= 255 && crate::auth::is_valid_user_id(c));
                    if !ok {
                        return Err(Error::bad_json(format!(
                            "content.additional_creators[{i}] must be a user ID, not {}",
                            describe(creator)
                        )));
                    }
                }
            }
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "content.additional_creators must be an array, not {}",
                    other.type_name()
                )));
            }
        }
    }
    let hash = hashes::reference_hash(create, version)?;
    Ok(format!("!{}", b64::encode_url_safe(&hash)))
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 64 => format!("{s:?}"),
        other => other.type_name().to_owned(),
    }
}

/// Whether `id` is a user ID by the `ids` module's grammar (historical localparts and the server
/// pseudouser `@:server` included), as v12 auth rule 1.4 asks of `sender` and
/// `additional_creators`.
fn looks_like_user_id(id: &str) -> bool {
    UserId::parse(id).is_ok()
}
