//! Events (PDUs): content hashes, reference hashes, event IDs, v12 room IDs, size limits and
//! event signatures.
//!
//! Spec: [Calculating the content hash](https://spec.matrix.org/v1.16/server-server-api/#calculating-the-content-hash-for-an-event),
//! [reference hash](https://spec.matrix.org/v1.16/server-server-api/#calculating-the-reference-hash-for-an-event),
//! [event IDs](https://spec.matrix.org/v1.16/appendices/#event-ids),
//! [room IDs](https://spec.matrix.org/v1.16/appendices/#room-ids) (v12: MSC4291),
//! [signing events](https://spec.matrix.org/v1.16/server-server-api/#signing-events) and
//! [validating hashes and signatures](https://spec.matrix.org/v1.16/server-server-api/#validating-hashes-and-signatures-on-received-events).
//!
//! Everything works on parsed [`Object`]s: MSC4458 requires receivers to hash and verify
//! re-encoded canonical JSON, never the bytes they were sent. [`event_id_from_json`] is the one
//! entry point that takes bytes, for callers across the C and Python boundaries.
//!
//! Decisions:
//! - Errors for events that are not well-formed for their room version carry `M_BAD_JSON` and
//!   name the field (`content.additional_creators[1] ...`); callers answering an invite re-label
//!   them `M_INVALID_PARAM` with [`Error::with_errcode`](crate::Error::with_errcode).
//! - The content hash is exactly the spec's: `unsigned`, `signatures` and `hashes` are removed.
//!   (Synapse also drops `age_ts`, `outlier` and `destinations`, which never appear on the wire.)
//! - `hashes.sha256` is decoded strictly (standard alphabet, padding optional) and compared as
//!   bytes; anything that is not 32 bytes of base64 is malformed, not a mismatch.
//! - [`sign_event`] adds the content hash only when `hashes.sha256` is missing, so co-signing an
//!   event someone else built (an invite) never changes it.
//! - The PDU size limit is the spec's: at most 65 536 bytes of canonical JSON of the *full* PDU,
//!   signatures included (as Synapse measures). ruma measures the stripped event against 65 535;
//!   an event between the two is accepted here and by Synapse.

pub(crate) mod format;
mod hashes;
mod room_id;
mod signatures;
mod size;

pub use format::{MAX_AUTH_EVENTS, MAX_PREV_EVENTS};
pub use hashes::{
    content_hash, content_hash_base64, event_id, event_id_from_json, reference_hash,
    reference_hash_base64,
};
pub use room_id::room_id_from_create_event;
pub use signatures::{
    EventVerification, add_content_hash, check_content_hash, required_signers, sign_event,
    verify_event, verify_event_signature,
};
pub use size::{MAX_PDU_SIZE, check_pdu_size};

#[cfg(doc)]
use crate::json::Object;

use crate::error::{Error, Result};
use crate::json::Value;

/// A string member of an event, or an `M_BAD_JSON` error naming it.
pub(crate) fn str_field<'a>(event: &'a crate::json::Object, key: &str) -> Result<&'a str> {
    match event.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Error::bad_json(format!(
            "{key} must be a string, not {}",
            other.type_name()
        ))),
        None => Err(Error::bad_json(format!("{key} is missing"))),
    }
}

/// The server part of a user ID or v1/v2 event ID: everything after the first `:`.
pub(crate) fn server_of<'a>(id: &'a str, field: &str) -> Result<&'a str> {
    match id.split_once(':') {
        Some((_, server)) if !server.is_empty() => Ok(server),
        _ => Err(Error::bad_json(format!(
            "{field} {id:?} has no server name after ':'"
        ))),
    }
}
