//! Canonical JSON: a strict parser and an encoder that emits exactly the spec grammar.
//!
//! Spec: [Canonical JSON](https://spec.matrix.org/v1.16/appendices/#canonical-json), with the
//! receiving rules of MSC4458. The parser is deliberately strict, because every hash and signature
//! in Matrix is computed over re-encoded JSON and anything ambiguous is a way to make two servers
//! disagree about an event:
//!
//! - duplicate object keys are rejected, also when spelled differently (`"\t"` and `"\u0009"`);
//! - numbers are integers in ±(2^53−1); fractions, exponents, NaN and Infinity are rejected;
//!   `-0` is read as `0`;
//! - unpaired surrogates, invalid UTF-8, raw control characters in strings, a byte-order mark and
//!   trailing data are rejected;
//! - nesting deeper than [`MAX_DEPTH`] is rejected instead of exhausting the stack.
//!
//! Errors that make the input "not JSON" carry `M_NOT_JSON`; JSON that Matrix refuses carries
//! `M_BAD_JSON`. Both give the byte offset.
//!
//! Room versions 1–5 do not enforce canonical JSON, and Synapse accepts their events with
//! fractions, exponents and large integers. [`parse_lenient`] reads those numbers as
//! [`Value::Number`], which encodes them exactly as Synapse's canonical JSON does (Python's `json`
//! module: integers digit for digit, other numbers as Python's `repr` of the nearest double), so
//! that hashes, IDs and signatures of such events agree with Synapse's. Everything else is as
//! strict as [`parse`]; callers refuse [`Value::Number`] in the room versions that forbid it.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The largest integer canonical JSON allows (2^53 − 1); the smallest is its negation.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// How deeply arrays and objects may nest. Matrix events need a handful of levels; the limit
/// keeps hostile input from exhausting the stack.
pub const MAX_DEPTH: usize = 128;

/// A JSON object. A `BTreeMap` keyed by `String` iterates in UTF-8 byte order, which for valid
/// UTF-8 is exactly the Unicode code point order canonical JSON requires.
pub type Object = BTreeMap<String, Value>;

/// A parsed JSON value, restricted to what canonical JSON can carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer in ±(2^53 − 1).
    Int(i64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object with sorted, unique keys.
    Object(Object),
    /// A number canonical JSON cannot carry (a fraction, an exponent, or an integer outside
    /// ±(2^53 − 1)). Only [`parse_lenient`] makes one, for room versions 1–5.
    Number(Number),
}

/// A number outside canonical JSON, kept as the text Synapse's canonical JSON writes for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number {
    text: String,
}

impl Number {
    /// The number as it is encoded: an integer's digits, or Python's `repr` of a double
    /// (`1.5`, `100.0`, `1e+16`, `1e-05`, `-0.0`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is an integer (outside ±(2^53 − 1)), not a double.
    pub fn is_integer(&self) -> bool {
        !self.text.contains(['.', 'e', 'n', 'i'])
    }

    /// The nearest double (exact for doubles; rounded for large integers).
    pub fn as_f64(&self) -> f64 {
        self.text.parse().unwrap_or(f64::NAN)
    }

    /// A double, written as Python's `repr` writes it. `None` for NaN and infinities, which JSON
    /// cannot carry.
    pub fn from_f64(x: f64) -> Option<Number> {
        x.is_finite().then(|| Number {
            text: python_float_repr(x),
        })
    }

    /// An integer given as decimal text (`-?[1-9][0-9]*` or `0`), of any size. Integers within
    /// ±(2^53 − 1) are not numbers of this kind: `None`, as for text that is no integer.
    pub fn from_integer_text(text: &str) -> Option<Number> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        let small =
            digits.len() <= 16 && digits.parse::<i64>().is_ok_and(|n| n <= MAX_SAFE_INTEGER);
        (well_formed && !small).then(|| Number {
            text: text.to_owned(),
        })
    }
}

