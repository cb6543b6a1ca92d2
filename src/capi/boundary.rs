//! The panic boundary and the helpers that turn C arguments into Rust values and back.
//!
//! Every exported function is a thin shell around [`call`]: it converts its arguments with the
//! helpers here, calls the core, and writes its outputs last, so that a failure at any step leaves
//! the caller's out-parameters untouched.

use std::any::Any;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::last_error;
use super::status::{
    SERVERSHIP_INVALID_UTF8, SERVERSHIP_NULL_POINTER, SERVERSHIP_OK, SERVERSHIP_PANIC,
    servership_status, status_for,
};
use crate::error::Error;

/// Why a C call failed: the status to return and the error to record for
/// `servership_last_error_*`.
#[derive(Debug)]
pub struct Failure {
    status: servership_status,
    error: Error,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            status: status_for(error.errcode()),
            error,
        }
    }
}

impl Failure {
    /// A required pointer argument was `NULL`: a bug in the caller, so `M_UNKNOWN`/500 if it ever
    /// reaches a remote server.
    pub fn null(argument: &str) -> Self {
        Failure {
            status: SERVERSHIP_NULL_POINTER,
            error: Error::internal(format!("{argument} must not be NULL")),
        }
    }

    /// A text argument was not UTF-8: `M_INVALID_PARAM`/400, since such text may come from the
    /// network (a server name out of a request header).
    pub fn invalid_utf8(argument: &str) -> Self {
        Failure {
            status: SERVERSHIP_INVALID_UTF8,
            error: Error::invalid_param(format!("{argument} is not valid UTF-8")),
        }
    }
}

/// Runs the body of an exported function: catches panics, records the failure (or clears the
/// last error on success) and returns the status.
///
/// `function` names the exported function in messages. Unwinding out of the body is safe to catch:
/// bodies write their outputs only at the very end, and the state they touch is their own.
pub fn call(function: &str, body: impl FnOnce() -> Result<(), Failure>) -> servership_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            last_error::clear();
            SERVERSHIP_OK
        }
        Ok(Err(failure)) => {
            last_error::set(failure.status, &failure.error);
            failure.status
        }
        Err(payload) => {
            let error = Error::internal(format!(
                "{function} panicked: {} (this is a bug in servership)",
                panic_message(payload.as_ref())
            ));
            last_error::set(SERVERSHIP_PANIC, &error);
            SERVERSHIP_PANIC
        }
    }
}

/// The text a panic was raised with, when it was a string.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic payload"
    }
}

/// Borrows `len` bytes at `ptr`. `NULL` with `len == 0` is the empty input.
///
/// # Safety
/// If `ptr` is not `NULL`, it must point to `len` readable bytes that stay unchanged for `'a`.
pub unsafe fn input_bytes<'a>(
    ptr: *const u8,
    len: usize,
    argument: &str,
) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Failure::null(argument))
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::too_large(format!("{argument}_len is larger than any buffer")).into());
    }
    // SAFETY: `ptr` is non-NULL and, by this function's contract, points to `len` readable bytes
    // that outlive `'a`; `len` fits in `isize` (checked above).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` bytes at `ptr` as UTF-8 text. `NULL` with `len == 0` is the empty string.
///
/// # Safety
/// As for [`input_bytes`].
pub unsafe fn input_str<'a>(
    ptr: *const c_char,
    len: usize,
    argument: &str,
) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract of this function.
    let bytes = unsafe { input_bytes(ptr.cast::<u8>(), len, argument) }?;
    std::str::from_utf8(bytes).map_err(|_| Failure::invalid_utf8(argument))
}

/// Checks that a required out-parameter is present, before any work is done.
pub fn required<'a, T>(out: Option<&'a mut T>, argument: &str) -> Result<&'a mut T, Failure> {
    out.ok_or_else(|| Failure::null(argument))
}

/// Turns bytes into a library-owned C string (freed with `servership_string_free`) and writes it
/// and its length (without the NUL) to the out-parameters.
pub fn output_string(
    out: &mut *mut c_char,
    out_len: Option<&mut usize>,
    bytes: Vec<u8>,
) -> Result<(), Failure> {
    let len = bytes.len();
    // Every string we hand out is JSON or an identifier, where a raw NUL cannot occur; refusing it
    // keeps `servership_string_free` (which measures the string) sound.
    let string = CString::new(bytes)
        .map_err(|_| Error::internal("output contains a NUL byte and cannot be a C string"))?;
    *out = string.into_raw();
    if let Some(out_len) = out_len {
        *out_len = len;
    }
    Ok(())
}

/// Frees a string returned by servership (through a `char **out` parameter). `NULL` is a no-op.
///
/// # Safety
/// `string` must be `NULL` or a pointer servership returned and that has not been freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_string_free(string: *mut c_char) {
    if string.is_null() {
        return;
    }
    // SAFETY: the pointer came from `CString::into_raw` in `output_string` and, by contract, is
    // freed only once; the string has no interior NUL, so its measured length is the allocated one.
    drop(unsafe { CString::from_raw(string) });
}
