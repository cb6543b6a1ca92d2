//! The members rules: what room version `org.servership.v12.members.1` (and a v12 room whose
//! create event carries [`MEMBERS_MARKER`]) adds to the v12 authorization rules.
//!
//! `docs/protocol.md` ("The members room version") defines rules a–f; this module is them:
//! a. the join rule `peekable` behaves as `public` (read in [`super::member`]);
//! b. a server pseudouser `@:S` may join only while the join rule is `peekable` or a user of S,
//!    named by the join's `content.org.servership.via_user`, is joined or invited (MSC1777);
//!    only the pseudouser sends its own join;
//! c. `m.server.is_able_to_subscribe`: a server name as state key, a boolean content, and the
//!    power level of state events unless `events` names the type (MSC4099);
//! d. in a gated room (create content `org.servership.gated: true`) a join by a user of S needs
//!    `is_able_to_subscribe: true` for S; creators are exempt (their room cannot say it before
//!    they join);
//! e. `m.server.subscription` for S is sent only by `@:S`, and only while S is able to subscribe;
//! f. in an s2s room (MSC3348) pseudousers join by the v12 rules alone, without b's user of S.
//!
//! The rules reuse the library's decisions ([`check_server_user_membership`],
//! [`check_pseudouser_join`](crate::pseudouser::check_pseudouser_join),
//! [`is_able_to_subscribe`], [`check_subscription_event`]) on the state that the event's auth
//! events make up, restricted to what the [auth events selection](super::auth_event_keys) names,
//! so every server reading the same auth events reaches the same verdict.
//!
//! [`MEMBERS_MARKER`]: crate::room_version::MEMBERS_MARKER

use crate::decision::{Decision, ReasonCode};
use crate::json::{Object, Value};
use crate::pseudouser::{is_pseudouser, pseudouser_id};
use crate::room_state::{RoomState, is_server_name, user_server};
use crate::room_version::RoomVersion;
use crate::s2s::{ServerUserPolicy, check_server_user_membership, is_s2s_room};
use crate::subscription::{
    ABLE_TO_SUBSCRIBE, SUBSCRIPTION, check_subscription_event, is_able_to_subscribe,
    parse_able_to_subscribe,
};

use super::power_levels::{Power, send_level, user_level};
use super::{AuthState, allow, auth_event_keys, content_of, insufficient, malformed, str_field};

/// The create event's content key that turns gating on (rule d); its value must be a boolean.
pub const GATED: &str = "org.servership.gated";

/// The key in a pseudouser's join content naming the user of its server whose membership lets it
/// in (rule b); the auth events selection then names that user's membership.
pub const VIA_USER: &str = "org.servership.via_user";

/// The members rules for an event, on top of the v12 authorization rules a homeserver already
/// runs. `auth_events` are the event's auth events as the homeserver resolved them (accepted
/// events), **plus the room's `m.room.create`**, which v12 does not list; for the create event
/// itself pass it as `event` and nothing in `auth_events`. `version` is the room's version as the
/// homeserver knows it (`12` for a room with the marker).
///
/// **What it assumes was checked** (v12 auth, with `peekable` read as `public`, rule a):
/// signatures and hashes (so a pseudouser's events carry its own server's signature), the
/// `auth_events` rules (the selection of [`super::auth_event_keys`] for the room's version as
/// [`RoomVersion::from_create_event`] gives it), and every v12 rule.
///
/// **What it adds**: rules b–f and the create event's [`GATED`] flag. A `Deny` rejects the event
/// whatever v12 said; an `Allow` leaves the verdict to v12. In a room without the members rules
/// it answers `Allow` with [`ReasonCode::NoAdditions`] for every event: it changes nothing.
///
/// Refused without reading further: no create event, two of them, or two auth events for one
/// `(type, state_key)` ([`ReasonCode::AuthEventsInvalid`]); a create event of another room
/// version than `version` ([`ReasonCode::UnknownRoomVersion`]).
pub fn check_members_rules(
    event: &Object,
    auth_events: &[&Object],
    version: RoomVersion,
) -> Decision {
    let is_create = str_field(event, "type") == Some("m.room.create");
    let mut creates = auth_events
        .iter()
        .copied()
        .filter(|e| str_field(e, "type") == Some("m.room.create"));
    let create = match (is_create, creates.next(), creates.next()) {
        (true, None, _) => event,
        (false, Some(c), None) => c,
        (true, Some(_), _) => {
            return Decision::deny(
                ReasonCode::AuthEventsInvalid,
                "an m.room.create event has no auth events",
            );
        }
        (false, None, _) => {
            return Decision::deny(
                ReasonCode::AuthEventsInvalid,
                "the auth events do not include the room's m.room.create event",
            );
        }
        (false, Some(_), Some(_)) => {
            return Decision::deny(
                ReasonCode::AuthEventsInvalid,
                "the auth events include two m.room.create events",
            );
        }
    };
    let declared = match RoomVersion::from_create_event(create) {
        Ok(v) => v,
        Err(e) => {
            return Decision::deny(
                ReasonCode::UnknownRoomVersion,
                format!("the create event's room version: {}", e.message()),
            );
        }
    };
    if declared.id != version.id {
        return Decision::deny(
            ReasonCode::UnknownRoomVersion,
            format!(
                "the create event is of room version {:?}, not {:?}",
                declared.id, version.id
            ),
        );
    }
    if !declared.auth.servership_members {
        return no_additions(declared);
    }
    if is_create {
        return check_create_additions(create)
            .unwrap_or_else(|| allow("the create event's members flags are well formed"));
    }
    let mut state = AuthState::new(create, "", declared);
    for auth in auth_events
        .iter()
        .copied()
        .filter(|e| !std::ptr::eq(*e, create))
    {
        let Some((t, k)) = super::key_of(auth) else {
            return Decision::deny(
                ReasonCode::AuthEventsInvalid,
                "an auth event is not a state event",
            );
        };
        if state.get(t, k).is_some() {
            return Decision::deny(
                ReasonCode::AuthEventsInvalid,
                format!(
                    "two auth events for ({}, {})",
                    crate::decision::shortened(t),
                    crate::decision::shortened(k)
                ),
            );
        }
        state.insert(auth);
    }
    check_additions(event, &state)
}

