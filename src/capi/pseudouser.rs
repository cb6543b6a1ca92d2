//! Server pseudousers for C: the pseudouser join rule (MSC1777).
//!
//! JSON in, JSON out: a room's state is a JSON array of state events (later events with the same
//! `(type, state_key)` replace earlier ones); decisions come back as
//! `{"allowed": bool, "verdict": "allow"|"deny"|"pending", "reason": code, "detail": text}`.

use std::ffi::c_char;

use super::boundary::{call, input_bytes, input_str, output_string, required};
use super::room_state::state_from;
use super::status::servership_status;
use crate::pseudouser;

/// Whether the server pseudouser `pseudouser` (`@:server`) may join the room whose current state is
/// the JSON array `state_json`: allowed if the join rule is `peekable` or a user of that server is
/// joined or invited; a banned pseudouser is refused. `*decision_json_out` receives the decision
/// JSON (a refusal is a successful call whose decision denies).
///
/// Fails with `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for malformed state (the message names
/// the index, e.g. `state[2]: state_key must be a string, not an integer`).
///
/// # Safety
/// Pointer/length pairs must be readable (or `NULL` with length 0); `decision_json_out` a valid
/// `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_check_pseudouser_join(
    state_json: *const u8,
    state_len: usize,
    pseudouser: *const c_char,
    pseudouser_len: usize,
    decision_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_check_pseudouser_join", || {
        let out = required(decision_json_out, "decision_json_out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let state = unsafe { input_bytes(state_json, state_len, "state_json") }?;
        // SAFETY: as above.
        let user = unsafe { input_str(pseudouser, pseudouser_len, "pseudouser") }?;
        let state = state_from(state, "state")?;
        let decision = pseudouser::check_pseudouser_join(&state, user);
        output_string(out, out_len, decision.to_json().to_canonical())
    })
}
