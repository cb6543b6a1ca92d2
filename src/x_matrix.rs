//! X-Matrix request authentication between servers, per the spec's
//! [Request Authentication](https://spec.matrix.org/v1.16/server-server-api/#request-authentication).
//!
//! A server signs every federation request: the JSON object `{method, uri, origin, destination,
//! content?}` is signed with the [JSON-signing algorithm](crate::signing), and the signature travels
//! in the `Authorization` header:
//!
//! ```text
//! X-Matrix origin="origin.example",destination="destination.example",key="ed25519:1",sig="ABC…"
//! ```
//!
//! - Sending: [`request_json`] builds the signed object, [`sign_request`] the header value, in the
//!   exact sender format of the spec (one space after the scheme, lower-case names, quoted values,
//!   no whitespace around commas).
//! - Receiving: [`parse_header`] reads the header as RFC 9110 auth-params; [`verify_request`] (or
//!   [`verify_request_body`] for raw body bytes) checks the destination and the signature against
//!   the keys the homeserver fetched for the origin. Key fetching stays the homeserver's job: parse
//!   the header first to learn `origin` and `key_id`, fetch, then verify.
//!
//! ```
//! use servership::signing::SigningKey;
//! use servership::x_matrix;
//!
//! let key = SigningKey::from_seed("ed25519:1", &[1; 32])?;
//! let header = x_matrix::sign_request(
//!     "GET", "/_matrix/federation/v1/version", "a.example", "b.example", None, &key,
//! );
//! // On b.example: learn who claims to send, fetch their keys, then verify.
//! let claimed = x_matrix::parse_header(&header)?;
//! assert_eq!(claimed.origin.as_str(), "a.example");
//! let keys = [key.verify_key()];
//! let who = x_matrix::verify_request(
//!     &header, "GET", "/_matrix/federation/v1/version", "b.example", None, &keys,
//! )?;
//! assert_eq!(who.origin.as_str(), "a.example");
//! # Ok::<(), servership::Error>(())
//! ```
//!
//! Decisions (encoded in `tests/vectors/x_matrix.json`):
//!
//! - The scheme and parameter names are case-insensitive; spaces and TABs are allowed around commas
//!   and `=`; empty list elements and a trailing comma are allowed; quoted values are unescaped.
//! - Unquoted values may be any RFC 9110 `token` characters plus `:` (the spec's compatibility
//!   rule), and also `/`, `=`, `[` and `]`, so that unquoted base64 signatures and IPv6 origins from
//!   lenient senders still parse (Synapse accepts them too).
//! - Unknown parameters are ignored; any parameter appearing twice (names compared
//!   case-insensitively) rejects the header, since "last wins" would be ambiguous.
//! - The signature parameter is `sig`, as every implementation sends it (the spec's parameter list
//!   says `signature`, which is a known spec text bug).
//! - `origin` and `destination` must be valid server names at parse time. The `key` is kept as
//!   sent and checked as a key ID only when verifying, because the header syntax alone does not
//!   require it (one upstream vector carries a key that is not a key ID).
//! - A missing `destination` is accepted (senders before spec v1.3); the signature is then checked
//!   with our own name as destination, as a present one must be.
//! - An empty body counts as no body: `content` is left out of the signed object.
//! - Every failure is `M_UNAUTHORIZED` (401), except a request body that is not valid JSON, which
//!   gets the JSON parser's `M_NOT_JSON`/`M_BAD_JSON`.
//! - Parsing is a single pass, linear in the header length; nothing is quoted back at length.

use std::collections::HashSet;

use crate::ids::{ServerName, quote};
use crate::json::{self, Object, Value};
use crate::signing::{self, SigningKey, VerifyKey};
use crate::{Error, Result};

/// The authentication scheme name, as senders write it.
pub const SCHEME: &str = "X-Matrix";

/// The parameters of an `Authorization: X-Matrix …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XMatrix {
    /// The sending server.
    pub origin: ServerName,
    /// The server the request was meant for; `None` when the sender predates spec v1.3.
    pub destination: Option<ServerName>,
    /// The ID of the key that made the signature, as sent (e.g. `ed25519:1`).
    pub key_id: String,
    /// The signature, as sent (unpadded or padded standard base64).
    pub signature: String,
}

