//! Argument types for parameters that come from the network or from a careless caller.
//!
//! PyO3's own extraction of `&str`, `String`, `i64`, `u64` and `usize` lets Python-specific
//! exceptions escape: a `str` holding a lone surrogate (`"!a\udc80:x"`, which Python happily
//! builds from undecodable bytes with `surrogateescape`) raises `UnicodeEncodeError`; an `int`
//! beyond the Rust type (or a negative one for an unsigned type) raises `OverflowError`. Both are
//! *values* a hostile server can put in a header or an ID, so they become Matrix errors here
//! instead: [`InvalidParamError`](super::errors::InvalidParamError) (`M_INVALID_PARAM`, 400).
//!
//! The rule for every binding (written in `docs/developing.md`):
//! - a wrong Python *type* (an `int` where a `str` is expected, `None` for a required argument)
//!   is a `TypeError`, as everywhere in Python: that is a bug in the calling code;
//! - a right type with a value the library cannot take (lone surrogate, integer out of range)
//!   is a `ServershipError` subclass, like any other invalid value.
//!
//! PyO3 adds the note `while processing 'room_id'` to an exception raised while extracting the
//! argument `room_id`, so the exception names the argument (in `__notes__` and in tracebacks).

use std::ops::Deref;

use pyo3::exceptions::{PyOverflowError, PyUnicodeEncodeError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyInt, PyString};

use crate::error::Error;

/// A text argument: a Python `str` that is valid Unicode, borrowed without copying.
///
/// Use as the parameter type instead of `&str`/`String` and pass `&arg` where a `&str` is needed.
pub(crate) struct Text(Source);

enum Source {
    Python(PyBackedStr),
    /// A default written in the signature ([`fixed`]).
    Fixed(&'static str),
}

/// A [`Text`] default for a `#[pyo3(signature = (x = args::fixed("..."))]` (give the function a
/// `text_signature` too, since PyO3 shows a non-literal default as `...`).
pub(crate) const fn fixed(text: &'static str) -> Text {
    Text(Source::Fixed(text))
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            Source::Python(s) => s,
            Source::Fixed(s) => s,
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Text {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        // A non-`str` is PyO3's TypeError (a bug in the caller, not a hostile value).
        let s = obj.cast::<PyString>()?;
        match PyBackedStr::try_from(s.to_owned()) {
            Ok(text) => Ok(Text(Source::Python(text))),
            Err(e) if e.is_instance_of::<PyUnicodeEncodeError>(obj.py()) => {
                Err(Error::invalid_param(
                    "text must be valid Unicode (lone surrogates are not allowed)",
                )
                .into())
            }
            Err(e) => Err(e),
        }
    }
}

/// The range of an integer type, for the message when a Python `int` does not fit.
pub(crate) trait IntRange {
    /// `"from 0 to 18446744073709551615"` and the like.
    fn range() -> String;
}

macro_rules! int_range {
    ($($t:ty),*) => {$(
        impl IntRange for $t {
            fn range() -> String {
                format!("from {} to {}", <$t>::MIN, <$t>::MAX)
            }
        }
    )*};
}
int_range!(i64, u64, usize, u32);

/// An integer argument (time in ms, limit, count): a Python `int` that fits `T`.
///
/// `.0` is the value. An `int` that does not fit (too large, or negative for an unsigned type)
/// is an `InvalidParamError` naming the range instead of an `OverflowError`.
pub(crate) struct Int<T>(pub T);

impl<'a, 'py, T> FromPyObject<'a, 'py> for Int<T>
where
    T: FromPyObject<'a, 'py, Error = PyErr> + IntRange,
{
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if !obj.is_instance_of::<PyInt>() {
            // The same TypeError PyO3 gives (a float, a str, None...).
            return obj.extract::<T>().map(Int);
        }
        match obj.extract::<T>() {
            Ok(v) => Ok(Int(v)),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => Err(Error::invalid_param(
                format!("integer out of range (must be {})", T::range()),
            )
            .into()),
            Err(e) => Err(e),
        }
    }
}

/// `#[pyo3(from_py_with = args::int)]` for an integer parameter (keeps a literal default
/// visible in the signature, which a newtype's default could not be).
pub(crate) fn int<T>(obj: &Bound<'_, PyAny>) -> PyResult<T>
where
    T: for<'a, 'py> FromPyObject<'a, 'py, Error = PyErr> + IntRange,
{
    obj.extract::<Int<T>>().map(|Int(v)| v)
}

/// `#[pyo3(from_py_with = args::opt_int)]` for an optional integer parameter (`None` allowed).
pub(crate) fn opt_int<T>(obj: &Bound<'_, PyAny>) -> PyResult<Option<T>>
where
    T: for<'a, 'py> FromPyObject<'a, 'py, Error = PyErr> + IntRange,
{
    if obj.is_none() {
        return Ok(None);
    }
    int(obj).map(Some)
}

/// A list of text arguments as owned `String`s (for APIs that keep them).
pub(crate) fn strings(values: Vec<Text>) -> Vec<String> {
    values.iter().map(|t| t.to_string()).collect()
}

/// Names the place of an element-level extraction failure (`memberships[2][0]`) in the message
/// of a `ServershipError` or `TypeError`; other exceptions pass unchanged.
pub(crate) fn at(error: PyErr, place: &str) -> PyErr {
    Python::attach(|py| {
        let message = error.value(py).to_string();
        if error.is_instance_of::<super::errors::ServershipError>(py) {
            Error::invalid_param(format!("{place}: {message}")).into()
        } else if error.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
            pyo3::exceptions::PyTypeError::new_err(format!("{place}: {message}"))
        } else {
            error
        }
    })
}

/// `#[pyo3(from_py_with = args::location)]` for where a store lives: a `str` is read by
/// [`Location::parse`](crate::store::Location::parse) (a PostgreSQL connection string, or a path),
/// any other path-like object (`pathlib.Path`, `bytes`) is an SQLite file path.
pub(crate) fn location(obj: &Bound<'_, PyAny>) -> PyResult<crate::store::Location> {
    if obj.is_instance_of::<PyString>() {
        let text: Text = obj.extract()?;
        return Ok(crate::store::Location::parse(&text)?);
    }
    let path: std::path::PathBuf = obj.extract()?;
    if path.as_os_str().is_empty() {
        return Err(Error::invalid_param("the store location must not be empty").into());
    }
    Ok(crate::store::Location::Sqlite(path))
}
