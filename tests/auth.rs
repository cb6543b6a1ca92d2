//! The authorization rules of `servership::auth`, rule by rule, on hand-written events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use servership::auth::{self, AuthState, Power};
use servership::decision::{Decision, ReasonCode};
use servership::json::{self, Object};
use servership::room_version::RoomVersion;

fn obj(text: &str) -> Object {
    json::parse_object(text.as_bytes()).unwrap()
}

fn v(id: &str) -> RoomVersion {
    RoomVersion::from_id(id).unwrap()
}

fn create(version: &str) -> Object {
    let ver = v(version);
    let mut c = obj(&format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"@alice:a.example","content":{{"room_version":"{version}"}},
            "prev_events":[],"auth_events":[],"depth":1,"origin_server_ts":1}}"#
    ));
    if ver.id != "12" {
        c.insert("room_id".into(), "!r:a.example".into());
    }
    if !ver.auth.implicit_room_creator {
        c.get_mut("content")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("creator".into(), "@alice:a.example".into());
    }
    c
}

fn ev(kind: &str, state_key: Option<&str>, sender: &str, content: &str) -> Object {
    let mut e = obj(&format!(
        r#"{{"type":"{kind}","sender":"{sender}","content":{content},"room_id":"!r:a.example","prev_events":["$p"]}}"#
    ));
    if let Some(k) = state_key {
        e.insert("state_key".into(), k.into());
    }
    e
}

