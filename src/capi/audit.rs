//! The post-join audit (MSC4358, `docs/discovery.md`) for C: choosing peers, asking one peer
//! about one room, the report from the room's membership history, and the queue of audits.
//!
//! JSON in, JSON out:
//! - a membership history is an array of `[user_id, membership, sender]` in the order the
//!   homeserver received the events (entries with invalid IDs or memberships are skipped);
//! - the visible servers, when given, an array of server names (the homeserver's own list of
//!   servers with a joined user; `NULL` with length 0 lets the history decide);
//! - answers are `[{"server": s, "answer": "recognised" | "not_recognised" | "failed",
//!   "error": "..."}]`; candidates `[[server, score], ...]` with non-negative integer scores;
//! - the report is the canonical JSON of `docs/discovery.md` ("Reading the report").

use std::ffi::{c_char, c_int};

use super::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use super::discovery::{handle, store_location};
use super::status::servership_status;
use crate::discovery::{self, Audit, PeerAnswer, RoomView, audit::peer_answer};
use crate::error::Error;
use crate::json::{self, Value};
use crate::store::AuditQueue;

/// The audits waiting to run, and those that ran, in servership's SQLite file (opaque): one
/// audit per room, for ever.
///
/// Thread safety: one handle may be used from several threads at once (calls are serialised
/// inside), and several handles or processes may open the same file. Free it once, when no other
/// thread uses it.
pub struct servership_audit_queue {
    queue: AuditQueue,
}

/// Reads an optional JSON input: `NULL` with length 0 is "absent".
///
/// # Safety
/// As for [`input_bytes`].
unsafe fn optional_input<'a>(
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

/// A JSON array, or `M_BAD_JSON` naming `what`.
fn array(input: &[u8], what: &str) -> Result<Vec<Value>, Error> {
    match json::parse(input).map_err(|e| e.at(what))? {
        Value::Array(items) => Ok(items),
        other => Err(Error::bad_json(format!(
            "{what} must be an array, not {}",
            other.type_name()
        ))),
    }
}

fn history_from(input: &[u8]) -> Result<Vec<(String, String, String)>, Error> {
    array(input, "history")?
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let parts = match entry {
                Value::Array(parts) if parts.len() == 3 => parts,
                _ => {
                    return Err(Error::bad_json(format!(
                        "history[{i}] must be an array [user_id, membership, sender]"
                    )));
                }
            };
            let mut texts = parts.into_iter().enumerate().map(|(j, v)| match v {
                Value::String(s) => Ok(s),
                other => Err(Error::bad_json(format!(
                    "history[{i}][{j}] must be a string, not {}",
                    other.type_name()
                ))),
            });
            let mut next = || {
                texts
                    .next()
                    .unwrap_or_else(|| Err(Error::bad_json(format!("history[{i}] is too short"))))
            };
            Ok((next()?, next()?, next()?))
        })
        .collect()
}

fn strings_from(input: &[u8], what: &str) -> Result<Vec<String>, Error> {
    array(input, what)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s),
            other => Err(Error::bad_json(format!(
                "{what}[{i}] must be a string, not {}",
                other.type_name()
            ))),
        })
        .collect()
}

fn answers_from(input: &[u8]) -> Result<Vec<(String, PeerAnswer)>, Error> {
    array(input, "answers")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let text = |key: &str| -> Result<Option<&str>, Error> {
                match v.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.as_str())),
                    Some(other) => Err(Error::bad_json(format!(
                        "answers[{i}].{key} must be a string, not {}",
                        other.type_name()
                    ))),
                }
            };
            if !matches!(v, Value::Object(_)) {
                return Err(Error::bad_json(format!(
                    "answers[{i}] must be an object, not {}",
                    v.type_name()
                )));
            }
            let server = text("server")?
                .ok_or_else(|| Error::missing_param(format!("answers[{i}].server is required")))?;
            let kind = text("answer")?
                .ok_or_else(|| Error::missing_param(format!("answers[{i}].answer is required")))?;
            let answer =
                peer_answer(kind, text("error")?).map_err(|e| e.at(&format!("answers[{i}]")))?;
            Ok((server.to_owned(), answer))
        })
        .collect()
}

