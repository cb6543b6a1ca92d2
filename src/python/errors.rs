//! The exception hierarchy and the mapping from Matrix errcodes to it.
//!
//! The classes are created in Rust with `create_exception!` (module `servership`, so `__module__`
//! and tracebacks show `servership.BadJsonError`). Each class carries class-level defaults for
//! `errcode` and `http_status`, so an exception raised from Python code has them too; exceptions
//! raised by the library set the instance attributes `errcode`, `http_status`, `matrix_error` (the
//! Matrix error body as a dict) and, where they apply, `retry_after_ms` and `room_version`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

use crate::error::{ErrCode, Error};

create_exception!(
    servership,
    ServershipError,
    PyException,
    "Root of every servership error: carries `errcode`, `http_status` and `matrix_error`."
);
create_exception!(
    servership,
    BadJsonError,
    ServershipError,
    "M_BAD_JSON / M_NOT_JSON: input that is not (canonical Matrix) JSON."
);
create_exception!(
    servership,
    InvalidParamError,
    ServershipError,
    "M_INVALID_PARAM / M_MISSING_PARAM: a parameter is invalid or missing."
);
create_exception!(
    servership,
    TooLargeError,
    ServershipError,
    "M_TOO_LARGE: the input or a part of it is larger than allowed."
);
create_exception!(
    servership,
    LimitExceededError,
    ServershipError,
    "M_LIMIT_EXCEEDED: a rate limit was hit; see `retry_after_ms`."
);
create_exception!(
    servership,
    ForbiddenError,
    ServershipError,
    "M_FORBIDDEN: understood but refused."
);
create_exception!(
    servership,
    UnauthorizedError,
    ServershipError,
    "M_UNAUTHORIZED: a signature is missing or does not verify."
);
create_exception!(
    servership,
    IncompatibleRoomVersionError,
    ServershipError,
    "M_INCOMPATIBLE_ROOM_VERSION: the room version is unknown or not handled; see `room_version`."
);
create_exception!(
    servership,
    NotFoundError,
    ServershipError,
    "M_NOT_FOUND: nothing is known about the requested thing."
);
create_exception!(
    servership,
    InternalError,
    ServershipError,
    "M_UNKNOWN: a failure inside servership rather than in the request."
);
create_exception!(
    servership,
    StorageError,
    InternalError,
    "M_UNKNOWN: the database failed (locked for too long, disk full, corrupt file...)."
);

/// Adds the classes to the module with their class-level defaults.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let classes: [(&str, Bound<'_, PyType>, &str, u16); 11] = [
        (
            "ServershipError",
            py.get_type::<ServershipError>(),
            "M_UNKNOWN",
            500,
        ),
        (
            "BadJsonError",
            py.get_type::<BadJsonError>(),
            "M_BAD_JSON",
            400,
        ),
        (
            "InvalidParamError",
            py.get_type::<InvalidParamError>(),
            "M_INVALID_PARAM",
            400,
        ),
        (
            "TooLargeError",
            py.get_type::<TooLargeError>(),
            "M_TOO_LARGE",
            413,
        ),
        (
            "LimitExceededError",
            py.get_type::<LimitExceededError>(),
            "M_LIMIT_EXCEEDED",
            429,
        ),
        (
            "ForbiddenError",
            py.get_type::<ForbiddenError>(),
            "M_FORBIDDEN",
            403,
        ),
        (
            "UnauthorizedError",
            py.get_type::<UnauthorizedError>(),
            "M_UNAUTHORIZED",
            401,
        ),
        (
            "IncompatibleRoomVersionError",
            py.get_type::<IncompatibleRoomVersionError>(),
            "M_INCOMPATIBLE_ROOM_VERSION",
            400,
        ),
        (
            "NotFoundError",
            py.get_type::<NotFoundError>(),
            "M_NOT_FOUND",
            404,
        ),
        (
            "InternalError",
            py.get_type::<InternalError>(),
            "M_UNKNOWN",
            500,
        ),
        (
            "StorageError",
            py.get_type::<StorageError>(),
            "M_UNKNOWN",
            500,
        ),
    ];
    for (name, class, errcode, http_status) in classes {
        class.setattr("errcode", errcode)?;
        class.setattr("http_status", http_status)?;
        class.setattr("matrix_error", py.None())?;
        m.add(name, class)?;
    }
    let limit = py.get_type::<LimitExceededError>();
    limit.setattr("retry_after_ms", py.None())?;
    let version = py.get_type::<IncompatibleRoomVersionError>();
    version.setattr("room_version", py.None())?;
    Ok(())
}

/// The exception class for an error.
fn class_for<'py>(py: Python<'py>, error: &Error) -> Bound<'py, PyType> {
    match error.errcode() {
        ErrCode::NotJson | ErrCode::BadJson => py.get_type::<BadJsonError>(),
        ErrCode::InvalidParam | ErrCode::MissingParam => py.get_type::<InvalidParamError>(),
        ErrCode::TooLarge => py.get_type::<TooLargeError>(),
        ErrCode::LimitExceeded => py.get_type::<LimitExceededError>(),
        ErrCode::Forbidden => py.get_type::<ForbiddenError>(),
        ErrCode::Unauthorized => py.get_type::<UnauthorizedError>(),
        ErrCode::IncompatibleRoomVersion => py.get_type::<IncompatibleRoomVersionError>(),
        ErrCode::NotFound => py.get_type::<NotFoundError>(),
        // The core has one errcode for every internal failure; storage failures are told apart by
        // the prefix `store::storage_error` gives their messages.
        _ if error.message().starts_with("storage error") => py.get_type::<StorageError>(),
        _ => py.get_type::<InternalError>(),
    }
}

/// Builds the exception for a core error, with its attributes set.
fn build(py: Python<'_>, error: &Error) -> PyResult<PyErr> {
    let exc = class_for(py, error).call1((error.message(),))?;
    exc.setattr("errcode", error.errcode().as_str())?;
    exc.setattr("http_status", error.status())?;
    let body = PyDict::new(py);
    body.set_item("errcode", error.errcode().as_str())?;
    body.set_item("error", error.message())?;
    if let Some(ms) = error.retry_after_ms() {
        exc.setattr("retry_after_ms", ms)?;
        body.set_item("retry_after_ms", ms)?;
    }
    if let Some(version) = error.room_version() {
        exc.setattr("room_version", version)?;
        body.set_item("room_version", version)?;
    }
    exc.setattr("matrix_error", body)?;
    Ok(PyErr::from_value(exc))
}

/// A core error becomes the matching Python exception, so `?` works in every binding.
impl From<Error> for PyErr {
    fn from(error: Error) -> Self {
        Python::attach(|py| build(py, &error).unwrap_or_else(|failure| failure))
    }
}
