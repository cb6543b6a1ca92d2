//! Invites for C: the MSC4329 request check, the MSC4311 spec-invite check, the request builder
//! for the sending side, and the key ring the checks verify signatures with.
//!
//! Results are JSON (`InviteCheck::to_json`): C callers get everything in one string and read the
//! fields they need with their own JSON library, and the field set can grow without an ABI change.

use std::ffi::{CStr, CString, c_char};

use super::boundary::{Failure, call, input_bytes, input_str, output_string, required};
use super::status::servership_status;
use crate::error::Error;
use crate::invite::{self, KeyRing, SpecInviteEndpoint};
use crate::json::{self, Object, Value};

/// `servership_check_spec_invite` endpoint: `PUT /_matrix/federation/v1/invite/{roomId}/{eventId}`
/// (the body is the event itself, room versions 1 and 2).
pub const SERVERSHIP_SPEC_INVITE_V1: i32 = 1;
/// `servership_check_spec_invite` endpoint: `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`
/// (the body is `{room_version, event, invite_room_state}`).
pub const SERVERSHIP_SPEC_INVITE_V2: i32 = 2;

/// Verify keys by server name, for the invite checks (opaque). Filling it (from the homeserver's
/// own key store) is the caller's job; servership never fetches keys.
///
/// Thread safety: `servership_key_ring_add` needs exclusive access; once filled, one key ring may
/// be read by several threads at once (the checks take it as a `const` pointer). Free it once,
/// when no other thread uses it.
pub struct servership_key_ring {
    ring: KeyRing,
}

/// Creates an empty key ring into `*out` (free with `servership_key_ring_free`).
///
/// # Safety
/// `out` must be a valid `servership_key_ring **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_key_ring_new(
    out: Option<&mut *mut servership_key_ring>,
) -> servership_status {
    call("servership_key_ring_new", || {
        let out = required(out, "out")?;
        *out = Box::into_raw(Box::new(servership_key_ring {
            ring: KeyRing::new(),
        }));
        Ok(())
    })
}

/// Adds the Ed25519 key `key_id` (`ed25519:<version>`) of `server_name`, its public half given in
/// standard base64 (padded or not). `SERVERSHIP_INVALID_PARAM` for a malformed key ID or key; the
/// ring is unchanged then.
///
/// # Safety
/// `ring` must be `NULL` or a live handle not used by another thread during the call; every
/// pointer/length pair must be readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_key_ring_add(
    ring: Option<&mut servership_key_ring>,
    server_name: *const c_char,
    server_name_len: usize,
    key_id: *const c_char,
    key_id_len: usize,
    public_key_base64: *const c_char,
    public_key_base64_len: usize,
) -> servership_status {
    call("servership_key_ring_add", || {
        let ring = ring.ok_or_else(|| Failure::null("ring"))?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let server = unsafe { input_str(server_name, server_name_len, "server_name") }?;
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
        crate::ids::ServerName::parse(server).map_err(|e| e.at("server_name"))?;
        ring.ring.add_base64(server, key_id, public_key)?;
        Ok(())
    })
}

/// Creates a key ring from JSON grouped by server, shaped like the `verify_keys` of key server
/// responses: `{"origin.example": {"ed25519:1": {"key": "<base64>"}}}` (a bare base64 string in
/// place of the `{"key": …}` object is accepted too).
///
/// # Safety
/// `json` must point to `len` readable bytes; `out` a valid `servership_key_ring **`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn servership_key_ring_from_json(
    json: *const u8,
    len: usize,
    out: Option<&mut *mut servership_key_ring>,
) -> servership_status {
    call("servership_key_ring_from_json", || {
        let out = required(out, "out")?;
        // SAFETY: the caller guarantees `json` points to `len` readable bytes.
        let input = unsafe { input_bytes(json, len, "json") }?;
        let ring = KeyRing::from_json(input)?;
        *out = Box::into_raw(Box::new(servership_key_ring { ring }));
        Ok(())
    })
}

/// Frees a key ring. `NULL` is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn servership_key_ring_free(ring: Option<Box<servership_key_ring>>) {
    drop(ring);
}

