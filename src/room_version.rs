//! Room versions 1–12 as a table of rule flags.
//!
//! Spec: [Room versions](https://spec.matrix.org/v1.16/rooms/). Each version is a [`RoomVersion`]
//! value holding only the rules servership needs: which redaction algorithm applies, how event IDs
//! and room IDs are formed, and whether canonical JSON is strictly enforced. Everything that
//! depends on the room version asks this table, never the version string.
//!
//! Besides the spec's versions there is one experimental version of servership's own,
//! [`RoomVersion::SERVERSHIP_MEMBERS_1`] (`docs/protocol.md`, "The members room version").
//! Other unknown versions (including unstable identifiers such as `org.matrix.hydra.11`) are an explicit
//! `M_INCOMPATIBLE_ROOM_VERSION` error carrying the version: hashing an event under rules we do not
//! know would give an ID no other server agrees with.

use std::fmt;

use crate::error::{Error, Result};
use crate::json::{Object, Value};

/// Which redaction algorithm a room version uses.
///
/// The variants are ordered: each later algorithm is the earlier one plus or minus a few keys, so
/// `rules >= RedactionRules::V8` reads as "from room version 8 on".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RedactionRules {
    /// Room versions 1–5 ([spec](https://spec.matrix.org/v1.16/rooms/v5/#redactions)):
    /// `m.room.aliases` keeps `aliases`.
    V1,
    /// Room versions 6–7 ([spec](https://spec.matrix.org/v1.16/rooms/v6/#redactions)):
    /// `m.room.aliases` loses its special case.
    V6,
    /// Room version 8 ([spec](https://spec.matrix.org/v1.16/rooms/v8/#redactions)):
    /// `m.room.join_rules` keeps `allow`.
    V8,
    /// Room versions 9–10 ([spec](https://spec.matrix.org/v1.16/rooms/v9/#redactions)):
    /// `m.room.member` keeps `join_authorised_via_users_server`.
    V9,
    /// Room versions 11–12 ([spec](https://spec.matrix.org/v1.16/rooms/v11/#redactions)):
    /// top-level `origin`, `membership` and `prev_state` go; `m.room.create` keeps all of its
    /// content, `m.room.power_levels` keeps `invite`, `m.room.redaction` keeps `redacts`, and
    /// `m.room.member` keeps `third_party_invite.signed`.
    V11,
}

/// How event IDs are formed ([spec](https://spec.matrix.org/v1.16/appendices/#event-ids)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventIdFormat {
    /// Versions 1–2: `$opaque:domain`, chosen by the sending server and carried in the PDU's own
    /// `event_id` field. It cannot be computed.
    Opaque,
    /// Version 3: `$` + unpadded standard base64 of the reference hash.
    Base64,
    /// Versions 4 and later: `$` + unpadded URL-safe base64 of the reference hash.
    UrlSafeBase64,
}

/// How room IDs are formed ([spec](https://spec.matrix.org/v1.16/appendices/#room-ids)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomIdFormat {
    /// Versions 1–11: `!opaque:domain`, chosen by the creating server and carried in every event,
    /// the create event included.
    Legacy,
    /// Version 12: `!` + the URL-safe reference hash of the `m.room.create` event, which itself
    /// carries no `room_id` ([MSC4291](https://spec.matrix.org/v1.16/rooms/v12/)).
    CreateEventHash,
}

/// The rules of one room version. Compare versions with `==`; the table is [`RoomVersion::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RoomVersion {
    /// The version string as it appears in `m.room.create` content, e.g. `"12"`.
    pub id: &'static str,
    /// The redaction algorithm (used for signing and the reference hash too).
    pub redaction: RedactionRules,
    /// How event IDs are formed.
    pub event_id_format: EventIdFormat,
    /// How room IDs are formed.
    pub room_id_format: RoomIdFormat,
    /// Whether servers must reject events that are not strict canonical JSON (v6+).
    pub strict_canonical_json: bool,
    /// Whether signing keys must be valid at the event's `origin_server_ts` (v5+).
    pub enforce_key_validity: bool,
    /// Whether the `m.room.create` event carries a `room_id` (v1–11). In v12 it must not.
    pub create_event_has_room_id: bool,
    /// Whether the create event's `sender` and `content.additional_creators` are privileged
    /// creators (v12, MSC4289).
    pub privileged_creators: bool,
    /// The flags of the authorization rules (see [`crate::auth`]).
    pub auth: AuthRules,
}