fn candidates_from(input: &[u8]) -> Result<Vec<(String, u64)>, Error> {
    array(input, "candidates")?
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(server), Value::Int(score)] => match u64::try_from(*score) {
                    Ok(score) => Ok((server.clone(), score)),
                    Err(_) => Err(Error::invalid_param(format!(
                        "candidates[{i}][1] must not be negative"
                    ))),
                },
                _ => Err(Error::bad_json(format!(
                    "candidates[{i}] must be [server, score] with a string and an integer"
                ))),
            },
            other => Err(Error::bad_json(format!(
                "candidates[{i}] must be an array [server, score], not {}",
                other.type_name()
            ))),
        })
        .collect()
}

/// The room view from the C arguments.
///
/// # Safety
/// Every pointer/length pair readable (or `NULL` with length 0).
#[allow(clippy::too_many_arguments)]
unsafe fn view_from(
    room_id: *const c_char,
    room_id_len: usize,
    own_server: *const c_char,
    own_server_len: usize,
    history_json: *const u8,
    history_len: usize,
    visible_json: *const u8,
    visible_len: usize,
) -> Result<RoomView, Failure> {
    // SAFETY: the caller guarantees every pointer/length pair is readable.
    let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
    // SAFETY: as above.
    let own_server = unsafe { input_str(own_server, own_server_len, "own_server") }?;
    // SAFETY: as above.
    let history = unsafe { input_bytes(history_json, history_len, "history_json") }?;
    // SAFETY: as above.
    let visible = unsafe { optional_input(visible_json, visible_len, "visible_json") }?;
    let history = history_from(history)?;
    let visible = visible.map(|v| strings_from(v, "visible")).transpose()?;
    Ok(RoomView::from_history(
        room_id,
        own_server,
        &history,
        visible.as_deref(),
    ))
}

/// The audit report of `room_id`, seen by `own_server`, from its membership history
/// (`history_json`), the visible servers (`visible_json`, or `NULL` with length 0) and the
/// peers' answers (`answers_json`): `*report_json_out` receives the report's canonical JSON
/// (`verdict`, `unexplained`, `removed`, `explained`, ...).
///
/// Fails with `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for input that is not the documented
/// JSON (the message names the element, e.g. `history[2][1] must be a string, not an integer`),
/// `SERVERSHIP_MISSING_PARAM`/`SERVERSHIP_INVALID_PARAM` for an answer without a server or with
/// an unknown kind, and `SERVERSHIP_INVALID_UTF8` for text that is not UTF-8.
///
/// # Safety
/// Every pointer/length pair readable (or `NULL` with length 0); `report_json_out` a valid
/// `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_audit_report(
    room_id: *const c_char,
    room_id_len: usize,
    own_server: *const c_char,
    own_server_len: usize,
    history_json: *const u8,
    history_len: usize,
    visible_json: *const u8,
    visible_len: usize,
    answers_json: *const u8,
    answers_len: usize,
    report_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_audit_report", || {
        let out = required(report_json_out, "report_json_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let view = unsafe {
            view_from(
                room_id,
                room_id_len,
                own_server,
                own_server_len,
                history_json,
                history_len,
                visible_json,
                visible_len,
            )
        }?;
        // SAFETY: as above.
        let answers = unsafe { input_bytes(answers_json, answers_len, "answers_json") }?;
        let answers = answers_from(answers)?;
        let peers: Vec<&str> = answers.iter().map(|(p, _)| p.as_str()).collect();
        let audit = Audit::plan(view, &peers, peers.len());
        output_string(out, out_len, audit.report(&answers).to_json())
    })
}