/// Checks an MSC4329 invite request (`PUT …/org.matrix.msc4329/invite/{roomId}`, or the `v3`
/// path) and returns what the receiving server needs as a JSON object:
/// `{event_id, room_version, room_id, creators, creator_servers, event, invite_room_state,
/// promoted, dropped, signatures_checked, inviter_membership, proven_creator_servers}`.
/// `invite_room_state` is the rewritten stripped state to store for the invitee (the verified
/// create event last); `event` is the invite to counter-sign. `inviter_membership` is the event ID
/// of the inviter's own verified join that the invite names (`null` without one), and
/// `proven_creator_servers` is `creator_servers` only when that proof exists: a creator-based
/// policy reads it, never `creator_servers`.
///
/// `path_room_id` is the percent-decoded `{roomId}` path segment, `body` the raw request body,
/// `receiving_server` our server name and `origin` the X-Matrix origin. With `keys` (not `NULL`)
/// signatures and content hashes are verified too, and `state` events that verify and pass the
/// room's authorization rules are promoted into `invite_room_state`; with `NULL` the caller
/// verifies the invite and create event as for any PDU, and nothing but the create event is
/// promoted (`dropped` says why). On failure the status and `servership_last_error_json()` are the Matrix error to send
/// back (see `docs/invites.md` for the rules and errcodes).
///
/// # Safety
/// Pointer/length pairs must be readable; `keys` `NULL` or live; `result_json_out` a valid
/// `char **`; `out_len` `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_check_invite(
    path_room_id: *const c_char,
    path_room_id_len: usize,
    body: *const u8,
    body_len: usize,
    receiving_server: *const c_char,
    receiving_server_len: usize,
    origin: *const c_char,
    origin_len: usize,
    keys: Option<&servership_key_ring>,
    result_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_check_invite", || {
        let out = required(result_json_out, "result_json_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let room_id = unsafe { input_str(path_room_id, path_room_id_len, "path_room_id") }?;
        // SAFETY: as above.
        let body = unsafe { input_bytes(body, body_len, "body") }?;
        // SAFETY: as above.
        let receiving =
            unsafe { input_str(receiving_server, receiving_server_len, "receiving_server") }?;
        // SAFETY: as above.
        let origin = unsafe { input_str(origin, origin_len, "origin") }?;
        let checked =
            invite::check_invite(room_id, body, receiving, origin, keys.map(|k| &k.ring))?;
        output_string(out, out_len, checked.to_json().to_canonical())
    })
}

/// Checks a spec invite (`/v1/invite` or `/v2/invite`) whose `invite_room_state` carries the full
/// `m.room.create` PDU (MSC4311). `endpoint` is `SERVERSHIP_SPEC_INVITE_V1` or `_V2`;
/// `path_event_id` the percent-decoded `{eventId}` path segment. The result JSON is
/// `{event_id, room_version, room_id, creators, creator_servers, invite_room_state, dropped,
/// signatures_checked}`. Whether a failure rejects the invite or only warns (room versions 1–11)
/// is the caller's choice. An unknown `endpoint` is `SERVERSHIP_INVALID_PARAM`.
///
/// # Safety
/// As for `servership_check_invite`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_check_spec_invite(
    endpoint: i32,
    path_room_id: *const c_char,
    path_room_id_len: usize,
    path_event_id: *const c_char,
    path_event_id_len: usize,
    body: *const u8,
    body_len: usize,
    receiving_server: *const c_char,
    receiving_server_len: usize,
    origin: *const c_char,
    origin_len: usize,
    keys: Option<&servership_key_ring>,
    result_json_out: Option<&mut *mut c_char>,
    out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_check_spec_invite", || {
        let out = required(result_json_out, "result_json_out")?;
        let endpoint = spec_endpoint(endpoint)?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let room_id = unsafe { input_str(path_room_id, path_room_id_len, "path_room_id") }?;
        // SAFETY: as above.
        let event_id = unsafe { input_str(path_event_id, path_event_id_len, "path_event_id") }?;
        // SAFETY: as above.
        let body = unsafe { input_bytes(body, body_len, "body") }?;
        // SAFETY: as above.
        let receiving =
            unsafe { input_str(receiving_server, receiving_server_len, "receiving_server") }?;
        // SAFETY: as above.
        let origin = unsafe { input_str(origin, origin_len, "origin") }?;
        let checked = invite::check_spec_invite(
            endpoint,
            room_id,
            event_id,
            body,
            receiving,
            origin,
            keys.map(|k| &k.ring),
        )?;
        output_string(out, out_len, checked.to_json().to_canonical())
    })
}

/// The endpoint constant as the core's enum.
pub(crate) fn spec_endpoint(endpoint: i32) -> Result<SpecInviteEndpoint, Error> {
    match endpoint {
        SERVERSHIP_SPEC_INVITE_V1 => Ok(SpecInviteEndpoint::V1),
        SERVERSHIP_SPEC_INVITE_V2 => Ok(SpecInviteEndpoint::V2),
        other => Err(Error::invalid_param(format!(
            "endpoint must be 1 (v1/invite) or 2 (v2/invite), not {other}"
        ))),
    }
}

