//! The auth events selection, and the rules on an event's `auth_events` (rules 2 and 3 in v12).

use crate::decision::{Decision, ReasonCode};
use crate::json::{Object, Value};
use crate::room_version::RoomVersion;

use super::{allow, content_of, key_of, lists_create, malformed, str_field};

fn deny(detail: impl Into<String>) -> Decision {
    Decision::deny(ReasonCode::AuthEventsInvalid, detail)
}

/// The `(type, state_key)` pairs the [auth events selection](https://spec.matrix.org/v1.16/server-server-api/#auth-events-selection)
/// may name for `event`: the create event (not in v12, where it is implied and must not be
/// listed), the power levels, the sender's membership; for `m.room.member` also the target's
/// membership, the join rules (join, invite, knock), the third-party invite of an invite's
/// `signed.token`, and the authorising user's membership of a restricted join (v8+).
/// With the members rules ([`super::members`]) a join also names the joining user's server's
/// `m.server.is_able_to_subscribe` and, for a pseudouser, the membership of the user its
/// `content.org.servership.via_user` names; an `m.server.subscription` names its server's
/// `m.server.is_able_to_subscribe`.
///
/// A selection only names what exists: an event lists the subset of these that the state before
/// it holds. `m.room.create` itself selects nothing. A member event without a string
/// `membership`, or a third-party invite without a string token, is malformed.
pub fn auth_event_keys(
    event: &Object,
    version: RoomVersion,
) -> Result<Vec<(String, String)>, Decision> {
    let Some(event_type) = str_field(event, "type") else {
        return Err(malformed("the event has no string type"));
    };
    if event_type == "m.room.create" {
        return Ok(Vec::new());
    }
    let Some(sender) = str_field(event, "sender") else {
        return Err(malformed("the event has no string sender"));
    };
    let mut keys = Vec::with_capacity(6);
    let mut add = |t: &str, k: &str| {
        let key = (t.to_owned(), k.to_owned());
        if !keys.contains(&key) {
            keys.push(key);
        }
    };
    if lists_create(version) {
        add("m.room.create", "");
    }
    add("m.room.power_levels", "");
    add("m.room.member", sender);
    if event_type == "m.room.member" {
        let Some(target) = str_field(event, "state_key") else {
            return Err(malformed("an m.room.member event needs a string state_key"));
        };
        let content = content_of(event);
        let Some(membership) = content
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str)
        else {
            return Err(malformed(
                "an m.room.member event needs a string content.membership",
            ));
        };
        add("m.room.member", target);
        if matches!(membership, "join" | "invite" | "knock") {
            add("m.room.join_rules", "");
        }
        if membership == "invite" {
            if let Some(tpi) = content.and_then(|c| c.get("third_party_invite")) {
                let token = tpi
                    .get("signed")
                    .and_then(|s| s.get("token"))
                    .and_then(Value::as_str);
                let Some(token) = token else {
                    return Err(malformed(
                        "third_party_invite.signed.token must be a string",
                    ));
                };
                add("m.room.third_party_invite", token);
            }
        }
        if version.auth.servership_members && membership == "join" {
            // Members rule d: the joining user's server's is_able_to_subscribe (read only in a
            // gated room, named in every room with the rules so the selection needs no create
            // content); rule b: the membership of the user a pseudouser's join names.
            if let Some(server) = super::server_part(target) {
                add(crate::subscription::ABLE_TO_SUBSCRIBE, server);
            }
            if crate::pseudouser::is_pseudouser(target) {
                if let Some(v) = content.and_then(|c| c.get(super::members::VIA_USER)) {
                    let Some(user) = v.as_str() else {
                        return Err(malformed(format!(
                            "content.{} must be a string",
                            super::members::VIA_USER
                        )));
                    };
                    add("m.room.member", user);
                }
            }
        }
        if version.auth.restricted_join_rule && membership == "join" {
            if let Some(v) = content.and_then(|c| c.get("join_authorised_via_users_server")) {
                let Some(user) = v.as_str() else {
                    return Err(malformed(
                        "join_authorised_via_users_server must be a string",
                    ));
                };
                add("m.room.member", user);
            }
        }
    }
    if version.auth.servership_members && event_type == crate::subscription::SUBSCRIPTION {
        // Members rule e reads whether the server in the state key is able to subscribe.
        if let Some(server) = str_field(event, "state_key") {
            add(crate::subscription::ABLE_TO_SUBSCRIBE, server);
        }
    }
    Ok(keys)
}