/// Chooses up to `max_peers` peers to ask about `room_id`: `candidates_json` is
/// `[[server, score], ...]` (a score such as the number of rooms shared with that server); each
/// is drawn without replacement with a chance proportional to score + 1, after dropping
/// `own_server`, servers visible in the room (from `history_json` / `visible_json` as for
/// `servership_audit_report`), empty names and repeats. The same `seed` gives the same peers:
/// pass a fresh random seed per audit. `*peers_json_out` receives a JSON array of server names,
/// in the order drawn.
///
/// # Safety
/// Every pointer/length pair readable (or `NULL` with length 0); `peers_json_out` a valid
/// `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_audit_choose_peers(
    room_id: *const c_char,
    room_id_len: usize,
    own_server: *const c_char,
    own_server_len: usize,
    history_json: *const u8,
    history_len: usize,
    visible_json: *const u8,
    visible_len: usize,
    candidates_json: *const u8,
    candidates_len: usize,
    max_peers: usize,
    seed: u64,
    peers_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_audit_choose_peers", || {
        let out = required(peers_json_out, "peers_json_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let view = unsafe {
            view_from(
                room_id,
                room_id_len,
                own_server,
                own_server_len,
                history_json,
                history_len,
                visible_json,
                visible_len,
            )
        }?;
        // SAFETY: as above.
        let candidates =
            unsafe { input_bytes(candidates_json, candidates_len, "candidates_json") }?;
        let candidates = candidates_from(candidates)?;
        let audit = Audit::choose(view, &candidates, max_peers, seed);
        let peers = audit
            .peers()
            .iter()
            .map(|p| Value::from(p.as_str()))
            .collect();
        output_string(out, out_len, Value::Array(peers).to_canonical())
    })
}

/// The `discover_common_rooms` request body asking `peer` about `room_id` alone (the tag keyed by
/// the peer's name), canonical JSON, into `*out`.
///
/// # Safety
/// Pointer/length pairs readable; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_request_body(
    peer: *const c_char,
    peer_len: usize,
    room_id: *const c_char,
    room_id_len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_audit_request_body", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let peer = unsafe { input_str(peer, peer_len, "peer") }?;
        // SAFETY: as above.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        output_string(out, out_len, discovery::request_body_for(peer, room_id))
    })
}

/// Reads `peer`'s response `body` to `servership_audit_request_body(peer, room_id)`:
/// `*recognised_out` receives 1 if the peer recognised the room, 0 if not.
///
/// A malformed answer (not JSON, no `recognised_tags` array of tags, a tag that was not asked)
/// fails with `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` and the reason in the last error; count
/// such a peer as failed (`"answer": "failed"` for `servership_audit_report`).
///
/// # Safety
/// Pointer/length pairs readable; `recognised_out` a valid `int *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_read_response(
    peer: *const c_char,
    peer_len: usize,
    room_id: *const c_char,
    room_id_len: usize,
    body: *const u8,
    body_len: usize,
    recognised_out: Option<&mut c_int>,
) -> servership_status {
    call("servership_audit_read_response", || {
        let out = required(recognised_out, "recognised_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let peer = unsafe { input_str(peer, peer_len, "peer") }?;
        // SAFETY: as above.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        // SAFETY: as above.
        let body = unsafe { input_bytes(body, body_len, "body") }?;
        let recognised = discovery::recognised_in(peer, room_id, body)?;
        *out = c_int::from(recognised);
        Ok(())
    })
}

/// Opens (creating if needed) the audit queue in the store at `path` (the tag store's): an SQLite
/// file, or a PostgreSQL connection string as for `servership_tag_store_open`. On success `*out`
/// receives a handle to free with `servership_audit_queue_free`.
///
/// Fails with `SERVERSHIP_INVALID_PARAM` for an empty path, one with a NUL byte or an invalid
/// connection string, and `SERVERSHIP_UNKNOWN` if the store cannot be opened.
///
/// # Safety
/// `path` readable; `out` a valid `servership_audit_queue **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_queue_open(
    path: *const c_char,
    path_len: usize,
    out: Option<&mut *mut servership_audit_queue>,
) -> servership_status {
    call("servership_audit_queue_open", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `path` points to `path_len` readable bytes.
        let path = unsafe { input_bytes(path.cast::<u8>(), path_len, "path") }?;
        let queue = AuditQueue::open(store_location(path)?)?;
        *out = Box::into_raw(Box::new(servership_audit_queue { queue }));
        Ok(())
    })
}

/// Closes an audit queue handle. `NULL` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn servership_audit_queue_free(queue: Option<Box<servership_audit_queue>>) {
    drop(queue);
}

