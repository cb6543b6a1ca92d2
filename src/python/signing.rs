//! Signing keys and JSON signatures from Python.

use pyo3::prelude::*;
use pyo3::types::{PyAny, PyDict};

use super::convert::{to_object, to_python};
use crate::error::Error;
use crate::json::Value;
use crate::signing::{self, SigningKey, VerifyKey};

/// A server's Ed25519 signing key with its key ID. Immutable and safe to share between threads;
/// its `repr` never shows the secret.
#[pyclass(frozen, module = "servership", name = "SigningKey")]
pub(crate) struct PySigningKey {
    key: SigningKey,
}

impl PySigningKey {
    /// The key inside, for the other binding modules.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

#[pymethods]
impl PySigningKey {
    /// A key from its key ID (`ed25519:<version>`) and 32-byte seed in standard base64.
    #[staticmethod]
    fn from_seed(key_id: &str, seed: &str) -> PyResult<Self> {
        Ok(PySigningKey {
            key: SigningKey::from_base64_seed(key_id, seed)?,
        })
    }

    /// A key from one line of a Synapse signing key file: `ed25519 <version> <seed>`.
    #[staticmethod]
    fn from_synapse_key_line(line: &str) -> PyResult<Self> {
        Ok(PySigningKey {
            key: SigningKey::from_synapse_key_line(line.trim_end_matches(['\r', '\n']))?,
        })
    }

    /// The key ID, e.g. `ed25519:1`.
    #[getter]
    fn key_id(&self) -> &str {
        self.key.key_id()
    }

    /// The public key as unpadded standard base64.
    #[getter]
    fn public_key(&self) -> String {
        self.key.public_key_base64()
    }

    /// The public half, for verifying.
    fn verify_key(&self) -> PyVerifyKey {
        PyVerifyKey {
            key: self.key.verify_key(),
        }
    }

    /// Signs raw bytes; returns the signature as unpadded standard base64.
    fn sign(&self, message: &[u8]) -> String {
        self.key.sign_bytes(message)
    }

    fn __repr__(&self) -> String {
        format!(
            "SigningKey(key_id={:?}, public_key={:?})",
            self.key.key_id(),
            self.key.public_key_base64()
        )
    }
}

/// A server's Ed25519 public key with its key ID. Immutable; compares by value.
#[pyclass(frozen, eq, module = "servership", name = "VerifyKey")]
#[derive(PartialEq)]
pub(crate) struct PyVerifyKey {
    key: VerifyKey,
}

impl PyVerifyKey {
    /// The key inside, for the other binding modules.
    pub(crate) fn verify_key(&self) -> &VerifyKey {
        &self.key
    }

    /// Wraps a core key.
    pub(crate) fn from_key(key: VerifyKey) -> Self {
        PyVerifyKey { key }
    }
}

/// Reads a `VerifyKey` or an iterable of them (as `verify_json` takes them).
pub(crate) fn verify_keys(value: &Bound<'_, PyAny>) -> PyResult<Vec<VerifyKey>> {
    if let Ok(key) = value.cast::<PyVerifyKey>() {
        return Ok(vec![key.get().key.clone()]);
    }
    let mut keys = Vec::new();
    for item in value.try_iter()? {
        let item = item?;
        keys.push(item.cast::<PyVerifyKey>()?.get().key.clone());
    }
    Ok(keys)
}

#[pymethods]
impl PyVerifyKey {
    /// A public key from its key ID and unpadded (or padded) standard base64.
    #[new]
    fn new(key_id: &str, public_key: &str) -> PyResult<Self> {
        Ok(PyVerifyKey {
            key: VerifyKey::from_base64(key_id, public_key)?,
        })
    }

    /// The key ID, e.g. `ed25519:1`.
    #[getter]
    fn key_id(&self) -> &str {
        self.key.key_id()
    }

    /// The public key as unpadded standard base64.
    #[getter]
    fn public_key(&self) -> String {
        self.key.public_key_base64()
    }

    /// Checks a base64 signature over raw bytes; raises `UnauthorizedError` if it does not verify.
    fn verify(&self, message: &[u8], signature: &str) -> PyResult<()> {
        Ok(self.key.verify_bytes(message, signature)?)
    }

    fn __repr__(&self) -> String {
        format!(
            "VerifyKey(key_id={:?}, public_key={:?})",
            self.key.key_id(),
            self.key.public_key_base64()
        )
    }
}

/// Signs a JSON object (a `dict`, or JSON text as `bytes`/`str`) as `server_name`; returns a new
/// `dict` with the signature added under `signatures[server_name][key_id]`. The input is not
/// changed.
#[pyfunction]
fn sign_json<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    server_name: &str,
    signing_key: &PySigningKey,
) -> PyResult<Bound<'py, PyDict>> {
    if server_name.is_empty() {
        return Err(Error::invalid_param("server_name must not be empty").into());
    }
    let mut object = to_object(obj, "obj")?;
    let key = &signing_key.key;
    py.detach(|| signing::sign_json(&mut object, server_name, key))?;
    Ok(to_python(py, &Value::Object(object))?.cast_into::<PyDict>()?)
}

/// Checks that `server_name` signed `obj` (a `dict`, or JSON text) with `verify_key` (a
/// `VerifyKey` or a list of them: unknown key IDs are ignored, at least one known signature must
/// be present, all known ones must verify). Raises `UnauthorizedError` otherwise.
#[pyfunction]
fn verify_json(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    server_name: &str,
    verify_key: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let keys: Vec<VerifyKey> = if let Ok(key) = verify_key.cast::<PyVerifyKey>() {
        vec![key.get().key.clone()]
    } else {
        let mut keys = Vec::new();
        for item in verify_key.try_iter()? {
            let item = item?;
            let key = item.cast::<PyVerifyKey>()?;
            keys.push(key.get().key.clone());
        }
        keys
    };
    let object = to_object(obj, "obj")?;
    py.detach(|| signing::verify_json_with_keys(&object, server_name, &keys))?;
    Ok(())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySigningKey>()?;
    m.add_class::<PyVerifyKey>()?;
    m.add_function(wrap_pyfunction!(sign_json, m)?)?;
    m.add_function(wrap_pyfunction!(verify_json, m)?)?;
    Ok(())
}
