//! Content hashes, reference hashes and event IDs.

use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::{Error, Result};
use crate::json::{self, Object, Value};
use crate::redaction;
use crate::room_version::{EventIdFormat, RoomVersion};

/// The [content hash](https://spec.matrix.org/v1.16/server-server-api/#calculating-the-content-hash-for-an-event):
/// SHA-256 of the canonical JSON of the event without `unsigned`, `signatures` and `hashes`.
///
/// It covers the unredacted event, whatever its shape; it never fails.
pub fn content_hash(event: &Object) -> [u8; 32] {
    let bytes = json::canonical_object_without(event, &["hashes", "signatures", "unsigned"]);
    Sha256::digest(&bytes).into()
}

/// [`content_hash`] as unpadded standard base64, the form `hashes.sha256` holds in every room
/// version.
pub fn content_hash_base64(event: &Object) -> String {
    b64::encode(&content_hash(event))
}

/// The [reference hash](https://spec.matrix.org/v1.16/server-server-api/#calculating-the-reference-hash-for-an-event):
/// SHA-256 of the canonical JSON of the event redacted for `version`, without `signatures` and
/// `unsigned`.
///
/// Encodes the redacted event straight from the borrowed one, without cloning it. Fails
/// (`M_BAD_JSON`) for events that cannot be redacted (see [`crate::redaction`]).
pub fn reference_hash(event: &Object, version: RoomVersion) -> Result<[u8; 32]> {
    let bytes = redaction::redacted_signing_bytes(event, version)?;
    Ok(Sha256::digest(&bytes).into())
}

/// [`reference_hash`] in the base64 alphabet of the room version's event IDs: standard for
/// versions 1–3 (as v1/v2 `prev_events` references carry it), URL-safe from version 4 on.
pub fn reference_hash_base64(event: &Object, version: RoomVersion) -> Result<String> {
    let hash = reference_hash(event, version)?;
    Ok(match version.event_id_format {
        EventIdFormat::Opaque | EventIdFormat::Base64 => b64::encode(&hash),
        EventIdFormat::UrlSafeBase64 => b64::encode_url_safe(&hash),
    })
}

/// The [event ID](https://spec.matrix.org/v1.16/appendices/#event-ids) of an event.
///
/// - Versions 1–2: the event's own `event_id` field; these IDs are chosen by the sending server
///   and cannot be derived, so an event without one is an error.
/// - Version 3: `$` + standard base64 of the reference hash.
/// - Versions 4–12: `$` + URL-safe base64 of the reference hash.
pub fn event_id(event: &Object, version: RoomVersion) -> Result<String> {
    match version.event_id_format {
        EventIdFormat::Opaque => match event.get("event_id") {
            Some(Value::String(id)) => Ok(id.clone()),
            Some(other) => Err(Error::bad_json(format!(
                "event_id must be a string, not {}",
                other.type_name()
            ))),
            None => Err(Error::bad_json(format!(
                "event_id is missing; room version {} event IDs are chosen by the sending server \
                 and cannot be derived from the event",
                version.id
            ))),
        },
        EventIdFormat::Base64 | EventIdFormat::UrlSafeBase64 => {
            Ok(format!("${}", reference_hash_base64(event, version)?))
        }
    }
}

/// Parses strict canonical-JSON bytes as an event and computes its [`event_id`]: the fast path for
/// callers holding the bytes (C, Python).
///
/// Fails with `M_NOT_JSON`/`M_BAD_JSON` for input the strict parser refuses (see [`crate::json`]),
/// and like [`event_id`] otherwise.
pub fn event_id_from_json(bytes: &[u8], version: RoomVersion) -> Result<String> {
    let event = json::parse_object(bytes)?;
    event_id(&event, version)
}
