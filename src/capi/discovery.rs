//! Out-of-room server discovery (MSC4358, `docs/discovery.md`) for C: the participation tag, the
//! permanent tag store and the `discover_common_rooms` responder (the audit is in `audit.rs`).
//!
//! [`servership_responder`] holds a reference-counted pointer to its store, so the store handle
//! may be freed before the responder (the store closes when the last of them goes).

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;

use super::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use super::status::servership_status;
use crate::discovery::{self, Responder, ResponderConfig};
use crate::error::Error;
use crate::json::{self, Value};
use crate::store::{Location, StoreBudget, TagStore};

/// A server's permanent store of room participation tags in its own SQLite file (opaque).
///
/// Thread safety: one handle may be used from several threads at once (calls are serialised
/// inside), and several handles or processes may open the same file. Free it once, when no other
/// thread uses it; responders made from it keep the store open on their own.
pub struct servership_tag_store {
    store: Arc<TagStore>,
}

/// The `discover_common_rooms` endpoint over a tag store, with per-request limits and per-origin
/// budgets (opaque).
///
/// Thread safety: one responder may answer requests from several threads at once (the budgets
/// are behind a lock, or in SQLite for a shared responder). Free it once, when no other thread
/// uses it.
pub struct servership_responder {
    responder: Responder,
}

/// Reads a handle argument that must not be `NULL`.
pub(crate) fn handle<'a, T>(h: Option<&'a T>, argument: &str) -> Result<&'a T, Failure> {
    h.ok_or_else(|| Failure::null(argument))
}

/// The room participation tag `server_name` keeps for `room_id` (HMAC-SHA256 keyed by the server
/// name exactly as written in Matrix IDs), as unpadded standard base64 (43 characters), in a new
/// string to free with `servership_string_free`.
///
/// Fails with `SERVERSHIP_INVALID_UTF8` for text that is not UTF-8.
///
/// # Safety
/// Pointer/length pairs must be readable (or `NULL` with length 0); `out` a valid `char **`;
/// `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_participation_tag(
    server_name: *const c_char,
    server_name_len: usize,
    room_id: *const c_char,
    room_id_len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_participation_tag", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let server_name = unsafe { input_str(server_name, server_name_len, "server_name") }?;
        // SAFETY: as above.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        let tag = discovery::participation_tag(server_name, room_id).to_base64();
        output_string(out, out_len, tag.into_bytes())
    })
}

/// Opens (creating if needed) the tag store at `path` for `server_name`: an SQLite file path, or
/// a PostgreSQL connection string (`postgresql://…`, `postgres://…` or `host=… dbname=…`).
///
/// On success `*out` receives a handle to free with `servership_tag_store_free`. Fails with
/// `SERVERSHIP_INVALID_PARAM` if the store belongs to another server name (every tag depends on
/// the name), the path is empty or the connection string invalid, and `SERVERSHIP_UNKNOWN` if
/// the store cannot be opened (including a PostgreSQL server that does not answer within a few
/// seconds).
///
/// # Safety
/// Pointer/length pairs must be readable; `out` a valid `servership_tag_store **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_tag_store_open(
    path: *const c_char,
    path_len: usize,
    server_name: *const c_char,
    server_name_len: usize,
    out: Option<&mut *mut servership_tag_store>,
) -> servership_status {
    call("servership_tag_store_open", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `path` points to `path_len` readable bytes.
        let path = unsafe { input_bytes(path.cast::<u8>(), path_len, "path") }?;
        // SAFETY: as above, for `server_name`.
        let server_name = unsafe { input_str(server_name, server_name_len, "server_name") }?;
        let location = store_location(path)?;
        let store = TagStore::open(location, server_name)?;
        *out = Box::into_raw(Box::new(servership_tag_store {
            store: Arc::new(store),
        }));
        Ok(())
    })
}

/// A store location from C bytes: a PostgreSQL connection string (`postgresql://…`,
/// `postgres://…` or libpq `key=value` pairs) if the bytes are UTF-8 and read as one, otherwise a
/// file path (any bytes but NUL on Unix, where paths are bytes; UTF-8 elsewhere).
pub(crate) fn store_location(bytes: &[u8]) -> Result<Location, Failure> {
    if bytes.is_empty() {
        return Err(Error::invalid_param("path must not be empty").into());
    }
    if bytes.contains(&0) {
        return Err(Error::invalid_param("path must not contain a NUL byte").into());
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(Location::parse(text)?);
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(Location::Sqlite(PathBuf::from(
            std::ffi::OsStr::from_bytes(bytes),
        )))
    }
    #[cfg(not(unix))]
    {
        Err(Failure::invalid_utf8("path"))
    }
}

/// Closes a tag store handle. `NULL` is a no-op. Responders made from it stay usable.
#[unsafe(no_mangle)]
pub extern "C" fn servership_tag_store_free(store: Option<Box<servership_tag_store>>) {
    drop(store);
}