impl XMatrix {
    /// Checks this header's signature over a request to us: the destination (if present) must be
    /// `our_server_name`, and the signature by `key_id` must verify over the request object built
    /// with `our_server_name` as destination. `keys_for_origin` are the keys the homeserver trusts
    /// for [`XMatrix::origin`]; the one named by `key_id` must be among them. Errors are
    /// `M_UNAUTHORIZED`.
    pub fn verify(
        &self,
        method: &str,
        uri: &str,
        our_server_name: &str,
        content: Option<&Value>,
        keys_for_origin: &[VerifyKey],
    ) -> Result<()> {
        self.check_destination(our_server_name)?;
        let key = self.find_key(keys_for_origin)?;
        let bytes =
            request_signing_bytes(method, uri, self.origin.as_str(), our_server_name, content);
        key.verify_bytes(&bytes, &self.signature).map_err(|e| {
            Error::unauthorized(format!(
                "X-Matrix signature from {}: {}",
                self.origin,
                e.message()
            ))
        })
    }

    /// The header value in the spec's sender format.
    pub fn to_header(&self) -> String {
        format_header(
            self.origin.as_str(),
            self.destination.as_ref().map(ServerName::as_str),
            &self.key_id,
            &self.signature,
        )
    }

    fn check_destination(&self, our_server_name: &str) -> Result<()> {
        match &self.destination {
            Some(destination) if destination.as_str() != our_server_name => {
                Err(Error::unauthorized(format!(
                    "the request is addressed to {}, not to this server ({})",
                    quote(destination.as_str()),
                    quote(our_server_name)
                )))
            }
            _ => Ok(()),
        }
    }

    fn find_key<'k>(&self, keys_for_origin: &'k [VerifyKey]) -> Result<&'k VerifyKey> {
        signing::validate_key_id(&self.key_id)
            .map_err(|e| Error::unauthorized(format!("X-Matrix key: {}", e.message())))?;
        keys_for_origin
            .iter()
            .find(|k| k.key_id() == self.key_id)
            .ok_or_else(|| {
                Error::unauthorized(format!(
                    "no known verify key {} for origin {}",
                    self.key_id, self.origin
                ))
            })
    }
}

/// The object a request signature covers: `method`, `uri`, `origin`, `destination`, and `content`
/// only when the request has a body. `uri` is the path and query exactly as sent (still
/// percent-encoded), starting with `/_matrix/`.
pub fn request_json(
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    content: Option<&Value>,
) -> Object {
    let mut object = Object::new();
    object.insert("method".into(), Value::from(method));
    object.insert("uri".into(), Value::from(uri));
    object.insert("origin".into(), Value::from(origin));
    object.insert("destination".into(), Value::from(destination));
    if let Some(content) = content {
        object.insert("content".into(), content.clone());
    }
    object
}

/// The canonical JSON of [`request_json`], written directly so a large body is never cloned.
/// Keys in canonical order: `content`, `destination`, `method`, `origin`, `uri`.
pub fn request_signing_bytes(
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    content: Option<&Value>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + uri.len());
    out.push(b'{');
    if let Some(content) = content {
        out.extend_from_slice(b"\"content\":");
        json::encode_into(content, &mut out);
        out.push(b',');
    }
    for (i, (name, value)) in [
        ("destination", destination),
        ("method", method),
        ("origin", origin),
        ("uri", uri),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        json::encode_str(name, &mut out);
        out.push(b':');
        json::encode_str(value, &mut out);
    }
    out.push(b'}');
    out
}

/// Signs a request and returns the whole `Authorization` header value, e.g.
/// `X-Matrix origin="a.example",destination="b.example",key="ed25519:1",sig="…"`.
pub fn sign_request(
    method: &str,
    uri: &str,
    origin: &str,
    destination: &str,
    content: Option<&Value>,
    key: &SigningKey,
) -> String {
    let bytes = request_signing_bytes(method, uri, origin, destination, content);
    let signature = key.sign_bytes(&bytes);
    format_header(origin, Some(destination), key.key_id(), &signature)
}

