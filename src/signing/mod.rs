//! Ed25519 signatures on JSON objects, as in the spec's
//! [Signing JSON](https://spec.matrix.org/v1.16/appendices/#signing-json).
//!
//! To sign, the object is encoded as canonical JSON without its `signatures` and `unsigned` members,
//! and the signature goes under `signatures[server_name][key_id]` as unpadded standard base64.
//! Event signing (which signs the *redacted* event) builds on this in [`crate::event`].
//! Fetching keys stays the homeserver's job: callers hand in the keys they trust.

mod key_ring;

pub use key_ring::KeyRing;

use ed25519_dalek::{Signer, Verifier};

use crate::b64;
use crate::error::{Error, Result};
use crate::json::{self, Object, Value};

/// A server's Ed25519 signing key with its key ID (`ed25519:<version>`).
#[derive(Clone)]
pub struct SigningKey {
    key_id: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(
            f,
            "SigningKey({}, public {})",
            self.key_id,
            self.public_key_base64()
        )
    }
}

/// A server's Ed25519 public key with its key ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyKey {
    key_id: String,
    key: ed25519_dalek::VerifyingKey,
}

/// Checks a key ID: `ed25519:` followed by a version of `[a-zA-Z0-9_]` characters.
pub fn validate_key_id(key_id: &str) -> Result<()> {
    let Some(version) = key_id.strip_prefix("ed25519:") else {
        return Err(Error::invalid_param(format!(
            "key ID {key_id:?} must start with \"ed25519:\""
        )));
    };
    if version.is_empty()
        || version.len() > 250
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::invalid_param(format!(
            "key ID {key_id:?} must be \"ed25519:\" followed by letters, digits and \"_\""
        )));
    }
    Ok(())
}

impl SigningKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(key_id: &str, seed: &[u8; 32]) -> Result<Self> {
        validate_key_id(key_id)?;
        Ok(SigningKey {
            key_id: key_id.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        })
    }

    /// A key from its seed in (padded or unpadded) standard base64, as Synapse's key files hold it.
    pub fn from_base64_seed(key_id: &str, seed: &str) -> Result<Self> {
        let bytes = b64::decode_array::<32>(seed)
            .ok_or_else(|| Error::invalid_param("a signing key seed must be 32 bytes of base64"))?;
        Self::from_seed(key_id, &bytes)
    }

    /// Parses one line of a Synapse signing key file: `ed25519 <version> <seed>`.
    pub fn from_synapse_key_line(line: &str) -> Result<Self> {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("ed25519"), Some(version), Some(seed), None) => {
                Self::from_base64_seed(&format!("ed25519:{version}"), seed)
            }
            _ => Err(Error::invalid_param(
                "a signing key line must be \"ed25519 <version> <seed>\"",
            )),
        }
    }

    /// The key ID, e.g. `ed25519:1`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half, for verifying.
    pub fn verify_key(&self) -> VerifyKey {
        VerifyKey {
            key_id: self.key_id.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The public key as unpadded standard base64, as published in `/_matrix/key/v2/server`.
    pub fn public_key_base64(&self) -> String {
        b64::encode(self.key.verifying_key().as_bytes())
    }

    /// Signs raw bytes, returning the signature as unpadded standard base64.
    pub fn sign_bytes(&self, message: &[u8]) -> String {
        b64::encode(&self.key.sign(message).to_bytes())
    }
}

impl VerifyKey {
    /// A public key from unpadded (or padded) standard base64.
    pub fn from_base64(key_id: &str, public_key: &str) -> Result<Self> {
        validate_key_id(key_id)?;
        let bytes = b64::decode_array::<32>(public_key)
            .ok_or_else(|| Error::invalid_param("a public key must be 32 bytes of base64"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| Error::invalid_param("not a valid Ed25519 public key"))?;
        Ok(VerifyKey {
            key_id: key_id.to_owned(),
            key,
        })
    }

    /// The key ID, e.g. `ed25519:1`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as unpadded standard base64.
    pub fn public_key_base64(&self) -> String {
        b64::encode(self.key.as_bytes())
    }

    /// Checks a base64 signature over raw bytes.
    pub fn verify_bytes(&self, message: &[u8], signature: &str) -> Result<()> {
        let sig = b64::decode_array::<64>(signature)
            .ok_or_else(|| Error::unauthorized("a signature must be 64 bytes of base64"))?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        self.key.verify(message, &sig).map_err(|_| {
            Error::unauthorized(format!("signature by {} does not verify", self.key_id))
        })
    }
}

/// The bytes that a JSON signature covers: canonical JSON without `signatures` and `unsigned`.
pub fn signing_bytes(object: &Object) -> Vec<u8> {
    json::canonical_object_without(object, &["signatures", "unsigned"])
}

/// The signature `key` makes over `object` (unpadded standard base64), without changing it.
pub fn json_signature(object: &Object, key: &SigningKey) -> String {
    key.sign_bytes(&signing_bytes(object))
}

/// Signs `object` in place, adding `signatures[server_name][key_id]` next to any signatures it
/// already has.
pub fn sign_json(object: &mut Object, server_name: &str, key: &SigningKey) -> Result<()> {
    let signature = json_signature(object, key);
    let signatures = object
        .entry("signatures".to_owned())
        .or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(signatures) = signatures else {
        return Err(Error::bad_json("signatures must be an object"));
    };
    let by_server = signatures
        .entry(server_name.to_owned())
        .or_insert_with(|| Value::Object(Object::new()));
    let Value::Object(by_server) = by_server else {
        return Err(Error::bad_json(format!(
            "signatures.{server_name} must be an object"
        )));
    };
    by_server.insert(key.key_id.clone(), Value::String(signature));
    Ok(())
}

/// The signature `server_name` made with `key_id`, if the object carries one.
pub fn find_signature<'a>(
    object: &'a Object,
    server_name: &str,
    key_id: &str,
) -> Result<Option<&'a str>> {
    let Some(signatures) = object.get("signatures") else {
        return Ok(None);
    };
    let Some(signatures) = signatures.as_object() else {
        return Err(Error::bad_json("signatures must be an object"));
    };
    let Some(by_server) = signatures.get(server_name) else {
        return Ok(None);
    };
    let Some(by_server) = by_server.as_object() else {
        return Err(Error::bad_json(format!(
            "signatures.{server_name} must be an object"
        )));
    };
    match by_server.get(key_id) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::bad_json(format!(
            "signatures.{server_name}.{key_id} must be a string"
        ))),
    }
}

/// Checks that `server_name` signed `object` with `key`. A missing signature is an error.
pub fn verify_json(object: &Object, server_name: &str, key: &VerifyKey) -> Result<()> {
    verify_json_with_keys(object, server_name, std::slice::from_ref(key))
}

/// Checks `server_name`'s signatures on `object` against the keys the caller knows for it.
///
/// Signatures under unknown key IDs are ignored (the spec's rule for keys we cannot fetch); every
/// signature under a known key must verify, and at least one must be present.
pub fn verify_json_with_keys(object: &Object, server_name: &str, keys: &[VerifyKey]) -> Result<()> {
    let message = signing_bytes(object);
    let mut checked = 0;
    for key in keys {
        if let Some(sig) = find_signature(object, server_name, &key.key_id)? {
            key.verify_bytes(&message, sig)
                .map_err(|e| e.at(&format!("signatures.{server_name}.{}", key.key_id)))?;
            checked += 1;
        }
    }
    if checked == 0 {
        return Err(Error::unauthorized(format!(
            "no signature from {server_name} with a known key ({})",
            keys.iter()
                .map(|k| k.key_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}
