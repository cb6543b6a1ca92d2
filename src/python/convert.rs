//! Python values to JSON [`Value`]s and back.
//!
//! Python → JSON is strict in the same way as the canonical JSON parser, because a value a
//! Python caller builds ends up hashed and signed just like one parsed from the network:
//! `None`/`bool`/`int`/`str`/`list`/`tuple`/`dict` only; no floats; integers within
//! ±(2^53−1); `str` keys only; no lone surrogates; at most [`MAX_DEPTH`] nested containers (so a
//! cyclic or absurdly deep structure is a `BadJsonError`, never a `RecursionError` or a crash).
//! Every refusal names the place, e.g. `value["content"]["body"][3]: floats are not allowed`.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use crate::error::Error;
use crate::json::{self, MAX_DEPTH, MAX_SAFE_INTEGER, Object, Value};

/// One step on the way to a bad value, kept to name the place in the error.
enum Step {
    Key(String),
    Index(usize),
}

/// A refusal with the path to it (innermost step first).
struct Refusal {
    path: Vec<Step>,
    error: Error,
}

impl Refusal {
    fn new(error: Error) -> Self {
        Refusal {
            path: Vec::new(),
            error,
        }
    }

    fn into_error(self, root: &str) -> Error {
        let mut place = root.to_owned();
        let steps = self.path.len();
        for (n, step) in self.path.iter().rev().enumerate() {
            // A path through a cyclic or very deep structure is elided in the middle.
            if steps > 12 && (4..steps - 4).contains(&n) {
                if n == 4 {
                    place.push_str(&format!("...({} levels)...", steps - 8));
                }
                continue;
            }
            match step {
                Step::Key(k) => place.push_str(&format!("[{k:?}]")),
                Step::Index(i) => place.push_str(&format!("[{i}]")),
            }
        }
        self.error.at(&place)
    }
}

/// Converts a Python value to a JSON value; errors name the place starting from `root`
/// (the parameter name).
pub(crate) fn to_value(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Value> {
    match convert(obj, 0, false) {
        Ok(v) => Ok(v),
        Err(refusal) => Err(refusal.into_error(root).into()),
    }
}

/// [`to_value`] as room versions 1–5 allow: floats and integers outside ±(2^53 − 1) become
/// [`Value::Number`], written as Python (so Synapse) writes them. NaN and infinities are still
/// refused.
pub(crate) fn to_value_lenient(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Value> {
    match convert(obj, 0, true) {
        Ok(v) => Ok(v),
        Err(refusal) => Err(refusal.into_error(root).into()),
    }
}

/// [`to_object`] as room versions 1–5 allow (see [`to_value_lenient`]).
pub(crate) fn to_object_lenient(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Object> {
    if let Some(input) = json_input(obj)? {
        let bytes = input.bytes();
        return Ok(obj.py().detach(|| json::parse_object_lenient(bytes))?);
    }
    match to_value_lenient(obj, root)? {
        Value::Object(o) => Ok(o),
        other => Err(Error::bad_json(format!(
            "{root} must be a dict or JSON text (bytes or str), not {}",
            other.type_name()
        ))
        .into()),
    }
}

fn convert(obj: &Bound<'_, PyAny>, depth: usize, lenient: bool) -> Result<Value, Refusal> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // `bool` is a subclass of `int`: test it first.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        let n: Option<i64> = obj
            .extract()
            .ok()
            .filter(|n| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(n));
        if let Some(n) = n {
            return Ok(Value::Int(n));
        }
        if lenient {
            let digits = obj.str().map_err(|_| out_of_range())?;
            if let Some(number) = json::Number::from_integer_text(text(&digits)?) {
                return Ok(Value::Number(number));
            }
        }
        return Err(out_of_range());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(text(s)?.to_owned()));
    }
    if obj.is_instance_of::<PyFloat>() {
        if lenient {
            let x: f64 = obj.extract().map_err(|_| out_of_range())?;
            return json::Number::from_f64(x).map(Value::Number).ok_or_else(|| {
                Refusal::new(Error::bad_json(
                    "NaN and infinities cannot be encoded as JSON",
                ))
            });
        }
        return Err(Refusal::new(Error::bad_json(
            "floats are not allowed in canonical JSON (use an integer)",
        )));
    }
    if depth >= MAX_DEPTH {
        return Err(Refusal::new(Error::bad_json(format!(
            "nested deeper than {MAX_DEPTH} levels"
        ))));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut object = Object::new();
        for (key, item) in dict.iter() {
            let Ok(key) = key.cast::<PyString>() else {
                return Err(Refusal::new(Error::bad_json(format!(
                    "object keys must be str, not {}",
                    type_name(&key)
                ))));
            };
            let key = text(key)?.to_owned();
            match convert(&item, depth + 1, lenient) {
                Ok(v) => {
                    object.insert(key, v);
                }
                Err(mut refusal) => {
                    refusal.path.push(Step::Key(key));
                    return Err(refusal);
                }
            }
        }
        return Ok(Value::Object(object));
    }
    let items = if let Ok(list) = obj.cast::<PyList>() {
        list.iter().collect::<Vec<_>>()
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        tuple.iter().collect::<Vec<_>>()
    } else {
        return Err(Refusal::new(Error::bad_json(format!(
            "{} cannot be encoded as JSON (expected None, bool, int, str, list, tuple or dict)",
            type_name(obj)
        ))));
    };
    let mut array = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match convert(item, depth + 1, lenient) {
            Ok(v) => array.push(v),
            Err(mut refusal) => {
                refusal.path.push(Step::Index(i));
                return Err(refusal);
            }
        }
    }
    Ok(Value::Array(array))
}

