//! The create event of an invite, checked as Synapse checks it (auth rule 1 and
//! `event_from_pdu_json`), for MSC4329 and MSC4311 invites alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use servership::event;
use servership::invite::{self, KeyRing, SpecInviteEndpoint};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;
use servership::{ErrCode, Result};

const ORIGIN: &str = "origin.example";
const RECEIVER: &str = "receiver.example";

fn key() -> SigningKey {
    SigningKey::from_seed("ed25519:c1", &[7; 32]).unwrap()
}

fn ring() -> KeyRing {
    let mut r = KeyRing::new();
    r.add(ORIGIN, key().verify_key());
    r
}

fn sign(e: &mut Object, version: RoomVersion) {
    e.remove("signatures");
    e.remove("hashes");
    event::sign_event(e, ORIGIN, &key(), version).unwrap();
}

/// A create event of `version` (room `!c:origin.example` before v12), changed by `edit`, then
/// signed; and the invite that goes with it. Returns `(room_id, create, invite)`.
fn room(version: &str, edit: impl Fn(&mut Object)) -> (String, Object, Object) {
    let v = RoomVersion::from_id(version).unwrap();
    let mut create = json::parse_object(
        format!(
            r#"{{"type":"m.room.create","state_key":"","sender":"@alice:{ORIGIN}","origin_server_ts":1,"depth":1,
                "prev_events":[],"auth_events":[],"content":{{"room_version":"{version}"}}}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    if v.id != "12" {
        create.insert("room_id".into(), format!("!c:{ORIGIN}").into());
    }
    if !v.auth.implicit_room_creator {
        create
            .get_mut("content")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("creator".into(), format!("@alice:{ORIGIN}").into());
    }
    edit(&mut create);
    sign(&mut create, v);
    let room_id = if v.id == "12" {
        // What the sender computes, even for a create event the checks refuse.
        format!("!{}", event::reference_hash_base64(&create, v).unwrap())
    } else {
        create.get("room_id").unwrap().as_str().unwrap().to_owned()
    };
    let create_id = event::event_id(&create, v).unwrap();
    let mut invite = json::parse_object(
        format!(
            r#"{{"type":"m.room.member","state_key":"@bob:{RECEIVER}","sender":"@alice:{ORIGIN}","origin_server_ts":2,
                "depth":2,"prev_events":["{create_id}"],"auth_events":[],"content":{{"membership":"invite"}},
                "room_id":"{room_id}"}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    if v.id != "12" {
        invite.insert("auth_events".into(), Value::Array(vec![create_id.into()]));
    }
    sign(&mut invite, v);
    (room_id, create, invite)
}

fn msc4329(room_id: &str, create: &Object, invite: &Object) -> Result<invite::InviteCheck> {
    let mut body = Object::new();
    body.insert("event".into(), Value::Object(invite.clone()));
    body.insert(
        "state".into(),
        Value::Array(vec![Value::Object(create.clone())]),
    );
    invite::check_invite(
        room_id,
        &Value::Object(body).to_canonical(),
        RECEIVER,
        ORIGIN,
        Some(&ring()),
    )
}

fn msc4311(
    room_id: &str,
    create: &Object,
    invite: &Object,
    version: &str,
) -> Result<invite::SpecInviteCheck> {
    let v = RoomVersion::from_id(version).unwrap();
    let mut body = Object::new();
    body.insert("room_version".into(), version.into());
    body.insert("event".into(), Value::Object(invite.clone()));
    body.insert(
        "invite_room_state".into(),
        Value::Array(vec![Value::Object(create.clone())]),
    );
    invite::check_spec_invite(
        SpecInviteEndpoint::V2,
        room_id,
        &event::event_id(invite, v).unwrap(),
        &Value::Object(body).to_canonical(),
        RECEIVER,
        ORIGIN,
        Some(&ring()),
    )
}

/// Both kinds of invite refuse the room, with `M_INVALID_PARAM` and a message containing
/// `needle`.
fn refused(version: &str, edit: impl Fn(&mut Object), needle: &str) {
    let (room_id, create, invite) = room(version, edit);
    for (kind, r) in [
        ("msc4329", msc4329(&room_id, &create, &invite).map(|_| ())),
        (
            "msc4311",
            msc4311(&room_id, &create, &invite, version).map(|_| ()),
        ),
    ] {
        let e = r.expect_err(kind);
        assert_eq!(e.errcode(), ErrCode::InvalidParam, "{kind} v{version}: {e}");
        assert!(e.message().contains(needle), "{kind} v{version}: {e}");
    }
}

fn accepted(version: &str, edit: impl Fn(&mut Object)) -> Vec<String> {
    let (room_id, create, invite) = room(version, edit);
    let a = msc4329(&room_id, &create, &invite).unwrap();
    let b = msc4311(&room_id, &create, &invite, version).unwrap();
    assert_eq!(a.creator_servers, b.creator_servers);
    a.creator_servers
}

fn content(e: &mut Object) -> &mut Object {
    e.get_mut("content").unwrap().as_object_mut().unwrap()
}

#[test]
fn valid_creates_pass_in_every_version_from_3() {
    for v in ["3", "4", "5", "6", "7", "8", "9", "10", "11", "12"] {
        assert_eq!(accepted(v, |_| {}), [ORIGIN]);
    }
}

#[test]
fn the_room_id_must_be_of_the_senders_server_before_v12() {
    for v in ["3", "10", "11"] {
        refused(
            v,
            |c| {
                c.insert("room_id".into(), "!c:elsewhere.example".into());
            },
            "is not of the sender's server",
        );
    }
}

#[test]
fn a_create_with_prev_events_is_refused() {
    for v in ["3", "11", "12"] {
        refused(
            v,
            |c| {
                c.insert(
                    "prev_events".into(),
                    json::parse(br#"["$xyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzxyzx"]"#).unwrap(),
                );
            },
            "prev_events",
        );
    }
}

#[test]
fn before_v11_the_create_needs_a_creator() {
    for v in ["3", "9", "10"] {
        refused(
            v,
            |c| {
                content(c).remove("creator");
            },
            "content.creator",
        );
    }
    // v11 made the creator implicit (the sender).
    accepted("11", |c| {
        content(c).remove("creator");
    });
}

#[test]
fn a_v12_invite_naming_the_create_event_is_refused() {
    let (room_id, create, mut invite) = room("12", |_| {});
    let create_id = event::event_id(&create, RoomVersion::V12).unwrap();
    invite.insert(
        "auth_events".into(),
        Value::Array(vec![create_id.as_str().into()]),
    );
    sign(&mut invite, RoomVersion::V12);
    for (kind, r) in [
        ("msc4329", msc4329(&room_id, &create, &invite).map(|_| ())),
        (
            "msc4311",
            msc4311(&room_id, &create, &invite, "12").map(|_| ()),
        ),
    ] {
        let e = r.expect_err(kind);
        assert_eq!(e.errcode(), ErrCode::InvalidParam, "{kind}: {e}");
        assert!(
            e.message()
                .contains("event.auth_events lists the m.room.create event"),
            "{kind}: {e}"
        );
    }
}

#[test]
fn v12_additional_creators_that_synapse_accepts_are_accepted() {
    let servers = accepted("12", |c| {
        content(c).insert(
            "additional_creators".into(),
            json::parse(
                br#"["@x:e:0","@y:999.1.1.1","@z:e.example:65536","@w:[::1]","@alice:origin.example"]"#,
            )
            .unwrap(),
        );
    });
    assert_eq!(
        servers,
        [ORIGIN, "e:0", "999.1.1.1", "e.example:65536", "[::1]"]
    );
    // What Synapse refuses stays refused.
    for bad in [r#"["@x"]"#, r#"["@x:e..f"]"#, r#"["x:e"]"#, r#"[3]"#] {
        let (room_id, create, invite) = room("12", |c| {
            content(c).insert(
                "additional_creators".into(),
                json::parse(bad.as_bytes()).unwrap(),
            );
        });
        // No room ID is derived from such a create event.
        assert!(event::room_id_from_create_event(&create).is_err(), "{bad}");
        assert!(msc4329(&room_id, &create, &invite).is_err(), "{bad}");
    }
}

/// Synapse accepts floats and integers outside ±(2^53 - 1) in rooms of version 1–5 (they do not
/// enforce canonical JSON); so do we, receiving and sending, and refuse them from version 6.
#[test]
fn old_room_versions_accept_floats_and_large_integers() {
    let numbers = |c: &mut Object| {
        let n = json::parse_lenient(br#"{"ratio":1.5,"big":12345678901234567890,"tiny":1e-7}"#)
            .unwrap();
        content(c).insert("org.example.numbers".into(), n);
    };
    for v in ["3", "4", "5"] {
        let (room_id, create, invite) = room(v, numbers);
        let text = Value::Object(create.clone()).to_canonical_string();
        assert!(
            text.contains(r#""big":12345678901234567890"#) && text.contains(r#""tiny":1e-07"#),
            "{text}"
        );
        let checked = msc4329(&room_id, &create, &invite).unwrap();
        assert_eq!(checked.room_version.id, v);
        msc4311(&room_id, &create, &invite, v).unwrap();
        // The builder sends them as they are.
        let body = invite::build_invite_request(&invite, &create, &[], &[])
            .unwrap()
            .body;
        assert!(String::from_utf8(body).unwrap().contains("1.5"));
    }
    for v in ["6", "12"] {
        let (room_id, create, invite) = room(v, numbers);
        for (kind, r) in [
            ("msc4329", msc4329(&room_id, &create, &invite).map(|_| ())),
            (
                "msc4311",
                msc4311(&room_id, &create, &invite, v).map(|_| ()),
            ),
        ] {
            let e = r.expect_err(kind);
            assert_eq!(e.errcode(), ErrCode::BadJson, "{kind} v{v}: {e}");
            assert!(
                e.message().contains("org.example.numbers"),
                "{kind} v{v}: {e}"
            );
        }
        let e = invite::build_invite_request(&invite, &create, &[], &[]).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::BadJson, "v{v}: {e}");
    }
}