/// What the members rules ([`super::members`]) add to v12's [selection](auth_event_keys) for
/// `event`: the pairs `auth_event_keys` names under
/// [`RoomVersion::SERVERSHIP_MEMBERS_1`] and not under [`RoomVersion::V12`], in that order.
/// A homeserver that computes v12's selection itself adds these in a room with the rules (a v12
/// room with the marker). Errors as `auth_event_keys`.
pub fn members_auth_additions(event: &Object) -> Result<Vec<(String, String)>, Decision> {
    let base = auth_event_keys(event, RoomVersion::V12)?;
    let mut keys = auth_event_keys(event, RoomVersion::SERVERSHIP_MEMBERS_1)?;
    keys.retain(|k| !base.contains(k));
    Ok(keys)
}

/// Rules 2 and 3 on the events an event lists in `auth_events`, given as `(event_id, event)` in
/// the listed order (the create event too, when it is listed):
///
/// - 2 (v12): the event's `room_id` is the create event's ID with `!` for `$`;
/// - 3.1 no two entries share a `(type, state_key)`;
/// - 3.2 every entry is one the [selection](auth_event_keys) may name; in v12 the create event
///   is never listed;
/// - 3.4 (v1–11) the room's create event is among them;
/// - 3.5 every entry belongs to the event's room.
///
/// That each entry was itself accepted (3.3) is the caller's to know.
pub fn check_auth_events(
    event: &Object,
    version: RoomVersion,
    create_event_id: &str,
    auth_events: &[(&str, &Object)],
) -> Decision {
    let room_id = str_field(event, "room_id");
    if !lists_create(version) {
        let expected = create_event_id.strip_prefix('$').map(|h| format!("!{h}"));
        if room_id.is_none() || room_id.map(str::to_owned) != expected {
            return deny("the event's room_id is not the room of the create event");
        }
    }
    let keys = match auth_event_keys(event, version) {
        Ok(k) => k,
        Err(d) => return d,
    };
    let mut seen: Vec<(&str, &str)> = Vec::with_capacity(auth_events.len());
    let mut has_create = false;
    for (id, auth) in auth_events {
        if *id == create_event_id {
            if !lists_create(version) {
                return deny(format!(
                    "auth_events lists the m.room.create event {id}, which this room version forbids"
                ));
            }
            if has_create {
                return deny("auth_events lists the m.room.create event twice");
            }
            has_create = true;
            continue;
        }
        let Some((t, k)) = key_of(auth) else {
            return deny(format!("auth event {id} is not a state event"));
        };
        if t == "m.room.create" {
            return deny(format!(
                "auth event {id} is the create event of another room"
            ));
        }
        if seen.contains(&(t, k)) {
            return deny(format!("auth_events lists two events for ({t}, {k:?})"));
        }
        if !keys.iter().any(|(kt, kk)| kt == t && kk == k) {
            return deny(format!(
                "auth event {id} is for ({t}, {k:?}), which the auth events selection does not name"
            ));
        }
        if str_field(auth, "room_id") != room_id {
            return deny(format!("auth event {id} belongs to another room"));
        }
        seen.push((t, k));
    }
    if lists_create(version) && !has_create {
        return deny("auth_events does not list the room's m.room.create event");
    }
    allow("auth_events are as the selection names them")
}