/// The ways the [authorization rules](https://spec.matrix.org/v1.16/rooms/) differ between room
/// versions, beyond what [`RoomVersion`]'s other flags already say (v12's creators and room IDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AuthRules {
    /// Versions 1–5: `m.room.aliases` has its own rule (its state key is the sender's server).
    pub special_case_aliases: bool,
    /// Versions 6+: `notifications` in `m.room.power_levels` is checked like `events`.
    pub notifications_power_levels: bool,
    /// Versions 7+: the `knock` membership and join rule.
    pub knocking: bool,
    /// Versions 8+: the `restricted` join rule and `join_authorised_via_users_server`.
    pub restricted_join_rule: bool,
    /// Versions 10+: the `knock_restricted` join rule.
    pub knock_restricted_join_rule: bool,
    /// Versions 10+: power levels must be integers, not strings of digits.
    pub integer_power_levels: bool,
    /// Versions 11+: the creator is the create event's `sender`; `content.creator` is not
    /// required.
    pub implicit_room_creator: bool,
    /// The experimental version [`RoomVersion::SERVERSHIP_MEMBERS_1`] only: the `peekable` join
    /// rule, server pseudousers, gated joins and the `m.server.*` events
    /// ([`crate::auth::members`]). A v12 room can ask for the same rules with a marker in its
    /// create event ([`crate::auth::members::MARKER`]); this flag is the version's own.
    pub servership_members: bool,
}

/// The authorization-rule flags of room version `n` (1–12).
const fn auth_rules(n: u8) -> AuthRules {
    AuthRules {
        special_case_aliases: n <= 5,
        notifications_power_levels: n >= 6,
        knocking: n >= 7,
        restricted_join_rule: n >= 8,
        knock_restricted_join_rule: n >= 10,
        integer_power_levels: n >= 10,
        implicit_room_creator: n >= 11,
        servership_members: false,
    }
}

const fn version(
    id: &'static str,
    n: u8,
    redaction: RedactionRules,
    event_id_format: EventIdFormat,
    strict: bool,
    key_validity: bool,
) -> RoomVersion {
    RoomVersion {
        id,
        auth: auth_rules(n),
        redaction,
        event_id_format,
        room_id_format: RoomIdFormat::Legacy,
        strict_canonical_json: strict,
        enforce_key_validity: key_validity,
        create_event_has_room_id: true,
        privileged_creators: false,
    }
}

/// The key in a v12 create event's content that asks for the members rules of
/// [`RoomVersion::SERVERSHIP_MEMBERS_1`] without a new version identifier; its value must be that
/// identifier.
pub const MEMBERS_MARKER: &str = "org.servership.room_version";

use EventIdFormat::{Base64, Opaque, UrlSafeBase64};
use RedactionRules as R;

impl RoomVersion {
    /// [Room version 1](https://spec.matrix.org/v1.16/rooms/v1/).
    pub const V1: RoomVersion = version("1", 1, R::V1, Opaque, false, false);
    /// [Room version 2](https://spec.matrix.org/v1.16/rooms/v2/).
    pub const V2: RoomVersion = version("2", 2, R::V1, Opaque, false, false);
    /// [Room version 3](https://spec.matrix.org/v1.16/rooms/v3/).
    pub const V3: RoomVersion = version("3", 3, R::V1, Base64, false, false);
    /// [Room version 4](https://spec.matrix.org/v1.16/rooms/v4/).
    pub const V4: RoomVersion = version("4", 4, R::V1, UrlSafeBase64, false, false);
    /// [Room version 5](https://spec.matrix.org/v1.16/rooms/v5/).
    pub const V5: RoomVersion = version("5", 5, R::V1, UrlSafeBase64, false, true);
    /// [Room version 6](https://spec.matrix.org/v1.16/rooms/v6/).
    pub const V6: RoomVersion = version("6", 6, R::V6, UrlSafeBase64, true, true);
    /// [Room version 7](https://spec.matrix.org/v1.16/rooms/v7/).
    pub const V7: RoomVersion = version("7", 7, R::V6, UrlSafeBase64, true, true);
    /// [Room version 8](https://spec.matrix.org/v1.16/rooms/v8/).
    pub const V8: RoomVersion = version("8", 8, R::V8, UrlSafeBase64, true, true);
    /// [Room version 9](https://spec.matrix.org/v1.16/rooms/v9/).
    pub const V9: RoomVersion = version("9", 9, R::V9, UrlSafeBase64, true, true);
    /// [Room version 10](https://spec.matrix.org/v1.16/rooms/v10/).
    pub const V10: RoomVersion = version("10", 10, R::V9, UrlSafeBase64, true, true);
    /// [Room version 11](https://spec.matrix.org/v1.16/rooms/v11/).
    pub const V11: RoomVersion = version("11", 11, R::V11, UrlSafeBase64, true, true);
    /// [Room version 12](https://spec.matrix.org/v1.16/rooms/v12/): room IDs are create-event
    /// hashes, and creators are privileged.
    pub const V12: RoomVersion = RoomVersion {
        room_id_format: RoomIdFormat::CreateEventHash,
        create_event_has_room_id: false,
        privileged_creators: true,
        ..version("12", 12, R::V11, UrlSafeBase64, true, true)
    };

    /// The experimental `org.servership.v12.members.1`: room version 12 plus the rules of
    /// MSC1777 (`peekable`, server pseudousers), MSC4099 (gated joins, `m.server.*` events) and
    /// MSC3348 (s2s rooms), as `docs/protocol.md` defines them. Everything else (event and room
    /// ID formats, redaction, creators) is v12's.
    pub const SERVERSHIP_MEMBERS_1: RoomVersion = RoomVersion {
        id: "org.servership.v12.members.1",
        auth: AuthRules {
            servership_members: true,
            ..Self::V12.auth
        },
        ..Self::V12
    };

