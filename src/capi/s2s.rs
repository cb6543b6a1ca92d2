//! Server-to-server rooms for C: server-user memberships and the upgrade negotiation's choice rule
//! (MSC3348).
//!
//! JSON in, JSON out: a room's state is a JSON array of state events (later events with the same
//! `(type, state_key)` replace earlier ones); decisions come back as
//! `{"allowed": bool, "verdict": "allow"|"deny"|"pending", "reason": code, "detail": text}`.

use std::ffi::c_char;

use super::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use super::room_state::state_from;
use super::status::servership_status;
use crate::error::Error;
use crate::json::{self, Object, Value};
use crate::s2s::{self, ServerUserPolicy, negotiation};

/// The one authorization call for a server user's membership change: `membership` (`join`,
/// `invite`, `leave`, ...) of `server_user` (`@:server`) in the room whose state is `state_json`,
/// under `policy` (`"s2s_only"`, `"peeking"` or `"either"`). `*decision_json_out` receives the
/// decision JSON.
///
/// Fails with `SERVERSHIP_INVALID_PARAM` for an unknown policy, `SERVERSHIP_BAD_JSON` for
/// malformed state.
///
/// # Safety
/// Pointer/length pairs must be readable; `decision_json_out` a valid `char **`; `out_len` `NULL`
/// or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_check_server_user_membership(
    state_json: *const u8,
    state_len: usize,
    server_user: *const c_char,
    server_user_len: usize,
    membership: *const c_char,
    membership_len: usize,
    policy: *const c_char,
    policy_len: usize,
    decision_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_check_server_user_membership", || {
        let out = required(decision_json_out, "decision_json_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let state = unsafe { input_bytes(state_json, state_len, "state_json") }?;
        // SAFETY: as above.
        let user = unsafe { input_str(server_user, server_user_len, "server_user") }?;
        // SAFETY: as above.
        let membership = unsafe { input_str(membership, membership_len, "membership") }?;
        // SAFETY: as above.
        let policy = unsafe { input_str(policy, policy_len, "policy") }?;
        let policy = ServerUserPolicy::parse(policy)?;
        let state = state_from(state, "state")?;
        let decision = s2s::check_server_user_membership(&state, user, membership, policy);
        output_string(out, out_len, decision.to_json().to_canonical())
    })
}

/// Reads a `versions` list given as a JSON array or as an object with a `versions` array.
fn versions_from(bytes: &[u8], argument: &str) -> Result<Vec<negotiation::VersionOffer>, Failure> {
    let content = match json::parse(bytes).map_err(|e| e.at(argument))? {
        Value::Object(o) => o,
        array @ Value::Array(_) => {
            let mut o = Object::new();
            o.insert("versions".into(), array);
            o
        }
        other => {
            return Err(Error::bad_json(format!(
                "{argument} must be an array or an object, not {}",
                other.type_name()
            ))
            .into());
        }
    };
    negotiation::parse_versions(&content).map_err(|e| Failure::from(e.at(argument)))
}

/// The s2s upgrade negotiation's choice rule over two `versions` lists, each a JSON array
/// `[{"version": "11", "rating": 10}, ...]` (or an event content `{"versions": [...]}`): among
/// versions in both lists, the highest minimum rating, then the highest sum, then the newest
/// version. `*version_out` receives the chosen version, or an empty string when no version is in
/// both lists (`no match`).
///
/// Fails with `SERVERSHIP_BAD_JSON`/`SERVERSHIP_INVALID_PARAM`/`SERVERSHIP_TOO_LARGE` for malformed
/// lists (the message names the list and index).
///
/// # Safety
/// Pointer/length pairs must be readable; `version_out` a valid `char **`; `out_len` `NULL` or
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_negotiation_choose(
    ours_json: *const u8,
    ours_len: usize,
    theirs_json: *const u8,
    theirs_len: usize,
    version_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_negotiation_choose", || {
        let out = required(version_out, "version_out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let ours = unsafe { input_bytes(ours_json, ours_len, "ours_json") }?;
        // SAFETY: as above.
        let theirs = unsafe { input_bytes(theirs_json, theirs_len, "theirs_json") }?;
        let ours = versions_from(ours, "ours")?;
        let theirs = versions_from(theirs, "theirs")?;
        let chosen = negotiation::choose_version(&ours, &theirs).unwrap_or_default();
        output_string(out, out_len, chosen.into_bytes())
    })
}
