//! Members capabilities for C: pseudouser joins (MSC1777), server-user memberships and the upgrade
//! negotiation's choice rule (MSC3348), knocks, the knock store, gated joins and knock decisions
//! (MSC4099).
//!
//! JSON in, JSON out: a room's state is a JSON array of state events (later events with the same
//! `(type, state_key)` replace earlier ones); decisions come back as
//! `{"allowed": bool, "verdict": "allow"|"deny"|"pending", "reason": code, "detail": text}`.

use std::ffi::{c_char, c_int};
use std::time::Duration;

use super::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use super::status::servership_status;
use crate::error::Error;
use crate::json::{self, Object, Value};
use crate::pseudouser;
use crate::room_state::RoomState;
use crate::s2s::{self, ServerUserPolicy, negotiation};
use crate::store::{KnockLimits, KnockStore};
use crate::subscription::{JoinGate, decision as knock, knock as edu};

/// Parses a state array; errors name the index (`state[2]: ...`), and `argument` when it is not
/// the room's own state.
fn state_from(bytes: &[u8], argument: &str) -> Result<RoomState, Failure> {
    RoomState::from_json(bytes).map_err(|e| {
        Failure::from(if argument == "state" {
            e
        } else {
            e.at(argument)
        })
    })
}

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

/// Recorded `m.server.knock` EDUs in servership's SQLite file, one row per (room, server), expiring
/// a fixed time after last seen (opaque).
///
/// Thread safety: may be used from several threads at once (calls are serialised inside); free it
/// once, when no other thread uses it.
pub struct servership_knock_store {
    store: KnockStore,
}

/// Opens (creating if needed) the knock store in the SQLite file at `path` (UTF-8); knocks expire
/// `expire_after_ms` milliseconds after they were last seen. On success `*out` receives a handle
/// to free with `servership_knock_store_free`.
///
/// Fails with `SERVERSHIP_UNKNOWN` when the file cannot be opened or migrated.
///
/// # Safety
/// `path` must point to `path_len` readable bytes; `out` a valid `servership_knock_store **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_knock_store_open(
    path: *const c_char,
    path_len: usize,
    expire_after_ms: u64,
    out: Option<&mut *mut servership_knock_store>,
) -> servership_status {
    call("servership_knock_store_open", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `path` points to `path_len` readable bytes.
        let path = unsafe { input_str(path, path_len, "path") }?;
        if path.is_empty() {
            return Err(Error::invalid_param("path must not be empty").into());
        }
        let store = KnockStore::open(
            std::path::Path::new(path),
            Duration::from_millis(expire_after_ms),
        )?;
        *out = Box::into_raw(Box::new(servership_knock_store { store }));
        Ok(())
    })
}

/// [`servership_knock_store_open`] with an explicit per-origin cap: at most `max_per_origin` new
/// knocks (a room the origin had no unexpired knock on) per origin in any `window_ms`
/// milliseconds; beyond that `servership_knock_store_record` fails with
/// `SERVERSHIP_LIMIT_EXCEEDED` and writes nothing. (`servership_knock_store_open` uses 20 per
/// hour.)
///
/// Fails with `SERVERSHIP_INVALID_PARAM` for an empty path or a zero window, `SERVERSHIP_UNKNOWN`
/// when the file cannot be opened or migrated.
///
/// # Safety
/// `path` must point to `path_len` readable bytes; `out` a valid `servership_knock_store **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_knock_store_open_with_limits(
    path: *const c_char,
    path_len: usize,
    expire_after_ms: u64,
    max_per_origin: u32,
    window_ms: u64,
    out: Option<&mut *mut servership_knock_store>,
) -> servership_status {
    call("servership_knock_store_open_with_limits", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `path` points to `path_len` readable bytes.
        let path = unsafe { input_str(path, path_len, "path") }?;
        if path.is_empty() {
            return Err(Error::invalid_param("path must not be empty").into());
        }
        let store = KnockStore::open_with_limits(
            std::path::Path::new(path),
            Duration::from_millis(expire_after_ms),
            KnockLimits {
                max_per_origin,
                window: Duration::from_millis(window_ms),
            },
        )?;
        *out = Box::into_raw(Box::new(servership_knock_store { store }));
        Ok(())
    })
}

/// Frees a knock store. `NULL` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn servership_knock_store_free(store: Option<Box<servership_knock_store>>) {
    drop(store);
}

/// The time to use: `now_ms`, or the system clock when it is negative.
fn clock(now_ms: i64) -> i64 {
    if now_ms >= 0 {
        return now_ms;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Records (idempotently) that `server` knocked on `room_id` at `now_ms` (milliseconds since the
/// Unix epoch; a negative value uses the system clock). `times_out` (`NULL` allowed) receives how
/// many times the knock was seen since it last expired.
///
/// Fails with `SERVERSHIP_LIMIT_EXCEEDED` (the last error's JSON carries `retry_after_ms`) for a
/// new knock beyond the origin's cap, writing nothing, and with `SERVERSHIP_UNKNOWN` when the file
/// stays busy: the call never waits more than about a second.
///
/// # Safety
/// `store` must be `NULL` or a live handle; pointer/length pairs readable; `times_out` `NULL` or
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_knock_store_record(
    store: Option<&servership_knock_store>,
    room_id: *const c_char,
    room_id_len: usize,
    server: *const c_char,
    server_len: usize,
    now_ms: i64,
    times_out: Option<&mut u64>,
) -> servership_status {
    call("servership_knock_store_record", || {
        let store = store.ok_or_else(|| Failure::null("store"))?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        // SAFETY: as above.
        let server = unsafe { input_str(server, server_len, "server") }?;
        let record = store.store.record_at(room_id, server, clock(now_ms))?;
        if let Some(times_out) = times_out {
            *times_out = u64::try_from(record.times).unwrap_or(0);
        }
        Ok(())
    })
}

/// The unexpired knock of `server` on `room_id` at `now_ms` (negative: system clock) as JSON
/// `{"room_id", "server", "first_seen_ms", "last_seen_ms", "times"}`, or `null` when there is none.
///
/// # Safety
/// `store` must be `NULL` or a live handle; pointer/length pairs readable; `record_json_out` a
/// valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_knock_store_get(
    store: Option<&servership_knock_store>,
    room_id: *const c_char,
    room_id_len: usize,
    server: *const c_char,
    server_len: usize,
    now_ms: i64,
    record_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_knock_store_get", || {
        let out = required(record_json_out, "record_json_out")?;
        let store = store.ok_or_else(|| Failure::null("store"))?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        // SAFETY: as above.
        let server = unsafe { input_str(server, server_len, "server") }?;
        let record = store.store.get_at(room_id, server, clock(now_ms))?;
        let value = record.map(|r| r.to_json()).unwrap_or(Value::Null);
        output_string(out, out_len, value.to_canonical())
    })
}

/// Deletes every knock expired at `now_ms` (negative: system clock), in batches of 1,000 rows per
/// transaction; `purged_out` (`NULL` allowed) receives how many. Run it on a schedule.
///
/// # Safety
/// `store` must be `NULL` or a live handle; `purged_out` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_knock_store_purge_expired(
    store: Option<&servership_knock_store>,
    now_ms: i64,
    purged_out: Option<&mut usize>,
) -> servership_status {
    call("servership_knock_store_purge_expired", || {
        let store = store.ok_or_else(|| Failure::null("store"))?;
        let purged = store.store.purge_expired_at(clock(now_ms))?;
        if let Some(purged_out) = purged_out {
            *purged_out = purged;
        }
        Ok(())
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