/// Records that this server joined `room_id` at `joined_at_ms` (milliseconds since the Unix
/// epoch). `*newly_added_out` (if not `NULL`) receives whether the room is new; a room already
/// recorded keeps its first-joined time. The write is durable when this returns.
///
/// Fails with `SERVERSHIP_INVALID_PARAM` for a room ID that does not start with `!`, is longer
/// than 255 bytes or contains control characters.
///
/// # Safety
/// `store` `NULL` or live; `room_id` readable; `newly_added_out` `NULL` or a valid `bool *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_tag_store_record_join(
    store: Option<&servership_tag_store>,
    room_id: *const c_char,
    room_id_len: usize,
    joined_at_ms: i64,
    newly_added_out: Option<&mut bool>,
) -> servership_status {
    call("servership_tag_store_record_join", || {
        let store = handle(store, "store")?;
        // SAFETY: the caller guarantees `room_id` points to `room_id_len` readable bytes.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        let added = store.store.record_join(room_id, joined_at_ms)?;
        if let Some(out) = newly_added_out {
            *out = added;
        }
        Ok(())
    })
}

/// Records many rooms in one transaction, all first joined at `now_ms`: `room_ids_json` is a
/// JSON array of room ID strings. `*added_out` (if not `NULL`) receives how many were new.
/// All or nothing.
///
/// Fails with `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for input that is not a JSON array of
/// strings (the message names the index) and `SERVERSHIP_INVALID_PARAM` for a bad room ID.
///
/// # Safety
/// `store` `NULL` or live; `room_ids_json` readable; `added_out` `NULL` or a valid `size_t *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_tag_store_backfill(
    store: Option<&servership_tag_store>,
    room_ids_json: *const c_char,
    room_ids_json_len: usize,
    now_ms: i64,
    added_out: Option<&mut usize>,
) -> servership_status {
    call("servership_tag_store_backfill", || {
        let store = handle(store, "store")?;
        // SAFETY: the caller guarantees `room_ids_json` points to `room_ids_json_len` bytes.
        let input = unsafe { input_bytes(room_ids_json.cast::<u8>(), room_ids_json_len, "json") }?;
        let rooms = room_id_list(input)?;
        let added = store.store.backfill(&rooms, now_ms)?;
        if let Some(out) = added_out {
            *out = added;
        }
        Ok(())
    })
}

/// Reads a JSON array of strings, naming the bad element.
fn room_id_list(input: &[u8]) -> Result<Vec<String>, Error> {
    let value = json::parse(input)?;
    let Value::Array(items) = value else {
        return Err(Error::bad_json(format!(
            "room_ids must be an array of strings, not {}",
            value.type_name()
        )));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s),
            other => Err(Error::bad_json(format!(
                "room_ids[{i}] must be a string, not {}",
                other.type_name()
            ))),
        })
        .collect()
}

/// `servership_tag_store_record_join`, and, only if the room is new, queues its post-join audit
/// due at `audit_due_ms` in the audit queue of the same file (`servership_audit_queue_*`), in one
/// transaction: a crash can never leave a new tag without its audit. `*newly_added_out` (if not
/// `NULL`) receives whether the room is new.
///
/// Fails with `SERVERSHIP_INVALID_PARAM` for a bad room ID (as `servership_tag_store_record_join`).
///
/// # Safety
/// `store` `NULL` or live; `room_id` readable; `newly_added_out` `NULL` or a valid `bool *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_tag_store_record_join_and_queue_audit(
    store: Option<&servership_tag_store>,
    room_id: *const c_char,
    room_id_len: usize,
    joined_at_ms: i64,
    audit_due_ms: i64,
    newly_added_out: Option<&mut bool>,
) -> servership_status {
    call("servership_tag_store_record_join_and_queue_audit", || {
        let store = handle(store, "store")?;
        // SAFETY: the caller guarantees `room_id` points to `room_id_len` readable bytes.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        let added = store
            .store
            .record_join_and_queue_audit(room_id, joined_at_ms, audit_due_ms)?;
        if let Some(out) = newly_added_out {
            *out = added;
        }
        Ok(())
    })
}

/// Whether this server has ever joined `room_id`, into `*out`.
///
/// # Safety
/// `store` `NULL` or live; `room_id` readable; `out` a valid `bool *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_tag_store_contains_room(
    store: Option<&servership_tag_store>,
    room_id: *const c_char,
    room_id_len: usize,
    out: Option<&mut bool>,
) -> servership_status {
    call("servership_tag_store_contains_room", || {
        let out = required(out, "out")?;
        let store = handle(store, "store")?;
        // SAFETY: the caller guarantees `room_id` points to `room_id_len` readable bytes.
        let room_id = unsafe { input_str(room_id, room_id_len, "room_id") }?;
        *out = store.store.contains_room(room_id)?;
        Ok(())
    })
}

/// How many rooms the store holds (including other processes' latest commits), into `*out`.
///
/// # Safety
/// `store` `NULL` or live; `out` a valid `size_t *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_tag_store_len(
    store: Option<&servership_tag_store>,
    out: Option<&mut usize>,
) -> servership_status {
    call("servership_tag_store_len", || {
        let out = required(out, "out")?;
        let store = handle(store, "store")?;
        *out = store.store.len()?;
        Ok(())
    })
}

