//! Hostile events: wrong types in every field the event functions read, huge strings, deep
//! nesting. Every case must give a clear error (or a correct answer), never a panic or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use servership::ErrCode;
use servership::event::{
    check_content_hash, check_pdu_size, content_hash, event_id, event_id_from_json, reference_hash,
    room_id_from_create_event, sign_event, verify_event, verify_event_signature,
};
use servership::json::{self, MAX_DEPTH, Object, Value};
use servership::redaction::redact;
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;

fn key() -> SigningKey {
    SigningKey::from_seed("ed25519:h", &[3u8; 32]).unwrap()
}

fn good_event() -> Object {
    let mut ev = json::parse_object(
        br#"{"type":"m.room.member","state_key":"@v:b.example","room_id":"!r:a.example",
            "sender":"@u:a.example","origin_server_ts":1,"depth":2,"prev_events":["$p"],
            "auth_events":["$a"],"content":{"membership":"invite"}}"#,
    )
    .unwrap();
    sign_event(&mut ev, "a.example", &key(), RoomVersion::V12).unwrap();
    ev
}

fn with(key: &str, value: &str) -> Object {
    let mut ev = good_event();
    ev.insert(key.to_owned(), json::parse(value.as_bytes()).unwrap());
    ev
}

/// Runs every reader over the event; returns the error messages. Panics only if a reader panics.
fn run_all(ev: &Object) -> Vec<String> {
    let v = RoomVersion::V12;
    let keys = |_: &str| vec![key().verify_key()];
    let mut out = Vec::new();
    let _ = content_hash(ev);
    let mut push = |r: Result<(), servership::Error>| {
        if let Err(e) = r {
            out.push(e.message().to_owned());
        }
    };
    push(redact(ev, v).map(drop));
    push(reference_hash(ev, v).map(drop));
    push(event_id(ev, v).map(drop));
    push(event_id(ev, RoomVersion::V1).map(drop));
    push(check_content_hash(ev).map(drop));
    push(verify_event_signature(
        ev,
        "a.example",
        &[key().verify_key()],
        v,
    ));
    push(verify_event(ev, v, keys).map(drop));
    push(check_pdu_size(ev));
    push(room_id_from_create_event(ev).map(drop));
    push(sign_event(&mut ev.clone(), "a.example", &key(), v));
    push(event_id_from_json(&Value::Object(ev.clone()).to_canonical(), v).map(drop));
    out
}

#[test]
fn the_good_event_passes_every_check() {
    let ev = good_event();
    let v = RoomVersion::V12;
    event_id(&ev, v).unwrap();
    assert!(check_content_hash(&ev).unwrap());
    verify_event(&ev, v, |_| vec![key().verify_key()]).unwrap();
    check_pdu_size(&ev).unwrap();
}

#[test]
fn wrong_types_give_errors_that_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "content",
            "[1,2]",
            "content must be an object, not an array",
        ),
        (
            "content",
            "\"s\"",
            "content must be an object, not a string",
        ),
        ("content", "null", "content must be an object"),
        ("type", "1", "type must be a string"),
        ("type", "{}", "type must be a string"),
        ("hashes", "[]", "hashes must be an object"),
        ("hashes", "{\"sha256\":5}", "hashes.sha256 must be a string"),
        (
            "hashes",
            "{\"sha256\":\"!!not base64!!\"}",
            "hashes.sha256 must be 32 bytes",
        ),
        (
            "hashes",
            "{\"sha256\":\"AAAA\"}",
            "hashes.sha256 must be 32 bytes",
        ),
        ("hashes", "{}", "hashes.sha256 is missing"),
        ("signatures", "[]", "signatures must be an object"),
        (
            "signatures",
            "{\"a.example\":\"x\"}",
            "signatures.a.example must be an object",
        ),
        ("sender", "7", "sender must be a string"),
        ("sender", "\"@nocolon\"", "has no server name"),
        ("event_id", "[]", "event_id must be a string"),
    ];
    for (field, value, needle) in cases {
        let ev = with(field, value);
        let errors = run_all(&ev);
        assert!(
            errors.iter().any(|m| m.contains(needle)),
            "{field}={value}: expected {needle:?} in {errors:?}"
        );
    }
    // A missing field is named too.
    for field in ["type", "content", "sender", "hashes"] {
        let mut ev = good_event();
        ev.remove(field);
        let errors = run_all(&ev);
        assert!(
            errors
                .iter()
                .any(|m| m.contains(&format!("{field} is missing"))),
            "{field}: {errors:?}"
        );
    }
}

