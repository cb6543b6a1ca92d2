//! X-Matrix request authentication for C: signing outgoing federation requests and verifying
//! incoming ones ([spec](https://spec.matrix.org/v1.16/server-server-api/#request-authentication)).

use std::ffi::c_char;

use super::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use super::signing::servership_signing_key;
use super::status::servership_status;
use crate::error::Error;
use crate::json::{self, Value};
use crate::signing::VerifyKey;
use crate::x_matrix;

/// Signs a federation request and returns the `Authorization` header value
/// (`X-Matrix origin="…",destination="…",key="…",sig="…"`), as a new string to free with
/// `servership_string_free`.
///
/// `uri` is the path and query exactly as sent (percent-encoded). `body`/`body_len` is the JSON
/// request body; `NULL`/0 means the request has no body. Fails with `SERVERSHIP_NOT_JSON` /
/// `SERVERSHIP_BAD_JSON` for a body that is not strict JSON and `SERVERSHIP_INVALID_PARAM` for an
/// invalid origin or destination server name.
///
/// # Safety
/// Every pointer/length pair must be readable (or `NULL` with length 0); `key` `NULL` or live;
/// `header_out` a valid `char **`; `header_out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_x_matrix_sign_request(
    method: *const c_char,
    method_len: usize,
    uri: *const c_char,
    uri_len: usize,
    origin: *const c_char,
    origin_len: usize,
    destination: *const c_char,
    destination_len: usize,
    body: *const u8,
    body_len: usize,
    key: Option<&servership_signing_key>,
    header_out: Option<&mut *mut c_char>,
    header_out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_x_matrix_sign_request", || {
        let out = required(header_out, "header_out")?;
        let key = key.ok_or_else(|| Failure::null("key"))?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let method = unsafe { input_str(method, method_len, "method") }?;
        // SAFETY: as above.
        let uri = unsafe { input_str(uri, uri_len, "uri") }?;
        // SAFETY: as above.
        let origin = unsafe { input_str(origin, origin_len, "origin") }?;
        // SAFETY: as above.
        let destination = unsafe { input_str(destination, destination_len, "destination") }?;
        // SAFETY: as above.
        let body = unsafe { input_bytes(body, body_len, "body") }?;
        crate::ids::ServerName::parse(origin).map_err(|e| e.at("origin"))?;
        crate::ids::ServerName::parse(destination).map_err(|e| e.at("destination"))?;
        if method.is_empty() || uri.is_empty() {
            return Err(Error::invalid_param("method and uri must not be empty").into());
        }
        let content = if body.is_empty() {
            None
        } else {
            Some(json::parse(body)?)
        };
        let header = x_matrix::sign_request(
            method,
            uri,
            origin,
            destination,
            content.as_ref(),
            key.signing_key(),
        );
        output_string(out, header_out_len, header.into_bytes())
    })
}

/// Verifies the `Authorization` header of an incoming federation request and, on success, writes
/// the authenticated origin server name to `*origin_out` (free with `servership_string_free`).
///
/// `keys_json` holds the origin's verify keys as `{"ed25519:1": "<base64>"}` (an object
/// `{"key": "<base64>"}` in place of the string is accepted too, as in a key server response's
/// `verify_keys`). `body` is the raw request body (`NULL`/0: none), parsed strictly.
///
/// Fails with `SERVERSHIP_UNAUTHORIZED` (HTTP 401) for a malformed header, a destination that is
/// not `our_server_name`, an unknown key ID or a signature that does not verify; with
/// `SERVERSHIP_NOT_JSON`/`SERVERSHIP_BAD_JSON` for a malformed body; with `SERVERSHIP_BAD_JSON` /
/// `SERVERSHIP_INVALID_PARAM` for malformed `keys_json` (a caller bug). `*origin_out` is written
/// only on success.
///
/// # Safety
/// Every pointer/length pair must be readable (or `NULL` with length 0); `origin_out` a valid
/// `char **`; `origin_out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_x_matrix_verify_request(
    header: *const c_char,
    header_len: usize,
    method: *const c_char,
    method_len: usize,
    uri: *const c_char,
    uri_len: usize,
    our_server_name: *const c_char,
    our_server_name_len: usize,
    body: *const u8,
    body_len: usize,
    keys_json: *const u8,
    keys_json_len: usize,
    origin_out: Option<&mut *mut c_char>,
    origin_out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_x_matrix_verify_request", || {
        let out = required(origin_out, "origin_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let header = unsafe { input_bytes(header.cast::<u8>(), header_len, "header") }?;
        // A header that is not UTF-8 came from the network: an authentication failure (401).
        let header = std::str::from_utf8(header)
            .map_err(|_| Error::unauthorized("the Authorization header is not valid UTF-8"))?;
        // SAFETY: as above.
        let method = unsafe { input_str(method, method_len, "method") }?;
        // SAFETY: as above.
        let uri = unsafe { input_str(uri, uri_len, "uri") }?;
        // SAFETY: as above.
        let ours = unsafe { input_str(our_server_name, our_server_name_len, "our_server_name") }?;
        // SAFETY: as above.
        let body = unsafe { input_bytes(body, body_len, "body") }?;
        // SAFETY: as above.
        let keys_json = unsafe { input_bytes(keys_json, keys_json_len, "keys_json") }?;
        let keys = verify_keys_from_json(keys_json)?;
        let (authenticated, _) =
            x_matrix::verify_request_body(header, method, uri, ours, Some(body), &keys)?;
        output_string(
            out,
            origin_out_len,
            authenticated.origin.into_string().into_bytes(),
        )
    })
}

/// Reads `{"ed25519:1": "<b64>"}` (or `{"ed25519:1": {"key": "<b64>"}}`) into verify keys.
pub(crate) fn verify_keys_from_json(bytes: &[u8]) -> Result<Vec<VerifyKey>, Error> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let object = json::parse_object(bytes).map_err(|e| e.at("keys_json"))?;
    let mut keys = Vec::with_capacity(object.len());
    for (key_id, entry) in &object {
        let b64 = match entry {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("key").and_then(Value::as_str),
            _ => None,
        };
        let b64 = b64.ok_or_else(|| {
            Error::bad_json(format!(
                "keys_json.{key_id} must be a base64 string or {{\"key\": \"<base64>\"}}"
            ))
        })?;
        keys.push(
            VerifyKey::from_base64(key_id, b64)
                .map_err(|e| e.at(&format!("keys_json.{key_id}")))?,
        );
    }
    Ok(keys)
}
