//! Event IDs: `$opaque:server_name` in room versions 1 and 2, `$` + the reference hash in
//! standard base64 (room version 3) or URL-safe base64 (room version 4 on), per the spec's
//! [event ID grammar](https://spec.matrix.org/v1.16/appendices/#event-ids).

use super::{
    HASH_B64_LEN, check_common, check_opaque_and_server, identifier_traits, invalid, is_std_b64,
    is_url_safe_b64,
};
use crate::Result;

/// Which room versions an [`EventId`]'s form fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventIdFormat {
    /// `$opaque:server_name`: room versions 1 and 2.
    V1,
    /// `$` + 43 standard base64 characters including `+` or `/`: room version 3 only.
    V3,
    /// `$` + 43 URL-safe base64 characters including `-` or `_`: room versions 4 and later.
    V4,
    /// `$` + 43 letters and digits only, which fit both alphabets (v3 and v4+).
    V3OrV4,
}

impl EventIdFormat {
    /// The name used in the test vectors: `v1`, `v3`, `v4` or `v3|v4`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventIdFormat::V1 => "v1",
            EventIdFormat::V3 => "v3",
            EventIdFormat::V4 => "v4",
            EventIdFormat::V3OrV4 => "v3|v4",
        }
    }

    /// Whether an ID of this form is possible in room version 3 (standard base64 hash).
    pub fn fits_v3(self) -> bool {
        matches!(self, EventIdFormat::V3 | EventIdFormat::V3OrV4)
    }

    /// Whether an ID of this form is possible in room versions 4 and later (URL-safe hash).
    pub fn fits_v4(self) -> bool {
        matches!(self, EventIdFormat::V4 | EventIdFormat::V3OrV4)
    }
}

/// A validated event ID.
///
/// Whether the form matches a given room version is a separate question ([`EventId::format`]):
/// the ID of an event is always computed from the event, never trusted from the wire.
#[derive(Clone)]
pub struct EventId(String);

identifier_traits!(EventId, 0);

impl EventId {
    /// Parses and validates an event ID of any form. Errors are `M_INVALID_PARAM`.
    pub fn parse(value: &str) -> Result<Self> {
        const WHAT: &str = "event ID";
        let rest = check_common(value, '$', WHAT)?;
        if let Some(verdict) = check_opaque_and_server(value, rest, WHAT) {
            verdict?;
        } else if rest.len() != HASH_B64_LEN
            || !(rest.bytes().all(is_std_b64) || rest.bytes().all(is_url_safe_b64))
        {
            return Err(invalid(
                value,
                WHAT,
                "it has no server name, so it must be '$' and 43 base64 characters of one alphabet",
            ));
        }
        Ok(EventId(value.to_owned()))
    }

    /// Which room versions the form of this ID fits.
    pub fn format(&self) -> EventIdFormat {
        let rest = self.0.get(1..).unwrap_or_default();
        if rest.contains(':') {
            EventIdFormat::V1
        } else if rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            EventIdFormat::V3OrV4
        } else if rest.bytes().all(is_std_b64) {
            EventIdFormat::V3
        } else {
            EventIdFormat::V4
        }
    }

    /// The server name of a v1/v2 event ID; `None` for hash IDs.
    pub fn server_name_str(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, server)| server)
    }
}