/// Parses and authenticates a request: [`parse_header`], then [`XMatrix::verify`]. Returns the
/// authenticated header; its `origin` is the server the request comes from. Errors are
/// `M_UNAUTHORIZED`.
pub fn verify_request(
    header: &str,
    method: &str,
    uri: &str,
    our_server_name: &str,
    content: Option<&Value>,
    keys_for_origin: &[VerifyKey],
) -> Result<XMatrix> {
    let x_matrix = parse_header(header)?;
    x_matrix.verify(method, uri, our_server_name, content, keys_for_origin)?;
    Ok(x_matrix)
}

/// As [`verify_request`], with the request body as raw bytes (`None` or empty when there is no
/// body). The body is parsed with the strict JSON parser; a body that is not valid JSON fails with
/// the parser's `M_NOT_JSON`/`M_BAD_JSON` error (after the header itself was checked). Returns the
/// authenticated header and the parsed body.
pub fn verify_request_body(
    header: &str,
    method: &str,
    uri: &str,
    our_server_name: &str,
    body: Option<&[u8]>,
    keys_for_origin: &[VerifyKey],
) -> Result<(XMatrix, Option<Value>)> {
    let x_matrix = parse_header(header)?;
    x_matrix.check_destination(our_server_name)?;
    let content = match body {
        Some(bytes) if !bytes.is_empty() => Some(json::parse(bytes)?),
        _ => None,
    };
    x_matrix.verify(
        method,
        uri,
        our_server_name,
        content.as_ref(),
        keys_for_origin,
    )?;
    Ok((x_matrix, content))
}

/// Writes the header in the sender format. Values are quoted; `"` and `\` (which valid server
/// names, key IDs and base64 never contain) are backslash-escaped rather than trusted.
fn format_header(origin: &str, destination: Option<&str>, key_id: &str, signature: &str) -> String {
    let mut out = String::with_capacity(64 + origin.len() + key_id.len() + signature.len());
    out.push_str(SCHEME);
    out.push(' ');
    let mut params = vec![("origin", origin)];
    if let Some(destination) = destination {
        params.push(("destination", destination));
    }
    params.push(("key", key_id));
    params.push(("sig", signature));
    for (i, (name, value)) in params.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

/// Parses an `Authorization` header value of the `X-Matrix` scheme (RFC 9110 §11.4 credentials
/// with auth-params; the decisions are in the [module docs](self)). Errors are `M_UNAUTHORIZED`.
pub fn parse_header(header: &str) -> Result<XMatrix> {
    let header = header.trim_matches([' ', '\t']);
    let scheme_end = header.find(|c: char| !is_tchar(c)).unwrap_or(header.len());
    let (scheme, rest) = header.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(bad_header(format_args!(
            "the scheme is {}, not X-Matrix",
            quote(scheme)
        )));
    }
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(bad_header(
            "the X-Matrix scheme must be followed by a space",
        ));
    }

    let mut params = Params::default();
    let mut cursor = Cursor { text: rest, pos: 0 };
    loop {
        cursor.skip_whitespace();
        match cursor.peek() {
            None => break,
            Some(',') => {
                // An empty list element.
                cursor.bump(',');
                continue;
            }
            Some(_) => {}
        }
        let name_start = cursor.pos;
        let name = cursor.take_while(is_tchar);
        if name.is_empty() {
            return Err(bad_header(format_args!(
                "expected a parameter name at byte {}",
                scheme_end + name_start
            )));
        }
        cursor.skip_whitespace();
        if cursor.peek() != Some('=') {
            return Err(bad_header(format_args!(
                "parameter {} has no '='",
                quote(name)
            )));
        }
        cursor.bump('=');
        cursor.skip_whitespace();
        let value = if cursor.peek() == Some('"') {
            cursor.quoted_string(name)?
        } else {
            let value = cursor.take_while(is_unquoted_value_char);
            if value.is_empty() {
                return Err(bad_header(format_args!(
                    "parameter {} has no value",
                    quote(name)
                )));
            }
            value.to_owned()
        };
        params.set(name, value)?;
        cursor.skip_whitespace();
        match cursor.peek() {
            None => break,
            Some(',') => cursor.bump(','),
            Some(c) => {
                return Err(bad_header(format_args!(
                    "expected ',' after parameter {} but found {c:?}",
                    quote(name)
                )));
            }
        }
    }
    params.finish()
}