fn member(user: &str, sender: &str, membership: &str) -> Object {
    ev(
        "m.room.member",
        Some(user),
        sender,
        &format!(r#"{{"membership":"{membership}"}}"#),
    )
}

fn denied(d: &Decision, code: ReasonCode) {
    assert!(!d.is_allowed(), "allowed: {}", d.detail);
    assert_eq!(d.reason, code, "{}", d.detail);
}

fn allowed(d: &Decision) {
    assert!(d.is_allowed(), "denied: {:?} {}", d.reason, d.detail);
}

#[test]
fn create_event_rules_match_synapse() {
    for ver in ["3", "6", "10", "11", "12"] {
        allowed(&auth::check_create(&create(ver), v(ver)));
    }
    // 1.1 prev_events.
    let mut c = create("11");
    c.insert("prev_events".into(), json::parse(br#"["$x"]"#).unwrap());
    denied(
        &auth::check_create(&c, v("11")),
        ReasonCode::CreateEventInvalid,
    );
    // 1.2 (v1-11) the room ID's server is the sender's.
    let mut c = create("10");
    c.insert("room_id".into(), "!r:other.example".into());
    denied(
        &auth::check_create(&c, v("10")),
        ReasonCode::CreateEventInvalid,
    );
    // 1.2 (v12) no room_id.
    let mut c = create("12");
    c.insert("room_id".into(), "!r:a.example".into());
    denied(
        &auth::check_create(&c, v("12")),
        ReasonCode::CreateEventInvalid,
    );
    // 1.3 unknown version.
    let mut c = create("11");
    c.insert(
        "content".into(),
        json::parse(br#"{"room_version":"99"}"#).unwrap(),
    );
    denied(
        &auth::check_create(&c, v("11")),
        ReasonCode::CreateEventInvalid,
    );
    // 1.4 (v1-10) creator required; v11 needs none.
    for ver in ["3", "10"] {
        let mut c = create(ver);
        c.get_mut("content")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("creator");
        denied(
            &auth::check_create(&c, v(ver)),
            ReasonCode::CreateEventInvalid,
        );
    }
    // 1.4 (v12) additional_creators: what Synapse's UserID.is_valid accepts.
    for (creators, ok) in [
        (r#"["@x:e:0"]"#, true),
        (r#"["@x:999.1.1.1"]"#, true),
        (r#"["@x:e.example:65536"]"#, true),
        (r#"["@x:[::1]:8448"]"#, true),
        (r#"["@:e"]"#, true),
        (r#"["@x:e: 8"]"#, true),
        (r#"["x:e"]"#, false),
        (r#"["@x"]"#, false),
        (r#"["@x:"]"#, false),
        (r#"["@x:e:"]"#, false),
        (r#"["@x:e..f"]"#, false),
        (r#"["@x:e_f"]"#, false),
        (r#"["@x:[::g]"]"#, false),
        (r#"["@x:e:8a"]"#, false),
        (r#"[1]"#, false),
        (r#""@x:e""#, false),
    ] {
        let mut c = create("12");
        c.get_mut("content")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(
                "additional_creators".into(),
                json::parse(creators.as_bytes()).unwrap(),
            );
        assert_eq!(
            auth::check_create(&c, v("12")).is_allowed(),
            ok,
            "{creators}"
        );
    }
    assert!(auth::is_valid_user_id("@x:e:0"));
    let long = format!(r#"["@{}:e"]"#, "x".repeat(260));
    let mut c = create("12");
    c.get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(
            "additional_creators".into(),
            json::parse(long.as_bytes()).unwrap(),
        );
    assert!(!auth::check_create(&c, v("12")).is_allowed());
}

#[test]
fn the_selection_names_exactly_the_spec_pairs() {
    let keys = |e: &Object, ver: &str| auth::auth_event_keys(e, v(ver)).unwrap();
    let pair = |t: &str, k: &str| (t.to_owned(), k.to_owned());
    let name = ev("m.room.name", Some(""), "@b:b.example", "{}");
    assert_eq!(
        keys(&name, "11"),
        [
            pair("m.room.create", ""),
            pair("m.room.power_levels", ""),
            pair("m.room.member", "@b:b.example")
        ]
    );
    assert_eq!(
        keys(&name, "12"),
        [
            pair("m.room.power_levels", ""),
            pair("m.room.member", "@b:b.example")
        ]
    );
    let join = ev(
        "m.room.member",
        Some("@b:b.example"),
        "@b:b.example",
        r#"{"membership":"join","join_authorised_via_users_server":"@c:c.example"}"#,
    );
    assert_eq!(
        keys(&join, "9"),
        [
            pair("m.room.create", ""),
            pair("m.room.power_levels", ""),
            pair("m.room.member", "@b:b.example"),
            pair("m.room.join_rules", ""),
            pair("m.room.member", "@c:c.example")
        ]
    );
    // Before v8 the authorising user is not selected.
    assert_eq!(keys(&join, "7").len(), 4);
    let tpi = ev(
        "m.room.member",
        Some("@d:d.example"),
        "@b:b.example",
        r#"{"membership":"invite","third_party_invite":{"signed":{"token":"tok"}}}"#,
    );
    assert!(keys(&tpi, "12").contains(&pair("m.room.third_party_invite", "tok")));
    let leave = member("@d:d.example", "@b:b.example", "leave");
    assert!(!keys(&leave, "12").contains(&pair("m.room.join_rules", "")));
    let broken = ev("m.room.member", Some("@d:d.example"), "@b:b.example", "{}");
    assert!(auth::auth_event_keys(&broken, v("12")).is_err());
}

#[test]
fn the_members_additions_are_what_the_rules_add_to_v12() {
    let pair = |t: &str, k: &str| (t.to_owned(), k.to_owned());
    let add = |e: &Object| auth::members_auth_additions(e).unwrap();
    let join = member("@b:b.example", "@b:b.example", "join");
    assert_eq!(
        add(&join),
        [pair("m.server.is_able_to_subscribe", "b.example")]
    );
    let pseudo = ev(
        "m.room.member",
        Some("@:b.example"),
        "@:b.example",
        r#"{"membership":"join","org.servership.via_user":"@u:b.example"}"#,
    );
    assert_eq!(
        add(&pseudo),
        [
            pair("m.server.is_able_to_subscribe", "b.example"),
            pair("m.room.member", "@u:b.example")
        ]
    );
    // A via_user that is the joiner itself adds nothing v12 does not name already.
    let own = ev(
        "m.room.member",
        Some("@:b.example"),
        "@:b.example",
        r#"{"membership":"join","org.servership.via_user":"@:b.example"}"#,
    );
    assert_eq!(
        add(&own),
        [pair("m.server.is_able_to_subscribe", "b.example")]
    );
    let sub = ev(
        "m.server.subscription",
        Some("c.example"),
        "@:c.example",
        "{}",
    );
    assert_eq!(
        add(&sub),
        [pair("m.server.is_able_to_subscribe", "c.example")]
    );
    for nothing in [
        member("@b:b.example", "@a:a.example", "invite"),
        member("@b:b.example", "@b:b.example", "leave"),
        ev("m.room.name", Some(""), "@b:b.example", "{}"),
    ] {
        assert!(add(&nothing).is_empty());
    }
    let bad = ev(
        "m.room.member",
        Some("@:b.example"),
        "@:b.example",
        r#"{"membership":"join","org.servership.via_user":7}"#,
    );
    assert!(auth::members_auth_additions(&bad).is_err());
}

/// A v11 room: alice created it and is joined; bob (level 50) and eve (0) are joined; mallory is
/// banned; join rules `invite`.
struct Fixture {
    create: Object,
    events: Vec<Object>,
}

fn fixture(ver: &str, pl: &str, join_rule: &str) -> Fixture {
    let mut events = vec![
        member("@alice:a.example", "@alice:a.example", "join"),
        member("@bob:b.example", "@bob:b.example", "join"),
        member("@eve:e.example", "@eve:e.example", "join"),
        member("@mallory:m.example", "@alice:a.example", "ban"),
        ev(
            "m.room.join_rules",
            Some(""),
            "@alice:a.example",
            &format!(r#"{{"join_rule":"{join_rule}"}}"#),
        ),
    ];
    if !pl.is_empty() {
        events.push(ev("m.room.power_levels", Some(""), "@alice:a.example", pl));
    }
    Fixture {
        create: create(ver),
        events,
    }
}

impl Fixture {
    fn state(&self, ver: &str) -> AuthState<'_> {
        let mut s = AuthState::new(&self.create, "$create", v(ver));
        for e in &self.events {
            assert!(s.insert(e));
        }
        s
    }
}

const PL11: &str = r#"{"users":{"@alice:a.example":100,"@bob:b.example":50},"kick":50,"ban":50,"invite":50,"state_default":50,"events":{"m.room.name":0}}"#;

#[test]
fn the_sender_must_be_joined_and_powerful_enough() {
    let f = fixture("11", PL11, "invite");
    let s = f.state("11");
    allowed(&auth::check_event(
        &ev("m.room.topic", Some(""), "@bob:b.example", "{}"),
        &s,
    ));
    denied(
        &auth::check_event(&ev("m.room.topic", Some(""), "@eve:e.example", "{}"), &s),
        ReasonCode::InsufficientPower,
    );
    // events overrides state_default.
    allowed(&auth::check_event(
        &ev("m.room.name", Some(""), "@eve:e.example", "{}"),
        &s,
    ));
    denied(
        &auth::check_event(
            &ev("m.room.name", Some(""), "@stranger:s.example", "{}"),
            &s,
        ),
        ReasonCode::SenderNotJoined,
    );
    // A state key naming another user.
    denied(
        &auth::check_event(
            &ev(
                "org.example.profile",
                Some("@eve:e.example"),
                "@alice:a.example",
                "{}",
            ),
            &s,
        ),
        ReasonCode::InsufficientPower,
    );
    // Without power levels, only the creator (100) reaches the state default of 50.
    let f = fixture("11", "", "invite");
    let s = f.state("11");
    allowed(&auth::check_event(
        &ev("m.room.topic", Some(""), "@alice:a.example", "{}"),
        &s,
    ));
    denied(
        &auth::check_event(&ev("m.room.topic", Some(""), "@bob:b.example", "{}"), &s),
        ReasonCode::InsufficientPower,
    );
}

#[test]
fn membership_rules() {
    let f = fixture("11", PL11, "invite");
    let s = f.state("11");
    let check = |e: Object| auth::check_event(&e, &s);
    // Invites: joined, level >= invite, target not joined or banned.
    allowed(&check(member("@new:n.example", "@bob:b.example", "invite")));
    denied(
        &check(member("@new:n.example", "@eve:e.example", "invite")),
        ReasonCode::InsufficientPower,
    );
    denied(
        &check(member("@bob:b.example", "@alice:a.example", "invite")),
        ReasonCode::MembershipNotAllowed,
    );
    denied(
        &check(member("@mallory:m.example", "@alice:a.example", "invite")),
        ReasonCode::MembershipNotAllowed,
    );
    // Joins: only oneself, only when invited to an invite-only room, never when banned.
    denied(
        &check(member("@new:n.example", "@new:n.example", "join")),
        ReasonCode::MembershipNotAllowed,
    );
    denied(
        &check(member("@new:n.example", "@alice:a.example", "join")),
        ReasonCode::MembershipNotAllowed,
    );
    // Kicks and bans: level and a lower target.
    allowed(&check(member("@eve:e.example", "@bob:b.example", "leave")));
    denied(
        &check(member("@alice:a.example", "@bob:b.example", "leave")),
        ReasonCode::MembershipNotAllowed,
    );
    allowed(&check(member("@eve:e.example", "@bob:b.example", "ban")));
    denied(
        &check(member("@bob:b.example", "@eve:e.example", "ban")),
        ReasonCode::MembershipNotAllowed,
    );
    // Unbanning needs the ban level.
    denied(
        &check(member("@mallory:m.example", "@eve:e.example", "leave")),
        ReasonCode::InsufficientPower,
    );
    allowed(&check(member("@eve:e.example", "@eve:e.example", "leave")));
    // Third-party invites are refused here, not verified.
    denied(
        &check(ev(
            "m.room.member",
            Some("@t:t.example"),
            "@alice:a.example",
            r#"{"membership":"invite","third_party_invite":{"signed":{"token":"x"}}}"#,
        )),
        ReasonCode::MembershipNotAllowed,
    );
    denied(
        &check(member("@new:n.example", "@new:n.example", "dance")),
        ReasonCode::MembershipNotAllowed,
    );
    // Public rooms let anyone not banned join.
    let f = fixture("11", PL11, "public");
    let s = f.state("11");
    allowed(&auth::check_event(
        &member("@new:n.example", "@new:n.example", "join"),
        &s,
    ));
    denied(
        &auth::check_event(
            &member("@mallory:m.example", "@mallory:m.example", "join"),
            &s,
        ),
        ReasonCode::MembershipNotAllowed,
    );
}

#[test]
fn knock_and_restricted_rules_follow_the_version() {
    let f = fixture("7", PL11, "knock");
    let s = f.state("7");
    allowed(&auth::check_event(
        &member("@new:n.example", "@new:n.example", "knock"),
        &s,
    ));
    let f6 = fixture("6", PL11, "knock");
    let s6 = f6.state("6");
    denied(
        &auth::check_event(&member("@new:n.example", "@new:n.example", "knock"), &s6),
        ReasonCode::MembershipNotAllowed,
    );
    let f = fixture("9", PL11, "restricted");
    let s = f.state("9");
    let via = |who: &str| {
        ev(
            "m.room.member",
            Some("@new:n.example"),
            "@new:n.example",
            &format!(r#"{{"membership":"join","join_authorised_via_users_server":"{who}"}}"#),
        )
    };
    allowed(&auth::check_event(&via("@bob:b.example"), &s));
    denied(
        &auth::check_event(&via("@eve:e.example"), &s),
        ReasonCode::MembershipNotAllowed,
    );
    denied(
        &auth::check_event(&via("@stranger:s.example"), &s),
        ReasonCode::MembershipNotAllowed,
    );
}

#[test]
fn v12_creators_are_infinitely_powerful_and_never_listed() {
    let mut c = create("12");
    c.get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(
            "additional_creators".into(),
            json::parse(br#"["@co:c.example"]"#).unwrap(),
        );
    let pl = r#"{"users":{"@bob:b.example":100}}"#;
    let events = [
        member("@alice:a.example", "@alice:a.example", "join"),
        member("@bob:b.example", "@bob:b.example", "join"),
        member("@co:c.example", "@co:c.example", "join"),
        ev("m.room.power_levels", Some(""), "@alice:a.example", pl),
    ];
    let mut s = AuthState::new(&c, "$create", v("12"));
    for e in &events {
        s.insert(e);
    }
    assert!(s.is_creator("@co:c.example"));
    // Bob (100) cannot kick a creator; the additional creator can kick bob.
    denied(
        &auth::check_event(&member("@co:c.example", "@bob:b.example", "leave"), &s),
        ReasonCode::MembershipNotAllowed,
    );
    allowed(&auth::check_event(
        &member("@bob:b.example", "@co:c.example", "leave"),
        &s,
    ));
    // Power levels may not list a creator.
    denied(
        &auth::check_event(
            &ev(
                "m.room.power_levels",
                Some(""),
                "@alice:a.example",
                r#"{"users":{"@co:c.example":100}}"#,
            ),
            &s,
        ),
        ReasonCode::InsufficientPower,
    );
    assert!(Power::Infinite > Power::Level(i64::MAX));
}

#[test]
fn power_levels_changes() {
    let f = fixture("11", PL11, "invite");
    let s = f.state("11");
    let pl = |sender: &str, content: &str| {
        auth::check_event(&ev("m.room.power_levels", Some(""), sender, content), &s)
    };
    // Bob (50) may lower eve's nothing-to-something within his level, not above it.
    allowed(&pl(
        "@bob:b.example",
        r#"{"users":{"@alice:a.example":100,"@bob:b.example":50,"@eve:e.example":50},"kick":50,"ban":50,"invite":50,"state_default":50,"events":{"m.room.name":0}}"#,
    ));
    denied(
        &pl(
            "@bob:b.example",
            r#"{"users":{"@alice:a.example":100,"@bob:b.example":50,"@eve:e.example":51},"kick":50,"ban":50,"invite":50,"state_default":50,"events":{"m.room.name":0}}"#,
        ),
        ReasonCode::InsufficientPower,
    );
    // Nor demote alice (at or above his level), nor change a level above his own.
    denied(
        &pl(
            "@bob:b.example",
            r#"{"users":{"@bob:b.example":50},"kick":50,"ban":50,"invite":50,"state_default":50,"events":{"m.room.name":0}}"#,
        ),
        ReasonCode::InsufficientPower,
    );
    denied(
        &pl(
            "@bob:b.example",
            r#"{"users":{"@alice:a.example":100,"@bob:b.example":50},"kick":50,"ban":75,"invite":50,"state_default":50,"events":{"m.room.name":0}}"#,
        ),
        ReasonCode::InsufficientPower,
    );
    // Strings are levels before v10 only.
    denied(
        &pl(
            "@alice:a.example",
            r#"{"users":{"@alice:a.example":"100"}}"#,
        ),
        ReasonCode::MalformedEvent,
    );
    let f9 = fixture("9", "", "invite");
    let s9 = f9.state("9");
    allowed(&auth::check_event(
        &ev(
            "m.room.power_levels",
            Some(""),
            "@alice:a.example",
            r#"{"users":{"@alice:a.example":" 100"}}"#,
        ),
        &s9,
    ));
    denied(
        &pl("@alice:a.example", r#"{"users":{"not-a-user":1}}"#),
        ReasonCode::MalformedEvent,
    );
}

#[test]
fn federate_and_aliases() {
    let mut c = create("5");
    c.get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("m.federate".into(), false.into());
    let join = member("@bob:b.example", "@bob:b.example", "join");
    let mut s = AuthState::new(&c, "$create", v("5"));
    s.insert(&join);
    denied(
        &auth::check_event(&ev("m.room.topic", Some(""), "@bob:b.example", "{}"), &s),
        ReasonCode::RoomNotFederated,
    );
    let c = create("5");
    let s = AuthState::new(&c, "$create", v("5"));
    allowed(&auth::check_event(
        &ev("m.room.aliases", Some("b.example"), "@bob:b.example", "{}"),
        &s,
    ));
    denied(
        &auth::check_event(
            &ev("m.room.aliases", Some("a.example"), "@bob:b.example", "{}"),
            &s,
        ),
        ReasonCode::WrongSenderServer,
    );
    // From v6 aliases are ordinary state: bob is not even joined.
    let c6 = create("6");
    let s6 = AuthState::new(&c6, "$create", v("6"));
    denied(
        &auth::check_event(
            &ev("m.room.aliases", Some("b.example"), "@bob:b.example", "{}"),
            &s6,
        ),
        ReasonCode::SenderNotJoined,
    );
}

#[test]
fn the_auth_events_list() {
    let c = create("11");
    let pl = ev("m.room.power_levels", Some(""), "@alice:a.example", "{}");
    let jr = ev("m.room.join_rules", Some(""), "@alice:a.example", "{}");
    let topic = ev("m.room.topic", Some(""), "@alice:a.example", "{}");
    let check =
        |list: &[(&str, &Object)]| auth::check_auth_events(&topic, v("11"), "$create", list);
    allowed(&check(&[("$create", &c), ("$pl", &pl)]));
    denied(&check(&[("$pl", &pl)]), ReasonCode::AuthEventsInvalid);
    denied(
        &check(&[("$create", &c), ("$jr", &jr)]),
        ReasonCode::AuthEventsInvalid,
    );
    denied(
        &check(&[("$create", &c), ("$pl", &pl), ("$pl2", &pl)]),
        ReasonCode::AuthEventsInvalid,
    );
    let mut foreign = pl.clone();
    foreign.insert("room_id".into(), "!other:a.example".into());
    denied(
        &check(&[("$create", &c), ("$pl", &foreign)]),
        ReasonCode::AuthEventsInvalid,
    );
}