/// Python's `repr(float)`: the shortest digits that read back as `x`, in positional notation
/// when the decimal exponent is in -4..16, else as `d.ddde±XX`; positional notation always has a
/// fraction (`100.0`).
fn python_float_repr(x: f64) -> String {
    // `{:e}` gives the shortest round-trip digits: "1.2345e-7", "1e16", "0e0".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let point = exponent + 1; // digits are 0.d1d2… × 10^point
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let n = digits.len() as i32;
    let body = if point <= -4 || point > 16 {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e = point - 1;
        format!(
            "{first}{fraction}e{}{:02}",
            if e < 0 { '-' } else { '+' },
            e.abs()
        )
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point >= n {
        format!("{digits}{}.0", "0".repeat((point - n) as usize))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

impl Value {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The members, mutably, if this is an object.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The member `key` of an object; `None` for other values or a missing key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|o| o.get(key))
    }

    /// `true` for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A short name for the value's type, for error messages ("expected a string, found an array").
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
            Value::Number(n) if n.is_integer() => "an integer outside ±(2^53 - 1)",
            Value::Number(_) => "a number with a fraction or an exponent",
        }
    }

    /// Whether a [`Value::Number`] occurs anywhere in this value: JSON that only room versions
    /// 1–5 accept.
    pub fn has_number(&self) -> bool {
        self.first_number_path().is_some()
    }

    /// Where the first [`Value::Number`] is (`content.ts`, `auth_events[2]`), if any.
    pub fn first_number_path(&self) -> Option<String> {
        match self {
            Value::Number(_) => Some(String::new()),
            Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| {
                v.first_number_path()
                    .map(|p| join_path(&format!("[{i}]"), &p))
            }),
            Value::Object(o) => o.iter().find_map(|(k, v)| {
                v.first_number_path()
                    .map(|p| join_path(&format!(".{k}"), &p))
            }),
            _ => None,
        }
    }

    /// Canonical JSON bytes of this value.
    pub fn to_canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        encode_into(self, &mut out);
        out
    }

    /// Canonical JSON of this value as a `String`.
    pub fn to_canonical_string(&self) -> String {
        // The encoder only ever writes valid UTF-8: every string it copies came from a `String`.
        String::from_utf8(self.to_canonical()).unwrap_or_default()
    }
}

fn join_path(head: &str, tail: &str) -> String {
    format!("{head}{tail}")
}

/// [`Value::first_number_path`] of an object's members (`.content.ts`).
pub fn first_number_path_in(object: &Object) -> Option<String> {
    object.iter().find_map(|(k, v)| {
        v.first_number_path()
            .map(|p| join_path(&format!(".{k}"), &p))
    })
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

/// Parses strict JSON (see the module docs for what is refused).
pub fn parse(bytes: &[u8]) -> Result<Value> {
    parse_with(bytes, false)
}

/// Parses JSON as room versions 1–5 allow it: like [`parse`], except that fractions, exponents
/// and integers outside ±(2^53 − 1) are read as [`Value::Number`] (a double that is infinite,
/// like `1e400`, is still refused: JSON cannot carry it back).
pub fn parse_lenient(bytes: &[u8]) -> Result<Value> {
    parse_with(bytes, true)
}

/// [`parse_lenient`] for a value that must be an object.
pub fn parse_object_lenient(bytes: &[u8]) -> Result<Object> {
    match parse_lenient(bytes)? {
        Value::Object(o) => Ok(o),
        other => Err(Error::bad_json(format!(
            "expected a JSON object, found {}",
            other.type_name()
        ))),
    }
}

fn parse_with(bytes: &[u8], lenient: bool) -> Result<Value> {
    let mut p = Parser {
        bytes,
        // Checked once here, so the strings of valid input are sliced without a UTF-8 check each;
        // invalid input is checked string by string, to report the same error at the same place.
        text: std::str::from_utf8(bytes).ok(),
        pos: 0,
        scratch: Vec::new(),
        lenient,
    };
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(Error::not_json(
            "JSON must not start with a byte-order mark",
        ));
    }
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != bytes.len() {
        return Err(p.not_json("unexpected data after the JSON value"));
    }
    Ok(v)
}

/// Parses strict JSON that must be an object, as every Matrix request body and event is.
pub fn parse_object(bytes: &[u8]) -> Result<Object> {
    match parse(bytes)? {
        Value::Object(o) => Ok(o),
        other => Err(Error::bad_json(format!(
            "expected a JSON object, found {}",
            other.type_name()
        ))),
    }
}

/// Parses strict JSON and re-encodes it as canonical JSON.
pub fn canonicalize(bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(parse(bytes)?.to_canonical())
}

/// Canonical JSON bytes of `value`.
pub fn to_canonical(value: &Value) -> Vec<u8> {
    value.to_canonical()
}

/// Canonical JSON of an object, leaving out the named top-level keys. Signing and hashing encode
/// an event "without `signatures` and `unsigned`": this does it without cloning the event.
pub fn canonical_object_without(object: &Object, skip: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    let mut first = true;
    for (k, v) in object {
        if skip.contains(&k.as_str()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        encode_str(k, &mut out);
        out.push(b':');
        encode_into(v, &mut out);
    }
    out.push(b'}');
    out
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let buf = itoa_buf(*i);
            out.extend_from_slice(buf.as_bytes());
        }
        Value::String(s) => encode_str(s, out),
        Value::Number(n) => out.extend_from_slice(n.as_str().as_bytes()),
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_into(v, out);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_str(k, out);
                out.push(b':');
                encode_into(v, out);
            }
            out.push(b'}');
        }
    }
}

