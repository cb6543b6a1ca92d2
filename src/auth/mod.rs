//! The room authorization rules that deciding on a received event needs, per room version.
//!
//! Spec: the *Authorization rules* section of each room version,
//! e.g. [room version 12](https://spec.matrix.org/v1.16/rooms/v12/#authorization-rules), and the
//! [auth events selection](https://spec.matrix.org/v1.16/server-server-api/#auth-events-selection).
//! The rules are written from the spec's text; where a version differs, the flags in
//! [`RoomVersion::auth`](crate::room_version::RoomVersion::auth) say so.
//!
//! This is the subset that verifying state without a room needs (MSC4329 promotion, and later
//! issue 12): the `m.room.create` rules ([`check_create`]), the auth events selection
//! ([`auth_event_keys`], [`check_auth_events`]), and the rules for every other event against the
//! state its auth events make up ([`check_event`]): `m.federate`, `m.room.aliases` (v1–5),
//! membership, the sender being joined, `m.room.third_party_invite`, the required power level,
//! state keys that name another user, and `m.room.power_levels`.
//!
//! Every answer is a [`Decision`] with a stable reason code and a sentence naming the rule.
//!
//! What is left to the caller, by design:
//! - signatures and hashes, including rule 6.2 (a `join_authorised_via_users_server` join must be
//!   signed by that user's server): the caller verifies them before asking;
//! - rule 3.3 (auth events that were themselves rejected): the caller only puts accepted events
//!   into an [`AuthState`];
//! - third-party invites (rule 6.4.1) are refused rather than verified: promotion has no use for
//!   them and checking them needs the identity server's keys;
//! - redactions (`m.room.redaction`) are allowed here as the spec allows them before the redacted
//!   event is known (v3+); v1/v2 are checked by sender power or server.
//!
//! Deliberate choices, each stricter than the spec text and never looser:
//! - with no `m.room.power_levels` event, state events need level 50 (as Synapse does; the creator
//!   has 100, so only the creator may send state), not 0;
//! - the creator's own first join (rule 6.3.1) must also be sent by the creator;
//! - `m.federate` refuses a foreign sender whenever it is present and not `true` (as Synapse).

mod create;
mod member;
pub mod members;
mod power_levels;
mod selection;

pub use create::{check_create, is_valid_user_id};
pub use members::check_members_rules;
pub use power_levels::Power;
pub use selection::{auth_event_keys, check_auth_events, members_auth_additions};

use std::collections::BTreeMap;

use crate::decision::{Decision, ReasonCode};
use crate::json::{Object, Value};
use crate::room_version::{EventIdFormat, RoomIdFormat, RoomVersion};

/// The state an event is authorised against: the room's create event and, at most one per
/// `(type, state_key)`, the events the auth rules read (power levels, join rules, memberships,
/// third-party invites).
///
/// It borrows the events; inserting one with a `(type, state_key)` already present replaces it.
#[derive(Debug, Clone)]
pub struct AuthState<'a> {
    version: RoomVersion,
    create: &'a Object,
    create_event_id: &'a str,
    entries: BTreeMap<(&'a str, &'a str), &'a Object>,
}

impl<'a> AuthState<'a> {
    /// A state holding only the create event (whose ID the caller computed). A v12 create event
    /// with the members marker gives the members rules ([`RoomVersion::with_marker_of`]).
    pub fn new(create: &'a Object, create_event_id: &'a str, version: RoomVersion) -> Self {
        AuthState {
            version: version.with_marker_of(create),
            create,
            create_event_id,
            entries: BTreeMap::new(),
        }
    }

    /// The room version the rules are read for.
    pub fn version(&self) -> RoomVersion {
        self.version
    }

