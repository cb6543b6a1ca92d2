//! Percent-encoding of URL path segments ([RFC 3986 §2.1](https://www.rfc-editor.org/rfc/rfc3986#section-2.1)).
//!
//! Identifiers travel in federation paths percent-encoded (`/invite/%21abc%3Aexample.org/...`),
//! and the [X-Matrix](https://spec.matrix.org/v1.16/server-server-api/#request-authentication)
//! signature covers the path exactly as sent, so both directions matter. `+` is *not* a space in a
//! path (that is form encoding), and decoding refuses what no identifier may hold: bad escapes,
//! invalid UTF-8 and NUL.

use crate::{Error, Result};

use super::quote;

/// Decodes the `%XX` escapes of one URL path segment into a string.
///
/// Errors (`M_INVALID_PARAM`): a `%` not followed by two hex digits, a result that is not UTF-8,
/// or a NUL character (escaped or raw). Other characters are kept as they are.
pub fn percent_decode_path_segment(segment: &str) -> Result<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(Error::invalid_param(format!(
                    "path segment {} has a '%' at byte {i} that is not followed by two hex digits",
                    quote(segment)
                )));
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(Error::invalid_param(format!(
            "path segment {} decodes to a NUL character",
            quote(segment)
        )));
    }
    String::from_utf8(out).map_err(|_| {
        Error::invalid_param(format!(
            "path segment {} does not decode to valid UTF-8",
            quote(segment)
        ))
    })
}

/// Percent-encodes `value` for use as one URL path segment: every byte except the unreserved
/// characters `A-Z a-z 0-9 - . _ ~` becomes `%XX` (upper-case hex).
pub fn percent_encode_path_segment(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