/// The parameters collected while parsing.
#[derive(Default)]
struct Params {
    seen: HashSet<String>,
    origin: Option<String>,
    destination: Option<String>,
    key: Option<String>,
    sig: Option<String>,
}

impl Params {
    fn set(&mut self, name: &str, value: String) -> Result<()> {
        let lower = name.to_ascii_lowercase();
        let slot = match lower.as_str() {
            "origin" => Some(&mut self.origin),
            "destination" => Some(&mut self.destination),
            "key" => Some(&mut self.key),
            "sig" => Some(&mut self.sig),
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = Some(value);
        }
        if !self.seen.insert(lower) {
            return Err(bad_header(format_args!(
                "parameter {} appears more than once",
                quote(name)
            )));
        }
        Ok(())
    }

    fn finish(self) -> Result<XMatrix> {
        let Some(origin) = self.origin else {
            return Err(bad_header("the origin parameter is missing"));
        };
        let Some(key_id) = self.key else {
            return Err(bad_header("the key parameter is missing"));
        };
        let Some(signature) = self.sig else {
            return Err(bad_header("the sig parameter is missing"));
        };
        let origin = ServerName::parse(&origin)
            .map_err(|e| bad_header(format_args!("origin: {}", e.message())))?;
        let destination = self
            .destination
            .map(|d| ServerName::parse(&d))
            .transpose()
            .map_err(|e| bad_header(format_args!("destination: {}", e.message())))?;
        Ok(XMatrix {
            origin,
            destination,
            key_id,
            signature,
        })
    }
}

/// A position in the parameter list.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    /// Steps over `c`, which the caller has just peeked.
    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn skip_whitespace(&mut self) {
        self.take_while(|c| c == ' ' || c == '\t');
    }

    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> &'a str {
        let rest = self.text.get(self.pos..).unwrap_or_default();
        let len = rest.find(|c: char| !accept(c)).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or_default()
    }

    /// Reads an RFC 9110 `quoted-string` (the cursor is on its opening quote) and unescapes it.
    fn quoted_string(&mut self, name: &str) -> Result<String> {
        self.bump('"');
        let mut value = String::new();
        let mut escaped = false;
        let rest = self.text.get(self.pos..).unwrap_or_default();
        for (i, c) in rest.char_indices() {
            // qdtext and quoted-pair allow HTAB, SP, visible ASCII and non-ASCII (obs-text), but
            // no other control characters.
            if c != '\t' && c.is_ascii_control() {
                return Err(bad_header(format_args!(
                    "parameter {} contains the control character {c:?}",
                    quote(name)
                )));
            }
            if escaped {
                value.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                self.pos += i + 1;
                return Ok(value);
            } else {
                value.push(c);
            }
        }
        Err(bad_header(format_args!(
            "the quoted value of parameter {} is not terminated",
            quote(name)
        )))
    }
}

/// RFC 9110 `tchar`: the characters of a token (scheme and parameter names).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '*'
                | '+'
                | '-'
                | '.'
                | '^'
                | '_'
                | '`'
                | '|'
                | '~'
        )
}

/// Characters allowed in an unquoted value: a token, plus `:` (the spec's compatibility rule),
/// `/` and `=` (unquoted base64) and `[` `]` (unquoted IPv6 origins).
fn is_unquoted_value_char(c: char) -> bool {
    is_tchar(c) || matches!(c, ':' | '/' | '=' | '[' | ']')
}

fn bad_header(reason: impl std::fmt::Display) -> Error {
    Error::unauthorized(format!("invalid X-Matrix Authorization header: {reason}"))
}