    const EXPERIMENTAL: [RoomVersion; 1] = [Self::SERVERSHIP_MEMBERS_1];

    const ALL: [RoomVersion; 12] = [
        Self::V1,
        Self::V2,
        Self::V3,
        Self::V4,
        Self::V5,
        Self::V6,
        Self::V7,
        Self::V8,
        Self::V9,
        Self::V10,
        Self::V11,
        Self::V12,
    ];

    /// Every supported room version, oldest first.
    pub fn all() -> &'static [RoomVersion] {
        &Self::ALL
    }

    /// The experimental versions servership defines (not in [`RoomVersion::all`], which lists
    /// the spec's).
    pub fn experimental() -> &'static [RoomVersion] {
        &Self::EXPERIMENTAL
    }

    /// The rules for a version string: one of [`RoomVersion::all`] or
    /// [`RoomVersion::experimental`]. Unknown versions are an `M_INCOMPATIBLE_ROOM_VERSION` error
    /// carrying the version.
    pub fn from_id(id: &str) -> Result<RoomVersion> {
        Self::ALL
            .iter()
            .chain(Self::EXPERIMENTAL.iter())
            .find(|v| v.id == id)
            .copied()
            .ok_or_else(|| {
                // Room version identifiers are at most 32 code points; a longer one is hostile
                // input and is not echoed back whole.
                let shown: String = id.chars().take(32).collect();
                let more = if shown.len() < id.len() { "…" } else { "" };
                Error::incompatible_room_version(
                    format!("room version {shown:?}{more} is unknown to this server"),
                    &shown,
                )
            })
    }

    /// The rules for the room a create event starts, read from its `content.room_version`
    /// (see [`create_event_room_version_id`]). A v12 create event whose content carries
    /// [`MEMBERS_MARKER`] with the value [`RoomVersion::SERVERSHIP_MEMBERS_1`]'s identifier gets
    /// v12 with [`AuthRules::servership_members`] set: the route for homeservers that cannot
    /// register a new version identifier (Synapse 1.163, see `docs/protocol.md`). Its `id` stays
    /// `"12"`, so it is not `==` to [`RoomVersion::V12`].
    pub fn from_create_event(create: &Object) -> Result<RoomVersion> {
        let version = Self::from_id(create_event_room_version_id(create)?)?;
        Ok(version.with_marker_of(create))
    }

    /// `self` with the members rules switched on when `self` is v12 and `create`'s content
    /// carries the marker exactly (a string equal to the experimental identifier); otherwise
    /// `self` unchanged.
    pub fn with_marker_of(self, create: &Object) -> RoomVersion {
        let marked = create
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.get(MEMBERS_MARKER))
            .and_then(Value::as_str)
            == Some(Self::SERVERSHIP_MEMBERS_1.id);
        if self == Self::V12 && marked {
            RoomVersion {
                auth: Self::SERVERSHIP_MEMBERS_1.auth,
                ..self
            }
        } else {
            self
        }
    }

    /// Whether this version's authorization rules define the join rule `rule`
    /// ([spec](https://spec.matrix.org/v1.16/rooms/v10/#authorization-rules)): `public`, `invite`
    /// and `private` always, `knock` from v7, `restricted` from v8, `knock_restricted` from v10,
    /// and MSC1777's `peekable` in [`RoomVersion::SERVERSHIP_MEMBERS_1`] only.
    /// Under any other rule (`peekable` included, in every standard version) the auth
    /// rules refuse every join, even of members and invitees, and `private` refuses every join
    /// too.
    pub fn knows_join_rule(&self, rule: &str) -> bool {
        match rule {
            "public" | "invite" | "private" => true,
            "knock" => self.auth.knocking,
            "restricted" => self.auth.restricted_join_rule,
            "knock_restricted" => self.auth.knock_restricted_join_rule,
            "peekable" => self.auth.servership_members,
            _ => false,
        }
    }
}

impl fmt::Display for RoomVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

/// The version string of the room an `m.room.create` event starts: its `content.room_version`,
/// or `"1"` when absent, as the
/// [m.room.create schema](https://spec.matrix.org/v1.16/client-server-api/#mroomcreate) says.
///
/// Errors (`M_BAD_JSON`) when `content` is not an object or `room_version` is not a string. The
/// version is not checked against the table here; [`RoomVersion::from_create_event`] does that.
pub fn create_event_room_version_id(create: &Object) -> Result<&str> {
    let content = match create.get("content") {
        Some(Value::Object(c)) => c,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "content must be an object, not {}",
                other.type_name()
            )));
        }
        None => return Err(Error::bad_json("content is missing")),
    };
    match content.get("room_version") {
        None => Ok("1"),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Error::bad_json(format!(
            "content.room_version must be a string, not {}",
            other.type_name()
        ))),
    }
}
