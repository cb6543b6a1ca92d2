//! X-Matrix request authentication from Python: parsing the `Authorization` header, signing
//! outgoing requests and verifying incoming ones.

use pyo3::prelude::*;
use pyo3::types::PyAny;

use super::convert::{json_input, to_value};
use super::signing::{PySigningKey, verify_keys};
use crate::json::{self, Value};
use crate::x_matrix::{self, XMatrix};

/// A parsed `X-Matrix` `Authorization` header. Immutable.
#[pyclass(frozen, eq, module = "servership", name = "XMatrix")]
#[derive(PartialEq)]
pub(crate) struct PyXMatrix {
    header: XMatrix,
}

#[pymethods]
impl PyXMatrix {
    /// The server that signed the request.
    #[getter]
    fn origin(&self) -> &str {
        self.header.origin.as_str()
    }

    /// The server the request is addressed to (`None` for senders before Matrix 1.3).
    #[getter]
    fn destination(&self) -> Option<&str> {
        self.header.destination.as_ref().map(|d| d.as_str())
    }

    /// The signing key's ID, e.g. `ed25519:1`.
    #[getter]
    fn key_id(&self) -> &str {
        &self.header.key_id
    }

    /// The signature, base64 as sent.
    #[getter]
    fn signature(&self) -> &str {
        &self.header.signature
    }

    /// The header in the sender format.
    fn to_header(&self) -> String {
        self.header.to_header()
    }

    fn __repr__(&self) -> String {
        format!(
            "XMatrix(origin={:?}, destination={:?}, key_id={:?})",
            self.header.origin.as_str(),
            self.header.destination.as_ref().map(|d| d.as_str()),
            self.header.key_id
        )
    }
}

/// Parses an `X-Matrix` `Authorization` header value without verifying it; raises
/// `UnauthorizedError` for a malformed header.
#[pyfunction]
fn parse_x_matrix(header: &str) -> PyResult<PyXMatrix> {
    Ok(PyXMatrix {
        header: x_matrix::parse_header(header)?,
    })
}

/// The request body as a JSON value: `None` for no body, JSON text (`bytes`/`str`, empty: no
/// body), or a `dict`/`list` converted strictly.
fn content(py: Python<'_>, body: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Value>> {
    let Some(body) = body.filter(|b| !b.is_none()) else {
        return Ok(None);
    };
    if let Some(input) = json_input(body)? {
        let bytes = input.bytes();
        if bytes.is_empty() {
            return Ok(None);
        }
        return Ok(Some(py.detach(|| json::parse(bytes))?));
    }
    Ok(Some(to_value(body, "content")?))
}

/// Signs a federation request; returns the `Authorization` header value. `uri` is the path and
/// query exactly as sent; `content` the JSON body (`dict`, JSON text, or `None` for no body).
#[pyfunction]
#[pyo3(signature = (method, uri, origin, destination, content, signing_key))]
fn sign_request(
    py: Python<'_>,
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    content: Option<&Bound<'_, PyAny>>,
    signing_key: &PySigningKey,
) -> PyResult<String> {
    crate::ids::ServerName::parse(origin).map_err(|e| e.at("origin"))?;
    crate::ids::ServerName::parse(destination).map_err(|e| e.at("destination"))?;
    let body = self::content(py, content)?;
    let key = signing_key.signing_key();
    Ok(py.detach(|| x_matrix::sign_request(method, uri, origin, destination, body.as_ref(), key)))
}

/// Verifies an incoming request's `Authorization` header against the origin's verify keys
/// (`keys`: a `VerifyKey` or an iterable of them) and returns the authenticated header. `body` is
/// the raw request body (`bytes`/`str`; `None` or empty for none) or an already parsed `dict`.
/// Raises `UnauthorizedError` (401) when anything does not match, `BadJsonError` for a body that
/// is not strict JSON.
#[pyfunction]
#[pyo3(signature = (header, method, uri, our_server_name, body, keys))]
fn verify_request(
    py: Python<'_>,
    header: &str,
    method: &str,
    uri: &str,
    our_server_name: &str,
    body: Option<&Bound<'_, PyAny>>,
    keys: &Bound<'_, PyAny>,
) -> PyResult<PyXMatrix> {
    let keys = verify_keys(keys)?;
    // Raw bytes go through `verify_request_body`, which checks the header before parsing.
    if let Some(body) = body.filter(|b| !b.is_none())
        && let Some(input) = json_input(body)?
    {
        let bytes = input.bytes();
        let (header, _) = py.detach(|| {
            x_matrix::verify_request_body(header, method, uri, our_server_name, Some(bytes), &keys)
        })?;
        return Ok(PyXMatrix { header });
    }
    let content = content(py, body)?;
    let header = py.detach(|| {
        x_matrix::verify_request(
            header,
            method,
            uri,
            our_server_name,
            content.as_ref(),
            &keys,
        )
    })?;
    Ok(PyXMatrix { header })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyXMatrix>()?;
    m.add_function(wrap_pyfunction!(parse_x_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(sign_request, m)?)?;
    m.add_function(wrap_pyfunction!(verify_request, m)?)?;
    Ok(())
}
