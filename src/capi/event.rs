//! Events for C: event IDs, v12 room IDs and redaction.

use std::ffi::c_char;

use super::boundary::{call, input_bytes, input_str, output_string, required};
use super::status::servership_status;
use crate::event;
use crate::json::{self, Value};
use crate::redaction;
use crate::room_version::RoomVersion;

/// The event ID of a PDU (`json`, strict canonical JSON) in room version `room_version`
/// (e.g. `"12"`): `$` + the reference hash for v3 and later; for v1/v2 the PDU's own `event_id`.
///
/// Fails with `SERVERSHIP_INCOMPATIBLE_ROOM_VERSION` for an unknown version, and with
/// `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for malformed events (the message names the field).
///
/// # Safety
/// Pointer/length pairs must be readable (or `NULL` with length 0); `out` a valid `char **`;
/// `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_event_id(
    json: *const u8,
    len: usize,
    room_version: *const c_char,
    room_version_len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_event_id", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let input = unsafe { input_bytes(json, len, "json") }?;
        // SAFETY: as above.
        let version = unsafe { input_str(room_version, room_version_len, "room_version") }?;
        let version = RoomVersion::from_id(version)?;
        let event_id = event::event_id_from_json(input, version)?;
        output_string(out, out_len, event_id.into_bytes())
    })
}

/// The room ID (`!` + URL-safe base64 reference hash) that a v12-style `m.room.create` event
/// starts. The room version is read from the event's `content.room_version`. Refuses create
/// events the auth rules would refuse (with a `room_id`, with `prev_events`, bad creators...).
///
/// # Safety
/// `json` must point to `len` readable bytes; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_room_id_from_create_event(
    json: *const u8,
    len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_room_id_from_create_event", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `json` points to `len` readable bytes.
        let input = unsafe { input_bytes(json, len, "json") }?;
        let create = json::parse_object(input)?;
        let room_id = event::room_id_from_create_event(&create)?;
        output_string(out, out_len, room_id.into_bytes())
    })
}

/// The redacted form of an event under the rules of `room_version`, as canonical JSON.
///
/// # Safety
/// Pointer/length pairs must be readable; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_redact(
    json: *const u8,
    len: usize,
    room_version: *const c_char,
    room_version_len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_redact", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let input = unsafe { input_bytes(json, len, "json") }?;
        // SAFETY: as above.
        let version = unsafe { input_str(room_version, room_version_len, "room_version") }?;
        let version = RoomVersion::from_id(version)?;
        let event = json::parse_object(input)?;
        let redacted = redaction::redact(&event, version)?;
        output_string(out, out_len, Value::Object(redacted).to_canonical())
    })
}
