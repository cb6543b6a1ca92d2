//! The C API: `include/servership.h`, generated from this module by cbindgen.
//!
//! This is the only module of servership with `unsafe` code. The conventions every exported
//! function follows (and every new binding must follow) are:
//!
//! - **Names**: `servership_<thing>_<verb>`; opaque handles are `servership_<thing>`.
//! - **Status**: every fallible function returns a [`servership_status`]: [`SERVERSHIP_OK`] (0) or
//!   one of the stable non-zero codes in [`status`]. Details of the most recent failure on the
//!   calling thread come from `servership_last_error_*` ([`last_error`]).
//! - **Panic boundary**: every body runs inside [`boundary::call`], which catches panics (reported
//!   as [`SERVERSHIP_PANIC`]) and maps a Rust [`Error`](crate::Error) onto a status code.
//! - **Inputs** are pointer + length, never NUL-terminated. `NULL` with length 0 is the empty
//!   input; `NULL` with a non-zero length is [`SERVERSHIP_NULL_POINTER`]. Text parameters (server
//!   names, key IDs) must be UTF-8 ([`SERVERSHIP_INVALID_UTF8`]); JSON input is bytes, and the JSON
//!   parser itself reports invalid UTF-8 inside it as `M_NOT_JSON`/`M_BAD_JSON`.
//! - **Outputs** go through out-parameters, written only on success. Strings are
//!   library-owned, NUL-terminated `char *` with the length (without the NUL) in an optional
//!   `size_t *out_len`, freed with [`servership_string_free`]. Handles are created by
//!   `servership_<thing>_new` and freed by `servership_<thing>_free`; freeing `NULL` is a no-op.
//!
//! See `docs/developing.md` ("Adding a binding") for a worked example.

// C names for C types: `servership_signing_key`, `servership_status`.
#![allow(non_camel_case_types)]

pub mod audit;
pub mod auth;
pub mod boundary;
pub mod discovery;
pub mod event;
pub mod ids;
pub mod invite;
pub mod json;
pub mod last_error;
pub mod pseudouser;
pub mod room_state;
pub mod s2s;
pub mod signing;
pub mod status;
pub mod store;
pub mod subscription;
pub mod x_matrix;

pub use audit::*;
pub use auth::*;
pub use boundary::*;
pub use discovery::*;
pub use event::*;
pub use ids::*;
pub use invite::*;
pub use json::*;
pub use last_error::*;
pub use pseudouser::*;
pub use s2s::*;
pub use signing::*;
pub use status::*;
pub use store::*;
pub use subscription::*;
pub use x_matrix::*;

use std::ffi::{CStr, c_char};

/// The library version (e.g. `"0.1.0"`), a static NUL-terminated string that must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn servership_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}
