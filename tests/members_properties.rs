//! Properties of the members rules (`servership::auth::members`) on random rooms and events, from
//! a deterministic generator (a failure reproduces exactly):
//! - in a plain v12 room (no marker) `check_members_rules` adds nothing: `Allow`, `no_additions`;
//! - the whole room version never allows what plain v12 (`servership::auth`) refuses on the same
//!   events, except a join under `peekable` (rule a, the one relaxation);
//! - the additions alone and the whole room version agree: when the additions deny, so does the
//!   room version, and when it allows, so do the additions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::rng::Rng;
use servership::auth::{self, AuthState, check_members_rules};
use servership::decision::ReasonCode;
use servership::json::{Object, Value};
use servership::room_version::{MEMBERS_MARKER, RoomVersion};

const CREATOR: &str = "@alice:a.example";
const USERS: &[&str] = &[
    CREATOR,
    "@bob:b.example",
    "@:b.example",
    "@:B.EXAMPLE",
    "@:b.example:8448",
    "@bob:b.example:8448",
    "@x:b.example",
    "@ :b.example",
    "@carol:c.example",
    "@:c.example",
    "@mod:a.example",
];
const SERVERS: &[&str] = &[
    "a.example",
    "b.example",
    "B.EXAMPLE",
    "b.example:8448",
    "c.example",
    "x y",
];
const MEMBERSHIPS: &[&str] = &["join", "invite", "leave", "ban", "knock"];
const JOIN_RULES: &[&str] = &[
    "public",
    "invite",
    "peekable",
    "knock",
    "restricted",
    "private",
];

fn object(pairs: Vec<(&str, Value)>) -> Object {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn state_event(kind: &str, key: &str, sender: &str, content: Object) -> Object {
    object(vec![
        ("type", Value::from(kind)),
        ("state_key", Value::from(key)),
        ("sender", Value::from(sender)),
        ("content", Value::Object(content)),
        ("room_id", Value::from("!r")),
        ("prev_events", Value::Array(vec![Value::from("$p")])),
    ])
}

fn member(rng: &mut Rng, user: &str) -> Object {
    let membership = *rng.pick(MEMBERSHIPS);
    let sender = if rng.chance(70) {
        user
    } else {
        *rng.pick(USERS)
    };
    let mut content = object(vec![("membership", Value::from(membership))]);
    if rng.chance(30) {
        let via = if rng.chance(10) {
            Value::Int(1)
        } else {
            Value::from(*rng.pick(USERS))
        };
        content.insert(auth::members::VIA_USER.into(), via);
    }
    state_event("m.room.member", user, sender, content)
}

fn able(rng: &mut Rng, server: &str) -> Object {
    let value = match rng.below(6) {
        0 => Value::from("true"),
        1 => Value::Bool(false),
        _ => Value::Bool(true),
    };
    let sender = if rng.chance(80) {
        CREATOR
    } else {
        *rng.pick(USERS)
    };
    state_event(
        "m.server.is_able_to_subscribe",
        server,
        sender,
        object(vec![("is_able_to_subscribe", value)]),
    )
}

/// A create event of `version_id`, with the marker when `marked`, and random members flags.
fn create(rng: &mut Rng, version_id: &str, marked: bool) -> Object {
    let mut content = object(vec![("room_version", Value::from(version_id))]);
    if marked {
        content.insert(
            MEMBERS_MARKER.into(),
            Value::from(RoomVersion::SERVERSHIP_MEMBERS_1.id),
        );
    }
    match rng.below(4) {
        0 => {}
        1 => {
            content.insert(auth::members::GATED.into(), Value::Bool(false));
        }
        _ => {
            content.insert(auth::members::GATED.into(), Value::Bool(true));
        }
    }
    if rng.chance(25) {
        content.insert(
            "type".into(),
            Value::from(*rng.pick(&["m.s2s", "support.feline.s2s"])),
        );
    }
    object(vec![
        ("type", Value::from("m.room.create")),
        ("state_key", Value::from("")),
        ("sender", Value::from(CREATOR)),
        ("content", Value::Object(content)),
        ("prev_events", Value::Array(Vec::new())),
    ])
}

/// A random event and the state events before it (at most one per key, never a create).
fn scenario(rng: &mut Rng) -> (Object, Vec<Object>) {
    let event = match rng.below(10) {
        0..=5 => {
            let user = rng_user(rng);
            member(rng, user)
        }
        6 | 7 => {
            let server = rng_server(rng);
            able(rng, server)
        }
        8 => {
            let server = rng_server(rng);
            let sender = if rng.chance(60) {
                format!("@:{server}")
            } else {
                (*rng.pick(USERS)).to_owned()
            };
            state_event("m.server.subscription", server, &sender, Object::new())
        }
        _ => object(vec![
            ("type", Value::from("m.room.message")),
            ("sender", Value::from(*rng.pick(USERS))),
            ("content", Value::Object(Object::new())),
        ]),
    };
    let mut events: Vec<Object> = Vec::new();
    let mut users = object(vec![(CREATOR, Value::Int(100))]);
    if rng.chance(30) {
        users.insert("@mod:a.example".into(), Value::Int(50));
    }
    let mut named = Object::new();
    if rng.chance(40) {
        named.insert(
            "m.server.is_able_to_subscribe".into(),
            Value::Int(*rng.pick(&[0, 50, 100])),
        );
    }
    if rng.chance(50) {
        named.insert("m.server.subscription".into(), Value::Int(0));
    }
    if rng.chance(90) {
        events.push(state_event(
            "m.room.power_levels",
            "",
            CREATOR,
            object(vec![
                ("users", Value::Object(users)),
                ("users_default", Value::Int(0)),
                ("events", Value::Object(named)),
            ]),
        ));
    }
    if rng.chance(90) {
        let rule = *rng.pick(JOIN_RULES);
        events.push(state_event(
            "m.room.join_rules",
            "",
            CREATOR,
            object(vec![("join_rule", Value::from(rule))]),
        ));
    }
    let mut keys: Vec<String> = Vec::new();
    for _ in 0..rng.below(6) {
        let user = rng_user(rng);
        if !keys.iter().any(|k| k == user) {
            keys.push(user.to_owned());
            events.push(member(rng, user));
        }
    }
    if rng.chance(70) {
        events.push(state_event(
            "m.room.member",
            CREATOR,
            CREATOR,
            object(vec![("membership", Value::from("join"))]),
        ));
        keys.push(CREATOR.to_owned());
    }
    let mut servers: Vec<&str> = Vec::new();
    for _ in 0..rng.below(3) {
        let server = rng_server(rng);
        if !servers.contains(&server) {
            servers.push(server);
            events.push(able(rng, server));
        }
    }
    // Drop duplicate keys (the creator's membership may have been drawn twice).
    let mut seen = std::collections::BTreeSet::new();
    events.retain(|e| seen.insert(format!("{:?}/{:?}", e.get("type"), e.get("state_key"))));
    (event, events)
}

fn rng_user(rng: &mut Rng) -> &'static str {
    USERS[rng.below(USERS.len())]
}

