//! Ed25519 signing keys and JSON signatures for C.
//!
//! [`servership_signing_key`] is the model for every opaque handle: created by a `_new`-style
//! function into an out-parameter, read through `const` pointers, released by a `_free` function
//! that accepts `NULL`.

use std::ffi::c_char;

use super::boundary::{call, input_bytes, input_str, output_string, required};
use super::status::servership_status;
use crate::error::Error;
use crate::json;
use crate::signing::{self, SigningKey, VerifyKey};

/// A server's Ed25519 signing key with its key ID (opaque).
///
/// Thread safety: immutable once created; one key may be used from several threads at once
/// (through `const` pointers). Free it once, when no other thread uses it.
pub struct servership_signing_key {
    key: SigningKey,
}

impl servership_signing_key {
    /// The key inside, for the other C API modules.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

/// Creates a signing key from its key ID (`ed25519:<version>`) and its 32-byte seed in standard
/// base64 (padded or not), as Synapse's signing key file holds it.
///
/// On success `*out` receives a handle to free with `servership_signing_key_free`.
/// Fails with `SERVERSHIP_INVALID_PARAM` for a malformed key ID or seed.
///
/// # Safety
/// Each pointer/length pair must describe readable memory (or be `NULL` with length 0); `out` must
/// be a valid `servership_signing_key **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_signing_key_new(
    key_id: *const c_char,
    key_id_len: usize,
    seed_base64: *const c_char,
    seed_base64_len: usize,
    out: Option<&mut *mut servership_signing_key>,
) -> servership_status {
    call("servership_signing_key_new", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees both pointer/length pairs are readable.
        let key_id = unsafe { input_str(key_id, key_id_len, "key_id") }?;
        // SAFETY: as above.
        let seed = unsafe { input_str(seed_base64, seed_base64_len, "seed_base64") }?;
        let key = SigningKey::from_base64_seed(key_id, seed)?;
        *out = Box::into_raw(Box::new(servership_signing_key { key }));
        Ok(())
    })
}

/// Creates a signing key from one line of a Synapse signing key file (`ed25519 <version> <seed>`).
///
/// # Safety
/// `line` must point to `line_len` readable bytes; `out` must be a valid
/// `servership_signing_key **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_signing_key_from_synapse_line(
    line: *const c_char,
    line_len: usize,
    out: Option<&mut *mut servership_signing_key>,
) -> servership_status {
    call("servership_signing_key_from_synapse_line", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `line` points to `line_len` readable bytes.
        let line = unsafe { input_str(line, line_len, "line") }?;
        let key = SigningKey::from_synapse_key_line(line.trim_end_matches(['\r', '\n']))?;
        *out = Box::into_raw(Box::new(servership_signing_key { key }));
        Ok(())
    })
}

/// Frees a signing key. `NULL` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn servership_signing_key_free(key: Option<Box<servership_signing_key>>) {
    drop(key);
}

/// The key's ID (e.g. `"ed25519:1"`), as a new string to free with `servership_string_free`.
///
/// # Safety
/// `key` must be `NULL` or a live handle; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_signing_key_id(
    key: Option<&servership_signing_key>,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_signing_key_id", || {
        let out = required(out, "out")?;
        let key = key.ok_or_else(|| super::boundary::Failure::null("key"))?;
        output_string(out, out_len, key.key.key_id().as_bytes().to_vec())
    })
}

/// The key's public half as unpadded standard base64 (as published in `/_matrix/key/v2/server`),
/// as a new string to free with `servership_string_free`.
///
/// # Safety
/// `key` must be `NULL` or a live handle; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_signing_key_public_key(
    key: Option<&servership_signing_key>,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_signing_key_public_key", || {
        let out = required(out, "out")?;
        let key = key.ok_or_else(|| super::boundary::Failure::null("key"))?;
        output_string(out, out_len, key.key.public_key_base64().into_bytes())
    })
}

