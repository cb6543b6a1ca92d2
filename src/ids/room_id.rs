//! Room IDs: legacy `!opaque:server_name` (room versions 1–11) and the room version 12 form `!` +
//! the create event's reference hash, per the spec's
//! [room ID grammar](https://spec.matrix.org/v1.16/appendices/#room-ids).

use super::server_name::ServerName;
use super::{
    HASH_B64_LEN, check_common, check_opaque_and_server, identifier_traits, invalid,
    is_url_safe_b64,
};
use crate::Result;

/// Which of the two room ID forms a [`RoomId`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomIdFormat {
    /// `!opaque:server_name`, used by room versions 1–11.
    Legacy,
    /// `!` and 43 URL-safe base64 characters (the create event's hash), used from room version 12.
    Hash,
}

/// A validated room ID such as `!abc:example.org` or `!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM`.
///
/// In the legacy form the opaque part (before the first `:`) may hold any code points but NUL and
/// must not be empty, and the rest must be a valid server name. The hash form must be exactly 43
/// URL-safe base64 characters. Comparison is case-sensitive.
#[derive(Clone)]
pub struct RoomId(String);

identifier_traits!(RoomId, 0);

impl RoomId {
    /// Parses and validates a room ID of either form. Errors are `M_INVALID_PARAM`.
    pub fn parse(value: &str) -> Result<Self> {
        const WHAT: &str = "room ID";
        let rest = check_common(value, '!', WHAT)?;
        if let Some(verdict) = check_opaque_and_server(value, rest, WHAT) {
            verdict?;
        } else if rest.len() != HASH_B64_LEN || !rest.bytes().all(is_url_safe_b64) {
            return Err(invalid(
                value,
                WHAT,
                "it has no server name, so it must be '!' and 43 URL-safe base64 characters",
            ));
        }
        Ok(RoomId(value.to_owned()))
    }

    /// The room ID of a room version 12 room whose create event has `create_event_id`: the same
    /// URL-safe hash behind `!`. Errors (`M_INVALID_PARAM`) for event IDs of another form.
    pub fn from_create_event_id(create_event_id: &super::EventId) -> Result<Self> {
        if !create_event_id.format().fits_v4() {
            return Err(invalid(
                create_event_id.as_str(),
                "create event ID for a room ID",
                "only URL-safe hash event IDs (room version 4 and later) name a room",
            ));
        }
        let hash = create_event_id.as_str().get(1..).unwrap_or_default();
        Ok(RoomId(format!("!{hash}")))
    }

    /// Which form the room ID has.
    pub fn format(&self) -> RoomIdFormat {
        if self.0.contains(':') {
            RoomIdFormat::Legacy
        } else {
            RoomIdFormat::Hash
        }
    }

    /// The server name of a legacy room ID (the server that created the room, kept for
    /// namespacing only); `None` for the hash form.
    pub fn server_name(&self) -> Option<ServerName> {
        self.server_name_str()
            .map(|server| ServerName(server.to_owned()))
    }

    /// The server name of a legacy room ID as a string slice, without allocating.
    pub fn server_name_str(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, server)| server)
    }

    /// The part between `!` and the first `:` (legacy), or the 43-character hash.
    pub fn opaque_id(&self) -> &str {
        let rest = self.0.get(1..).unwrap_or_default();
        rest.split_once(':').map_or(rest, |(opaque, _)| opaque)
    }
}