    /// The create event.
    pub fn create(&self) -> &'a Object {
        self.create
    }

    /// The create event's ID.
    pub fn create_event_id(&self) -> &'a str {
        self.create_event_id
    }

    /// Adds a state event, replacing any with the same `(type, state_key)`. Returns false (and
    /// adds nothing) for an event without a string `type` and `state_key`, and for
    /// `m.room.create`, which [`AuthState::new`] already holds.
    pub fn insert(&mut self, event: &'a Object) -> bool {
        match key_of(event) {
            Some(("m.room.create", "")) | None => false,
            Some(key) => {
                self.entries.insert(key, event);
                true
            }
        }
    }

    /// The event for `(event_type, state_key)`.
    pub fn get(&self, event_type: &str, state_key: &str) -> Option<&'a Object> {
        if event_type == "m.room.create" && state_key.is_empty() {
            return Some(self.create);
        }
        self.entries.get(&(event_type, state_key)).copied()
    }

    /// Every event held besides the create event, by `(type, state_key)`.
    pub fn events(&self) -> impl Iterator<Item = &'a Object> + '_ {
        self.entries.values().copied()
    }

    /// A user's `membership`, if they have a member event with a string one.
    pub fn membership(&self, user_id: &str) -> Option<&'a str> {
        content_str(self.get("m.room.member", user_id)?, "membership")
    }

    /// The `join_rule` of `m.room.join_rules`; `invite` when there is none (as the spec's
    /// default and Synapse's).
    pub fn join_rule(&self) -> &'a str {
        self.get("m.room.join_rules", "")
            .and_then(|e| content_str(e, "join_rule"))
            .unwrap_or("invite")
    }

    /// The creators: the create event's `sender`, and in versions with privileged creators
    /// also `content.additional_creators`; before v11 the creator is `content.creator`.
    pub fn is_creator(&self, user_id: &str) -> bool {
        if self.version.auth.implicit_room_creator {
            if str_field(self.create, "sender") == Some(user_id) {
                return true;
            }
        } else if content_str(self.create, "creator") == Some(user_id) {
            return true;
        }
        self.version.privileged_creators
            && content_of(self.create)
                .and_then(|c| c.get("additional_creators"))
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|c| c.as_str() == Some(user_id)))
    }
}

/// Checks an event other than `m.room.create` against `state`, the state its auth events make
/// up (auth rules 4 to the end; rules 2 and 3 are [`check_auth_events`]'s, rule 1 is
/// [`check_create`]'s). In a room with the members rules, an event v12 allows (reading
/// `peekable` as `public`) must also pass [`members`]'s rules b–f.
pub fn check_event(event: &Object, state: &AuthState<'_>) -> Decision {
    let v12 = check_v12_event(event, state);
    if v12.is_allowed() && state.version.auth.servership_members {
        return members::check_additions(event, state);
    }
    v12
}

