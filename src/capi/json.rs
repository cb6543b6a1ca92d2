//! Canonical JSON for C.

use std::ffi::c_char;

use super::boundary::{call, input_bytes, output_string, required};
use super::status::servership_status;
use crate::json;

/// Parses `json` (`len` bytes, UTF-8, strict Matrix rules) and returns its canonical encoding.
///
/// On success `*out` receives a NUL-terminated string to free with `servership_string_free`,
/// and `*out_len` (if `out_len` is not `NULL`) its length. Fails with `SERVERSHIP_NOT_JSON` or
/// `SERVERSHIP_BAD_JSON` (duplicate keys, floats, integers beyond 2^53-1, lone surrogates,
/// nesting deeper than 128...), with the byte offset in the message.
///
/// # Safety
/// `json` must point to `len` readable bytes (or be `NULL` with `len` 0); `out` must be a valid
/// `char **`; `out_len` must be `NULL` or a valid `size_t *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_canonical_json(
    json: *const u8,
    len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_canonical_json", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `json` points to `len` readable bytes.
        let input = unsafe { input_bytes(json, len, "json") }?;
        output_string(out, out_len, json::canonicalize(input)?)
    })
}
