//! The verify keys a homeserver hands in for the servers whose signatures an invite carries.

use std::collections::BTreeMap;

use super::VerifyKey;
use crate::error::{Error, Result};
use crate::json::{self, Value};

/// Verify keys by server name. Key fetching stays the homeserver's job: it fills this from its
/// own key store (or from `/_matrix/key/v2/server`) before calling the checks.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, Vec<VerifyKey>>,
}

impl KeyRing {
    /// An empty key ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key for `server_name`.
    pub fn add(&mut self, server_name: &str, key: VerifyKey) {
        self.keys
            .entry(server_name.to_owned())
            .or_default()
            .push(key);
    }

    /// Adds a key given as key ID and unpadded base64 public key.
    pub fn add_base64(&mut self, server_name: &str, key_id: &str, public_key: &str) -> Result<()> {
        self.add(server_name, VerifyKey::from_base64(key_id, public_key)?);
        Ok(())
    }

    /// The keys known for `server_name` (empty if none).
    pub fn keys_for(&self, server_name: &str) -> &[VerifyKey] {
        self.keys.get(server_name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `true` when no key is known at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Reads keys from JSON shaped like the `verify_keys` of a server key response, grouped by
    /// server: `{"server": {"ed25519:1": {"key": "<b64>"}}}`. `"public_key"` is accepted in place
    /// of `"key"`, and a bare string in place of the object.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let object = json::parse_object(bytes)?;
        let mut ring = KeyRing::new();
        for (server, by_id) in &object {
            let Value::Object(by_id) = by_id else {
                return Err(Error::bad_json(format!("keys.{server} must be an object")));
            };
            for (key_id, entry) in by_id {
                let b64 = match entry {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o
                        .get("key")
                        .or_else(|| o.get("public_key"))
                        .and_then(Value::as_str),
                    _ => None,
                };
                let Some(b64) = b64 else {
                    return Err(Error::bad_json(format!(
                        "keys.{server}.{key_id} must hold a base64 key"
                    )));
                };
                ring.add_base64(server, key_id, b64)
                    .map_err(|e| e.at(&format!("keys.{server}.{key_id}")))?;
            }
        }
        Ok(ring)
    }
}
