//! Content hashes, reference hashes, event IDs (`tests/vectors/event_ids.json`), v12 room IDs
//! (`tests/vectors/v12_room_ids.json` `create_events`) and the PDU size limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use servership::ErrCode;
use servership::b64;
use servership::event::{
    self, MAX_PDU_SIZE, check_pdu_size, content_hash_base64, event_id, event_id_from_json,
    reference_hash, reference_hash_base64, room_id_from_create_event,
};
use servership::json::{self, Object, Value};
use servership::redaction::redacted_signing_bytes;
use servership::room_version::RoomVersion;

fn version(case: &Value) -> RoomVersion {
    RoomVersion::from_id(common::s(case, "room_version")).unwrap()
}

#[test]
fn event_id_vectors() {
    let v = common::vectors("event_ids.json");
    let cases = v.as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = common::s(case, "name");
        let version = version(case);
        let ev = case.get("event").unwrap().as_object().unwrap();
        if let Some(hash) = case.get("expect_content_hash").unwrap().as_str() {
            assert_eq!(content_hash_base64(ev), hash, "{name}");
        }
        if let Some(hash) = case.get("expect_reference_hash").unwrap().as_str() {
            // Given for v1 only, in standard base64.
            assert_eq!(
                b64::encode(&reference_hash(ev, version).unwrap()),
                hash,
                "{name}"
            );
            assert_eq!(reference_hash_base64(ev, version).unwrap(), hash, "{name}");
        }
        let bytes = Value::Object(ev.clone()).to_canonical();
        match case.get("expect_event_id").unwrap() {
            Value::Null => {}
            Value::String(s) if s == "error" => {
                let e = event_id(ev, version).unwrap_err();
                assert_eq!(e.errcode(), ErrCode::BadJson, "{name}");
                assert!(e.message().contains("cannot be derived"), "{name}: {e}");
                assert!(event_id_from_json(&bytes, version).is_err(), "{name}");
            }
            Value::String(id) => {
                assert_eq!(&event_id(ev, version).unwrap(), id, "{name}");
                assert_eq!(&event_id_from_json(&bytes, version).unwrap(), id, "{name}");
                if version.id != "1" && version.id != "2" {
                    // The ID is `$` + the reference hash in the version's alphabet.
                    assert_eq!(
                        &format!("${}", reference_hash_base64(ev, version).unwrap()),
                        id,
                        "{name}"
                    );
                }
            }
            other => panic!("{name}: unexpected expect_event_id {other:?}"),
        }
    }
}

#[test]
fn event_id_from_json_refuses_bad_json() {
    let e = event_id_from_json(
        b"{\"type\":\"x\",\"type\":\"y\",\"content\":{}}",
        RoomVersion::V12,
    )
    .unwrap_err();
    assert_eq!(e.errcode(), ErrCode::BadJson);
    assert!(event_id_from_json(b"[]", RoomVersion::V12).is_err());
    assert!(event_id_from_json(b"not json", RoomVersion::V12).is_err());
    assert!(
        event_id_from_json(
            b"{\"type\":\"x\",\"content\":{\"n\":1.5}}",
            RoomVersion::V12
        )
        .is_err()
    );
}

#[test]
fn v12_create_event_vectors() {
    let v = common::vectors("v12_room_ids.json");
    let cases = v.get("create_events").unwrap().as_array().unwrap();
    assert!(cases.len() >= 5);
    let mut rejected = 0;
    for case in cases {
        let name = common::s(case, "name");
        let version = version(case);
        assert_eq!(version, RoomVersion::V12);
        let ev = case.get("event").unwrap().as_object().unwrap();
        assert_eq!(
            content_hash_base64(ev),
            common::s(case, "expect_content_hash"),
            "{name}"
        );
        let expect_event_id = common::s(case, "expect_event_id");
        if expect_event_id == "error" {
            assert!(event_id(ev, version).is_err(), "{name}");
        } else {
            assert_eq!(event_id(ev, version).unwrap(), expect_event_id, "{name}");
        }
        if let Some(canonical) = case
            .get("expect_redacted_canonical")
            .and_then(Value::as_str)
        {
            assert_eq!(
                String::from_utf8(redacted_signing_bytes(ev, version).unwrap()).unwrap(),
                canonical,
                "{name}"
            );
        }
        match common::s(case, "expect") {
            "accept" => {
                let room_id = room_id_from_create_event(ev).unwrap();
                assert_eq!(room_id, common::s(case, "expect_room_id"), "{name}");
                assert_eq!(&room_id[1..], &expect_event_id[1..]);
                assert_eq!(room_id.len(), 44);
            }
            "reject" => {
                let e = room_id_from_create_event(ev).unwrap_err();
                assert_eq!(e.errcode(), ErrCode::BadJson, "{name}");
                rejected += 1;
            }
            other => panic!("{name}: unknown expect {other}"),
        }
    }
    assert_eq!(rejected, 2);
}