/// Queues the audit of `room_id`, due at `due_ms` (ms since the Unix epoch). `*added_out` (if not
/// `NULL`) receives `false` when the room is already pending or was audited: one audit per room.
///
/// # Safety
/// `queue` `NULL` or live; `room_id` readable; `added_out` `NULL` or a valid `bool *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_queue_enqueue(
    queue: Option<&servership_audit_queue>,
    room_id: *const c_char,
    room_id_len: usize,
    due_ms: i64,
    now_ms: i64,
    added_out: Option<&mut bool>,
) -> servership_status {
    call("servership_audit_queue_enqueue", || {
        let queue = handle(queue, "queue")?;
        // SAFETY: the caller guarantees `room_id` points to `room_id_len` readable bytes.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        let added = queue.queue.enqueue(room_id, due_ms, now_ms)?;
        if let Some(out) = added_out {
            *out = added;
        }
        Ok(())
    })
}

/// Up to `limit` pending rooms due at `now_ms`, earliest first, as a JSON array of room IDs into
/// `*rooms_json_out`.
///
/// # Safety
/// `queue` `NULL` or live; `rooms_json_out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_queue_due(
    queue: Option<&servership_audit_queue>,
    now_ms: i64,
    limit: usize,
    rooms_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_audit_queue_due", || {
        let out = required(rooms_json_out, "rooms_json_out")?;
        let queue = handle(queue, "queue")?;
        let rooms = queue.queue.due(now_ms, limit)?;
        let rooms = rooms.iter().map(|r| Value::from(r.as_str())).collect();
        output_string(out, out_len, Value::Array(rooms).to_canonical())
    })
}

/// Marks the audit of `room_id` done at `now_ms` with `verdict` (the report's verdict, or e.g.
/// `failed`; 1 to 255 bytes, no control characters). `*finished_out` (if not `NULL`) receives
/// `false` when the room was not pending.
///
/// # Safety
/// `queue` `NULL` or live; pointer/length pairs readable; `finished_out` `NULL` or a valid
/// `bool *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_queue_finish(
    queue: Option<&servership_audit_queue>,
    room_id: *const c_char,
    room_id_len: usize,
    now_ms: i64,
    verdict: *const c_char,
    verdict_len: usize,
    finished_out: Option<&mut bool>,
) -> servership_status {
    call("servership_audit_queue_finish", || {
        let queue = handle(queue, "queue")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        // SAFETY: as above.
        let verdict = unsafe { input_str(verdict, verdict_len, "verdict") }?;
        let finished = queue.queue.finish(room_id, now_ms, verdict)?;
        if let Some(out) = finished_out {
            *out = finished;
        }
        Ok(())
    })
}

/// Moves the pending audit of `room_id` to `due_ms`, counting one more attempt.
/// `*postponed_out` (if not `NULL`) receives `false` when the room is not pending.
///
/// # Safety
/// `queue` `NULL` or live; `room_id` readable; `postponed_out` `NULL` or a valid `bool *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_queue_postpone(
    queue: Option<&servership_audit_queue>,
    room_id: *const c_char,
    room_id_len: usize,
    due_ms: i64,
    postponed_out: Option<&mut bool>,
) -> servership_status {
    call("servership_audit_queue_postpone", || {
        let queue = handle(queue, "queue")?;
        // SAFETY: the caller guarantees `room_id` points to `room_id_len` readable bytes.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        let postponed = queue.queue.postpone(room_id, due_ms)?;
        if let Some(out) = postponed_out {
            *out = postponed;
        }
        Ok(())
    })
}

/// How many audits finished at `since_ms` or later, into `*out` (for a per-hour bound).
///
/// # Safety
/// `queue` `NULL` or live; `out` a valid `uint64_t *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_audit_queue_finished_since(
    queue: Option<&servership_audit_queue>,
    since_ms: i64,
    out: Option<&mut u64>,
) -> servership_status {
    call("servership_audit_queue_finished_since", || {
        let out = required(out, "out")?;
        let queue = handle(queue, "queue")?;
        *out = queue.queue.finished_since(since_ms)?;
        Ok(())
    })
}
