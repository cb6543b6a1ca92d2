//! The invite fixtures under `tests/c/fixtures/` (used by the C example test, the Python tests and
//! `docs/invites.md`) are real requests made with the library's own signing.
//!
//! `SERVERSHIP_BLESS=1 cargo test --test fixtures_invite` writes them; otherwise this test fails
//! when a file differs from what the library produces now (signing is deterministic), and checks
//! that the valid body passes and the tampered one is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use servership::ErrCode;
use servership::event;
use servership::invite::{self, KeyRing};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;

const ORIGIN: &str = "origin.example";
const RECEIVER: &str = "receiver.example";

fn obj(text: &str) -> Object {
    json::parse_object(text.as_bytes()).unwrap()
}

fn ids(list: &[&str]) -> Value {
    Value::Array(list.iter().map(|s| Value::from(*s)).collect())
}

/// Every fixture file, by name, with its bytes.
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let version = RoomVersion::from_id("12").unwrap();
    let key = SigningKey::from_seed("ed25519:1", &[7; 32]).unwrap();
    let mut create = obj(&format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"@alice:{ORIGIN}",
            "origin_server_ts":1700000000000,"depth":1,"prev_events":[],"auth_events":[],
            "content":{{"room_version":"12"}}}}"#
    ));
    event::sign_event(&mut create, ORIGIN, &key, version).unwrap();
    let create_id = event::event_id(&create, version).unwrap();
    let room_id = event::room_id_from_create_event(&create).unwrap();
    let pdu = |partial: &str, prev: &str, auth: &[&str], depth: i64| {
        let mut e = obj(partial);
        e.insert("room_id".into(), room_id.as_str().into());
        e.insert("sender".into(), format!("@alice:{ORIGIN}").into());
        e.insert(
            "origin_server_ts".into(),
            Value::Int(1_700_000_000_000 + depth),
        );
        e.insert("depth".into(), Value::Int(depth));
        e.insert("prev_events".into(), ids(&[prev]));
        e.insert("auth_events".into(), ids(auth));
        event::sign_event(&mut e, ORIGIN, &key, version).unwrap();
        e
    };
    let join = pdu(
        &format!(
            r#"{{"type":"m.room.member","state_key":"@alice:{ORIGIN}","content":{{"membership":"join"}}}}"#
        ),
        &create_id,
        &[],
        2,
    );
    let join_id = event::event_id(&join, version).unwrap();
    let invite = pdu(
        &format!(
            r#"{{"type":"m.room.member","state_key":"@bob:{RECEIVER}","content":{{"membership":"invite"}}}}"#
        ),
        &join_id,
        &[&join_id],
        3,
    );
    let name = json::parse(
        format!(r#"{{"type":"m.room.name","state_key":"","sender":"@alice:{ORIGIN}","content":{{"name":"Project room"}}}}"#)
            .as_bytes(),
    )
    .unwrap();
    let parts = invite::build_invite_request(&invite, &create, &[], &[name]).unwrap();

    // The same request with the invite's timestamp changed after signing.
    let mut tampered = json::parse_object(&parts.body).unwrap();
    let event = tampered.get_mut("event").unwrap().as_object_mut().unwrap();
    event.insert("origin_server_ts".into(), Value::Int(1_800_000_000_000));

    let mut meta = Object::new();
    meta.insert("path".into(), parts.path.as_str().into());
    meta.insert("room_id".into(), room_id.as_str().into());
    meta.insert("receiving_server".into(), RECEIVER.into());
    meta.insert("origin".into(), ORIGIN.into());
    meta.insert(
        "event_id".into(),
        event::event_id(&invite, version).unwrap().into(),
    );
    meta.insert("create_event_id".into(), create_id.as_str().into());

    let keys = format!(
        r#"{{"{ORIGIN}":{{"ed25519:1":{{"key":"{}"}}}}}}"#,
        key.public_key_base64()
    );
    let line = |mut v: Vec<u8>| {
        v.push(b'\n');
        v
    };
    vec![
        ("invite_v12.json", line(parts.body)),
        (
            "invite_v12_tampered.json",
            line(Value::Object(tampered).to_canonical()),
        ),
        (
            "invite_v12_meta.json",
            line(Value::Object(meta).to_canonical()),
        ),
        ("keys.json", line(keys.into_bytes())),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/fixtures")
}

#[test]
fn fixtures_are_current_and_mean_what_they_say() {
    let bless = std::env::var_os("SERVERSHIP_BLESS").is_some_and(|v| v == "1");
    for (name, bytes) in fixtures() {
        let path = dir().join(name);
        if bless {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let on_disk = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run SERVERSHIP_BLESS=1)", path.display()));
            assert!(
                on_disk == bytes,
                "{name} is stale: run SERVERSHIP_BLESS=1 cargo test --test fixtures_invite"
            );
        }
    }
    let read = |name: &str| std::fs::read(dir().join(name)).unwrap();
    let meta = json::parse(read("invite_v12_meta.json").trim_ascii_end()).unwrap();
    let s = |k: &str| meta.get(k).and_then(Value::as_str).unwrap().to_owned();
    let keys = KeyRing::from_json(read("keys.json").trim_ascii_end()).unwrap();

    let check = invite::check_invite(
        &s("room_id"),
        &read("invite_v12.json"),
        &s("receiving_server"),
        &s("origin"),
        Some(&keys),
    )
    .unwrap();
    assert_eq!(check.event_id, s("event_id"));
    assert_eq!(check.creator_servers, vec![ORIGIN.to_owned()]);
    assert!(check.signatures_checked);
    let last = check.invite_room_state.last().unwrap();
    assert_eq!(
        last.get("type").and_then(Value::as_str),
        Some("m.room.create")
    );

    let refused = invite::check_invite(
        &s("room_id"),
        &read("invite_v12_tampered.json"),
        &s("receiving_server"),
        &s("origin"),
        Some(&keys),
    )
    .unwrap_err();
    assert_eq!(refused.errcode(), ErrCode::InvalidParam, "{refused}");
    // Without keys the tampering is not detectable here (the caller verifies PDUs itself).
    invite::check_invite(
        &s("room_id"),
        &read("invite_v12_tampered.json"),
        &s("receiving_server"),
        &s("origin"),
        None,
    )
    .unwrap();
}
