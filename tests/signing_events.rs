//! Event signing and verification: `tests/vectors/signing.json` (`event_signing`, event
//! `verification`) and the signatures in `tests/vectors/v12_room_ids.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use servership::event::{
    add_content_hash, check_content_hash, content_hash_base64, reference_hash, required_signers,
    sign_event, verify_event, verify_event_signature,
};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::{SigningKey, VerifyKey};
use servership::{ErrCode, b64};

fn key(vectors: &Value, name: &str) -> (String, SigningKey) {
    let k = vectors.get("keys").unwrap().get(name).unwrap();
    let sk = SigningKey::from_base64_seed(common::s(k, "key_id"), common::s(k, "seed")).unwrap();
    assert_eq!(sk.public_key_base64(), common::s(k, "public_key"));
    (common::s(k, "server_name").to_owned(), sk)
}

fn version(case: &Value) -> RoomVersion {
    RoomVersion::from_id(common::s(case, "room_version")).unwrap()
}

#[test]
fn event_signing_vectors() {
    let v = common::vectors("signing.json");
    let cases = v.get("event_signing").unwrap().as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = common::s(case, "name");
        let (server, sk) = key(&v, common::s(case, "key"));
        let version = version(case);
        let mut ev = case.get("input").unwrap().as_object().unwrap().clone();
        assert_eq!(
            content_hash_base64(&ev),
            common::s(case, "expect_content_hash"),
            "{name}"
        );
        sign_event(&mut ev, &server, &sk, version).unwrap();
        assert_eq!(
            &Value::Object(ev.clone()),
            case.get("expect_signed").unwrap(),
            "{name}"
        );
        assert_eq!(
            ev["signatures"]
                .get(&server)
                .unwrap()
                .get(sk.key_id())
                .unwrap()
                .as_str(),
            Some(common::s(case, "expect_signature")),
            "{name}"
        );
        if let Some(r) = case.get("expect_reference_hash").and_then(Value::as_str) {
            assert_eq!(
                b64::encode(&reference_hash(&ev, version).unwrap()),
                r,
                "{name}"
            );
        }
        // What we signed verifies, and its hash checks out.
        verify_event_signature(&ev, &server, &[sk.verify_key()], version).unwrap();
        assert!(check_content_hash(&ev).unwrap(), "{name}");
    }
}

#[test]
fn event_verification_vectors() {
    let v = common::vectors("signing.json");
    let cases: Vec<&Value> = v
        .get("verification")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| common::s(c, "kind") == "event")
        .collect();
    assert!(cases.len() >= 5);
    let (mut valid, mut invalid) = (0, 0);
    for case in cases {
        let name = common::s(case, "name");
        let (server, sk) = key(&v, common::s(case, "key"));
        let ev = case.get("event").unwrap().as_object().unwrap();
        let result = verify_event_signature(ev, &server, &[sk.verify_key()], version(case));
        let expect = case.get("expect_valid").unwrap().as_bool().unwrap();
        assert_eq!(result.is_ok(), expect, "{name}: {result:?}");
        if expect {
            valid += 1;
        } else {
            invalid += 1;
        }
        // Where the vector records the content hash, it is reproducible even when refused.
        if let Some(h) = case.get("expect_content_hash").and_then(Value::as_str) {
            assert_eq!(content_hash_base64(ev), h, "{name}");
        }
    }
    assert!(valid >= 2 && invalid >= 3);
}

#[test]
fn disputed_event_without_content_is_refused_as_malformed() {
    let v = common::vectors("signing.json");
    let case = v
        .get("verification")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| common::s(c, "name") == "gmsl-legacy-event-without-content")
        .unwrap();
    let (server, sk) = key(&v, "spec");
    let ev = case.get("event").unwrap().as_object().unwrap();
    let e = verify_event_signature(ev, &server, &[sk.verify_key()], RoomVersion::V1).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::BadJson);
    assert!(e.message().contains("content is missing"), "{e}");
}

#[test]
fn v12_create_event_signatures() {
    let v = common::vectors("v12_room_ids.json");
    for case in v.get("create_events").unwrap().as_array().unwrap() {
        let name = common::s(case, "name");
        let k = case.get("signing_key").unwrap();
        let server = common::s(k, "server_name");
        let sk =
            SigningKey::from_base64_seed(common::s(k, "key_id"), common::s(k, "seed")).unwrap();
        assert_eq!(sk.public_key_base64(), common::s(k, "public_key"));
        let vk =
            VerifyKey::from_base64(common::s(k, "key_id"), common::s(k, "public_key")).unwrap();
        let signed = case.get("event").unwrap().as_object().unwrap();
        let rejected = common::s(case, "expect") == "reject";
        let has_room_id = signed.contains_key("room_id");

        // Re-sign from scratch: strip hashes and signatures, sign, compare.
        let mut ev = signed.clone();
        ev.remove("hashes");
        ev.remove("signatures");
        let result = sign_event(&mut ev, server, &sk, RoomVersion::V12);
        if has_room_id {
            // No v12 signature (or ID) is made over a create event carrying room_id.
            assert_eq!(result.unwrap_err().errcode(), ErrCode::BadJson, "{name}");
            assert!(
                verify_event_signature(signed, server, std::slice::from_ref(&vk), RoomVersion::V12)
                    .is_err()
            );
            continue;
        }
        result.unwrap();
        assert_eq!(
            ev["hashes"].get("sha256").unwrap().as_str(),
            Some(common::s(case, "expect_content_hash")),
            "{name}"
        );
        if let Some(sig) = case.get("expect_signature").and_then(Value::as_str) {
            assert_eq!(
                ev["signatures"]
                    .get(server)
                    .unwrap()
                    .get(sk.key_id())
                    .unwrap()
                    .as_str(),
                Some(sig),
                "{name}"
            );
        }
        assert_eq!(&ev, signed, "{name}");
        let check = verify_event(signed, RoomVersion::V12, |s| {
            if s == server {
                vec![vk.clone()]
            } else {
                vec![]
            }
        })
        .unwrap();
        assert_eq!(check.signed_by, vec![server.to_owned()], "{name}");
        assert!(check.content_hash_matches, "{name}");
        // Signatures do not judge additional_creators: deriving the room ID does.
        assert_eq!(
            rejected,
            servership::event::room_id_from_create_event(signed).is_err()
        );
    }
}

