//! The redaction algorithm of every room version.
//!
//! Spec: [v1–v5](https://spec.matrix.org/v1.16/rooms/v5/#redactions),
//! [v6–v7](https://spec.matrix.org/v1.16/rooms/v6/#redactions),
//! [v8](https://spec.matrix.org/v1.16/rooms/v8/#redactions),
//! [v9–v10](https://spec.matrix.org/v1.16/rooms/v9/#redactions),
//! [v11–v12](https://spec.matrix.org/v1.16/rooms/v11/#redactions). The variant comes from
//! [`RoomVersion::redaction`].
//!
//! Redaction is what event signatures and the reference hash (and so event IDs and v12 room IDs)
//! are computed over, so a single key of difference splits the federation. Decisions where
//! implementations disagree (see `tests/vectors/README.md`):
//!
//! - an event whose `type` is missing or not a string is refused (`M_BAD_JSON`);
//! - an event whose `content` is missing or not an object is refused (`M_BAD_JSON`), rather than
//!   inventing `{}` (old Synapse) or keeping the odd value (ruma);
//! - a v12 `m.room.create` carrying `room_id` is refused (`M_BAD_JSON`): auth rule 1.2 rejects such
//!   an event, and no event ID or room ID may be derived from it;
//! - v11+ `m.room.member` `third_party_invite`: an object keeps only its `signed` member (`{}` when
//!   there is none, as Synapse and ruma do); a value that is not an object is removed;
//! - `unsigned` is removed entirely (Synapse keeps `unsigned.age_ts` for serving; it never affects
//!   a hash or signature).
//!
//! [`redact`] builds the redacted object. [`redacted_signing_bytes`] encodes the same result as
//! canonical JSON without `signatures`, straight from the borrowed event, for hashing and signing.

use crate::error::{Error, Result};
use crate::json::{self, Object, Value};
use crate::room_version::{RedactionRules, RoomVersion};

/// Top-level keys kept by room versions 1–10.
const TOP_LEVEL_V1: &[&str] = &[
    "auth_events",
    "content",
    "depth",
    "event_id",
    "hashes",
    "membership",
    "origin",
    "origin_server_ts",
    "prev_events",
    "prev_state",
    "room_id",
    "sender",
    "signatures",
    "state_key",
    "type",
];

/// Top-level keys kept by room versions 11 and 12 (MSC2176 dropped `membership` and `prev_state`,
/// MSC3989 dropped `origin`).
const TOP_LEVEL_V11: &[&str] = &[
    "auth_events",
    "content",
    "depth",
    "event_id",
    "hashes",
    "origin_server_ts",
    "prev_events",
    "room_id",
    "sender",
    "signatures",
    "state_key",
    "type",
];

const POWER_LEVELS_V1: &[&str] = &[
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
];

const POWER_LEVELS_V11: &[&str] = &[
    "ban",
    "events",
    "events_default",
    "invite",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
];

/// Whether a top-level key survives redaction.
fn keeps_top_level(key: &str, rules: RedactionRules) -> bool {
    let keep = if rules >= RedactionRules::V11 {
        TOP_LEVEL_V11
    } else {
        TOP_LEVEL_V1
    };
    keep.contains(&key)
}

/// What survives of `content` for one event type.
enum ContentRule {
    /// Everything (v11+ `m.room.create`).
    All,
    /// Only these keys, whole. `third_party_invite` is listed for v11+ members and is cut down to
    /// its `signed` member.
    Keys(&'static [&'static str]),
}

fn content_rule(event_type: &str, rules: RedactionRules) -> ContentRule {
    use RedactionRules as R;
    match event_type {
        "m.room.member" => ContentRule::Keys(match rules {
            R::V1 | R::V6 | R::V8 => &["membership"],
            R::V9 => &["join_authorised_via_users_server", "membership"],
            R::V11 => &[
                "join_authorised_via_users_server",
                "membership",
                "third_party_invite",
            ],
        }),
        "m.room.create" if rules >= R::V11 => ContentRule::All,
        "m.room.create" => ContentRule::Keys(&["creator"]),
        "m.room.join_rules" if rules >= R::V8 => ContentRule::Keys(&["allow", "join_rule"]),
        "m.room.join_rules" => ContentRule::Keys(&["join_rule"]),
        "m.room.power_levels" if rules >= R::V11 => ContentRule::Keys(POWER_LEVELS_V11),
        "m.room.power_levels" => ContentRule::Keys(POWER_LEVELS_V1),
        "m.room.aliases" if rules == R::V1 => ContentRule::Keys(&["aliases"]),
        "m.room.history_visibility" => ContentRule::Keys(&["history_visibility"]),
        "m.room.redaction" if rules >= R::V11 => ContentRule::Keys(&["redacts"]),
        _ => ContentRule::Keys(&[]),
    }
}