fn alpha_create() -> Object {
    let v = common::vectors("v12_room_ids.json");
    v.get("create_events").unwrap().as_array().unwrap()[0]
        .get("event")
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

#[test]
fn room_id_rejections_name_the_problem() {
    let base = alpha_create();
    assert!(room_id_from_create_event(&base).is_ok());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("type", Value::from("m.room.member"), "m.room.create"),
        ("type", Value::Int(1), "type must be a string"),
        ("room_id", Value::from("!x"), "room_id must be absent"),
        ("state_key", Value::from("x"), "state_key"),
        (
            "prev_events",
            Value::Array(vec![Value::from("$a")]),
            "prev_events must be empty",
        ),
        (
            "auth_events",
            Value::Array(vec![Value::from("$a")]),
            "auth_events must be empty",
        ),
        (
            "auth_events",
            Value::Object(Object::new()),
            "auth_events must be an array",
        ),
        ("sender", Value::from("alice"), "sender"),
        ("sender", Value::Null, "sender must be a string"),
    ];
    for (key, value, needle) in cases {
        let mut ev = base.clone();
        ev.insert(key.to_owned(), value);
        let e = room_id_from_create_event(&ev).unwrap_err();
        assert!(e.message().contains(needle), "{key}: {e}");
    }
    let mut ev = base.clone();
    ev.remove("prev_events");
    assert!(
        room_id_from_create_event(&ev)
            .unwrap_err()
            .message()
            .contains("prev_events is missing")
    );

    let with_content = |content: &str| {
        let mut ev = base.clone();
        ev.insert(
            "content".to_owned(),
            json::parse(content.as_bytes()).unwrap(),
        );
        room_id_from_create_event(&ev)
    };
    // room_version absent means "1"; v11 and unknown versions do not define room IDs.
    for content in [r#"{}"#, r#"{"room_version":"11"}"#] {
        let e = with_content(content).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::IncompatibleRoomVersion, "{content}");
    }
    let e = with_content(r#"{"room_version":"13"}"#).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::IncompatibleRoomVersion);
    assert_eq!(e.room_version(), Some("13"));
    assert_eq!(
        with_content(r#"{"room_version":12}"#)
            .unwrap_err()
            .errcode(),
        ErrCode::BadJson
    );
    let e = with_content(r#"{"room_version":"12","additional_creators":"@a:b"}"#).unwrap_err();
    assert!(
        e.message().contains("additional_creators must be an array"),
        "{e}"
    );
    let e = with_content(r#"{"room_version":"12","additional_creators":["@a:b",5]}"#).unwrap_err();
    assert!(e.message().contains("additional_creators[1]"), "{e}");
    let e = with_content(r#"{"room_version":"12","additional_creators":["@a:b","@nohost"]}"#)
        .unwrap_err();
    assert!(e.message().contains("additional_creators[1]"), "{e}");
    // The server pseudouser form is a user ID.
    assert!(with_content(r#"{"room_version":"12","additional_creators":["@:b.example"]}"#).is_ok());
    // Content keys feed the room ID.
    let a = with_content(r#"{"room_version":"12","x":1}"#).unwrap();
    let b = with_content(r#"{"room_version":"12","x":2}"#).unwrap();
    assert_ne!(a, b);
    // Top-level keys that redaction drops do not.
    let mut ev = base.clone();
    ev.insert("origin".to_owned(), Value::from("elsewhere"));
    ev.insert("unsigned".to_owned(), Value::from("anything"));
    assert_eq!(
        room_id_from_create_event(&ev).unwrap(),
        room_id_from_create_event(&base).unwrap()
    );
}

#[test]
fn pdu_size_limit_counts_the_full_canonical_pdu() {
    let mut ev = alpha_create();
    let base_len = Value::Object(ev.clone()).to_canonical().len();
    // Pad a content string so the full canonical PDU is exactly the limit, then one more.
    let pad = MAX_PDU_SIZE - base_len - r#","pad":"""#.len();
    let content = |ev: &mut Object| {
        ev.get_mut("content")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .clone()
    };
    let mut c = content(&mut ev);
    c.insert("pad".to_owned(), Value::from("a".repeat(pad)));
    ev.insert("content".to_owned(), Value::Object(c.clone()));
    assert_eq!(Value::Object(ev.clone()).to_canonical().len(), MAX_PDU_SIZE);
    check_pdu_size(&ev).unwrap();
    c.insert("pad".to_owned(), Value::from("a".repeat(pad + 1)));
    ev.insert("content".to_owned(), Value::Object(c));
    let e = check_pdu_size(&ev).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::TooLarge);
    assert_eq!(e.status(), 413);
    assert!(e.message().contains("65536"), "{e}");
    // Signatures count: an event under the limit without them can be over it with them.
    let mut ev = alpha_create();
    let mut sigs = Object::new();
    for i in 0..1000 {
        sigs.insert(format!("server{i}.example"), Value::from("x".repeat(60)));
    }
    ev.insert("signatures".to_owned(), Value::Object(sigs));
    assert_eq!(
        check_pdu_size(&ev).unwrap_err().errcode(),
        ErrCode::TooLarge
    );
}

#[test]
fn pdu_size_counter_matches_the_encoder() {
    // Escapes, controls, non-ASCII, negative numbers, nesting: the count must equal the encoding.
    let text = r#"{"a":"\"\\\b\f\n\r\t\u0000\u001f\u007f é 😀","b":[-9007199254740991,0,10,-1,true,false,null,[],{}],"c":{"d":{"e":[{"f":"g"}]}}}"#;
    let base = json::parse_object(text.as_bytes()).unwrap();
    let len = Value::Object(base.clone()).to_canonical().len();
    // Wrap the object with a padding string so the total sits exactly at, then just over, the limit.
    for extra in [0usize, 1] {
        let mut ev = base.clone();
        let pad = MAX_PDU_SIZE - len - r#","z":"""#.len() + extra;
        ev.insert(
            "z".to_owned(),
            Value::from("\u{1}".repeat(pad / 6) + &"x".repeat(pad % 6)),
        );
        assert_eq!(
            Value::Object(ev.clone()).to_canonical().len(),
            MAX_PDU_SIZE + extra
        );
        assert_eq!(check_pdu_size(&ev).is_ok(), extra == 0);
    }
}

#[test]
fn event_module_reexports_are_usable() {
    let ev = alpha_create();
    let hash = event::content_hash(&ev);
    assert_eq!(b64::encode(&hash), content_hash_base64(&ev));
}