fn check_v12_event(event: &Object, state: &AuthState<'_>) -> Decision {
    let version = state.version;
    let Some(event_type) = str_field(event, "type") else {
        return malformed("the event has no string type");
    };
    let Some(sender) = str_field(event, "sender") else {
        return malformed("the event has no string sender");
    };
    if event_type == "m.room.create" {
        return Decision::deny(
            ReasonCode::AuthEventsInvalid,
            "an m.room.create event is not authorised against state",
        );
    }
    if content_of(event).is_none() {
        return malformed("the event has no content object");
    }
    let state_key = match event.get("state_key") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return malformed("state_key must be a string"),
    };

    // 4. m.federate.
    let creator_server = str_field(state.create, "sender").and_then(server_part);
    let federate = content_of(state.create).and_then(|c| c.get("m.federate"));
    if federate.is_some_and(|f| f != &Value::Bool(true)) && server_part(sender) != creator_server {
        return Decision::deny(
            ReasonCode::RoomNotFederated,
            format!(
                "the room is not federated (m.federate), and {sender} is not of the creator's server"
            ),
        );
    }

    // 5. m.room.aliases (v1-v5).
    if version.auth.special_case_aliases && event_type == "m.room.aliases" {
        return match state_key {
            None | Some("") => Decision::deny(
                ReasonCode::MalformedEvent,
                "m.room.aliases needs a non-empty state_key",
            ),
            Some(k) if Some(k) != server_part(sender) => Decision::deny(
                ReasonCode::WrongSenderServer,
                format!("m.room.aliases state_key {k:?} is not the sender's server"),
            ),
            Some(_) => allow("m.room.aliases for the sender's own server"),
        };
    }

    // 6. m.room.member.
    if event_type == "m.room.member" {
        return member::check_member(event, sender, state_key, state);
    }

    // 7. The sender must be joined.
    if state.membership(sender) != Some("join") {
        return Decision::deny(
            ReasonCode::SenderNotJoined,
            format!("{sender} is not joined to the room"),
        );
    }

    let sender_level = match power_levels::user_level(state, sender) {
        Ok(l) => l,
        Err(d) => return d,
    };

    // 8. m.room.third_party_invite.
    if event_type == "m.room.third_party_invite" {
        return match power_levels::named_level(state, "invite", 0) {
            Err(d) => d,
            Ok(needed) if sender_level >= Power::Level(needed) => {
                allow("the sender may invite, so may issue third-party invites")
            }
            Ok(needed) => insufficient(sender, sender_level, needed, "m.room.third_party_invite"),
        };
    }

    // 9. The required power level of the event type.
    let needed = match power_levels::send_level(state, event_type, state_key.is_some()) {
        Ok(n) => n,
        Err(d) => return d,
    };
    if sender_level < Power::Level(needed) {
        return insufficient(sender, sender_level, needed, event_type);
    }

    // 10. A state key naming a user must name the sender.
    if let Some(k) = state_key {
        if k.starts_with('@') && k != sender {
            return Decision::deny(
                ReasonCode::InsufficientPower,
                format!("the state_key {k:?} names a user other than the sender {sender}"),
            );
        }
    }

    // 11. m.room.power_levels.
    if event_type == "m.room.power_levels" {
        return power_levels::check_power_levels(event, sender, sender_level, state);
    }

    // 12. m.room.redaction (v1-v2: by power or by the same server).
    if event_type == "m.room.redaction" && version.event_id_format == EventIdFormat::Opaque {
        let redact = match power_levels::named_level(state, "redact", 50) {
            Ok(r) => r,
            Err(d) => return d,
        };
        if sender_level >= Power::Level(redact) {
            return allow("the sender's power level reaches the redact level");
        }
        let own = str_field(event, "event_id").and_then(server_part);
        let target = str_field(event, "redacts").and_then(server_part);
        return if own.is_some() && own == target {
            allow("the redaction and the redacted event come from the same server")
        } else {
            insufficient(
                sender,
                sender_level,
                redact,
                "a redaction of another server's event",
            )
        };
    }

    // 13.
    allow("the event passes the authorization rules")
}

/// The `(type, state_key)` of a state event.
pub(crate) fn key_of(event: &Object) -> Option<(&str, &str)> {
    Some((str_field(event, "type")?, str_field(event, "state_key")?))
}

pub(crate) fn str_field<'a>(event: &'a Object, key: &str) -> Option<&'a str> {
    event.get(key).and_then(Value::as_str)
}

pub(crate) fn content_of(event: &Object) -> Option<&Object> {
    event.get("content").and_then(Value::as_object)
}

pub(crate) fn content_str<'a>(event: &'a Object, key: &str) -> Option<&'a str> {
    content_of(event)?.get(key)?.as_str()
}

/// The server part of a user ID or v1/v2 event ID, as Synapse reads it: everything after the
/// first `:`.
pub fn server_part(id: &str) -> Option<&str> {
    id.split_once(':').map(|(_, s)| s)
}

/// Whether a room version names the create event in `auth_events` (v1–11) or implies it (v12).
pub(crate) fn lists_create(version: RoomVersion) -> bool {
    version.room_id_format != RoomIdFormat::CreateEventHash
}

pub(crate) fn allow(detail: impl Into<String>) -> Decision {
    Decision::allow(ReasonCode::AuthAllowed, detail)
}

pub(crate) fn malformed(detail: impl Into<String>) -> Decision {
    Decision::deny(ReasonCode::MalformedEvent, detail)
}

pub(crate) fn insufficient(sender: &str, have: Power, needed: i64, what: &str) -> Decision {
    Decision::deny(
        ReasonCode::InsufficientPower,
        format!(
            "{} has power level {have}, {what} needs {needed}",
            crate::decision::shortened(sender)
        ),
    )
}
