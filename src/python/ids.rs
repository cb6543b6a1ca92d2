//! Matrix identifiers from Python: `ServerName`, `UserId`, `RoomId`, `EventId`, server
//! pseudousers and percent-encoding of path segments.

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::error::Error;
use crate::ids::{self, EventId, RoomId, RoomIdFormat, ServerName, UserId};

/// A valid server name (`host[:port]`). Immutable, hashable, compares by value.
#[pyclass(frozen, eq, hash, module = "servership", name = "ServerName")]
#[derive(PartialEq, Hash)]
pub(crate) struct PyServerName {
    name: ServerName,
}

#[pymethods]
impl PyServerName {
    /// Parses a server name; raises `InvalidParamError` if it is not valid.
    #[new]
    fn new(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Ok(PyServerName {
            name: ServerName::parse(text(value)?)?,
        })
    }

    /// Parses a server name; raises `InvalidParamError` if it is not valid.
    #[staticmethod]
    fn parse(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Self::new(value)
    }

    /// The host: a DNS name, an IPv4 address or a bracketed IPv6 address.
    #[getter]
    fn host(&self) -> &str {
        self.name.host()
    }

    /// The explicit port, or `None`.
    #[getter]
    fn port(&self) -> Option<u16> {
        self.name.port()
    }

    fn __str__(&self) -> &str {
        self.name.as_str()
    }

    fn __repr__(&self) -> String {
        format!("ServerName({:?})", self.name.as_str())
    }
}

/// A valid user ID (`@localpart:server_name`). Immutable, hashable, compares by value.
#[pyclass(frozen, eq, hash, module = "servership", name = "UserId")]
#[derive(PartialEq, Hash)]
pub(crate) struct PyUserId {
    id: UserId,
}

#[pymethods]
impl PyUserId {
    /// Parses a user ID (historical localparts accepted); raises `InvalidParamError`.
    #[new]
    fn new(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Ok(PyUserId {
            id: UserId::parse(text(value)?)?,
        })
    }

    /// Parses a user ID (historical localparts accepted); raises `InvalidParamError`.
    #[staticmethod]
    fn parse(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Self::new(value)
    }

    /// The part between `@` and the first `:` (empty for a server pseudouser).
    #[getter]
    fn localpart(&self) -> &str {
        self.id.localpart()
    }

    /// The server part.
    #[getter]
    fn server_name(&self) -> PyServerName {
        PyServerName {
            name: self.id.server_name().clone(),
        }
    }

    /// Whether the localpart uses only the characters allowed for new user IDs.
    #[getter]
    fn is_strict(&self) -> bool {
        self.id.is_strict()
    }

    /// Whether this is a server pseudouser (`@:server_name`).
    #[getter]
    fn is_server_pseudouser(&self) -> bool {
        self.id.is_server_pseudouser()
    }

    fn __str__(&self) -> &str {
        self.id.as_str()
    }

    fn __repr__(&self) -> String {
        format!("UserId({:?})", self.id.as_str())
    }
}

/// A valid room ID, legacy (`!opaque:server_name`) or room version 12 (`!` + 43 URL-safe base64
/// characters). Immutable, hashable, compares by value.
#[pyclass(frozen, eq, hash, module = "servership", name = "RoomId")]
#[derive(PartialEq, Hash)]
pub(crate) struct PyRoomId {
    id: RoomId,
}

#[pymethods]
impl PyRoomId {
    /// Parses a room ID of either form; raises `InvalidParamError`.
    #[new]
    fn new(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Ok(PyRoomId {
            id: RoomId::parse(text(value)?)?,
        })
    }

    /// Parses a room ID of either form; raises `InvalidParamError`.
    #[staticmethod]
    fn parse(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Self::new(value)
    }

    /// `"legacy"` (`!opaque:server`) or `"hash"` (room version 12).
    #[getter]
    fn format(&self) -> &'static str {
        match self.id.format() {
            RoomIdFormat::Legacy => "legacy",
            RoomIdFormat::Hash => "hash",
        }
    }

    /// The server part of a legacy room ID; `None` for the room version 12 form.
    #[getter]
    fn server_name(&self) -> Option<PyServerName> {
        self.id.server_name().map(|name| PyServerName { name })
    }

    fn __str__(&self) -> &str {
        self.id.as_str()
    }

    fn __repr__(&self) -> String {
        format!("RoomId({:?})", self.id.as_str())
    }
}

/// A valid event ID: `$opaque:server_name` (room versions 1–2) or `$` + 43 base64 characters.
/// Immutable, hashable, compares by value.
#[pyclass(frozen, eq, hash, module = "servership", name = "EventId")]
#[derive(PartialEq, Hash)]
pub(crate) struct PyEventId {
    id: EventId,
}

#[pymethods]
impl PyEventId {
    /// Parses an event ID; raises `InvalidParamError`.
    #[new]
    fn new(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Ok(PyEventId {
            id: EventId::parse(text(value)?)?,
        })
    }

    /// Parses an event ID; raises `InvalidParamError`.
    #[staticmethod]
    fn parse(value: &Bound<'_, PyString>) -> PyResult<Self> {
        Self::new(value)
    }

    /// Which room versions the form fits: `"v1"`, `"v3"`, `"v4"` or `"v3|v4"`.
    #[getter]
    fn format(&self) -> &'static str {
        self.id.format().as_str()
    }

    /// The server part of a room version 1–2 event ID; `None` for the hash forms.
    #[getter]
    fn server_name(&self) -> Option<PyServerName> {
        let name = ServerName::parse(self.id.server_name_str()?).ok()?;
        Some(PyServerName { name })
    }

    fn __str__(&self) -> &str {
        self.id.as_str()
    }

    fn __repr__(&self) -> String {
        format!("EventId({:?})", self.id.as_str())
    }
}

/// The text of an identifier argument; a lone surrogate (which no identifier may hold) is an
/// `InvalidParamError`, like every other invalid identifier.
fn text<'a>(value: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    Ok(value.to_str().map_err(|_| {
        Error::invalid_param("identifiers must be valid Unicode (no lone surrogates)")
    })?)
}

/// The server pseudouser of `server_name` (`@:server_name`); raises `InvalidParamError` for an
/// invalid server name.
#[pyfunction]
fn server_pseudouser(server_name: &str) -> PyResult<String> {
    let server = ServerName::parse(server_name)?;
    Ok(ids::server_pseudouser(&server).into_string())
}

/// Decodes the `%XX` escapes of one URL path segment (`+` stays `+`); raises `InvalidParamError`
/// for a bad escape, a NUL or a result that is not UTF-8.
#[pyfunction]
fn percent_decode_path_segment(segment: &str) -> PyResult<String> {
    Ok(ids::percent_decode_path_segment(segment)?)
}

/// Percent-encodes text for one URL path segment (`!abc:example.org` → `%21abc%3Aexample.org`).
#[pyfunction]
fn percent_encode_path_segment(value: &str) -> String {
    ids::percent_encode_path_segment(value)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyServerName>()?;
    m.add_class::<PyUserId>()?;
    m.add_class::<PyRoomId>()?;
    m.add_class::<PyEventId>()?;
    m.add_function(wrap_pyfunction!(server_pseudouser, m)?)?;
    m.add_function(wrap_pyfunction!(percent_decode_path_segment, m)?)?;
    m.add_function(wrap_pyfunction!(percent_encode_path_segment, m)?)?;
    Ok(())
}
