//! The C API driven from Rust: the panic boundary, per-thread last errors, and the JSON signing
//! vectors through `servership_sign_json`/`servership_verify_json`. (The C programs in `tests/c/`
//! cover the same surface from C, under valgrind.) Calling `extern "C"` functions that take raw
//! pointers needs `unsafe`; each use says why it is sound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::{CStr, c_char};

use servership::Error;
use servership::capi::*;

fn last_message() -> String {
    // SAFETY: servership returns a valid NUL-terminated string that lives until this thread's
    // next servership call; it is copied at once.
    unsafe { CStr::from_ptr(servership_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn last_errcode() -> String {
    // SAFETY: as in `last_message`.
    unsafe { CStr::from_ptr(servership_last_error_errcode()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn boundary_catches_panics_and_maps_errors() {
    let status = call("test_panics", || panic!("boom"));
    assert_eq!(status, SERVERSHIP_PANIC);
    assert!(last_message().contains("test_panics panicked: boom"));
    assert_eq!(last_errcode(), "M_UNKNOWN");
    assert_eq!(servership_last_error_http_status(), 500);

    let status = call("test_error", || {
        Err(Error::limit_exceeded("slow down", 1500).into())
    });
    assert_eq!(status, SERVERSHIP_LIMIT_EXCEEDED);
    assert_eq!(servership_last_error_status(), SERVERSHIP_LIMIT_EXCEEDED);
    assert_eq!(servership_last_error_http_status(), 429);
    // SAFETY: as in `last_message`.
    let body = unsafe { CStr::from_ptr(servership_last_error_json()) }.to_bytes();
    assert_eq!(
        body,
        br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1500}"#
    );

    assert_eq!(call("test_ok", || Ok(())), SERVERSHIP_OK);
    assert_eq!(servership_last_error_status(), SERVERSHIP_OK);
    assert_eq!(last_message(), "");
}

#[test]
fn last_error_is_per_thread() {
    call("here", || Err(Error::forbidden("on this thread").into()));
    std::thread::spawn(|| {
        assert_eq!(servership_last_error_status(), SERVERSHIP_OK);
        call("there", || {
            Err(Error::bad_json("on the other thread").into())
        });
        assert_eq!(last_message(), "on the other thread");
    })
    .join()
    .unwrap();
    assert_eq!(last_message(), "on this thread");
    assert_eq!(last_errcode(), "M_FORBIDDEN");
}

#[test]
fn every_status_has_a_description() {
    for status in [
        SERVERSHIP_OK,
        SERVERSHIP_NULL_POINTER,
        SERVERSHIP_PANIC,
        SERVERSHIP_INVALID_UTF8,
        SERVERSHIP_NOT_JSON,
        SERVERSHIP_BAD_JSON,
        SERVERSHIP_INVALID_PARAM,
        SERVERSHIP_MISSING_PARAM,
        SERVERSHIP_INCOMPATIBLE_ROOM_VERSION,
        SERVERSHIP_TOO_LARGE,
        SERVERSHIP_LIMIT_EXCEEDED,
        SERVERSHIP_FORBIDDEN,
        SERVERSHIP_UNAUTHORIZED,
        SERVERSHIP_NOT_FOUND,
        SERVERSHIP_UNKNOWN,
    ] {
        // SAFETY: a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(servership_status_description(status)) };
        assert_ne!(text.to_bytes(), b"unknown status code", "{status}");
    }
}

/// Calls `servership_sign_json` on Rust strings and returns the output.
fn sign(json: &str, server: &str, key_id: &str, seed: &str) -> Result<String, i32> {
    let mut out: *mut c_char = std::ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: every pointer/length pair comes from a live `&str`; `out` and `len` are valid.
    let status = unsafe {
        servership_sign_json(
            json.as_ptr(),
            json.len(),
            server.as_ptr().cast(),
            server.len(),
            key_id.as_ptr().cast(),
            key_id.len(),
            seed.as_ptr().cast(),
            seed.len(),
            Some(&mut out),
            Some(&mut len),
        )
    };
    if status != SERVERSHIP_OK {
        assert!(out.is_null(), "output written on failure");
        return Err(status);
    }
    // SAFETY: on success `out` is a NUL-terminated string of `len` bytes owned by us.
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
    assert_eq!(text.len(), len);
    // SAFETY: `out` came from servership and is freed once.
    unsafe { servership_string_free(out) };
    Ok(text)
}

fn verify(json: &str, server: &str, key_id: &str, public_key: &str) -> i32 {
    // SAFETY: every pointer/length pair comes from a live `&str`.
    unsafe {
        servership_verify_json(
            json.as_ptr(),
            json.len(),
            server.as_ptr().cast(),
            server.len(),
            key_id.as_ptr().cast(),
            key_id.len(),
            public_key.as_ptr().cast(),
            public_key.len(),
        )
    }
}

#[test]
fn json_signing_vectors_through_the_c_api() {
    let v = common::vectors("signing.json");
    let cases = v.get("json_signing").unwrap().as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = common::s(case, "name");
        let key = v.get("keys").unwrap().get(common::s(case, "key")).unwrap();
        let (server, key_id) = (common::s(key, "server_name"), common::s(key, "key_id"));
        let input = case.get("input").unwrap().to_canonical_string();
        let signed = sign(&input, server, key_id, common::s(key, "seed")).unwrap();
        assert_eq!(
            signed,
            case.get("expect_signed").unwrap().to_canonical_string(),
            "{name}"
        );
        let public_key = common::s(key, "public_key");
        assert_eq!(verify(&signed, server, key_id, public_key), SERVERSHIP_OK);
        assert_eq!(
            verify(&signed, "elsewhere", key_id, public_key),
            SERVERSHIP_UNAUTHORIZED,
            "{name}"
        );
        assert_eq!(
            verify(&input, server, key_id, public_key),
            SERVERSHIP_UNAUTHORIZED
        );
    }
    assert_eq!(
        sign("{}", "a", "ed25519:1", "not base64!"),
        Err(SERVERSHIP_INVALID_PARAM)
    );
    assert_eq!(
        sign("{", "a", "ed25519:1", ""),
        Err(SERVERSHIP_INVALID_PARAM)
    );
}
