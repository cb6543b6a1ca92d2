//! MSC4329 invite checks on real signed events built with the library's own signing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use servership::ErrCode;
use servership::event;
use servership::invite::{self, KeyRing};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;

const ORIGIN: &str = "origin.example";
const RECEIVER: &str = "receiver.example:8448";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed("ed25519:t1", &[seed; 32]).unwrap()
}

fn obj(text: &str) -> Object {
    json::parse_object(text.as_bytes()).unwrap()
}

fn ids(list: &[&str]) -> Value {
    Value::Array(list.iter().map(|s| Value::from(*s)).collect())
}

/// A small real room: create, the creator's join, power levels, join rules, and an invite.
struct Room {
    version: RoomVersion,
    room_id: String,
    create: Object,
    create_id: String,
    join: Object,
    power_levels: Object,
    join_rules: Object,
    invite: Object,
    origin_key: SigningKey,
}

impl Room {
    fn new(version: &str) -> Room {
        Room::with_nonce(version, "a")
    }

    /// `nonce` goes into the create content, so rooms with different nonces have different IDs.
    fn with_nonce(version: &str, nonce: &str) -> Room {
        let version = RoomVersion::from_id(version).unwrap();
        let origin_key = key(1);
        let v12 = version.id == "12";
        let mut create = obj(&format!(
            r#"{{"type":"m.room.create","state_key":"","sender":"@alice:{ORIGIN}","origin_server_ts":1700000000000,
               "depth":1,"prev_events":[],"auth_events":[],
               "content":{{"room_version":"{}","m.federate":true,"nonce":"{nonce}"}}}}"#,
            version.id
        ));
        if !v12 {
            create.insert("room_id".into(), format!("!room{nonce}:{ORIGIN}").into());
            create
                .get_mut("content")
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("creator".into(), format!("@alice:{ORIGIN}").into());
        }
        event::sign_event(&mut create, ORIGIN, &origin_key, version).unwrap();
        let create_id = event::event_id(&create, version).unwrap();
        let room_id = if v12 {
            event::room_id_from_create_event(&create).unwrap()
        } else {
            format!("!room{nonce}:{ORIGIN}")
        };
        let mut room = Room {
            version,
            room_id,
            create,
            create_id,
            join: Object::new(),
            power_levels: Object::new(),
            join_rules: Object::new(),
            invite: Object::new(),
            origin_key,
        };
        let join = room.pdu(
            r#"{"type":"m.room.member","state_key":"@alice:origin.example","content":{"membership":"join"}}"#,
            &[],
            2,
        );
        let join_id = event::event_id(&join, version).unwrap();
        // v12 creators hold infinite power and must not be listed in `users`.
        let pl = room.pdu(
            if v12 {
                r#"{"type":"m.room.power_levels","state_key":"","content":{"users":{"@carol:origin.example":50}}}"#
            } else {
                r#"{"type":"m.room.power_levels","state_key":"","content":{"users":{"@alice:origin.example":100}}}"#
            },
            &[&join_id],
            3,
        );
        let pl_id = event::event_id(&pl, version).unwrap();
        let jr = room.pdu(
            r#"{"type":"m.room.join_rules","state_key":"","content":{"join_rule":"invite"}}"#,
            &[&join_id, &pl_id],
            4,
        );
        let jr_id = event::event_id(&jr, version).unwrap();
        let invite = room.pdu(
            &format!(r#"{{"type":"m.room.member","state_key":"@bob:{RECEIVER}","content":{{"membership":"invite"}}}}"#),
            &[&join_id, &pl_id, &jr_id],
            5,
        );
        room.join = join;
        room.power_levels = pl;
        room.join_rules = jr;
        room.invite = invite;
        room
    }

    /// A signed PDU of this room sent by alice, naming `auth` (plus the create event before v12).
    fn pdu(&self, partial: &str, auth: &[&str], depth: i64) -> Object {
        let mut e = obj(partial);
        let mut auth_events: Vec<&str> = Vec::new();
        if self.version.id != "12" {
            auth_events.push(&self.create_id);
        }
        auth_events.extend_from_slice(auth);
        e.insert("room_id".into(), self.room_id.as_str().into());
        e.entry("sender".to_owned())
            .or_insert_with(|| format!("@alice:{ORIGIN}").into());
        e.insert(
            "origin_server_ts".into(),
            Value::Int(1_700_000_000_000 + depth),
        );
        e.insert("depth".into(), Value::Int(depth));
        e.insert("prev_events".into(), ids(&[&self.create_id]));
        e.insert("auth_events".into(), ids(&auth_events));
        event::sign_event(&mut e, ORIGIN, &self.origin_key, self.version).unwrap();
        e
    }

    fn keys(&self) -> KeyRing {
        let mut ring = KeyRing::new();
        ring.add(ORIGIN, self.origin_key.verify_key());
        ring
    }

    fn body_with(&self, state: Vec<Object>, invite_room_state: Vec<Value>) -> Vec<u8> {
        let mut b = Object::new();
        b.insert("event".into(), Value::Object(self.invite.clone()));
        b.insert(
            "state".into(),
            Value::Array(state.into_iter().map(Value::Object).collect()),
        );
        b.insert("invite_room_state".into(), Value::Array(invite_room_state));
        Value::Object(b).to_canonical()
    }

    fn body(&self) -> Vec<u8> {
        invite::build_invite_request(&self.invite, &self.create, &[], &[])
            .unwrap()
            .body
    }

    fn check(&self, body: &[u8]) -> servership::Result<invite::InviteCheck> {
        invite::check_invite(&self.room_id, body, RECEIVER, ORIGIN, Some(&self.keys()))
    }
}

