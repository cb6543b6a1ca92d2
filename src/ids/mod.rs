//! Matrix identifiers: server names, user IDs, room IDs and event IDs, as in the spec's
//! [Identifier Grammar](https://spec.matrix.org/v1.16/appendices/#identifier-grammar).
//!
//! Every type here is an owned, validated string: once you hold a [`UserId`], it is one. Parsing is
//! meant for identifiers *received over federation*, so it accepts everything the spec says servers
//! must accept (historical user localparts, legacy room and event IDs) and refuses the rest with an
//! `M_INVALID_PARAM` error whose message says what is wrong. Comparison is byte-wise and
//! case-sensitive everywhere, as the spec demands for server names.
//!
//! ```
//! use servership::ids::{self, RoomId, RoomIdFormat, UserId};
//!
//! let alice = UserId::parse("@alice:example.org:8448")?;
//! assert_eq!(alice.localpart(), "alice");
//! assert_eq!(alice.server_name().port(), Some(8448));
//! assert!(ids::is_server_pseudouser("@:example.org"));
//!
//! let room = RoomId::parse(&ids::percent_decode_path_segment("%21abc%3Aexample.org")?)?;
//! assert_eq!(room.format(), RoomIdFormat::Legacy);
//! # Ok::<(), servership::Error>(())
//! ```
//!
//! Decisions where the spec leaves room (encoded in `tests/vectors/identifiers.json`):
//!
//! - **Server names** ([`ServerName`]): a host is a DNS name made of non-empty labels of ASCII
//!   letters, digits and `-` (no empty labels, no leading or trailing dot), an IPv4 address, or
//!   `[IPv6]` holding a real IPv6 address. A host made only of digits and dots must be a dotted-quad
//!   IPv4 address with every part in 0–255 (`999.1.1.1` and `1.2.3` are refused: no DNS name looks
//!   like that, and resolvers would read it as an address). The port, if present, is 1–5 digits with
//!   a value in 1–65535 (port 0 cannot be connected to, so it is refused). The whole name is at most
//!   253 bytes, so that the server's pseudouser `@:name` always fits in 255 (a longer name could
//!   not appear in any user, room or event ID anyway). Non-ASCII (unencoded IDN) hosts are refused.
//! - **User IDs** ([`UserId`]): the localpart ends at the first `:`. Historical localparts (any code
//!   points except `:` and NUL) are accepted; [`UserId::is_strict`] tells whether the localpart
//!   follows the current grammar. The empty localpart, which the spec lists among historical
//!   localparts, is the **server pseudouser** `@:server` of
//!   [MSC1777](https://github.com/matrix-org/matrix-spec-proposals/pull/1777): [`UserId::parse`]
//!   accepts it, and [`UserId::is_server_pseudouser`] / [`is_server_pseudouser`] recognise it.
//!   It is the only user ID with an empty localpart, so "empty localpart" and "pseudouser" are
//!   the same test.
//! - **Room IDs** ([`RoomId`]): legacy `!opaque:server_name` (the part after the first `:` must be a
//!   valid server name, the opaque part must not be empty) or the room version 12 form, `!` and
//!   exactly 43 URL-safe base64 characters.
//! - **Event IDs** ([`EventId`]): `$opaque:server_name` (room versions 1 and 2), or `$` and exactly 43
//!   characters of standard (v3) or URL-safe (v4+) base64.
//! - All identifiers are at most 255 bytes, never empty and never contain NUL. Longer input is
//!   refused before it is looked at, so hostile input costs nothing.
//!
//! Percent-encoding of URL path segments (room IDs arrive as `%21abc%3Aexample.org`) is in
//! [`percent_decode_path_segment`] and [`percent_encode_path_segment`].

mod event_id;
mod percent;
mod room_id;
mod server_name;
mod user_id;

pub use event_id::{EventId, EventIdFormat};
pub use percent::{percent_decode_path_segment, percent_encode_path_segment};
pub use room_id::{RoomId, RoomIdFormat};
pub use server_name::{MAX_SERVER_NAME_BYTES, ServerName};
pub use user_id::{UserId, is_server_pseudouser, server_pseudouser};