/// A small stack buffer holding the decimal form of an integer.
struct IntBuf {
    buf: [u8; 20],
    start: usize,
}

impl IntBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(i: i64) -> IntBuf {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let neg = i < 0;
    let mut n = i.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        pos -= 1;
        buf[pos] = b'-';
    }
    IntBuf { buf, start: pos }
}

/// Which bytes need escaping in a canonical string: `"`, `\` and the C0 controls (the plain
/// definition [`plain_run`] is tested against).
#[cfg(test)]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The length of the leading run of `bytes` that holds no `"`, `\` or C0 control: the bytes a
/// string parser or encoder copies through untouched.
///
/// Both the parser and the encoder spend most of their time walking strings, so this looks at
/// eight bytes a step. Each mask below has its high bit set in every lane that matches; a lane can
/// also be flagged by a borrow from a lower lane, but only above a lane that truly matched, so
/// the lowest flagged lane is always the first real match.
#[inline]
fn plain_run(bytes: &[u8]) -> usize {
    let mut offset = 0;
    while let Some(chunk) = bytes.get(offset..offset + 8) {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        if let Some(at) = first_special_lane(lanes) {
            return offset + at;
        }
        offset += 8;
    }
    // The last few bytes: for a string of at least eight, one more word ending at its end (the
    // lanes it shares with the last word are known to be plain, so its lowest flagged lane is the
    // first special byte of the rest); short strings are few bytes, looked at one by one.
    let len = bytes.len();
    if offset == len {
        return len;
    }
    if let Some(tail) = len
        .checked_sub(8)
        .and_then(|start| bytes.get(start..).map(|t| (start, t)))
    {
        let (start, tail) = tail;
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(tail);
        return first_special_lane(lanes).map_or(len, |at| start + at);
    }
    // Shorter than eight bytes, so `offset` is 0.
    bytes
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .unwrap_or(len)
}

/// The lowest of eight bytes that is `"`, `\` or a C0 control (see [`plain_run`]).
#[inline]
fn first_special_lane(lanes: [u8; 8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let w = u64::from_le_bytes(lanes);
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let slash = s.wrapping_sub(ONES) & !s;
    let found = (control | quote | slash) & HIGH;
    (found != 0).then(|| (found.trailing_zeros() / 8) as usize)
}

/// Appends a canonical JSON string: only `"`, `\` and U+0000–U+001F are escaped, with the short
/// escapes where they exist and lower-case `\u00xx` otherwise. Everything else is raw UTF-8.
pub fn encode_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = start + plain_run(&bytes[start..]);
        let Some(&b) = bytes.get(i) else { break };
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0A => out.extend_from_slice(b"\\n"),
            0x0C => out.extend_from_slice(b"\\f"),
            0x0D => out.extend_from_slice(b"\\r"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xF) as usize]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The members of an object being parsed.
///
/// Objects usually arrive with their keys already in canonical order (most senders write
/// canonical JSON). While that holds, each key only has to be compared with the previous one to
/// know it is new, and the map is built in one pass at the end; the first key out of order moves
/// everything into a map and every later key is checked against it.
enum Members {
    Sorted(Vec<(String, Value)>),
    Map(Object),
}

impl Default for Members {
    fn default() -> Self {
        Members::Sorted(Vec::new())
    }
}

impl Members {
    fn insert(&mut self, key: String, value: Value, key_pos: usize) -> Result<()> {
        match self {
            Members::Sorted(list) => {
                match list.last() {
                    Some((last, _)) if key.as_str() <= last.as_str() => {
                        let mut map: Object = std::mem::take(list).into_iter().collect();
                        let result = insert_new(&mut map, key, value, key_pos);
                        *self = Members::Map(map);
                        return result;
                    }
                    _ => list.push((key, value)),
                }
                Ok(())
            }
            Members::Map(map) => insert_new(map, key, value, key_pos),
        }
    }

    fn into_object(self) -> Object {
        match self {
            // Sorted and unique: `collect` recognises the order and builds the tree in bulk.
            Members::Sorted(list) => list.into_iter().collect(),
            Members::Map(map) => map,
        }
    }
}

