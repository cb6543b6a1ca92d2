//! Redaction vectors from `tests/vectors/redaction.json`, plus checks that the borrowed encoder
//! agrees with the object-building redaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use servership::ErrCode;
use servership::json::{self, Object, Value};
use servership::redaction::{redact, redacted_signing_bytes};
use servership::room_version::RoomVersion;

#[test]
fn redaction_vectors() {
    let v = common::vectors("redaction.json");
    let cases = v.as_array().unwrap();
    assert!(cases.len() > 100);
    let mut errors = 0;
    for case in cases {
        let name = common::s(case, "name");
        let version = RoomVersion::from_id(common::s(case, "room_version")).unwrap();
        let input = case.get("input").unwrap().as_object().unwrap();
        let expect = case.get("expect").unwrap();
        let got = redact(input, version);
        let bytes = redacted_signing_bytes(input, version);
        if expect.as_str() == Some("error") {
            let e = got.expect_err(name);
            assert_eq!(e.errcode(), ErrCode::BadJson, "{name}");
            assert!(bytes.is_err(), "{name}");
            errors += 1;
        } else {
            let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&Value::Object(got.clone()), expect, "{name}");
            // The borrowed encoder gives the redacted object minus signatures.
            assert_eq!(
                bytes.unwrap(),
                json::canonical_object_without(&got, &["signatures"]),
                "{name}"
            );
        }
    }
    assert!(errors >= 26);
}

fn obj(text: &str) -> Object {
    json::parse_object(text.as_bytes()).unwrap()
}

#[test]
fn error_messages_name_the_field() {
    let v = RoomVersion::V11;
    let e = redact(&obj(r#"{"type":1,"content":{}}"#), v).unwrap_err();
    assert!(e.message().contains("type must be a string"), "{e}");
    let e = redact(&obj(r#"{"type":"m.room.message","content":[]}"#), v).unwrap_err();
    assert!(
        e.message()
            .contains("content must be an object, not an array"),
        "{e}"
    );
    let e = redact(&obj(r#"{"type":"m.room.message"}"#), v).unwrap_err();
    assert!(e.message().contains("content is missing"), "{e}");
    let e = redact(
        &obj(r#"{"type":"m.room.create","room_id":"!a","content":{}}"#),
        RoomVersion::V12,
    )
    .unwrap_err();
    assert!(e.message().contains("room_id"), "{e}");
}

#[test]
fn v11_create_keeps_every_content_key_and_v12_create_without_room_id_redacts() {
    let ev = obj(
        r#"{"type":"m.room.create","state_key":"","sender":"@a:b","origin":"b",
            "content":{"room_version":"12","additional_creators":["@c:d"],"x":{"y":[1]}},
            "unsigned":{"age":1},"signatures":{"b":{"ed25519:1":"s"}}}"#,
    );
    let r = redact(&ev, RoomVersion::V12).unwrap();
    assert_eq!(r.get("content"), ev.get("content"));
    assert!(!r.contains_key("origin") && !r.contains_key("unsigned"));
    assert!(r.contains_key("signatures"));
    // v10 keeps only `creator` (absent here) but keeps `origin`.
    let r = redact(&ev, RoomVersion::V10).unwrap();
    assert_eq!(r.get("content"), Some(&Value::Object(Object::new())));
    assert!(r.contains_key("origin"));
}

#[test]
fn third_party_invite_with_signed_and_other_keys() {
    let ev = obj(
        r#"{"type":"m.room.member","content":{"membership":"invite","displayname":"x",
            "third_party_invite":{"display_name":"d","signed":{"token":"t","mxid":"@a:b"}}}}"#,
    );
    let r = redact(&ev, RoomVersion::V11).unwrap();
    assert_eq!(
        Value::Object(r.clone()).to_canonical_string(),
        r#"{"content":{"membership":"invite","third_party_invite":{"signed":{"mxid":"@a:b","token":"t"}}},"type":"m.room.member"}"#
    );
    assert_eq!(
        redacted_signing_bytes(&ev, RoomVersion::V11).unwrap(),
        Value::Object(r).to_canonical()
    );
    // Before v11 the whole third_party_invite goes.
    let r = redact(&ev, RoomVersion::V10).unwrap();
    assert_eq!(
        Value::Object(r).to_canonical_string(),
        r#"{"content":{"membership":"invite"},"type":"m.room.member"}"#
    );
}

#[test]
fn top_level_redacts_is_removed_in_every_version() {
    let ev = obj(
        r#"{"type":"m.room.redaction","redacts":"$x","content":{"redacts":"$x","reason":"r"}}"#,
    );
    for v in RoomVersion::all() {
        let r = redact(&ev, *v).unwrap();
        assert!(!r.contains_key("redacts"), "v{}", v.id);
        assert!(
            r.get("content").unwrap().get("reason").is_none(),
            "v{}",
            v.id
        );
    }
}
