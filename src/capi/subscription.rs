//! Server subscription authorization for C (MSC4099): knock EDUs, gated joins and knock
//! decisions. The knock store is in [`super::store::knocks`].
//!
//! JSON in, JSON out: a room's state is a JSON array of state events (later events with the same
//! `(type, state_key)` replace earlier ones); decisions come back as
//! `{"allowed": bool, "verdict": "allow"|"deny"|"pending", "reason": code, "detail": text}`.

use std::ffi::{c_char, c_int};

use super::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use super::room_state::state_from;
use super::status::servership_status;
use crate::error::Error;
use crate::subscription::{JoinGate, decision as knock, knock as edu};

/// Reads an optional JSON input: `NULL` with length 0 is "absent"; `NULL` with a length is an error.
///
/// # Safety
/// As for [`input_bytes`].
unsafe fn optional_bytes<'a>(
    ptr: *const u8,
    len: usize,
    argument: &str,
) -> Result<Option<&'a [u8]>, Failure> {
    if ptr.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded contract of this function.
    unsafe { input_bytes(ptr, len, argument) }.map(Some)
}

/// Validates an `m.server.knock` EDU (`{"edu_type": "m.server.knock", "content": {"room_id":
/// ...}}`) or just its content; `*room_id_out` receives the room ID.
///
/// Fails with `SERVERSHIP_TOO_LARGE` above 64 KiB, `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for
/// malformed JSON, `SERVERSHIP_MISSING_PARAM`/`SERVERSHIP_INVALID_PARAM` for a missing or invalid
/// room ID.
///
/// # Safety
/// `json` must point to `len` readable bytes; `room_id_out` a valid `char **`; `out_len` `NULL` or
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_parse_knock_edu(
    json: *const u8,
    len: usize,
    room_id_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_parse_knock_edu", || {
        let out = required(room_id_out, "room_id_out")?;
        // SAFETY: the caller guarantees `json` points to `len` readable bytes.
        let input = unsafe { input_bytes(json, len, "json") }?;
        let knock = edu::parse_knock(input)?;
        output_string(out, out_len, knock.room_id.into_bytes())
    })
}

/// Whether a join from `server` may proceed (answering `make_join`, accepting `send_join`) in a
/// room whose state is `state_json`, the room being `gated` (non-zero) by local configuration or
/// not (0): always
/// when not gated; when gated, only while the room's `m.server.is_able_to_subscribe` event for
/// that server says `true`. `*decision_json_out` receives the decision JSON.
///
/// # Safety
/// Pointer/length pairs must be readable; `decision_json_out` a valid `char **`; `out_len` `NULL`
/// or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_check_gated_join(
    state_json: *const u8,
    state_len: usize,
    server: *const c_char,
    server_len: usize,
    gated: c_int,
    decision_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_check_gated_join", || {
        let out = required(decision_json_out, "decision_json_out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let state = unsafe { input_bytes(state_json, state_len, "state_json") }?;
        // SAFETY: as above.
        let server = unsafe { input_str(server, server_len, "server") }?;
        let state = state_from(state, "state")?;
        // The gate is configuration the caller keeps; a one-room gate applies its answer here.
        let mut gate = JoinGate::new();
        if gated != 0 {
            gate.gate("");
        }
        let decision = gate.check_join("", &state, server);
        output_string(out, out_len, decision.to_json().to_canonical())
    })
}

/// Decides a knock from `server` on `room_id`: `state_json` is the room's state array, or `NULL`
/// (length 0) for a room this server does not know or hides; `policy_state_json` the state array
/// of the policy room(s) whose server rules apply, or `NULL`; `mode` is `"moderator"` (passing
/// knocks stay pending) or `"auto_accept"`. `*decision_json_out` receives
/// `{"decision": {...}, "outward_event": {...} | null}`: only `outward_event` (the
/// `m.server.is_able_to_subscribe` event to send when newly accepted) may be acted on towards the
/// knocking server, so unknown and denied rooms look alike from outside.
///
/// # Safety
/// Pointer/length pairs must be readable (or `NULL` with length 0); `decision_json_out` a valid
/// `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_decide_knock(
    room_id: *const c_char,
    room_id_len: usize,
    server: *const c_char,
    server_len: usize,
    state_json: *const u8,
    state_len: usize,
    policy_state_json: *const u8,
    policy_state_len: usize,
    mode: *const c_char,
    mode_len: usize,
    decision_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_decide_knock", || {
        let out = required(decision_json_out, "decision_json_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        // SAFETY: as above.
        let server = unsafe { input_str(server, server_len, "server") }?;
        // SAFETY: as above.
        let state = unsafe { optional_bytes(state_json, state_len, "state_json") }?;
        // SAFETY: as above.
        let policy = unsafe { optional_bytes(policy_state_json, policy_state_len, "policy") }?;
        // SAFETY: as above.
        let mode = unsafe { input_str(mode, mode_len, "mode") }?;
        let mode = match mode {
            "moderator" => knock::KnockMode::Moderator,
            "auto_accept" => knock::KnockMode::AutoAccept,
            other => {
                return Err(Error::invalid_param(format!(
                    "mode must be \"moderator\" or \"auto_accept\", not {other:?}"
                ))
                .into());
            }
        };
        let state = state.map(|s| state_from(s, "state")).transpose()?;
        let policies = match policy {
            Some(p) => knock::PolicyList::from_state(&state_from(p, "policy_state")?),
            None => knock::PolicyList::new(),
        };
        let decision = knock::decide_knock(room_id, server, state.as_ref(), &policies, None, mode);
        output_string(out, out_len, decision.to_json().to_canonical())
    })
}