fn message_event() -> (Object, SigningKey) {
    let sk = SigningKey::from_seed("ed25519:k1", &[7u8; 32]).unwrap();
    let mut ev = json::parse_object(
        br#"{"type":"m.room.message","room_id":"!r:origin.example","sender":"@u:origin.example:8448",
            "origin_server_ts":1,"depth":5,"prev_events":["$p"],"auth_events":["$a"],
            "content":{"body":"hello","msgtype":"m.text"},"unsigned":{"age":3}}"#,
    )
    .unwrap();
    sign_event(&mut ev, "origin.example:8448", &sk, RoomVersion::V12).unwrap();
    (ev, sk)
}

#[test]
fn verify_event_reports_redacted_copies_and_refuses_tampering() {
    let (ev, sk) = message_event();
    let keys = |s: &str| {
        if s == "origin.example:8448" {
            vec![sk.verify_key()]
        } else {
            vec![]
        }
    };
    let ok = verify_event(&ev, RoomVersion::V12, keys).unwrap();
    assert!(ok.content_hash_matches);
    assert_eq!(ok.signed_by, vec!["origin.example:8448".to_owned()]);

    // Changing content breaks the hash but not the signature (the spec's redacted copy).
    let mut changed = ev.clone();
    changed.insert(
        "content".into(),
        json::parse(br#"{"body":"other","msgtype":"m.text"}"#).unwrap(),
    );
    let r = verify_event(&changed, RoomVersion::V12, keys).unwrap();
    assert!(!r.content_hash_matches);
    // A redacted copy verifies too.
    let redacted = servership::redaction::redact(&ev, RoomVersion::V12).unwrap();
    assert!(
        !verify_event(&redacted, RoomVersion::V12, keys)
            .unwrap()
            .content_hash_matches
    );

    // Changing a preserved key breaks the signature.
    let mut changed = ev.clone();
    changed.insert("depth".into(), Value::Int(6));
    assert_eq!(
        verify_event(&changed, RoomVersion::V12, keys)
            .unwrap_err()
            .errcode(),
        ErrCode::Unauthorized
    );
    // No key known for the sender's server: refused.
    assert_eq!(
        verify_event(&ev, RoomVersion::V12, |_| vec![])
            .unwrap_err()
            .errcode(),
        ErrCode::Unauthorized
    );
    // Another key under the same key ID does not verify.
    let other = SigningKey::from_seed("ed25519:k1", &[8u8; 32]).unwrap();
    assert!(
        verify_event_signature(
            &ev,
            "origin.example:8448",
            &[other.verify_key()],
            RoomVersion::V12
        )
        .is_err()
    );
}

#[test]
fn sign_event_keeps_existing_hash_and_other_signatures() {
    let (mut ev, _) = message_event();
    let hash_before = ev["hashes"].clone();
    let other = SigningKey::from_seed("ed25519:x", &[9u8; 32]).unwrap();
    sign_event(&mut ev, "target.example", &other, RoomVersion::V12).unwrap();
    assert_eq!(ev["hashes"], hash_before);
    let sigs = ev["signatures"].as_object().unwrap();
    assert_eq!(sigs.len(), 2);
    verify_event_signature(
        &ev,
        "target.example",
        &[other.verify_key()],
        RoomVersion::V12,
    )
    .unwrap();
}

#[test]
fn required_signers_per_version() {
    let ev = json::parse_object(
        br#"{"type":"X","content":{},"sender":"@u:a.example","event_id":"$e:b.example"}"#,
    )
    .unwrap();
    assert_eq!(
        required_signers(&ev, RoomVersion::V1).unwrap(),
        vec!["a.example".to_owned(), "b.example".to_owned()]
    );
    assert_eq!(
        required_signers(&ev, RoomVersion::V3).unwrap(),
        vec!["a.example".to_owned()]
    );
    let bad = json::parse_object(br#"{"type":"X","content":{},"sender":"nocolon"}"#).unwrap();
    assert_eq!(
        required_signers(&bad, RoomVersion::V12)
            .unwrap_err()
            .errcode(),
        ErrCode::BadJson
    );
}

#[test]
fn add_content_hash_and_check_content_hash() {
    let mut ev =
        json::parse_object(br#"{"type":"X","content":{"a":1},"hashes":{"other":"x"}}"#).unwrap();
    add_content_hash(&mut ev).unwrap();
    assert_eq!(ev["hashes"].get("other").unwrap().as_str(), Some("x"));
    assert!(check_content_hash(&ev).unwrap());
    // Padded base64 of the same bytes is accepted: the bytes are compared.
    let unpadded = ev["hashes"]
        .get("sha256")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let mut padded = ev.clone();
    padded
        .get_mut("hashes")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("sha256".into(), Value::from(format!("{unpadded}=")));
    assert!(check_content_hash(&padded).unwrap());
    ev.insert("content".into(), Value::Object(Object::new()));
    assert!(!check_content_hash(&ev).unwrap());
}