#[test]
fn url_safe_hash_is_not_standard_base64() {
    // A content hash whose standard encoding contains '+' or '/' written in the URL-safe alphabet
    // is malformed, not silently accepted.
    let mut ev = good_event();
    for i in 0..200 {
        ev.insert("x".into(), Value::Int(i));
        servership::event::add_content_hash(&mut ev).unwrap();
        let h = ev["hashes"]
            .get("sha256")
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        if h.contains('+') || h.contains('/') {
            let url = h.replace('+', "-").replace('/', "_");
            let mut bad = ev.clone();
            bad.insert(
                "hashes".into(),
                json::parse(format!("{{\"sha256\":\"{url}\"}}").as_bytes()).unwrap(),
            );
            assert_eq!(
                check_content_hash(&bad).unwrap_err().errcode(),
                ErrCode::BadJson
            );
            return;
        }
    }
    panic!("no hash with + or / in 200 tries");
}

#[test]
fn ten_megabyte_string_field() {
    let big = "a".repeat(10 * 1024 * 1024);
    let v = RoomVersion::V12;
    // In a field that redaction drops: hashes and IDs still work, the size check refuses it.
    let mut ev = good_event();
    ev.get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("displayname".into(), Value::from(big.as_str()));
    let e = check_pdu_size(&ev).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::TooLarge);
    assert!(e.message().contains("65536"));
    assert!(!check_content_hash(&ev).unwrap());
    let id = event_id(&ev, v).unwrap();
    assert_eq!(
        id,
        event_id(&good_event(), v).unwrap(),
        "displayname is redacted away"
    );
    let bytes = Value::Object(ev.clone()).to_canonical();
    assert_eq!(event_id_from_json(&bytes, v).unwrap(), id);
    // In a field redaction keeps (top-level key of a message, whole create content): still works.
    let mut ev = good_event();
    ev.insert("state_key".into(), Value::from(big.as_str()));
    let a = event_id(&ev, v).unwrap();
    assert_ne!(a, id);
    let mut create = json::parse_object(
        br#"{"type":"m.room.create","state_key":"","sender":"@u:a.example","depth":1,
            "origin_server_ts":1,"prev_events":[],"auth_events":[],"content":{"room_version":"12"}}"#,
    )
    .unwrap();
    create
        .get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("entropy".into(), Value::from(big.as_str()));
    let room = room_id_from_create_event(&create).unwrap();
    assert_eq!(room.len(), 44);
    assert_eq!(
        check_pdu_size(&create).unwrap_err().errcode(),
        ErrCode::TooLarge
    );
    // A 10 MB additional_creators entry is no user ID (over 255 bytes).
    create
        .get_mut("content")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(
            "additional_creators".into(),
            Value::Array(vec![Value::from(format!("@{big}:x"))]),
        );
    let e = room_id_from_create_event(&create).unwrap_err();
    assert!(
        e.message().contains("additional_creators[0]"),
        "{}",
        &e.message()[..100]
    );
    assert!(
        e.message().len() < 200,
        "the message must not repeat the 10 MB value"
    );
}

#[test]
fn deep_nesting() {
    let v = RoomVersion::V12;
    // Nesting up to the parser's limit inside content works; beyond it is refused by the parser.
    let nest = |depth: usize| {
        let inner = "[".repeat(depth) + &"]".repeat(depth);
        format!(
            r#"{{"type":"m.room.message","sender":"@u:a","room_id":"!r:a","content":{{"x":{inner}}}}}"#
        )
    };
    // The event object and content use two levels.
    let ok = nest(MAX_DEPTH - 2);
    event_id_from_json(ok.as_bytes(), v).unwrap();
    let ev = json::parse_object(ok.as_bytes()).unwrap();
    let _ = content_hash(&ev);
    check_pdu_size(&ev).unwrap();
    let e = event_id_from_json(nest(MAX_DEPTH + 10).as_bytes(), v).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::BadJson);
    // Very deep input must not overflow the stack.
    let e = event_id_from_json(nest(1_000_000).as_bytes(), v).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::BadJson);
}

#[test]
fn hostile_bytes_to_event_id_from_json() {
    let v = RoomVersion::V12;
    for bytes in [
        &b""[..],
        b"\xff\xfe",
        b"{\"type\":\"\xc3\x28\",\"content\":{}}",
        b"{\"type\":\"a\\ud800\",\"content\":{}}",
        b"{\"type\":\"a\",\"content\":{}} trailing",
        b"{\"type\":\"a\",\"content\":{\"n\":9007199254740992}}",
        b"\"just a string\"",
        b"{\"type\":\"a\\u0000b\",\"content\":{}",
    ] {
        assert!(event_id_from_json(bytes, v).is_err(), "{bytes:?}");
    }
    // NUL inside a string is legal JSON and hashes fine.
    event_id_from_json(b"{\"type\":\"a\\u0000b\",\"content\":{}}", v).unwrap();
}