/// Signs the JSON object `json` as `server_name` with `key`, returning the object with the
/// signature added under `signatures[server_name][key_id]`, as canonical JSON.
///
/// Existing signatures are kept. Fails with `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for
/// input that is not a strict JSON object (or whose `signatures` is not an object).
///
/// # Safety
/// Pointer/length pairs must be readable; `key` `NULL` or live; `out` a valid `char **`;
/// `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_sign_json_with_key(
    json: *const u8,
    len: usize,
    server_name: *const c_char,
    server_name_len: usize,
    key: Option<&servership_signing_key>,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_sign_json_with_key", || {
        let out = required(out, "out")?;
        let key = key.ok_or_else(|| super::boundary::Failure::null("key"))?;
        // SAFETY: the caller guarantees the pointer/length pairs are readable.
        let input = unsafe { input_bytes(json, len, "json") }?;
        // SAFETY: as above.
        let server_name = unsafe { input_str(server_name, server_name_len, "server_name") }?;
        let signed = sign(input, server_name, &key.key)?;
        output_string(out, out_len, signed)
    })
}

/// Like `servership_sign_json_with_key`, with the key given as key ID and base64 seed: handy for
/// one-off signing. Code that signs often should create a `servership_signing_key` once.
///
/// # Safety
/// Pointer/length pairs must be readable; `out` a valid `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_sign_json(
    json: *const u8,
    len: usize,
    server_name: *const c_char,
    server_name_len: usize,
    key_id: *const c_char,
    key_id_len: usize,
    seed_base64: *const c_char,
    seed_base64_len: usize,
    out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_sign_json", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let input = unsafe { input_bytes(json, len, "json") }?;
        // SAFETY: as above.
        let server_name = unsafe { input_str(server_name, server_name_len, "server_name") }?;
        // SAFETY: as above.
        let key_id = unsafe { input_str(key_id, key_id_len, "key_id") }?;
        // SAFETY: as above.
        let seed = unsafe { input_str(seed_base64, seed_base64_len, "seed_base64") }?;
        let key = SigningKey::from_base64_seed(key_id, seed)?;
        output_string(out, out_len, sign(input, server_name, &key)?)
    })
}

/// Checks that `server_name` signed the JSON object `json` with the Ed25519 key `key_id` whose
/// public half is `public_key_base64` (standard base64, padded or not).
///
/// Returns `SERVERSHIP_OK` when the signature is present and valid, `SERVERSHIP_UNAUTHORIZED` when
/// it is missing or does not verify, `SERVERSHIP_INVALID_PARAM` for a malformed key, and the JSON
/// statuses for malformed input.
///
/// # Safety
/// Every pointer/length pair must be readable (or `NULL` with length 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_verify_json(
    json: *const u8,
    len: usize,
    server_name: *const c_char,
    server_name_len: usize,
    key_id: *const c_char,
    key_id_len: usize,
    public_key_base64: *const c_char,
    public_key_base64_len: usize,
) -> servership_status {
    call("servership_verify_json", || {
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let input = unsafe { input_bytes(json, len, "json") }?;
        // SAFETY: as above.
        let server_name = unsafe { input_str(server_name, server_name_len, "server_name") }?;
        // SAFETY: as above.
        let key_id = unsafe { input_str(key_id, key_id_len, "key_id") }?;
        // SAFETY: as above.
        let public_key = unsafe {
            input_str(
                public_key_base64,
                public_key_base64_len,
                "public_key_base64",
            )
        }?;
        let key = VerifyKey::from_base64(key_id, public_key)?;
        let object = json::parse_object(input)?;
        signing::verify_json(&object, server_name, &key)?;
        Ok(())
    })
}

/// Parses, signs and re-encodes; shared by both signing entry points.
fn sign(input: &[u8], server_name: &str, key: &SigningKey) -> Result<Vec<u8>, Error> {
    if server_name.is_empty() {
        return Err(Error::invalid_param("server_name must not be empty"));
    }
    let mut object = json::parse_object(input)?;
    signing::sign_json(&mut object, server_name, key)?;
    Ok(json::Value::Object(object).to_canonical())
}