/// The longest identifier the spec allows, in bytes, sigil and server name included.
pub const MAX_ID_BYTES: usize = 255;

/// How much of a refused value an error message quotes: enough to recognise it, never megabytes.
const QUOTE_CHARS: usize = 80;

/// Quotes a (possibly hostile) value for an error message: Rust string escaping (so NUL and
/// control characters are visible), shortened to about [`QUOTE_CHARS`] characters *after*
/// escaping. Counting before escaping let 80 control characters become 480 bytes (`\u{7f}`
/// each), and a message that quotes three parts of one identifier grow past 1,400 bytes.
pub(crate) fn quote(value: &str) -> String {
    let mut shown = 0;
    for (at, c) in value.char_indices() {
        shown += c.escape_debug().count();
        if shown > QUOTE_CHARS {
            return format!("{:?}…", &value[..at]);
        }
    }
    format!("{value:?}")
}

/// The `M_INVALID_PARAM` error for `value` not being a valid `what`, with the reason.
pub(crate) fn invalid(value: &str, what: &str, reason: impl std::fmt::Display) -> crate::Error {
    crate::Error::invalid_param(format!("{} is not a valid {what}: {reason}", quote(value)))
}

/// The checks every identifier shares: not empty, at most 255 bytes, no NUL, starts with `sigil`.
/// Returns what follows the sigil.
fn check_common<'a>(value: &'a str, sigil: char, what: &str) -> crate::Result<&'a str> {
    if value.is_empty() {
        return Err(invalid(value, what, "it is empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(invalid(
            value,
            what,
            format_args!(
                "it is {} bytes long, the limit is {MAX_ID_BYTES}",
                value.len()
            ),
        ));
    }
    if value.as_bytes().contains(&0) {
        return Err(invalid(value, what, "it contains a NUL character"));
    }
    value
        .strip_prefix(sigil)
        .ok_or_else(|| invalid(value, what, format_args!("it must start with '{sigil}'")))
}

/// The `opaque:server_name` form shared by legacy room IDs and v1/v2 event IDs. `None` when
/// `rest` (the part after the sigil) has no `:`; otherwise whether that form is valid: a
/// non-empty opaque part and a valid server name.
fn check_opaque_and_server(value: &str, rest: &str, what: &str) -> Option<crate::Result<()>> {
    let (opaque, server) = rest.split_once(':')?;
    if opaque.is_empty() {
        return Some(Err(invalid(value, what, "the part before ':' is empty")));
    }
    Some(server_name::check(server).map_err(|reason| {
        invalid(
            value,
            what,
            format_args!("server name {} {reason}", quote(server)),
        )
    }))
}

/// True for the characters of unpadded URL-safe base64.
fn is_url_safe_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// True for the characters of unpadded standard base64.
fn is_std_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Length of an unpadded base64 SHA-256 hash, as in v12 room IDs and v3+ event IDs.
const HASH_B64_LEN: usize = 43;

/// Implements the traits every identifier type shares, given its parse function and its
/// string field.
macro_rules! identifier_traits {
    ($ty:ident, $field:tt) => {
        impl $ty {
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.$field
            }

            /// The identifier as an owned `String`.
            pub fn into_string(self) -> String {
                self.$field.into()
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = crate::Error;
            fn try_from(s: &str) -> crate::Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = crate::Error;
            fn try_from(s: String) -> crate::Result<Self> {
                Self::parse(&s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        // Eq, Hash and Ord look at the string alone, so `Borrow<str>` is sound for map lookups.
        impl ::std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $ty {}

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ::std::hash::Hash for $ty {
            fn hash<H: ::std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state)
            }
        }

        impl PartialOrd for $ty {
            fn partial_cmp(&self, other: &Self) -> Option<::std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $ty {
            fn cmp(&self, other: &Self) -> ::std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.into_string()
            }
        }

        impl From<&$ty> for crate::json::Value {
            fn from(id: &$ty) -> crate::json::Value {
                crate::json::Value::from(id.as_str())
            }
        }

        impl From<$ty> for crate::json::Value {
            fn from(id: $ty) -> crate::json::Value {
                crate::json::Value::from(id.into_string())
            }
        }
    };
}
use identifier_traits;