/// A content member that survives redaction.
enum Kept<'a> {
    /// The value, whole.
    Whole(&'a Value),
    /// A v11+ `third_party_invite` object cut down to its `signed` member (if it has one).
    SignedOnly(Option<&'a Value>),
}

/// Calls `f` for every content member that survives, in canonical key order.
fn for_each_kept<'a>(
    content: &'a Object,
    event_type: &str,
    rules: RedactionRules,
    mut f: impl FnMut(&'a str, Kept<'a>),
) {
    match content_rule(event_type, rules) {
        ContentRule::All => content.iter().for_each(|(k, v)| f(k, Kept::Whole(v))),
        ContentRule::Keys(keys) => {
            // `keys` are sorted, so the kept members come out in canonical order.
            for &key in keys {
                let Some((k, v)) = content.get_key_value(key) else {
                    continue;
                };
                if key == "third_party_invite" {
                    if let Value::Object(invite) = v {
                        f(k, Kept::SignedOnly(invite.get("signed")));
                    }
                } else {
                    f(k, Kept::Whole(v));
                }
            }
        }
    }
}

/// The checks every redaction makes first: a string `type`, an object `content`, and no `room_id`
/// on a create event of a version whose create events carry none.
fn check(event: &Object, version: RoomVersion) -> Result<(&str, &Object)> {
    let event_type = match event.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(other) => {
            return Err(Error::bad_json(format!(
                "type must be a string, not {}",
                other.type_name()
            )));
        }
        None => return Err(Error::bad_json("type is missing")),
    };
    let content = match event.get("content") {
        Some(Value::Object(c)) => c,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "content must be an object, not {}",
                other.type_name()
            )));
        }
        None => return Err(Error::bad_json("content is missing")),
    };
    if event_type == "m.room.create"
        && !version.create_event_has_room_id
        && event.contains_key("room_id")
    {
        return Err(Error::bad_json(format!(
            "an m.room.create event must not have a room_id in room version {}",
            version.id
        )));
    }
    Ok((event_type, content))
}

/// The event as the room version's redaction algorithm leaves it.
///
/// Errors (`M_BAD_JSON`) for an event that cannot be redacted: see the module documentation.
pub fn redact(event: &Object, version: RoomVersion) -> Result<Object> {
    let (event_type, content) = check(event, version)?;
    let rules = version.redaction;
    let mut out = Object::new();
    for (key, value) in event {
        if !keeps_top_level(key, rules) || key == "content" {
            continue;
        }
        out.insert(key.clone(), value.clone());
    }
    let mut kept = Object::new();
    for_each_kept(content, event_type, rules, |k, v| {
        let value = match v {
            Kept::Whole(v) => v.clone(),
            Kept::SignedOnly(signed) => {
                let mut o = Object::new();
                if let Some(s) = signed {
                    o.insert("signed".to_owned(), s.clone());
                }
                Value::Object(o)
            }
        };
        kept.insert(k.to_owned(), value);
    });
    out.insert("content".to_owned(), Value::Object(kept));
    Ok(out)
}

/// Canonical JSON of the redacted event without `signatures` (and without `unsigned`, which
/// redaction removes): the bytes that [event signatures] and the [reference hash] cover.
///
/// Encodes straight from the borrowed event; nothing is cloned. Same errors as [`redact`].
///
/// [event signatures]: https://spec.matrix.org/v1.16/server-server-api/#signing-events
/// [reference hash]: https://spec.matrix.org/v1.16/server-server-api/#calculating-the-reference-hash-for-an-event
pub fn redacted_signing_bytes(event: &Object, version: RoomVersion) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    encode_redacted_into(event, version, &mut out)?;
    Ok(out)
}

/// Appends the bytes of [`redacted_signing_bytes`] to `out`.
pub(crate) fn encode_redacted_into(
    event: &Object,
    version: RoomVersion,
    out: &mut Vec<u8>,
) -> Result<()> {
    let (event_type, content) = check(event, version)?;
    let rules = version.redaction;
    out.push(b'{');
    let mut first = true;
    for (key, value) in event {
        if key == "signatures" || !keeps_top_level(key, rules) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        json::encode_str(key, out);
        out.push(b':');
        if key == "content" {
            encode_kept_content(content, event_type, rules, out);
        } else {
            json::encode_into(value, out);
        }
    }
    out.push(b'}');
    Ok(())
}

fn encode_kept_content(
    content: &Object,
    event_type: &str,
    rules: RedactionRules,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    let mut first = true;
    for_each_kept(content, event_type, rules, |k, v| {
        if !first {
            out.push(b',');
        }
        first = false;
        json::encode_str(k, out);
        out.push(b':');
        match v {
            Kept::Whole(v) => json::encode_into(v, out),
            Kept::SignedOnly(None) => out.extend_from_slice(b"{}"),
            Kept::SignedOnly(Some(signed)) => {
                out.extend_from_slice(b"{\"signed\":");
                json::encode_into(signed, out);
                out.push(b'}');
            }
        }
    });
    out.push(b'}');
}