fn out_of_range() -> Refusal {
    Refusal::new(Error::bad_json(format!(
        "integers must be within ±{MAX_SAFE_INTEGER} in canonical JSON"
    )))
}

/// The UTF-8 text of a Python string; lone surrogates cannot be encoded and are refused.
fn text<'a>(s: &'a Bound<'_, PyString>) -> Result<&'a str, Refusal> {
    s.to_str().map_err(|_| {
        Refusal::new(Error::bad_json(
            "strings must be valid Unicode (lone surrogates are not allowed)",
        ))
    })
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "this value".to_owned())
}

/// Converts a JSON value to Python: `dict`, `list`, `str`, `int`, `bool` or `None`.
pub(crate) fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(n) => n.into_pyobject(py)?.into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        // Python reads back exactly what it wrote: int(text) or float(text).
        Value::Number(n) if n.is_integer() => {
            py.get_type::<PyInt>().call1((n.as_str(),))?.into_any()
        }
        Value::Number(n) => PyFloat::new(py, n.as_f64()).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(object) => {
            let dict = PyDict::new(py);
            for (k, v) in object {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// JSON text handed in from Python: `bytes`, `bytearray` or `str`.
pub(crate) enum JsonInput<'a> {
    /// Borrowed from an immutable `bytes` or `str`.
    Borrowed(&'a [u8]),
    /// Copied from a mutable `bytearray`.
    Owned(Vec<u8>),
}

impl JsonInput<'_> {
    /// The bytes to parse.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            JsonInput::Borrowed(b) => b,
            JsonInput::Owned(v) => v,
        }
    }
}

/// Reads JSON text from `bytes`, `bytearray` or `str`; `None` for any other type.
pub(crate) fn json_input<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Option<JsonInput<'a>>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Some(JsonInput::Borrowed(b.as_bytes())));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Some(JsonInput::Owned(b.to_vec())));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_str().map_err(|_| {
            Error::bad_json("JSON text must be valid Unicode (lone surrogates are not allowed)")
        })?;
        return Ok(Some(JsonInput::Borrowed(s.as_bytes())));
    }
    Ok(None)
}