fn rng_server(rng: &mut Rng) -> &'static str {
    SERVERS[rng.below(SERVERS.len())]
}

/// The whole room version's verdict (v12, and the additions where the room has them).
fn full(event: &Object, create: &Object, events: &[Object], version: RoomVersion) -> bool {
    let mut state = AuthState::new(create, "$create", version);
    for e in events {
        state.insert(e);
    }
    auth::check_event(event, &state).is_allowed()
}

fn is_peekable_join(event: &Object, events: &[Object]) -> bool {
    let membership = event
        .get("content")
        .and_then(|c| c.get("membership"))
        .and_then(Value::as_str);
    let rule = events
        .iter()
        .find(|e| e.get("type").and_then(Value::as_str) == Some("m.room.join_rules"))
        .and_then(|e| e.get("content")?.get("join_rule")?.as_str());
    event.get("type").and_then(Value::as_str) == Some("m.room.member")
        && membership == Some("join")
        && rule == Some("peekable")
}

#[test]
fn the_additions_change_nothing_in_plain_v12_and_only_restrict_otherwise() {
    let mut rng = Rng(0x005E_ED0F_AB1E);
    let (mut denied, mut relaxed, mut allowed) = (0usize, 0usize, 0usize);
    for round in 0..20_000 {
        let (event, events) = scenario(&mut rng);
        let route = round % 2; // 0: the experimental identifier, 1: v12 with the marker
        let plain_create = create(&mut Rng(round as u64 + 1), "12", false);
        let (members_create, version) = if route == 0 {
            let mut c = plain_create.clone();
            c.get_mut("content")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert(
                    "room_version".into(),
                    Value::from(RoomVersion::SERVERSHIP_MEMBERS_1.id),
                );
            (c, RoomVersion::SERVERSHIP_MEMBERS_1)
        } else {
            let mut c = plain_create.clone();
            c.get_mut("content")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert(
                    MEMBERS_MARKER.into(),
                    Value::from(RoomVersion::SERVERSHIP_MEMBERS_1.id),
                );
            (c, RoomVersion::V12)
        };

        // Plain v12: nothing added, whatever the event.
        let mut plain_auth: Vec<&Object> = vec![&plain_create];
        plain_auth.extend(events.iter());
        let d = check_members_rules(&event, &plain_auth, RoomVersion::V12);
        assert!(
            d.is_allowed() && d.reason == ReasonCode::NoAdditions,
            "round {round}: {d:?}"
        );

        // The room version never allows what plain v12 refuses, except a peekable join.
        let plain = full(&event, &plain_create, &events, RoomVersion::V12);
        let members = full(&event, &members_create, &events, version);
        if members && !plain {
            assert!(
                is_peekable_join(&event, &events),
                "round {round}: allowed beyond v12: {event:?} on {events:?}"
            );
            relaxed += 1;
        }

        // The additions alone agree with the whole room version.
        let mut auth: Vec<&Object> = vec![&members_create];
        auth.extend(events.iter());
        let additions = check_members_rules(&event, &auth, version);
        assert_ne!(additions.reason, ReasonCode::NoAdditions, "round {round}");
        if !additions.is_allowed() {
            assert!(
                !members,
                "round {round}: additions deny ({additions:?}), room allows"
            );
            denied += 1;
        }
        if members {
            assert!(additions.is_allowed(), "round {round}");
            allowed += 1;
        }
    }
    // The generator reaches every kind of outcome.
    assert!(
        denied > 1000 && relaxed > 50 && allowed > 1000,
        "{denied} {relaxed} {allowed}"
    );
}