fn stripped(e: &Object) -> Value {
    let mut o = Object::new();
    for k in ["type", "state_key", "sender", "content"] {
        o.insert(k.into(), e.get(k).unwrap().clone());
    }
    Value::Object(o)
}

fn expect_err<T>(r: servership::Result<T>, code: ErrCode, needle: &str) {
    match r {
        Ok(_) => panic!("accepted; expected {code} mentioning {needle:?}"),
        Err(e) => {
            assert_eq!(e.errcode(), code, "{e}");
            assert!(
                e.message().contains(needle),
                "message {:?} lacks {needle:?}",
                e.message()
            );
        }
    }
}

#[test]
fn valid_v11_and_v12_invites_pass_with_everything_the_server_needs() {
    for v in ["11", "12"] {
        let room = Room::new(v);
        let name = stripped(&room.join_rules);
        let body = room.body_with(
            vec![room.create.clone(), room.join.clone(), room.power_levels.clone(), room.join_rules.clone()],
            vec![json::parse(br#"{"type":"m.room.name","state_key":"","sender":"@alice:origin.example","content":{"name":"Hi"}}"#).unwrap(), name],
        );
        let check = room.check(&body).unwrap();
        assert_eq!(
            check.event_id,
            event::event_id(&room.invite, room.version).unwrap()
        );
        assert_eq!(check.room_version, room.version);
        assert_eq!(check.room_id, room.room_id);
        assert_eq!(check.creators, vec![format!("@alice:{ORIGIN}")]);
        assert_eq!(check.creator_servers, vec![ORIGIN.to_owned()]);
        assert!(check.signatures_checked);
        assert_eq!(check.promoted.len(), 3, "{:?}", check.dropped);
        // name kept, the stripped join rules replaced by the verified one, create last.
        let types: Vec<&str> = check
            .invite_room_state
            .iter()
            .map(|e| e.get("type").unwrap().as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "m.room.name",
                "m.room.member",
                "m.room.power_levels",
                "m.room.join_rules",
                "m.room.create"
            ]
        );
        assert_eq!(
            check.invite_room_state.last().unwrap(),
            &stripped(&room.create)
        );
        assert_eq!(
            check.to_json().get("room_version").unwrap().as_str(),
            Some(v)
        );
    }
}

#[test]
fn the_event_id_is_computed_never_taken_from_the_request() {
    let mut room = Room::new("12");
    let real = event::event_id(&room.invite, room.version).unwrap();
    room.invite.insert("event_id".into(), real.as_str().into());
    let check = invite::check_invite(&room.room_id, &room.body(), RECEIVER, ORIGIN, None).unwrap();
    // A top-level event_id is part of the hashed form, so the ID changes; it is never copied.
    assert_ne!(check.event_id, real);
    assert_eq!(
        check.event_id,
        event::event_id(&room.invite, room.version).unwrap()
    );
    room.invite.insert("event_id".into(), "$forged".into());
    let check = invite::check_invite(&room.room_id, &room.body(), RECEIVER, ORIGIN, None).unwrap();
    assert_ne!(check.event_id, "$forged");
}

#[test]
fn body_shape_errors() {
    let room = Room::new("12");
    let r = |b: &[u8]| invite::check_invite(&room.room_id, b, RECEIVER, ORIGIN, None);
    expect_err(r(b"not json"), ErrCode::NotJson, "");
    expect_err(r(b"[]"), ErrCode::BadJson, "object");
    expect_err(r(br#"{"state":[]}"#), ErrCode::MissingParam, "event");
    expect_err(
        r(br#"{"event":[],"state":[]}"#),
        ErrCode::BadJson,
        "event must be an object",
    );
    let ev = Value::Object(room.invite.clone()).to_canonical_string();
    expect_err(
        r(format!(r#"{{"event":{ev}}}"#).as_bytes()),
        ErrCode::MissingParam,
        "state",
    );
    expect_err(
        r(format!(r#"{{"event":{ev},"state":{{}}}}"#).as_bytes()),
        ErrCode::BadJson,
        "state must be an array",
    );
    expect_err(
        r(format!(r#"{{"event":{ev},"state":[1]}}"#).as_bytes()),
        ErrCode::BadJson,
        "state[0] must be an object",
    );
    expect_err(
        r(format!(r#"{{"event":{ev},"state":[],"invite_room_state":"x"}}"#).as_bytes()),
        ErrCode::BadJson,
        "invite_room_state must be an array",
    );
}

#[test]
fn create_event_count_and_state_key() {
    let room = Room::new("12");
    expect_err(
        room.check(&room.body_with(vec![], vec![])),
        ErrCode::InvalidParam,
        "must contain the room's m.room.create",
    );
    expect_err(
        room.check(&room.body_with(vec![room.join.clone()], vec![])),
        ErrCode::InvalidParam,
        "must contain the room's m.room.create",
    );
    let e = room.check(&room.body_with(
        vec![room.create.clone(), room.join.clone(), room.create.clone()],
        vec![],
    ));
    expect_err(
        e,
        ErrCode::InvalidParam,
        "exactly one m.room.create event, found 2 (state[0], state[2])",
    );
    for (sk, shown) in [
        (Value::from("x"), "\"x\""),
        (Value::Null, "null"),
        (Value::Int(0), "0"),
    ] {
        let mut c = room.create.clone();
        c.insert("state_key".into(), sk);
        let e = room.check(&room.body_with(vec![room.join.clone(), c], vec![]));
        expect_err(
            e,
            ErrCode::InvalidParam,
            &format!("state[1].state_key must be \"\", found {shown}"),
        );
    }
    let mut c = room.create.clone();
    c.remove("state_key");
    expect_err(
        room.check(&room.body_with(vec![c], vec![])),
        ErrCode::InvalidParam,
        "state[0].state_key must be \"\"",
    );
}

#[test]
fn room_versions_1_and_2_are_sent_to_the_v2_endpoint() {
    let room = Room::new("12");
    for v in ["1", "2"] {
        let mut c = room.create.clone();
        c.insert(
            "content".into(),
            json::parse(format!(r#"{{"room_version":"{v}"}}"#).as_bytes()).unwrap(),
        );
        let e = room.check(&room.body_with(vec![c], vec![])).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::IncompatibleRoomVersion);
        assert_eq!(e.status(), 400);
        assert_eq!(e.room_version(), Some(v));
        assert!(
            e.message().contains("/_matrix/federation/v2/invite/"),
            "{e}"
        );
    }
    let mut c = room.create.clone();
    c.insert(
        "content".into(),
        json::parse(br#"{"room_version":"99"}"#).unwrap(),
    );
    expect_err(
        room.check(&room.body_with(vec![c], vec![])),
        ErrCode::IncompatibleRoomVersion,
        "99",
    );
    let mut c = room.create.clone();
    c.insert(
        "content".into(),
        json::parse(br#"{"room_version":12}"#).unwrap(),
    );
    expect_err(
        room.check(&room.body_with(vec![c], vec![])),
        ErrCode::InvalidParam,
        "content.room_version must be a string",
    );
}

#[test]
fn a_create_event_for_another_room_is_refused() {
    let room = Room::new("11");
    let other = Room::new("12");
    // v11: the create event says another room.
    let mut c = room.create.clone();
    c.insert("room_id".into(), "!other:origin.example".into());
    expect_err(
        room.check(&room.body_with(vec![c], vec![])),
        ErrCode::InvalidParam,
        "state[0].room_id is \"!other:origin.example\"",
    );
    // v12: the create event of another room hashes to another room ID.
    let mut fake_other = Room::new("12");
    let mut content = fake_other.create.get("content").unwrap().clone();
    content
        .as_object_mut()
        .unwrap()
        .insert("fi.mau.randomness".into(), "abc".into());
    fake_other.create.insert("content".into(), content);
    event::sign_event(
        &mut fake_other.create,
        ORIGIN,
        &fake_other.origin_key,
        fake_other.version,
    )
    .unwrap();
    let body = other.body_with(vec![fake_other.create.clone()], vec![]);
    // Re-signed after the change, so only the room ID differs.
    expect_err(
        other.check(&body),
        ErrCode::InvalidParam,
        "is the create event of room",
    );
}

#[test]
fn v12_create_carrying_room_id_and_path_mismatch() {
    let room = Room::new("12");
    let mut c = room.create.clone();
    c.insert("room_id".into(), room.room_id.as_str().into());
    let e = room.check(&room.body_with(vec![c], vec![])).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::InvalidParam, "{e}");
    assert!(e.message().contains("state[0]"), "{e}");
    // Path room ID altered in its last character.
    let mut path = room.room_id.clone();
    let last = path.pop().unwrap();
    path.push(if last == 'A' { 'B' } else { 'A' });
    let e = invite::check_invite(&path, &room.body(), RECEIVER, ORIGIN, Some(&room.keys()))
        .unwrap_err();
    assert_eq!(e.errcode(), ErrCode::InvalidParam);
}

#[test]
fn the_invite_event_itself() {
    let room = Room::new("12");
    let resign = |f: &dyn Fn(&mut Object)| {
        let mut r = Room::new("12");
        f(&mut r.invite);
        r.invite.remove("signatures");
        r.invite.remove("hashes");
        event::sign_event(&mut r.invite, ORIGIN, &r.origin_key, r.version).unwrap();
        r.check(&r.body_with(vec![r.create.clone()], vec![]))
    };
    expect_err(
        resign(&|e| {
            e.insert("type".into(), "m.room.message".into());
        }),
        ErrCode::InvalidParam,
        "event.type must be \"m.room.member\"",
    );
    expect_err(
        resign(&|e| {
            e.insert(
                "content".into(),
                json::parse(br#"{"membership":"join"}"#).unwrap(),
            );
        }),
        ErrCode::InvalidParam,
        "event.content.membership must be \"invite\", found \"join\"",
    );
    expect_err(
        resign(&|e| {
            e.insert("state_key".into(), "@bob:elsewhere.example".into());
        }),
        ErrCode::InvalidParam,
        "is not a user of this server",
    );
    expect_err(
        resign(&|e| {
            e.insert("sender".into(), "@mallory:evil.example".into());
        }),
        ErrCode::InvalidParam,
        "is not a user of the requesting server",
    );
    expect_err(
        resign(&|e| {
            e.insert("room_id".into(), "!elsewhere:origin.example".into());
        }),
        ErrCode::InvalidParam,
        "event.room_id",
    );
    expect_err(
        resign(&|e| {
            e.insert("sender".into(), Value::Int(3));
        }),
        ErrCode::InvalidParam,
        "event.sender must be a string",
    );
    // Origin mismatch without re-signing: the request comes from another server.
    let e = invite::check_invite(&room.room_id, &room.body(), RECEIVER, "evil.example", None)
        .unwrap_err();
    assert_eq!(e.errcode(), ErrCode::InvalidParam);
    // For another receiving server.
    let e = invite::check_invite(
        &room.room_id,
        &room.body(),
        "receiver.example",
        ORIGIN,
        None,
    )
    .unwrap_err();
    assert!(e.message().contains("not a user of this server"), "{e}");
}

#[test]
fn signatures_and_hashes_are_checked_when_keys_are_given() {
    let room = Room::new("12");
    // Tampered after signing: membership is covered by the redacted form.
    let mut tampered = room.invite.clone();
    tampered.insert("state_key".into(), format!("@carol:{RECEIVER}").into());
    let mut b = json::parse_object(&room.body()).unwrap();
    b.insert("event".into(), Value::Object(tampered.clone()));
    let body = Value::Object(b).to_canonical();
    expect_err(room.check(&body), ErrCode::InvalidParam, "event signature");
    // Without keys, the caller verifies: the check passes on shape alone.
    assert!(
        !invite::check_invite(&room.room_id, &body, RECEIVER, ORIGIN, None)
            .unwrap()
            .signatures_checked
    );
    // A change outside the redacted form breaks only the content hash.
    let mut changed = room.invite.clone();
    changed
        .get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("reason".into(), "hi".into());
    let mut b = json::parse_object(&room.body()).unwrap();
    b.insert("event".into(), Value::Object(changed));
    expect_err(
        room.check(&Value::Object(b).to_canonical()),
        ErrCode::InvalidParam,
        "hashes.sha256 does not match",
    );
    // No key for the create event's server.
    let ring = KeyRing::new();
    let e = invite::check_invite(&room.room_id, &room.body(), RECEIVER, ORIGIN, Some(&ring))
        .unwrap_err();
    assert!(
        e.message()
            .contains("no verify key is known for origin.example"),
        "{e}"
    );
    // A forged create signed by another key.
    let mut forged = room.create.clone();
    forged.remove("signatures");
    event::sign_event(&mut forged, ORIGIN, &key(9), room.version).unwrap();
    expect_err(
        room.check(&room.body_with(vec![forged], vec![])),
        ErrCode::InvalidParam,
        "state[0] signature",
    );
}

#[test]
fn a_forged_create_in_invite_room_state_is_replaced_never_kept() {
    let room = Room::new("12");
    let forged = json::parse(br#"{"type":"m.room.create","state_key":"","sender":"@mallory:evil.example","content":{"room_version":"12"}}"#).unwrap();
    let body = room.body_with(vec![room.create.clone()], vec![forged.clone(), forged]);
    let check = room.check(&body).unwrap();
    let creates: Vec<&Value> = check
        .invite_room_state
        .iter()
        .filter(|e| e.get("type").unwrap().as_str() == Some("m.room.create"))
        .collect();
    assert_eq!(creates, vec![&stripped(&room.create)]);
    assert_eq!(
        check
            .dropped
            .iter()
            .filter(|d| d.reason.contains("replaced by the verified create"))
            .count(),
        2
    );
    assert_eq!(check.dropped[0].place, "invite_room_state[0]");
}

#[test]
fn state_events_are_promoted_only_with_complete_auth_chains() {
    for v in ["11", "12"] {
        let room = Room::new(v);
        let join_id = event::event_id(&room.join, room.version).unwrap();
        // Join rules without the power levels it names: incomplete.
        let body = room.body_with(
            vec![
                room.create.clone(),
                room.join.clone(),
                room.join_rules.clone(),
            ],
            vec![],
        );
        let check = room.check(&body).unwrap();
        assert_eq!(check.promoted, vec![join_id.clone()]);
        let dropped = check
            .dropped
            .iter()
            .find(|d| d.place == "state[2]")
            .unwrap();
        assert!(dropped.reason.contains("is not in state"), "{dropped:?}");

        // An event of another room.
        let other = Room::with_nonce(v, "b");
        let body = room.body_with(vec![room.create.clone(), other.join.clone()], vec![]);
        let check = room.check(&body).unwrap();
        assert!(check.promoted.is_empty());
        assert!(
            check.dropped[0].reason.contains("belongs to room"),
            "{:?}",
            check.dropped
        );

        // A chain that depends on a dropped event is dropped too.
        let mut bad_join = room.join.clone();
        bad_join.insert("origin_server_ts".into(), Value::Int(1)); // signature no longer verifies
        let body = room.body_with(
            vec![room.create.clone(), bad_join, room.power_levels.clone()],
            vec![],
        );
        let check = room.check(&body).unwrap();
        assert!(check.promoted.is_empty(), "{:?}", check.promoted);
        assert_eq!(check.dropped.len(), 2, "{:?}", check.dropped);
    }
    // v12 forbids naming the create event; v11 requires it.
    let v12 = Room::new("12");
    let mut names_create = v12.join.clone();
    names_create.insert("auth_events".into(), ids(&[&v12.create_id]));
    names_create.remove("signatures");
    names_create.remove("hashes");
    event::sign_event(&mut names_create, ORIGIN, &v12.origin_key, v12.version).unwrap();
    let check = v12
        .check(&v12.body_with(vec![v12.create.clone(), names_create], vec![]))
        .unwrap();
    assert!(
        check.dropped[0].reason.contains("forbids"),
        "{:?}",
        check.dropped
    );
    let v11 = Room::with_nonce("11", "c");
    let mut no_create = v11.join.clone();
    no_create.insert("auth_events".into(), ids(&[]));
    no_create.remove("signatures");
    no_create.remove("hashes");
    event::sign_event(&mut no_create, ORIGIN, &v11.origin_key, v11.version).unwrap();
    let check = v11
        .check(&v11.body_with(vec![v11.create.clone(), no_create], vec![]))
        .unwrap();
    assert!(
        check.dropped[0]
            .reason
            .contains("does not list the room's m.room.create"),
        "{:?}",
        check.dropped
    );
}

#[test]
fn auth_chain_cycles_terminate() {
    let room = Room::new("12");
    // Two events naming each other cannot both be signed consistently, but their IDs can be
    // guessed wrong: a self-reference is enough to exercise the loop check.
    let mut a = room.pdu(
        r#"{"type":"m.room.topic","state_key":"","content":{"topic":"a"}}"#,
        &[],
        6,
    );
    let a_id = event::event_id(&a, room.version).unwrap();
    // Point a at an event b that points back at a's *current* ID.
    let b = room.pdu(
        r#"{"type":"m.room.name","state_key":"","content":{"name":"b"}}"#,
        &[&a_id],
        7,
    );
    let b_id = event::event_id(&b, room.version).unwrap();
    a.insert("auth_events".into(), ids(&[&b_id]));
    let check = invite::check_invite(
        &room.room_id,
        &room.body_with(vec![room.create.clone(), a, b], vec![]),
        RECEIVER,
        ORIGIN,
        None,
    )
    .unwrap();
    assert!(check.promoted.is_empty());
    assert_eq!(check.dropped.len(), 2);
}

#[test]
fn the_builder_makes_what_the_checker_accepts() {
    let room = Room::new("12");
    let parts = invite::build_invite_request(
        &room.invite,
        &room.create,
        std::slice::from_ref(&room.join),
        &[stripped(&room.create)],
    )
    .unwrap();
    assert!(parts.path.starts_with(invite::PATH_UNSTABLE_PREFIX));
    assert!(parts.path.ends_with(&room.room_id[1..]), "{}", parts.path);
    assert!(parts.path.contains("%21"), "{}", parts.path);
    let body = json::parse_object(&parts.body).unwrap();
    assert!(
        body.get("invite_room_state")
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty(),
        "creates are not sent as stripped state"
    );
    let check = room.check(&parts.body).unwrap();
    assert_eq!(check.promoted.len(), 1);
    assert!(invite::build_invite_request(&room.create, &room.create, &[], &[]).is_err());
}

#[test]
fn hostile_bodies_get_errors() {
    let room = Room::new("12");
    let r = |b: &[u8]| invite::check_invite(&room.room_id, b, RECEIVER, ORIGIN, Some(&room.keys()));
    let huge = format!(
        r#"{{"event":{{"x":"{}"}},"state":[]}}"#,
        "a".repeat(10 * 1024 * 1024)
    );
    expect_err(r(huge.as_bytes()), ErrCode::TooLarge, "bytes");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    expect_err(r(deep.as_bytes()), ErrCode::BadJson, "nesting");
    expect_err(r(b"{\"event\":\"\xff\"}"), ErrCode::NotJson, "UTF-8");
    expect_err(
        r(b"{\"event\":{},\"event\":{}}"),
        ErrCode::BadJson,
        "duplicate",
    );
    // Every member of a valid body replaced by every other type: always a Matrix error.
    let good = json::parse_object(&room.body()).unwrap();
    let wrong = [
        Value::Null,
        Value::Bool(true),
        Value::Int(1),
        Value::from("s"),
        Value::Array(vec![]),
        Value::Object(Object::new()),
    ];
    let mut tried = 0;
    for (top, v) in &good {
        for w in &wrong {
            let mut b = good.clone();
            b.insert(top.clone(), w.clone());
            let _ = r(&Value::Object(b).to_canonical());
            tried += 1;
        }
        if let Value::Object(inner) = v {
            for field in inner.keys() {
                for w in &wrong {
                    let mut e = inner.clone();
                    e.insert(field.clone(), w.clone());
                    let mut b = good.clone();
                    b.insert(top.clone(), Value::Object(e));
                    match r(&Value::Object(b).to_canonical()) {
                        Ok(_) => {}
                        Err(e) => assert!(e.errcode() != ErrCode::Unknown, "{e}"),
                    }
                    tried += 1;
                }
            }
        }
    }
    for i in 0..good.get("state").unwrap().as_array().unwrap().len() {
        let create = good.get("state").unwrap().as_array().unwrap()[i]
            .as_object()
            .unwrap();
        for field in create.keys() {
            for w in &wrong {
                let mut c = create.clone();
                c.insert(field.clone(), w.clone());
                let mut b = good.clone();
                b.insert("state".into(), Value::Array(vec![Value::Object(c)]));
                if let Err(e) = r(&Value::Object(b).to_canonical()) {
                    assert!(e.errcode() != ErrCode::Unknown, "{e}");
                }
                tried += 1;
            }
        }
    }
    assert!(tried > 100);
    expect_err(
        invite::check_invite("not a room", &room.body(), RECEIVER, ORIGIN, None),
        ErrCode::InvalidParam,
        "path room ID",
    );
}

#[test]
fn v12_invite_scenarios_from_the_vectors() {
    let v = common::vectors("v12_room_ids.json");
    let receiver_key = key(3);
    let mut seen = 0;
    for s in v.get("invite_scenarios").unwrap().as_array().unwrap() {
        let name = common::s(s, "name");
        let path = common::s(s, "path_room_id");
        let mut ring = KeyRing::new();
        if let Some(Value::Object(servers)) = s.get("server_keys") {
            for (server, by_id) in servers {
                for (key_id, k) in by_id.as_object().unwrap() {
                    ring.add_base64(server, key_id, common::s(k, "public_key"))
                        .unwrap();
                }
            }
        }
        ring.add(ORIGIN, receiver_key.verify_key());
        let version = common::s(s, "room_version");
        let mut state = Vec::new();
        if let Some(c) = s.get("state_create_event").filter(|c| !c.is_null()) {
            state.push(c.clone());
        }
        // The invite's room version is the scenario's; v12 events and v11 events share a format.
        let rv = RoomVersion::from_id(version).unwrap();
        let mut invite_event = obj(&format!(
            r#"{{"type":"m.room.member","state_key":"@bob:{RECEIVER}","sender":"@alice:{ORIGIN}","content":{{"membership":"invite"}},
               "origin_server_ts":1,"depth":3,"prev_events":[],"auth_events":[]}}"#
        ));
        invite_event.insert("room_id".into(), path.into());
        event::sign_event(&mut invite_event, ORIGIN, &receiver_key, rv).unwrap();
        let mut b = Object::new();
        b.insert("event".into(), Value::Object(invite_event));
        b.insert("state".into(), Value::Array(state));
        b.insert("room_version".into(), version.into());
        let got = invite::check_invite(
            path,
            &Value::Object(b).to_canonical(),
            RECEIVER,
            ORIGIN,
            Some(&ring),
        );
        match common::s(s, "expect") {
            "accept" => assert_eq!(
                got.map(|c| c.room_id).map_err(|e| e.to_string()),
                Ok(path.to_owned()),
                "{name}"
            ),
            _ => {
                let e = got.err().unwrap_or_else(|| panic!("{name}: accepted"));
                assert_eq!(e.errcode(), ErrCode::InvalidParam, "{name}: {e}");
            }
        }
        seen += 1;
    }
    assert!(seen >= 8);
}

// ---- MSC4311: spec invites carrying the full create PDU in invite_room_state ----

use servership::invite::SpecInviteEndpoint;

fn v2_body(room: &Room, invite_room_state: Vec<Value>, version: &str) -> Vec<u8> {
    let mut b = Object::new();
    b.insert("room_version".into(), version.into());
    b.insert("event".into(), Value::Object(room.invite.clone()));
    b.insert("invite_room_state".into(), Value::Array(invite_room_state));
    Value::Object(b).to_canonical()
}

#[test]
fn spec_v2_invites_with_the_full_create_pdu() {
    for v in ["11", "12"] {
        let room = Room::new(v);
        let id = event::event_id(&room.invite, room.version).unwrap();
        let state = vec![
            stripped(&room.join_rules),
            Value::Object(room.create.clone()),
        ];
        let check = invite::check_spec_invite(
            SpecInviteEndpoint::V2,
            &room.room_id,
            &id,
            &v2_body(&room, state.clone(), v),
            RECEIVER,
            ORIGIN,
            Some(&room.keys()),
        )
        .unwrap();
        assert_eq!(check.event_id, id);
        assert_eq!(check.creator_servers, vec![ORIGIN.to_owned()]);
        assert_eq!(
            check.invite_room_state,
            vec![stripped(&room.join_rules), stripped(&room.create)]
        );
        assert_eq!(
            check.to_json().get("room_id").unwrap().as_str(),
            Some(room.room_id.as_str())
        );

        let spec = |path_event: &str, body: &[u8]| {
            invite::check_spec_invite(
                SpecInviteEndpoint::V2,
                &room.room_id,
                path_event,
                body,
                RECEIVER,
                ORIGIN,
                Some(&room.keys()),
            )
        };
        expect_err(
            spec("$other", &v2_body(&room, state.clone(), v)),
            ErrCode::InvalidParam,
            "the path names event $other",
        );
        expect_err(
            spec(&id, &v2_body(&room, vec![stripped(&room.create)], v)),
            ErrCode::InvalidParam,
            "is stripped state",
        );
        expect_err(
            spec(&id, &v2_body(&room, vec![stripped(&room.join_rules)], v)),
            ErrCode::InvalidParam,
            "must contain the room's m.room.create",
        );
        expect_err(
            spec(&id, &v2_body(&room, state.clone(), "10")),
            ErrCode::InvalidParam,
            "disagrees",
        );
        let other = Room::with_nonce(v, "z");
        expect_err(
            spec(
                &id,
                &v2_body(&room, vec![Value::Object(other.create.clone())], v),
            ),
            ErrCode::InvalidParam,
            "invite_room_state[0]",
        );
        // A full PDU of another room among the state is refused (spec: same room).
        let foreign = vec![
            Value::Object(other.join_rules.clone()),
            Value::Object(room.create.clone()),
        ];
        expect_err(
            spec(&id, &v2_body(&room, foreign, v)),
            ErrCode::InvalidParam,
            "does not belong to room",
        );
        let mut b = json::parse_object(&v2_body(&room, state.clone(), v)).unwrap();
        b.remove("room_version");
        expect_err(
            spec(&id, &Value::Object(b).to_canonical()),
            ErrCode::MissingParam,
            "room_version",
        );
    }
}

#[test]
fn spec_v1_invites_in_room_version_1() {
    let key = key(1);
    let rv = RoomVersion::from_id("1").unwrap();
    let room_id = format!("!old:{ORIGIN}");
    let mut create = obj(&format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"@alice:{ORIGIN}","event_id":"$create:{ORIGIN}",
           "origin":"{ORIGIN}","origin_server_ts":1,"depth":1,"prev_events":[],"auth_events":[],
           "content":{{"creator":"@alice:{ORIGIN}"}}}}"#
    ));
    create.insert("room_id".into(), room_id.as_str().into());
    event::sign_event(&mut create, ORIGIN, &key, rv).unwrap();
    let mut invite_event = obj(&format!(
        r#"{{"type":"m.room.member","state_key":"@bob:{RECEIVER}","sender":"@alice:{ORIGIN}","event_id":"$inv:{ORIGIN}",
           "origin":"{ORIGIN}","origin_server_ts":2,"depth":2,"prev_events":[],"auth_events":[],
           "content":{{"membership":"invite"}}}}"#
    ));
    invite_event.insert("room_id".into(), room_id.as_str().into());
    event::sign_event(&mut invite_event, ORIGIN, &key, rv).unwrap();
    let mut unsigned = Object::new();
    unsigned.insert(
        "invite_room_state".into(),
        Value::Array(vec![Value::Object(create.clone())]),
    );
    invite_event.insert("unsigned".into(), Value::Object(unsigned));
    let body = Value::Object(invite_event).to_canonical();
    let mut ring = KeyRing::new();
    ring.add(ORIGIN, key.verify_key());
    let check = invite::check_spec_invite(
        SpecInviteEndpoint::V1,
        &room_id,
        &format!("$inv:{ORIGIN}"),
        &body,
        RECEIVER,
        ORIGIN,
        Some(&ring),
    )
    .unwrap();
    assert_eq!(check.room_version.id, "1");
    assert_eq!(check.invite_room_state, vec![stripped(&create)]);
    let e = invite::check_spec_invite(
        SpecInviteEndpoint::V1,
        "!new:origin.example",
        &format!("$inv:{ORIGIN}"),
        &body,
        RECEIVER,
        ORIGIN,
        Some(&ring),
    )
    .unwrap_err();
    assert_eq!(e.errcode(), ErrCode::InvalidParam);
    // The v12 create of a modern room is not for the v1 endpoint.
    let modern = Room::new("12");
    let mut ev = modern.invite.clone();
    let mut unsigned = Object::new();
    unsigned.insert(
        "invite_room_state".into(),
        Value::Array(vec![Value::Object(modern.create.clone())]),
    );
    ev.insert("unsigned".into(), Value::Object(unsigned));
    let id = event::event_id(&modern.invite, modern.version).unwrap();
    let e = invite::check_spec_invite(
        SpecInviteEndpoint::V1,
        &modern.room_id,
        &id,
        &Value::Object(ev).to_canonical(),
        RECEIVER,
        ORIGIN,
        None,
    )
    .unwrap_err();
    assert!(e.message().contains("room versions 1 and 2"), "{e}");
}

/// MSC4311: every PDU of `invite_room_state` is checked (format, room, with keys signature and
/// hash), not only the create event; stripped entries stay as they are.
#[test]
fn spec_invites_check_every_full_pdu() {
    for v in ["11", "12"] {
        let room = Room::new(v);
        let id = event::event_id(&room.invite, room.version).unwrap();
        let spec = |state: Vec<Value>, keys: bool| {
            let ring = room.keys();
            invite::check_spec_invite(
                SpecInviteEndpoint::V2,
                &room.room_id,
                &id,
                &v2_body(&room, state, v),
                RECEIVER,
                ORIGIN,
                keys.then_some(&ring),
            )
        };
        let create = Value::Object(room.create.clone());
        // Honest full PDUs and stripped entries pass, with and without keys.
        let honest = vec![
            Value::Object(room.join.clone()),
            Value::Object(room.power_levels.clone()),
            stripped(&room.join_rules),
            create.clone(),
        ];
        for keys in [false, true] {
            let check = spec(honest.clone(), keys).unwrap();
            assert_eq!(check.invite_room_state.len(), 4);
            assert_eq!(check.signatures_checked, keys);
        }
        // A depth given as a string: not a PDU of this room version.
        let mut stringy = room.power_levels.clone();
        stringy.insert("depth".into(), "3".into());
        expect_err(
            spec(vec![Value::Object(stringy), create.clone()], false),
            ErrCode::InvalidParam,
            "invite_room_state[0].depth must be an integer",
        );
        // Another room's event with its hashes removed is still a PDU of another room.
        let other = Room::with_nonce(v, "h");
        let mut foreign = other.join_rules.clone();
        foreign.remove("hashes");
        expect_err(
            spec(vec![Value::Object(foreign.clone()), create.clone()], false),
            ErrCode::InvalidParam,
            "invite_room_state[0] does not belong to room",
        );
        // And with everything but one PDU member removed, too.
        for key in ["signatures", "auth_events", "prev_events", "depth"] {
            foreign.remove(key);
        }
        expect_err(
            spec(vec![Value::Object(foreign), create.clone()], false),
            ErrCode::InvalidParam,
            "does not belong to room",
        );
        // Our own room's event without hashes: malformed.
        let mut no_hashes = room.join_rules.clone();
        no_hashes.remove("hashes");
        expect_err(
            spec(vec![Value::Object(no_hashes), create.clone()], false),
            ErrCode::InvalidParam,
            "hashes is required",
        );
        // With keys: a forged signature and a changed content are refused; without keys the
        // caller verifies them (the result says so).
        let mut forged = room.power_levels.clone();
        forged.remove("signatures");
        event::sign_event(&mut forged, ORIGIN, &key(9), room.version).unwrap();
        expect_err(
            spec(vec![Value::Object(forged.clone()), create.clone()], true),
            ErrCode::InvalidParam,
            "invite_room_state[0] signature",
        );
        assert!(
            !spec(vec![Value::Object(forged), create.clone()], false)
                .unwrap()
                .signatures_checked
        );
        let mut changed = room.join_rules.clone();
        changed
            .get_mut("content")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("org.example".into(), "x".into());
        expect_err(
            spec(vec![Value::Object(changed), create.clone()], true),
            ErrCode::InvalidParam,
            "hashes.sha256 does not match",
        );
    }
}