/// A JSON object from a `dict` (converted strictly) or from JSON text (parsed strictly, without
/// holding the interpreter).
pub(crate) fn to_object(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Object> {
    if let Some(input) = json_input(obj)? {
        let bytes = input.bytes();
        return Ok(obj.py().detach(|| json::parse_object(bytes))?);
    }
    if !obj.is_instance_of::<PyDict>() {
        return Err(Error::bad_json(format!(
            "{root} must be a dict or JSON text (bytes or str), not {}",
            type_name(obj)
        ))
        .into());
    }
    match to_value(obj, root)? {
        Value::Object(o) => Ok(o),
        _ => Err(Error::internal("a dict did not convert to an object").into()),
    }
}

/// Canonical JSON of a Python value, encoded straight from the Python objects: the fast path of
/// `canonical_json`, which would otherwise build a whole [`Value`] (a `String` for every key and
/// string) only to encode and drop it.
///
/// Accepts exactly what [`to_value`] accepts and produces the same bytes. Whenever the fast
/// encoder meets anything it does not take (a float, an out-of-range int, a non-`str` key, a lone
/// surrogate, too much nesting, or two keys that compare equal, which only a `str` subclass with
/// its own `__eq__` can produce), it gives up and [`to_value`] redoes the work, so refusals and
/// their messages come from one place.
pub(crate) fn to_canonical_bytes(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Vec<u8>> {
    let mut out = Vec::with_capacity(1024);
    if encode_direct(obj, 0, &mut out).is_ok() {
        return Ok(out);
    }
    Ok(to_value(obj, root)?.to_canonical())
}

/// Code point order of two keys. Keys of one object nearly always differ in their first byte, so
/// that is compared inline before the full comparison.
#[inline]
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// The fast encoder met something only [`to_value`] can judge.
struct GiveUp;

fn encode_direct(obj: &Bound<'_, PyAny>, depth: usize, out: &mut Vec<u8>) -> Result<(), GiveUp> {
    // The same order of tests as `convert`, so a value is read as the same JSON type.
    if obj.is_none() {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
        return Ok(());
    }
    if obj.is_instance_of::<PyInt>() {
        let n: i64 = obj.extract().map_err(|_| GiveUp)?;
        if !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n) {
            return Err(GiveUp);
        }
        json::encode_into(&Value::Int(n), out);
        return Ok(());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        json::encode_str(s.to_str().map_err(|_| GiveUp)?, out);
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Err(GiveUp);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut items = Vec::with_capacity(dict.len());
        for (key, item) in dict.iter() {
            let key = key.cast_into::<PyString>().map_err(|_| GiveUp)?;
            items.push((key, item));
        }
        // Python `str`s compare by code point, Rust `str`s by UTF-8 byte: the same order, the
        // canonical one.
        let mut members = Vec::with_capacity(items.len());
        for (key, item) in &items {
            members.push((key.to_str().map_err(|_| GiveUp)?, item));
        }
        members.sort_unstable_by(|a, b| key_order(a.0, b.0));
        out.push(b'{');
        for (i, (key, item)) in members.iter().enumerate() {
            if i > 0 {
                if members.get(i - 1).map(|m| m.0) == Some(*key) {
                    return Err(GiveUp);
                }
                out.push(b',');
            }
            json::encode_str(key, out);
            out.push(b':');
            encode_direct(item, depth + 1, out)?;
        }
        out.push(b'}');
        return Ok(());
    }
    out.push(b'[');
    if let Ok(list) = obj.cast::<PyList>() {
        for (i, item) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            encode_direct(&item, depth + 1, out)?;
        }
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        for (i, item) in tuple.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            encode_direct(&item, depth + 1, out)?;
        }
    } else {
        // Floats and every other type: `to_value` names them.
        return Err(GiveUp);
    }
    out.push(b']');
    Ok(())
}
