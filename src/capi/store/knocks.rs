//! The knock store for C: recorded `m.server.knock` EDUs in servership's store (MSC4099).

use std::ffi::c_char;
use std::time::Duration;

use crate::capi::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use crate::capi::discovery::store_location;
use crate::capi::status::servership_status;
use crate::json::Value;
use crate::store::{KnockLimits, KnockStore};

/// Recorded `m.server.knock` EDUs in servership's store (SQLite or PostgreSQL), one row per (room, server), expiring
/// a fixed time after last seen (opaque).
///
/// Thread safety: may be used from several threads at once (calls are serialised inside); free it
/// once, when no other thread uses it.
pub struct servership_knock_store {
    store: KnockStore,
}

/// Opens (creating if needed) the knock store at `path` (an SQLite file, or a PostgreSQL
/// connection string as for `servership_tag_store_open`); knocks expire
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
        let path = unsafe { input_bytes(path.cast::<u8>(), path_len, "path") }?;
        let store = KnockStore::open(
            store_location(path)?,
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
        let path = unsafe { input_bytes(path.cast::<u8>(), path_len, "path") }?;
        let store = KnockStore::open_with_limits(
            store_location(path)?,
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
