//! The last error, kept per thread.
//!
//! Every fallible function records its failure here, and clears the record when it succeeds. The
//! getters below read the record of the calling thread and never change it, so a caller can ask
//! for the message, the errcode and the error body of the same failure one after the other.
//!
//! Strings returned by the getters are **borrowed**: NUL-terminated, owned by servership, valid
//! until the calling thread makes its next call to a servership function other than
//! `servership_last_error_*`, `servership_status_description` and `servership_version`. Copy them
//! if they must live longer; never free them. With no recorded failure the getters return `""`
//! (never `NULL`) and `0`.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use super::status::{SERVERSHIP_OK, servership_status};
use crate::error::Error;

/// One recorded failure, with its strings already NUL-terminated for C.
struct LastError {
    status: servership_status,
    http_status: u16,
    message: CString,
    errcode: CString,
    json: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// A C string from arbitrary text: an interior NUL (possible in a message quoting hostile input)
/// would cut the string short, so it is spelled out instead.
fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\\u0000")).unwrap_or_default()
}

/// Records `error` as the calling thread's last error.
pub(crate) fn set(status: servership_status, error: &Error) {
    let record = LastError {
        status,
        http_status: error.status(),
        message: c_string(error.message()),
        errcode: c_string(error.errcode().as_str()),
        json: c_string(&error.to_json()),
    };
    // `try_with` fails only while the thread is being torn down; there is nobody left to tell.
    let _ = LAST_ERROR.try_with(|cell| cell.replace(Some(record)));
}

/// Forgets the calling thread's last error (after a successful call).
pub(crate) fn clear() {
    let _ = LAST_ERROR.try_with(|cell| cell.replace(None));
}

/// Reads a field of the last error, or `default` when there is none.
fn read<T>(default: T, field: impl FnOnce(&LastError) -> T) -> T {
    LAST_ERROR
        .try_with(|cell| match cell.try_borrow() {
            Ok(last) => last.as_ref().map(field),
            Err(_) => None,
        })
        .ok()
        .flatten()
        .unwrap_or(default)
}

/// The status code of the calling thread's last failure, or `SERVERSHIP_OK` if its last call
/// succeeded.
#[unsafe(no_mangle)]
pub extern "C" fn servership_last_error_status() -> servership_status {
    read(SERVERSHIP_OK, |e| e.status)
}

/// What went wrong in the calling thread's last failed call, and where (for example
/// `"state[2].state_key must be \"\""`). Borrowed: see the module notes in the header. `""` if
/// the last call succeeded.
#[unsafe(no_mangle)]
pub extern "C" fn servership_last_error_message() -> *const c_char {
    read(c"".as_ptr(), |e| e.message.as_ptr())
}

/// The Matrix `errcode` of the last failure (for example `"M_BAD_JSON"`). Borrowed. `""` if the
/// last call succeeded.
#[unsafe(no_mangle)]
pub extern "C" fn servership_last_error_errcode() -> *const c_char {
    read(c"".as_ptr(), |e| e.errcode.as_ptr())
}

/// The HTTP status a server should answer the last failure with (for example 400), or 0 if the
/// last call succeeded.
#[unsafe(no_mangle)]
pub extern "C" fn servership_last_error_http_status() -> u16 {
    read(0, |e| e.http_status)
}

/// The Matrix error response body of the last failure, as canonical JSON (for example
/// `{"errcode":"M_BAD_JSON","error":"..."}`; `M_LIMIT_EXCEEDED` carries `retry_after_ms`).
/// Borrowed. `""` if the last call succeeded.
#[unsafe(no_mangle)]
pub extern "C" fn servership_last_error_json() -> *const c_char {
    read(c"".as_ptr(), |e| e.json.as_ptr())
}