/// Inserts a member that must not already be present.
fn insert_new(map: &mut Object, key: String, value: Value, key_pos: usize) -> Result<()> {
    match map.entry(key) {
        std::collections::btree_map::Entry::Vacant(slot) => {
            slot.insert(value);
            Ok(())
        }
        std::collections::btree_map::Entry::Occupied(slot) => Err(Error::bad_json(format!(
            "duplicate key {} at byte {key_pos}",
            Value::String(slot.key().clone()).to_canonical_string()
        ))),
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    /// `bytes` as text, when all of it is valid UTF-8.
    text: Option<&'a str>,
    pos: usize,
    /// Reused buffer for strings with escapes.
    scratch: Vec<u8>,
    /// Whether numbers outside canonical JSON become [`Value::Number`] (room versions 1–5).
    lenient: bool,
}

impl Parser<'_> {
    fn not_json(&self, what: &str) -> Error {
        Error::not_json(format!("{what} at byte {}", self.pos))
    }

    fn bad_json(&self, what: &str) -> Error {
        Error::bad_json(format!("{what} at byte {}", self.pos))
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        match self.peek() {
            None => Err(self.not_json("unexpected end of input")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'N' | b'I') => Err(self.bad_json("NaN and Infinity are not allowed")),
            Some(_) => Err(self.not_json("unexpected character")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.not_json("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.pos;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        let digits = &self.bytes[digits_start..self.pos];
        if digits.is_empty() {
            if let Some(b'I') = self.peek() {
                return Err(self.bad_json("NaN and Infinity are not allowed"));
            }
            return Err(self.not_json("a minus sign must be followed by digits"));
        }
        let leading_zero = digits.len() > 1 && digits[0] == b'0';
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            if self.lenient && !leading_zero {
                return self.lenient_double(start);
            }
            self.pos = start;
            return Err(self.bad_json("numbers with a fraction or an exponent are not allowed"));
        }
        if leading_zero {
            self.pos = start;
            return Err(self.not_json("numbers must not have leading zeros"));
        }
        // 16 digits already exceed 2^53; anything longer is out of range without parsing it.
        let mut n: i64 = 0;
        if digits.len() > 16 {
            n = i64::MAX;
        } else {
            for &d in digits {
                n = n * 10 + i64::from(d - b'0');
            }
        }
        if n > MAX_SAFE_INTEGER {
            if self.lenient {
                let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or("");
                if let Some(number) = Number::from_integer_text(text) {
                    return Ok(Value::Number(number));
                }
            }
            self.pos = start;
            return Err(self.bad_json("integer outside the range ±(2^53 - 1)"));
        }
        Ok(Value::Int(if neg { -n } else { n }))
    }

    /// The rest of a number with a fraction or an exponent (`pos` is just past the integer
    /// part), read as Python reads it: the nearest double.
    fn lenient_double(&mut self, start: usize) -> Result<Value> {
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let from = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            if self.pos == from {
                return Err(self.not_json("a decimal point must be followed by digits"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            let from = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            if self.pos == from {
                return Err(self.not_json("an exponent must have digits"));
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or("");
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(number) => Ok(Value::Number(number)),
            None => {
                self.pos = start;
                Err(self.bad_json("number too large for a double"))
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.bad_json(&format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.not_json("unexpected end of input in an array")),
                Some(_) => return Err(self.not_json("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.bad_json(&format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.pos += 1; // '{'
        let mut members = Members::default();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(Object::new()));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.not_json("expected a string key"));
            }
            let key_pos = self.pos;
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.not_json("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth)?;
            members.insert(key, v, key_pos)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members.into_object()));
                }
                None => return Err(self.not_json("unexpected end of input in an object")),
                Some(_) => return Err(self.not_json("expected ',' or '}'")),
            }
        }
    }

    fn string(&mut self) -> Result<String> {
        self.pos += 1; // opening quote
        let start = self.pos;
        // Fast path: no escapes, the common case for Matrix events.
        self.pos += plain_run(self.bytes.get(start..).unwrap_or_default());
        match self.peek() {
            Some(b'"') => {
                let s = match self.text.and_then(|t| t.get(start..self.pos)) {
                    Some(s) => s.to_owned(),
                    None => self.utf8(start, self.pos)?.to_owned(),
                };
                self.pos += 1;
                return Ok(s);
            }
            Some(b'\\') => {}
            Some(_) => return Err(self.not_json("raw control character in a string")),
            None => return Err(self.not_json("unterminated string")),
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(&self.bytes[start..self.pos]);
        let result = self.string_escaped(&mut buf);
        let out = result.and_then(|()| match String::from_utf8(buf.clone()) {
            Ok(s) => Ok(s),
            Err(e) => Err(Error::not_json(format!(
                "invalid UTF-8 in a string near byte {}",
                start + e.utf8_error().valid_up_to()
            ))),
        });
        self.scratch = buf;
        out
    }

    /// Continues a string after its first backslash, decoding escapes into `buf`.
    fn string_escaped(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.not_json("unterminated string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(&e) = self.bytes.get(self.pos) else {
                        return Err(self.not_json("unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => buf.push(b'"'),
                        b'\\' => buf.push(b'\\'),
                        b'/' => buf.push(b'/'),
                        b'b' => buf.push(0x08),
                        b'f' => buf.push(0x0C),
                        b'n' => buf.push(b'\n'),
                        b'r' => buf.push(b'\r'),
                        b't' => buf.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut tmp = [0u8; 4];
                            buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.not_json("invalid escape"));
                        }
                    }
                }
                0x00..=0x1F => return Err(self.not_json("raw control character in a string")),
                _ => {
                    buf.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// Reads the four hex digits after `\u` (and a second escape for a surrogate pair).
    fn unicode_escape(&mut self) -> Result<char> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos) != Some(&b'\\')
                    || self.bytes.get(self.pos + 1) != Some(&b'u')
                {
                    return Err(self.bad_json("unpaired surrogate in a string"));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.bad_json("unpaired surrogate in a string"));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.bad_json("unpaired surrogate in a string")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.bad_json("invalid code point"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let Some(h) = self.bytes.get(self.pos..self.pos + 4) else {
            return Err(self.not_json("truncated \\u escape"));
        };
        let mut v = 0u32;
        for &c in h {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(self.not_json("invalid \\u escape")),
            };
            v = v * 16 + u32::from(d);
        }
        self.pos += 4;
        Ok(v)
    }

    fn utf8(&self, start: usize, end: usize) -> Result<&str> {
        std::str::from_utf8(&self.bytes[start..end]).map_err(|e| {
            Error::not_json(format!(
                "invalid UTF-8 in a string at byte {}",
                start + e.valid_up_to()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let e = parse(deep.as_bytes()).err().map(|e| e.errcode());
        assert_eq!(e, Some(crate::ErrCode::BadJson));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn integers_at_the_edges() {
        assert_eq!(
            parse(b"9007199254740991").ok(),
            Some(Value::Int(MAX_SAFE_INTEGER))
        );
        assert_eq!(
            parse(b"-9007199254740991").ok(),
            Some(Value::Int(-MAX_SAFE_INTEGER))
        );
        assert!(parse(b"9007199254740992").is_err());
        assert!(parse(b"-9007199254740992").is_err());
        assert!(parse(b"123456789012345678901234567890").is_err());
        assert_eq!(parse(b"-0").ok(), Some(Value::Int(0)));
    }

    #[test]
    fn plain_run_finds_the_first_special_byte_in_every_lane() {
        for len in 0..40 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x00, 0x1F] {
                    // Non-ASCII and high bytes around the special one must not hide it.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'a', 0xC3, 0xA9, 0x7F, b' '][i % 5])
                        .collect();
                    if at < len {
                        bytes[at] = special;
                    }
                    let expected = bytes.iter().position(|&b| needs_escape(b)).unwrap_or(len);
                    assert_eq!(
                        plain_run(&bytes),
                        expected,
                        "len {len} at {at} byte {special}"
                    );
                }
            }
        }
    }

    #[test]
    fn duplicates_are_found_in_and_out_of_order() {
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"b":2,"a":3}"#,
            r#"{"b":1,"a":2,"b":3}"#,
            r#"{"c":1,"a":2,"b":3,"a":4}"#,
            r#"{"\t":1,"\u0009":2}"#,
        ] {
            let e = parse(text.as_bytes()).err().map(|e| e.errcode());
            assert_eq!(e, Some(crate::ErrCode::BadJson), "{text}");
        }
        let v = parse(br#"{"c":1,"a":{"z":1,"y":2},"b":3}"#).unwrap_or_default();
        assert_eq!(v.to_canonical(), br#"{"a":{"y":2,"z":1},"b":3,"c":1}"#);
    }

    #[test]
    fn object_without_skips_keys() {
        let o =
            parse_object(br#"{"b":1,"signatures":{},"a":"x","unsigned":2}"#).unwrap_or_default();
        assert_eq!(
            canonical_object_without(&o, &["signatures", "unsigned"]),
            br#"{"a":"x","b":1}"#
        );
    }
}
