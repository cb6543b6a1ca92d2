//! Matrix identifiers for C: validation of server names, user IDs, room IDs and event IDs, server
//! pseudousers, and percent-decoding of URL path segments.
//!
//! Validation functions return `SERVERSHIP_OK` for a valid identifier and
//! `SERVERSHIP_INVALID_PARAM` (with a message saying what is wrong) otherwise, so a homeserver can
//! answer a bad identifier from the network with `servership_last_error_json()` directly.

use std::ffi::c_char;

use super::boundary::{call, input_bytes, input_str, output_string, required};
use super::status::servership_status;
use crate::ids::{self, EventId, RoomId, ServerName, UserId};

/// Runs `validate` on a text argument inside the panic boundary.
///
/// # Safety
/// `value` must point to `len` readable bytes (or be `NULL` with length 0).
unsafe fn validate(
    function: &str,
    value: *const c_char,
    len: usize,
    validate: impl FnOnce(&str) -> crate::Result<()>,
) -> servership_status {
    call(function, || {
        // SAFETY: forwarded contract of this function.
        let value = unsafe { input_str(value, len, "value") }?;
        validate(value)?;
        Ok(())
    })
}

/// Checks a server name (`host[:port]`: a DNS name, IPv4 address or bracketed IPv6 address, at
/// most 253 bytes before the port). `SERVERSHIP_INVALID_PARAM` when it is not valid.
///
/// # Safety
/// `value` must point to `len` readable bytes (or be `NULL` with length 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_validate_server_name(
    value: *const c_char,
    len: usize,
) -> servership_status {
    // SAFETY: forwarded contract.
    unsafe {
        validate("servership_validate_server_name", value, len, |v| {
            ServerName::parse(v).map(drop)
        })
    }
}

/// Checks a user ID (`@localpart:server_name`, historical localparts accepted, at most 255 bytes).
/// Server pseudousers (`@:server`) are valid user IDs. `SERVERSHIP_INVALID_PARAM` otherwise.
///
/// # Safety
/// `value` must point to `len` readable bytes (or be `NULL` with length 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_validate_user_id(
    value: *const c_char,
    len: usize,
) -> servership_status {
    // SAFETY: forwarded contract.
    unsafe {
        validate("servership_validate_user_id", value, len, |v| {
            UserId::parse(v).map(drop)
        })
    }
}

/// Checks a room ID: legacy `!opaque:server_name` or the room version 12 form (`!` and 43 URL-safe
/// base64 characters). `SERVERSHIP_INVALID_PARAM` otherwise.
///
/// # Safety
/// `value` must point to `len` readable bytes (or be `NULL` with length 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_validate_room_id(
    value: *const c_char,
    len: usize,
) -> servership_status {
    // SAFETY: forwarded contract.
    unsafe {
        validate("servership_validate_room_id", value, len, |v| {
            RoomId::parse(v).map(drop)
        })
    }
}

/// Checks an event ID: `$opaque:server_name` (room versions 1–2) or `$` and 43 characters of
/// standard (v3) or URL-safe (v4+) base64. `SERVERSHIP_INVALID_PARAM` otherwise.
///
/// # Safety
/// `value` must point to `len` readable bytes (or be `NULL` with length 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_validate_event_id(
    value: *const c_char,
    len: usize,
) -> servership_status {
    // SAFETY: forwarded contract.
    unsafe {
        validate("servership_validate_event_id", value, len, |v| {
            EventId::parse(v).map(drop)
        })
    }
}

/// `true` when `user_id` is a server pseudouser: `@:server_name` (empty localpart, valid server
/// name). Never fails: `NULL`, invalid UTF-8 and malformed IDs are simply `false`. It does not
/// change the last error.
///
/// # Safety
/// `user_id` must point to `len` readable bytes (or be `NULL`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_is_server_pseudouser(
    user_id: *const c_char,
    len: usize,
) -> bool {
    if user_id.is_null() {
        return false;
    }
    // SAFETY: `user_id` is non-NULL and the caller guarantees `len` readable bytes.
    let Ok(bytes) = (unsafe { input_bytes(user_id.cast::<u8>(), len, "user_id") }) else {
        return false;
    };
    std::str::from_utf8(bytes).is_ok_and(ids::is_server_pseudouser)
}

/// The server pseudouser of `server_name` (`@:server_name`), as a new string to free with
/// `servership_string_free`. `SERVERSHIP_INVALID_PARAM` for an invalid server name.
///
/// # Safety
/// `server_name` must point to `len` readable bytes; `out` a valid `char **`; `out_len` `NULL` or
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_server_pseudouser(
    server_name: *const c_char,
    len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_server_pseudouser", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `server_name` points to `len` readable bytes.
        let server_name = unsafe { input_str(server_name, len, "server_name") }?;
        let server = ServerName::parse(server_name)?;
        let user = ids::server_pseudouser(&server);
        output_string(out, out_len, user.into_string().into_bytes())
    })
}

/// Percent-decodes one URL path segment (`%21abc%3Aexample.org` → `!abc:example.org`), as a new
/// string to free with `servership_string_free`. Fails with `SERVERSHIP_INVALID_PARAM` for a
/// malformed escape, a decoded NUL or a result that is not UTF-8.
///
/// # Safety
/// `segment` must point to `len` readable bytes; `out` a valid `char **`; `out_len` `NULL` or
/// valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_percent_decode_path_segment(
    segment: *const c_char,
    len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_percent_decode_path_segment", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `segment` points to `len` readable bytes.
        let segment = unsafe { input_str(segment, len, "segment") }?;
        let decoded = ids::percent_decode_path_segment(segment)?;
        output_string(out, out_len, decoded.into_bytes())
    })
}

/// Percent-encodes text for one URL path segment (`!abc:example.org` → `%21abc%3Aexample.org`), as
/// a new string to free with `servership_string_free`.
///
/// # Safety
/// `value` must point to `len` readable bytes; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_percent_encode_path_segment(
    value: *const c_char,
    len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_percent_encode_path_segment", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `value` points to `len` readable bytes.
        let value = unsafe { input_str(value, len, "value") }?;
        output_string(
            out,
            out_len,
            ids::percent_encode_path_segment(value).into_bytes(),
        )
    })
}