/// Builds the MSC4329 request for the sending side: `*path_out` receives the path to `PUT`
/// (room ID percent-encoded, under the unstable prefix) and `*body_out` the canonical JSON body
/// `{event, invite_room_state, state}`.
///
/// `invite_json` is the signed invite event, `create_json` the room's `m.room.create` PDU,
/// `extra_state_json` a JSON array of further full PDUs for `state` (`NULL`/0: none) and
/// `invite_room_state_json` a JSON array of stripped state (`NULL`/0: none; any
/// `m.room.create` in it is left out). Numbers with fractions or exponents, and integers outside
/// ±(2^53 − 1), are accepted in rooms of version 1–5 only (written back as Synapse writes them). Both outputs are written only on success; free both
/// with `servership_string_free`.
///
/// # Safety
/// Pointer/length pairs must be readable (or `NULL` with length 0); `path_out` and `body_out`
/// valid `char **`; the lengths `NULL` or valid.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn servership_build_invite_request(
    invite_json: *const u8,
    invite_json_len: usize,
    create_json: *const u8,
    create_json_len: usize,
    extra_state_json: *const u8,
    extra_state_json_len: usize,
    invite_room_state_json: *const u8,
    invite_room_state_json_len: usize,
    path_out: Option<&mut *mut c_char>,
    path_out_len: Option<&mut usize>,
    body_out: Option<&mut *mut c_char>,
    body_out_len: Option<&mut usize>,
) -> servership_status {
    call("servership_build_invite_request", || {
        let path_out = required(path_out, "path_out")?;
        let body_out = required(body_out, "body_out")?;
        // SAFETY: the caller guarantees every pointer/length pair is readable.
        let invite = unsafe { input_bytes(invite_json, invite_json_len, "invite_json") }?;
        // SAFETY: as above.
        let create = unsafe { input_bytes(create_json, create_json_len, "create_json") }?;
        // SAFETY: as above.
        let extra =
            unsafe { input_bytes(extra_state_json, extra_state_json_len, "extra_state_json") }?;
        // SAFETY: as above.
        let stripped = unsafe {
            input_bytes(
                invite_room_state_json,
                invite_room_state_json_len,
                "invite_room_state_json",
            )
        }?;
        // Lenient: room versions 1-5 allow numbers canonical JSON does not; the builder refuses
        // them for the versions that do not.
        let invite = json::parse_object_lenient(invite).map_err(|e| e.at("invite_json"))?;
        let create = json::parse_object_lenient(create).map_err(|e| e.at("create_json"))?;
        let extra = json_array(extra, "extra_state_json")?
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => Ok(o),
                other => Err(Error::bad_json(format!(
                    "extra_state_json[{i}] must be an object, not {}",
                    other.type_name()
                ))),
            })
            .collect::<Result<Vec<Object>, Error>>()?;
        let stripped = json_array(stripped, "invite_room_state_json")?;
        let parts = invite::build_invite_request(&invite, &create, &extra, &stripped)?;
        // Both strings are made before either is written, so a failure writes neither.
        let path = c_string(parts.path.into_bytes())?;
        let body = c_string(parts.body)?;
        let (path_len, body_len) = (path.as_bytes().len(), body.as_bytes().len());
        *path_out = path.into_raw();
        *body_out = body.into_raw();
        if let Some(l) = path_out_len {
            *l = path_len;
        }
        if let Some(l) = body_out_len {
            *l = body_len;
        }
        Ok(())
    })
}

/// A JSON array (empty input: the empty array).
fn json_array(bytes: &[u8], name: &str) -> Result<Vec<Value>, Error> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    match json::parse_lenient(bytes).map_err(|e| e.at(name))? {
        Value::Array(items) => Ok(items),
        other => Err(Error::bad_json(format!(
            "{name} must be a JSON array, not {}",
            other.type_name()
        ))),
    }
}

/// A C string for an output (our outputs never contain NUL).
fn c_string(bytes: Vec<u8>) -> Result<CString, Error> {
    CString::new(bytes).map_err(|_| Error::internal("output contains a NUL byte"))
}

/// The MSC4329 unstable path prefix, `/_matrix/federation/unstable/org.matrix.msc4329/invite/`
/// (the percent-encoded room ID follows). A static string; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn servership_invite_path_unstable_prefix() -> *const c_char {
    const PREFIX: &CStr = c"/_matrix/federation/unstable/org.matrix.msc4329/invite/";
    PREFIX.as_ptr()
}

/// The placeholder path prefix of the seed, `/_matrix/federation/unstable/org.matrix.msc0000/invite/`,
/// served as an alias of the unstable prefix. A static string; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn servership_invite_path_unstable_alias_prefix() -> *const c_char {
    const PREFIX: &CStr = c"/_matrix/federation/unstable/org.matrix.msc0000/invite/";
    PREFIX.as_ptr()
}

/// The stable path prefix, `/_matrix/federation/v3/invite/`. Route it only when configured to:
/// another server family uses `v3/invite` for a different body. A static string; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn servership_invite_path_v3_prefix() -> *const c_char {
    const PREFIX: &CStr = c"/_matrix/federation/v3/invite/";
    PREFIX.as_ptr()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn path_prefixes_match_the_core() {
        // SAFETY: the functions return static NUL-terminated strings.
        let read = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
        assert_eq!(
            read(servership_invite_path_unstable_prefix()),
            invite::PATH_UNSTABLE_PREFIX
        );
        assert_eq!(
            read(servership_invite_path_unstable_alias_prefix()),
            invite::PATH_UNSTABLE_ALIAS_PREFIX
        );
        assert_eq!(
            read(servership_invite_path_v3_prefix()),
            invite::PATH_V3_PREFIX
        );
    }
}
