//! The `m.room.create` rules (rule 1), and the user ID grammar the auth rules apply.

use std::net::Ipv6Addr;

use crate::decision::{Decision, ReasonCode};
use crate::json::{Object, Value};
use crate::room_version::RoomVersion;

use super::{allow, content_of, lists_create, malformed, server_part, str_field};

fn deny(detail: impl Into<String>) -> Decision {
    Decision::deny(ReasonCode::CreateEventInvalid, detail)
}

/// Rule 1: whether an `m.room.create` event may start a room of `version`.
///
/// - 1.1 it has no `prev_events`;
/// - 1.2 v12: it has no `room_id`; v1–11: the server of `room_id` is the server of `sender`
///   (both read as everything after the first `:`);
/// - 1.3 `content.room_version`, when present, is a version we know (and, as the caller asks
///   for one, that version);
/// - 1.4 v1–10: `content.creator` is present; v12: `content.additional_creators`, when present,
///   is an array of user IDs ([`is_valid_user_id`]) of at most 255 bytes each.
///
/// The `type` and `state_key` (`""`) are the caller's to have checked.
pub fn check_create(create: &Object, version: RoomVersion) -> Decision {
    let Some(sender) = str_field(create, "sender") else {
        return malformed("the create event has no string sender");
    };
    let Some(content) = content_of(create) else {
        return malformed("the create event has no content object");
    };
    // 1.1
    match create.get("prev_events") {
        Some(Value::Array(p)) if p.is_empty() => {}
        Some(Value::Array(_)) => return deny("the create event has prev_events"),
        _ => return malformed("the create event's prev_events is not an array"),
    }
    // 1.2
    if lists_create(version) {
        let Some(room_id) = str_field(create, "room_id") else {
            return malformed("the create event has no string room_id");
        };
        if server_part(room_id).is_none() || server_part(room_id) != server_part(sender) {
            return deny(format!(
                "the create event's room_id {room_id:?} is not of the sender's server ({sender})"
            ));
        }
    } else if create.contains_key("room_id") {
        return deny("a create event of this room version must not have a room_id");
    }
    // 1.3
    let declared = match content.get("room_version") {
        None => "1",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return deny("content.room_version is not a string"),
    };
    if RoomVersion::from_id(declared).is_err() {
        return deny(format!(
            "content.room_version {:?} is not a known room version",
            declared.chars().take(32).collect::<String>()
        ));
    }
    if declared != version.id {
        return deny(format!(
            "content.room_version {declared:?} is not the room version {:?}",
            version.id
        ));
    }
    // 1.4
    if !version.auth.implicit_room_creator && !content.contains_key("creator") {
        return deny("the create event has no content.creator, which this room version requires");
    }
    if version.privileged_creators {
        match content.get("additional_creators") {
            None => {}
            Some(Value::Array(list)) => {
                for (i, entry) in list.iter().enumerate() {
                    let ok = entry
                        .as_str()
                        .is_some_and(|s| s.len() <= 255 && is_valid_user_id(s));
                    if !ok {
                        return deny(format!("content.additional_creators[{i}] is not a user ID"));
                    }
                }
            }
            Some(_) => return deny("content.additional_creators is not an array"),
        }
    }
    // The members rules' addition to rule 1 (a v12 create event with the marker too).
    if version.with_marker_of(create).auth.servership_members {
        if let Some(refusal) = super::members::check_create_additions(create) {
            return refusal;
        }
    }
    allow("the create event passes rule 1")
}

/// A user ID as the auth rules (and Synapse's `UserID.is_valid`) accept it: `@`, a localpart
/// without `:`, `:`, and a server name that is a host of `[0-9A-Za-z-]` labels separated by
/// single dots, or an `[IPv6]` literal, with an optional `:port` whose digits are read as a
/// number without a range check (so `@x:e:0`, `@x:999.1.1.1` and `@x:e:65536` are accepted, as
/// Synapse accepts them).
///
/// This is looser than [`crate::ids::UserId`], which is the grammar for identifiers servership
/// itself makes or routes by. Ports written with non-ASCII digits, which Python's `int()` would
/// read, are refused (listed in `docs/protocol.md`).
pub fn is_valid_user_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('@') else {
        return false;
    };
    let Some((_, server)) = rest.split_once(':') else {
        return false;
    };
    is_valid_server_name(server)
}

/// Synapse's `parse_and_validate_server_name` (see [`is_valid_user_id`]).
fn is_valid_server_name(server: &str) -> bool {
    let host = if server.ends_with(']') {
        server
    } else {
        match server.rsplit_once(':') {
            Some((host, port)) => {
                if !python_port(port) {
                    return false;
                }
                host
            }
            None => server,
        }
    };
    if let Some(inner) = host.strip_prefix('[') {
        let Some(address) = inner.strip_suffix(']') else {
            return false;
        };
        return !address.is_empty() && address.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether Python's `int()` reads `port` (ASCII form): optional whitespace, an optional sign,
/// digits with single underscores between them.
fn python_port(port: &str) -> bool {
    let t = port.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\u{0b}');
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}