/// Creates a responder answering from `store` with at most `max_tags_per_request` tags a request
/// and `budget_tags` tags per `budget_window_ms` per origin (the defaults are 1000, 10000 and
/// 60000). Only the unstable path is served.
///
/// The responder keeps the store alive (a shared reference), so `servership_tag_store_free` may
/// be called before `servership_responder_free`. Fails with `SERVERSHIP_INVALID_PARAM` for limits
/// that do not fit together (a zero, or `budget_tags` below `max_tags_per_request`).
///
/// # Safety
/// `store` `NULL` or live; `out` a valid `servership_responder **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_responder_new(
    store: Option<&servership_tag_store>,
    max_tags_per_request: usize,
    budget_tags: u64,
    budget_window_ms: u64,
    out: Option<&mut *mut servership_responder>,
) -> servership_status {
    call("servership_responder_new", || {
        let out = required(out, "out")?;
        let store = handle(store, "store")?;
        let config = ResponderConfig {
            max_tags_per_request,
            budget_tags,
            budget_window_ms,
            ..ResponderConfig::default()
        };
        let responder = Responder::new(Arc::clone(&store.store), config)?;
        *out = Box::into_raw(Box::new(servership_responder { responder }));
        Ok(())
    })
}

/// Like `servership_responder_new`, but the per-origin budgets live in the store's SQLite file:
/// every responder and process that opens the same file draws on one budget, and a restart does
/// not reset it (use it when several processes answer for one server). Charging waits at most
/// about a second for a busy file, then fails with `SERVERSHIP_UNKNOWN` (500), never allowing
/// the request silently.
///
/// # Safety
/// `store` `NULL` or live; `out` a valid `servership_responder **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_responder_new_shared(
    store: Option<&servership_tag_store>,
    max_tags_per_request: usize,
    budget_tags: u64,
    budget_window_ms: u64,
    out: Option<&mut *mut servership_responder>,
) -> servership_status {
    call("servership_responder_new_shared", || {
        let out = required(out, "out")?;
        let store = handle(store, "store")?;
        let config = ResponderConfig {
            max_tags_per_request,
            budget_tags,
            budget_window_ms,
            ..ResponderConfig::default()
        };
        config.validate()?;
        let budget = StoreBudget::open(store.store.location(), budget_tags, budget_window_ms)?;
        let responder = Responder::with_budget(Arc::clone(&store.store), config, Arc::new(budget))?;
        *out = Box::into_raw(Box::new(servership_responder { responder }));
        Ok(())
    })
}

/// The budget key of an origin: the host lowercased, trailing dots and the default port `:8448`
/// removed, IPv6 literals written canonically (`Asker.Example.:8448` gives `asker.example`).
/// Responders charge every origin under this key. `*out` receives a new string to free with
/// `servership_string_free`.
///
/// # Safety
/// `origin` readable; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_normalise_origin(
    origin: *const c_char,
    origin_len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_normalise_origin", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `origin` points to `origin_len` readable bytes.
        let origin = unsafe { input_str(origin, origin_len, "origin") }?;
        if origin.contains('\0') {
            return Err(Error::invalid_param("origin must not contain a NUL byte").into());
        }
        output_string(
            out,
            out_len,
            discovery::normalise_origin(origin).into_bytes(),
        )
    })
}

/// Frees a responder. `NULL` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn servership_responder_free(responder: Option<Box<servership_responder>>) {
    drop(responder);
}

/// Answers one `discover_common_rooms` request: `body` as received, `origin` the server
/// authenticated by X-Matrix, `now_ms` the current time (ms since the Unix epoch). On success
/// `*out` receives the response body (canonical JSON, `200`).
///
/// On failure nothing is written; answer with `servership_last_error_http_status()` and
/// `servership_last_error_json()`: `SERVERSHIP_TOO_LARGE` (413, body or tag count over the
/// limit), `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` (400), `SERVERSHIP_MISSING_PARAM` and
/// `SERVERSHIP_INVALID_PARAM` (400, e.g. `room_participation_tags[3] is not 32 bytes of base64`),
/// `SERVERSHIP_LIMIT_EXCEEDED` (429, the error JSON carries `retry_after_ms`).
///
/// # Safety
/// `responder` `NULL` or live; pointer/length pairs readable; `out` a valid `char **`; `out_len`
/// `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_responder_respond(
    responder: Option<&servership_responder>,
    body: *const u8,
    body_len: usize,
    origin: *const c_char,
    origin_len: usize,
    now_ms: u64,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_responder_respond", || {
        let out = required(out, "out")?;
        let responder = handle(responder, "responder")?;
        // SAFETY: the caller guarantees `body` points to `body_len` readable bytes.
        let body = unsafe { input_bytes(body, body_len, "body") }?;
        // SAFETY: as above, for `origin`.
        let origin = unsafe { input_str(origin, origin_len, "origin") }?;
        if origin.is_empty() {
            return Err(Error::invalid_param("origin must not be empty").into());
        }
        let answer = responder.responder.respond(body, origin, now_ms)?;
        output_string(out, out_len, answer)
    })
}
