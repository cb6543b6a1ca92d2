//! Status codes returned by every fallible C function.
//!
//! A status is a plain `int` (not a C enum) so that a value C hands back to Rust can never be an
//! invalid enum. The numbers are stable: a code is never renumbered, and a retired code is never
//! reused. Codes 1–9 are failures of the call itself (a caller bug, or a bug of ours); codes from
//! 10 on mirror the Matrix `errcode` of the failure, whose details (`errcode`, HTTP status,
//! message, error body) come from `servership_last_error_*`.

use std::ffi::{CStr, c_char};

use crate::error::ErrCode;

/// The status returned by every fallible C function: `SERVERSHIP_OK` (0) or a failure code.
#[allow(non_camel_case_types)]
pub type servership_status = i32;

/// Success.
pub const SERVERSHIP_OK: servership_status = 0;
/// A required pointer argument was `NULL` (or `NULL` with a non-zero length).
pub const SERVERSHIP_NULL_POINTER: servership_status = 1;
/// servership panicked: a bug in servership. The call had no effect; please report it.
pub const SERVERSHIP_PANIC: servership_status = 2;
/// A text argument (server name, key ID, room version...) was not valid UTF-8.
pub const SERVERSHIP_INVALID_UTF8: servership_status = 3;
/// `M_NOT_JSON`: the input is not JSON at all.
pub const SERVERSHIP_NOT_JSON: servership_status = 10;
/// `M_BAD_JSON`: JSON that Matrix refuses (duplicate keys, floats, deep nesting, wrong types...).
pub const SERVERSHIP_BAD_JSON: servership_status = 11;
/// `M_INVALID_PARAM`: a parameter has an invalid value.
pub const SERVERSHIP_INVALID_PARAM: servership_status = 12;
/// `M_MISSING_PARAM`: a required parameter is missing.
pub const SERVERSHIP_MISSING_PARAM: servership_status = 13;
/// `M_INCOMPATIBLE_ROOM_VERSION`: the room version is unknown or not handled here.
pub const SERVERSHIP_INCOMPATIBLE_ROOM_VERSION: servership_status = 14;
/// `M_TOO_LARGE`: the input or a part of it is larger than allowed.
pub const SERVERSHIP_TOO_LARGE: servership_status = 15;
/// `M_LIMIT_EXCEEDED`: a rate limit was hit; see the error body's `retry_after_ms`.
pub const SERVERSHIP_LIMIT_EXCEEDED: servership_status = 16;
/// `M_FORBIDDEN`: understood but refused.
pub const SERVERSHIP_FORBIDDEN: servership_status = 17;
/// `M_UNAUTHORIZED`: a signature is missing or does not verify.
pub const SERVERSHIP_UNAUTHORIZED: servership_status = 18;
/// `M_NOT_FOUND`: nothing is known about the requested thing.
pub const SERVERSHIP_NOT_FOUND: servership_status = 19;
/// `M_UNKNOWN`: an internal failure, such as a storage error.
pub const SERVERSHIP_UNKNOWN: servership_status = 20;

/// The status code for a Matrix error code.
pub(crate) fn status_for(errcode: ErrCode) -> servership_status {
    match errcode {
        ErrCode::NotJson => SERVERSHIP_NOT_JSON,
        ErrCode::BadJson => SERVERSHIP_BAD_JSON,
        ErrCode::InvalidParam => SERVERSHIP_INVALID_PARAM,
        ErrCode::MissingParam => SERVERSHIP_MISSING_PARAM,
        ErrCode::IncompatibleRoomVersion => SERVERSHIP_INCOMPATIBLE_ROOM_VERSION,
        ErrCode::TooLarge => SERVERSHIP_TOO_LARGE,
        ErrCode::LimitExceeded => SERVERSHIP_LIMIT_EXCEEDED,
        ErrCode::Forbidden => SERVERSHIP_FORBIDDEN,
        ErrCode::Unauthorized => SERVERSHIP_UNAUTHORIZED,
        ErrCode::NotFound => SERVERSHIP_NOT_FOUND,
        _ => SERVERSHIP_UNKNOWN,
    }
}

/// A short, static description of a status code (for example `"M_BAD_JSON: JSON that Matrix
/// refuses"`). Unknown codes get `"unknown status code"`. Never `NULL`; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn servership_status_description(status: servership_status) -> *const c_char {
    let text: &'static CStr = match status {
        SERVERSHIP_OK => c"success",
        SERVERSHIP_NULL_POINTER => c"a required pointer argument was NULL",
        SERVERSHIP_PANIC => c"internal panic in servership (a bug; please report it)",
        SERVERSHIP_INVALID_UTF8 => c"a text argument was not valid UTF-8",
        SERVERSHIP_NOT_JSON => c"M_NOT_JSON: the input is not JSON",
        SERVERSHIP_BAD_JSON => c"M_BAD_JSON: JSON that Matrix refuses",
        SERVERSHIP_INVALID_PARAM => c"M_INVALID_PARAM: a parameter has an invalid value",
        SERVERSHIP_MISSING_PARAM => c"M_MISSING_PARAM: a required parameter is missing",
        SERVERSHIP_INCOMPATIBLE_ROOM_VERSION => {
            c"M_INCOMPATIBLE_ROOM_VERSION: room version not handled"
        }
        SERVERSHIP_TOO_LARGE => c"M_TOO_LARGE: input larger than allowed",
        SERVERSHIP_LIMIT_EXCEEDED => c"M_LIMIT_EXCEEDED: rate limit hit",
        SERVERSHIP_FORBIDDEN => c"M_FORBIDDEN: refused",
        SERVERSHIP_UNAUTHORIZED => c"M_UNAUTHORIZED: signature missing or invalid",
        SERVERSHIP_NOT_FOUND => c"M_NOT_FOUND: nothing known about it",
        SERVERSHIP_UNKNOWN => c"M_UNKNOWN: internal failure",
        _ => c"unknown status code",
    };
    text.as_ptr()
}