/// [`check_members_rules`] on JSON, for the C and Python bindings: `event` a JSON object,
/// `auth_events` a JSON array of objects (the auth events plus the create event), `room_version`
/// an identifier [`RoomVersion::from_id`] knows.
///
/// Errors (not decisions): JSON that does not parse (`M_NOT_JSON`, `M_BAD_JSON`), an
/// `auth_events` that is not an array of objects (`M_BAD_JSON`, naming the index), an unknown
/// room version (`M_INCOMPATIBLE_ROOM_VERSION`).
pub fn check_members_rules_json(
    event: &[u8],
    auth_events: &[u8],
    room_version: &str,
) -> crate::error::Result<Decision> {
    let version = RoomVersion::from_id(room_version)?;
    let event = crate::json::parse_object(event).map_err(|e| e.at("event"))?;
    let list = crate::json::parse(auth_events).map_err(|e| e.at("auth_events"))?;
    let objects = auth_event_objects(&list)?;
    Ok(check_members_rules(&event, &objects, version))
}

/// The objects of a JSON array of auth events, or `M_BAD_JSON` for anything that is not an array
/// of objects (naming the index).
pub fn auth_event_objects(list: &Value) -> crate::error::Result<Vec<&Object>> {
    let Value::Array(items) = list else {
        return Err(crate::error::Error::bad_json(format!(
            "auth_events must be an array, not {}",
            list.type_name()
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_object().ok_or_else(|| {
                crate::error::Error::bad_json(format!(
                    "auth_events[{i}] must be an object, not {}",
                    item.type_name()
                ))
            })
        })
        .collect()
}

fn no_additions(version: RoomVersion) -> Decision {
    Decision::allow(
        ReasonCode::NoAdditions,
        format!("room version {version} without the members marker has none of the members rules"),
    )
}

/// The create event's part of the members rules (an addition to v12 rule 1): [`GATED`], when
/// present, is a boolean. `None` when it passes.
pub(crate) fn check_create_additions(create: &Object) -> Option<Decision> {
    match content_of(create)?.get(GATED) {
        None | Some(Value::Bool(_)) => None,
        Some(other) => Some(Decision::deny(
            ReasonCode::CreateEventInvalid,
            format!(
                "content.{GATED} must be a boolean, not {}",
                other.type_name()
            ),
        )),
    }
}

/// Whether the create event turns gating on (rule d): exactly `true`.
fn is_gated(create: &Object) -> bool {
    content_of(create).and_then(|c| c.get(GATED)) == Some(&Value::Bool(true))
}

/// Rules b–f for an event other than `m.room.create`, against `state` (whose version has the
/// members rules). Reads only what the auth events selection names for `event`.
pub(crate) fn check_additions(event: &Object, state: &AuthState<'_>) -> Decision {
    let version = state.version();
    let Some(event_type) = str_field(event, "type") else {
        return malformed("the event has no string type");
    };
    let Some(sender) = str_field(event, "sender") else {
        return malformed("the event has no string sender");
    };
    if content_of(event).is_none() {
        return malformed("the event has no content object");
    }
    let state_key = match event.get("state_key") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return malformed("state_key must be a string"),
    };
    let keys = match auth_event_keys(event, version) {
        Ok(k) => k,
        Err(d) => return d,
    };
    // The selection's view of the state, as the library's decisions read state.
    let mut selected = vec![state.create().clone()];
    selected.extend(
        keys.iter()
            .filter_map(|(t, k)| state.get(t, k))
            .filter(|e| str_field(e, "type") != Some("m.room.create"))
            .cloned(),
    );
    let room = match RoomState::from_events(&selected) {
        Ok(r) => r,
        Err(e) => return malformed(format!("an auth event is malformed: {}", e.message())),
    };

    match event_type {
        "m.room.member" => {
            let Some(target) = state_key else {
                return malformed("an m.room.member event needs a state_key");
            };
            let membership = content_of(event)
                .and_then(|c| c.get("membership"))
                .and_then(Value::as_str);
            if membership != Some("join") {
                return allow("the members rules add nothing to this membership");
            }
            check_join(target, sender, state, &room)
        }
        ABLE_TO_SUBSCRIBE => {
            // Rule c.
            let Some(server) = state_key.filter(|k| is_server_name(k)) else {
                return malformed(format!(
                    "{ABLE_TO_SUBSCRIBE} needs a server name as state_key"
                ));
            };
            // content is an object: checked at the top.
            if let Some(Err(e)) = content_of(event).map(parse_able_to_subscribe) {
                return malformed(e.message().to_owned());
            }
            // The v12 rule 8 that c names, read again through the same code: an
            // `is_able_to_subscribe` from a user without power is refused here too.
            let needed = match send_level(state, event_type, true) {
                Ok(n) => n,
                Err(d) => return d,
            };
            match user_level(state, sender) {
                Err(d) => d,
                Ok(have) if have < Power::Level(needed) => {
                    insufficient(sender, have, needed, ABLE_TO_SUBSCRIBE)
                }
                Ok(_) => Decision::allow(
                    ReasonCode::AuthAllowed,
                    format!(
                        "{} may say whether {server} is able to subscribe",
                        crate::decision::shortened(sender)
                    ),
                ),
            }
        }
        SUBSCRIPTION => {
            // Rule e: the pseudouser of the server in the state key, and the library's check.
            let Some(server) = state_key.filter(|k| is_server_name(k)) else {
                return malformed(format!("{SUBSCRIPTION} needs a server name as state_key"));
            };
            if pseudouser_id(server).ok().as_deref() != Some(sender) {
                return Decision::deny(
                    ReasonCode::NotSentByPseudouser,
                    format!(
                        "only @:{server} may send {SUBSCRIPTION} for {server}, not {}",
                        crate::decision::shortened(sender)
                    ),
                );
            }
            check_subscription_event(&room, event)
        }
        _ => allow("the members rules add nothing to this event"),
    }
}

/// Rules b, d and f for a join of `target` sent by `sender`.
fn check_join(target: &str, sender: &str, state: &AuthState<'_>, room: &RoomState) -> Decision {
    let pseudo = is_pseudouser(target);
    // Rule b: only the pseudouser sends its own join (v12's 6.3.2 says so for every user; it is
    // repeated so that this function alone never lets another user join a pseudouser).
    if pseudo && sender != target {
        return Decision::deny(
            ReasonCode::NotSentByPseudouser,
            format!(
                "{} cannot join {target} to the room: only the pseudouser sends its own join",
                crate::decision::shortened(sender)
            ),
        );
    }
    // v12's first rule for joins: the creator's join right after the create event (the auth
    // state holds nothing else). A pseudouser that created an s2s room has no invite to show;
    // v12 alone decides that join (Allow never overrides it).
    if pseudo
        && str_field(state.create(), "sender") == Some(target)
        && state.events().next().is_none()
    {
        return allow("the creator's first join: the v12 rules decide it");
    }
    let Some(server) = user_server(target) else {
        return malformed(format!(
            "the state_key {} is not a user ID",
            crate::decision::shown_value(&Value::from(target))
        ));
    };
    // Rules b and f: the library's one call for a server user's membership, with the policy the
    // room version fixes (s2s path in s2s rooms, MSC1777 elsewhere).
    let admitted = if pseudo {
        let policy = if is_s2s_room(room) {
            ServerUserPolicy::S2sOnly
        } else {
            ServerUserPolicy::Peeking
        };
        let d = check_server_user_membership(room, target, "join", policy);
        if !d.is_allowed() {
            return d;
        }
        Some(d)
    } else {
        None
    };
    // Rule d.
    if is_gated(state.create()) && !state.is_creator(target) {
        if !is_able_to_subscribe(room, server) {
            return Decision::deny(
                ReasonCode::NotAbleToSubscribe,
                format!("the room is gated and {server} is not able to subscribe"),
            );
        }
        return Decision::allow(
            ReasonCode::AbleToSubscribe,
            format!(
                "the room is gated and {server} is able to subscribe{}",
                admitted
                    .map(|d| format!("; {}", d.detail))
                    .unwrap_or_default()
            ),
        );
    }
    admitted.unwrap_or_else(|| allow("the members rules add nothing to this join"))
}
