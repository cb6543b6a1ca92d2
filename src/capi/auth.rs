//! The members rules for C: `servership_check_members_rules`, the additions of room version
//! `org.servership.v12.members.1` on top of the v12 authorization rules (`docs/protocol.md`).

use std::ffi::c_char;

use super::boundary::{call, input_bytes, input_str, output_string, required};
use super::status::servership_status;
use crate::auth::members;

/// The members rules (rules b–f of `docs/protocol.md`, "The members room version") for one
/// event, to run after the homeserver's own v12 authorization rules (with the join rule
/// `peekable` read as `public` in such rooms). `event_json` is the event; `auth_events_json` a
/// JSON array of its auth events **plus the room's `m.room.create`** (which v12 does not list);
/// `room_version` the room's version as the homeserver knows it (`12` for a v12 room with the
/// marker). `*decision_json_out` receives the decision JSON
/// `{"allowed", "verdict", "reason", "detail"}`: a deny rejects the event whatever v12 said, an
/// allow leaves it to v12. In a room without the members rules the decision is always allow with
/// reason `no_additions`.
///
/// Fails (no decision) with `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for JSON that does not
/// parse or an `auth_events_json` that is not an array of objects, and with
/// `SERVERSHIP_INCOMPATIBLE_ROOM_VERSION` for an unknown `room_version`.
///
/// # Safety
/// Pointer/length pairs must be readable (or `NULL` with length 0); `decision_json_out` a valid
/// `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_check_members_rules(
    event_json: *const u8,
    event_len: usize,
    auth_events_json: *const u8,
    auth_events_len: usize,
    room_version: *const c_char,
    room_version_len: usize,
    decision_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_check_members_rules", || {
        let out = required(decision_json_out, "decision_json_out")?;
        // SAFETY: the caller guarantees the three pointer/length pairs are readable.
        let event = unsafe { input_bytes(event_json, event_len, "event_json") }?;
        // SAFETY: as above.
        let auth = unsafe { input_bytes(auth_events_json, auth_events_len, "auth_events_json") }?;
        // SAFETY: as above.
        let version = unsafe { input_str(room_version, room_version_len, "room_version") }?;
        let decision = members::check_members_rules_json(event, auth, version)?;
        output_string(out, out_len, decision.to_json().to_canonical())
    })
}
