//! JSON signing vectors from `tests/vectors/signing.json` (`json_signing`, JSON `verification`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use servership::json::Value;
use servership::signing::{self, SigningKey, VerifyKey};

fn key(vectors: &Value, name: &str) -> (String, SigningKey) {
    let k = vectors.get("keys").unwrap().get(name).unwrap();
    let sk = SigningKey::from_base64_seed(common::s(k, "key_id"), common::s(k, "seed")).unwrap();
    assert_eq!(sk.public_key_base64(), common::s(k, "public_key"));
    (common::s(k, "server_name").to_owned(), sk)
}

#[test]
fn json_signing_vectors() {
    let v = common::vectors("signing.json");
    let cases = v.get("json_signing").unwrap().as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let name = common::s(case, "name");
        let (server, sk) = key(&v, common::s(case, "key"));
        let mut obj = case.get("input").unwrap().as_object().unwrap().clone();
        assert_eq!(
            signing::signing_bytes(&obj),
            common::s(case, "expect_canonical").as_bytes(),
            "{name}"
        );
        assert_eq!(
            signing::json_signature(&obj, &sk),
            common::s(case, "expect_signature"),
            "{name}"
        );
        signing::sign_json(&mut obj, &server, &sk).unwrap();
        assert_eq!(
            &Value::Object(obj.clone()),
            case.get("expect_signed").unwrap(),
            "{name}"
        );
        signing::verify_json(&obj, &server, &sk.verify_key()).unwrap();
    }
}

#[test]
fn json_verification_vectors() {
    let v = common::vectors("signing.json");
    let mut seen = 0;
    for case in v.get("verification").unwrap().as_array().unwrap() {
        if common::s(case, "kind") != "json" {
            continue;
        }
        seen += 1;
        let (server, sk) = key(&v, common::s(case, "key"));
        let vk = VerifyKey::from_base64(sk.key_id(), &sk.public_key_base64()).unwrap();
        let obj = case.get("json").unwrap().as_object().unwrap();
        let ok = signing::verify_json(obj, &server, &vk).is_ok();
        assert_eq!(
            ok,
            case.get("expect_valid").unwrap().as_bool().unwrap(),
            "{}",
            common::s(case, "name")
        );
    }
    assert!(seen > 0);
}

#[test]
fn unknown_keys_and_tampering() {
    let sk = SigningKey::from_seed("ed25519:a", &[7; 32]).unwrap();
    let mut obj = servership::json::parse_object(br#"{"a":1,"unsigned":{"x":1}}"#).unwrap();
    signing::sign_json(&mut obj, "example.org", &sk).unwrap();
    // `unsigned` is not covered.
    obj.insert("unsigned".into(), Value::Int(5));
    signing::verify_json(&obj, "example.org", &sk.verify_key()).unwrap();
    // Other servers' signatures are not ours.
    assert!(signing::verify_json(&obj, "other.org", &sk.verify_key()).is_err());
    // Any change to covered content breaks it.
    obj.insert("a".into(), Value::Int(2));
    let e = signing::verify_json(&obj, "example.org", &sk.verify_key()).unwrap_err();
    assert_eq!(e.errcode(), servership::ErrCode::Unauthorized);
    assert!(SigningKey::from_seed("rsa:1", &[0; 32]).is_err());
}
