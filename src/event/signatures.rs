//! Event hashes and signatures: adding and checking the content hash, signing and verifying
//! events on their redacted form.

use crate::b64;
use crate::error::{Error, Result};
use crate::json::{Object, Value};
use crate::redaction;
use crate::room_version::{EventIdFormat, RoomVersion};
use crate::signing::{self, SigningKey, VerifyKey};

use super::{hashes, server_of, str_field};

/// Sets `hashes.sha256` to the event's [content hash](hashes::content_hash), keeping any other
/// hash algorithms already present. `M_BAD_JSON` when `hashes` is not an object.
pub fn add_content_hash(event: &mut Object) -> Result<()> {
    let hash = hashes::content_hash_base64(event);
    let entry = event
        .entry("hashes".to_owned())
        .or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(by_algorithm) = entry else {
        return Err(Error::bad_json(format!(
            "hashes must be an object, not {}",
            entry.type_name()
        )));
    };
    by_algorithm.insert("sha256".to_owned(), Value::String(hash));
    Ok(())
}

/// Whether `hashes.sha256` matches the event's content hash, comparing the decoded bytes
/// ([spec](https://spec.matrix.org/v1.16/server-server-api/#validating-hashes-and-signatures-on-received-events)).
///
/// `Ok(false)` is the spec's "redacted copy" case: the receiver uses the redacted event.
/// A missing or malformed hash (not an object, not a string, not 32 bytes of standard base64) is
/// `M_BAD_JSON`: the PDU is not well-formed.
pub fn check_content_hash(event: &Object) -> Result<bool> {
    let hashes = match event.get("hashes") {
        Some(Value::Object(h)) => h,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "hashes must be an object, not {}",
                other.type_name()
            )));
        }
        None => return Err(Error::bad_json("hashes is missing")),
    };
    let claimed = match hashes.get("sha256") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "hashes.sha256 must be a string, not {}",
                other.type_name()
            )));
        }
        None => return Err(Error::bad_json("hashes.sha256 is missing")),
    };
    let Some(claimed) = b64::decode_array::<32>(claimed) else {
        return Err(Error::bad_json(
            "hashes.sha256 must be 32 bytes of unpadded standard base64",
        ));
    };
    Ok(claimed == hashes::content_hash(event))
}

/// Signs an event as `server_name` ([spec](https://spec.matrix.org/v1.16/server-server-api/#signing-events)):
/// adds the content hash when `hashes.sha256` is missing, signs the event redacted for `version`
/// (without `signatures` and `unsigned`, with `hashes`), and adds the signature to the full event
/// under `signatures[server_name][key_id]`.
///
/// An existing `hashes.sha256` is left alone: a server co-signing someone else's event (an
/// invite) must not change it.
pub fn sign_event(
    event: &mut Object,
    server_name: &str,
    key: &SigningKey,
    version: RoomVersion,
) -> Result<()> {
    let has_hash = match event.get("hashes") {
        Some(Value::Object(h)) => h.contains_key("sha256"),
        _ => false,
    };
    if !has_hash {
        add_content_hash(event)?;
    }
    let signature = key.sign_bytes(&redaction::redacted_signing_bytes(event, version)?);
    let entry = event
        .entry("signatures".to_owned())
        .or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(signatures) = entry else {
        return Err(Error::bad_json(format!(
            "signatures must be an object, not {}",
            entry.type_name()
        )));
    };
    let entry = signatures
        .entry(server_name.to_owned())
        .or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(by_server) = entry else {
        return Err(Error::bad_json(format!(
            "signatures.{server_name} must be an object, not {}",
            entry.type_name()
        )));
    };
    by_server.insert(key.key_id().to_owned(), Value::String(signature));
    Ok(())
}

/// Checks `server_name`'s signatures on an event against the keys the caller trusts for it. The
/// signatures cover the event redacted for `version`, so a redacted copy still verifies.
///
/// Follows [`signing::verify_json_with_keys`]: unknown key IDs are ignored, at least one known
/// key must have signed, and every known-key signature must verify (else `M_UNAUTHORIZED`).
/// Events that cannot be redacted (no `content`, say) are `M_BAD_JSON`.
pub fn verify_event_signature(
    event: &Object,
    server_name: &str,
    keys: &[VerifyKey],
    version: RoomVersion,
) -> Result<()> {
    let redacted = redaction::redact(event, version)?;
    signing::verify_json_with_keys(&redacted, server_name, keys)
}

/// The servers whose signatures an event needs
/// ([spec](https://spec.matrix.org/v1.16/server-server-api/#validating-hashes-and-signatures-on-received-events)):
/// the server of `sender` (everything after its first `:`), and in room versions 1–2 also the
/// server of `event_id` when it differs.
///
/// The extra signature third-party invites need is not covered.
pub fn required_signers(event: &Object, version: RoomVersion) -> Result<Vec<String>> {
    let sender = str_field(event, "sender")?;
    let mut servers = vec![server_of(sender, "sender")?.to_owned()];
    if version.event_id_format == EventIdFormat::Opaque {
        let event_id = str_field(event, "event_id")?;
        let server = server_of(event_id, "event_id")?;
        if servers.iter().all(|s| s != server) {
            servers.push(server.to_owned());
        }
    }
    Ok(servers)
}

/// What [`verify_event`] found about an event whose signatures verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventVerification {
    /// The servers whose signatures were checked (see [`required_signers`]).
    pub signed_by: Vec<String>,
    /// Whether `hashes.sha256` matches the content. When false, the spec says to carry on with
    /// the redacted event: the sender may have handed us a redacted copy.
    pub content_hash_matches: bool,
}

/// Checks an event as a receiver does: the signatures of every [required signer](required_signers)
/// with the keys `keys_for(server)` returns, then the content hash.
///
/// A signature failure is an error (`M_UNAUTHORIZED`, the event is dropped); a content-hash
/// mismatch is reported in [`EventVerification::content_hash_matches`]. Fetching keys and checking
/// their validity period stay the caller's job.
pub fn verify_event(
    event: &Object,
    version: RoomVersion,
    mut keys_for: impl FnMut(&str) -> Vec<VerifyKey>,
) -> Result<EventVerification> {
    let signed_by = required_signers(event, version)?;
    let redacted = redaction::redact(event, version)?;
    for server in &signed_by {
        signing::verify_json_with_keys(&redacted, server, &keys_for(server))?;
    }
    Ok(EventVerification {
        signed_by,
        content_hash_matches: check_content_hash(event)?,
    })
}
