//! X-Matrix request authentication: every `parse` and `signed_requests` case of
//! `tests/vectors/x_matrix.json`, verification failures, and hostile headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use servership::ErrCode;
use servership::json::{self, Value};
use servership::signing::{SigningKey, VerifyKey};
use servership::x_matrix::{self, XMatrix};

fn vectors() -> Value {
    common::vectors("x_matrix.json")
}

fn spec_key() -> SigningKey {
    let v = vectors();
    let k = v.get("keys").and_then(|k| k.get("spec")).unwrap();
    let key = SigningKey::from_base64_seed(common::s(k, "key_id"), common::s(k, "seed")).unwrap();
    assert_eq!(key.public_key_base64(), common::s(k, "public_key"));
    key
}

fn list(name: &str) -> Vec<Value> {
    vectors()
        .get(name)
        .and_then(Value::as_array)
        .unwrap()
        .clone()
}

#[test]
fn every_parse_vector() {
    let cases = list("parse");
    assert!(cases.len() >= 15);
    for case in cases {
        let name = common::s(&case, "name");
        let header = common::s(&case, "header");
        let result = x_matrix::parse_header(header);
        match case.get("expect").unwrap() {
            Value::String(s) if s == "reject" => {
                let e = result.expect_err(name);
                assert_eq!(e.errcode(), ErrCode::Unauthorized, "{name}");
                assert_eq!(e.status(), 401, "{name}");
            }
            expect => {
                let got = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(got.origin.as_str(), common::s(expect, "origin"), "{name}");
                assert_eq!(got.key_id, common::s(expect, "key"), "{name}");
                assert_eq!(got.signature, common::s(expect, "sig"), "{name}");
                let destination = expect.get("destination").unwrap();
                assert_eq!(
                    got.destination.as_ref().map(|d| d.as_str()),
                    destination.as_str(),
                    "{name}"
                );
                // What we parsed, written in sender format, parses back to the same thing.
                assert_eq!(
                    x_matrix::parse_header(&got.to_header()).unwrap(),
                    got,
                    "{name}"
                );
            }
        }
    }
}

struct SignedCase {
    name: String,
    method: String,
    uri: String,
    origin: String,
    destination: String,
    content: Option<Value>,
    canonical: String,
    signature: String,
    header: String,
}

fn signed_cases() -> Vec<SignedCase> {
    list("signed_requests")
        .into_iter()
        .map(|case| {
            let r = case.get("request").unwrap();
            SignedCase {
                name: common::s(&case, "name").into(),
                method: common::s(r, "method").into(),
                uri: common::s(r, "uri").into(),
                origin: common::s(r, "origin").into(),
                destination: common::s(r, "destination").into(),
                content: r.get("content").cloned(),
                canonical: common::s(&case, "expect_canonical").into(),
                signature: common::s(&case, "expect_signature").into(),
                header: common::s(&case, "expect_header").into(),
            }
        })
        .collect()
}

#[test]
fn every_signed_request_vector() {
    let key = spec_key();
    let cases = signed_cases();
    assert!(cases.len() >= 2);
    for c in &cases {
        let content = c.content.as_ref();
        let object = x_matrix::request_json(&c.method, &c.uri, &c.origin, &c.destination, content);
        assert_eq!(
            Value::Object(object.clone()).to_canonical_string(),
            c.canonical,
            "{}",
            c.name
        );
        assert_eq!(
            object.contains_key("content"),
            content.is_some(),
            "{}",
            c.name
        );
        let bytes =
            x_matrix::request_signing_bytes(&c.method, &c.uri, &c.origin, &c.destination, content);
        assert_eq!(String::from_utf8(bytes).unwrap(), c.canonical, "{}", c.name);
        assert_eq!(
            servership::signing::json_signature(&object, &key),
            c.signature,
            "{}",
            c.name
        );

        let header =
            x_matrix::sign_request(&c.method, &c.uri, &c.origin, &c.destination, content, &key);
        assert_eq!(header, c.header, "{}", c.name);

        let keys = [key.verify_key()];
        let verified =
            x_matrix::verify_request(&header, &c.method, &c.uri, &c.destination, content, &keys)
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(verified.origin.as_str(), c.origin);
        assert_eq!(verified.signature, c.signature);

        // The same with the body as bytes.
        let body = content.map(Value::to_canonical);
        let (verified, parsed) = x_matrix::verify_request_body(
            &header,
            &c.method,
            &c.uri,
            &c.destination,
            body.as_deref(),
            &keys,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(verified.key_id, "ed25519:1");
        assert_eq!(parsed.as_ref(), content);
    }
}

/// The vector request with a body, and a valid header for it.
fn put_case() -> (SignedCase, Vec<VerifyKey>) {
    let case = signed_cases()
        .into_iter()
        .find(|c| c.content.is_some())
        .unwrap();
    (case, vec![spec_key().verify_key()])
}

fn verify(
    c: &SignedCase,
    header: &str,
    method: &str,
    uri: &str,
    dest: &str,
    content: Option<&Value>,
    keys: &[VerifyKey],
) -> servership::Error {
    let e = x_matrix::verify_request(header, method, uri, dest, content, keys).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::Unauthorized, "{}: {e}", c.name);
    assert_eq!(e.status(), 401);
    e
}

#[test]
fn verification_refuses_anything_changed() {
    let (c, keys) = put_case();
    let content = c.content.as_ref();
    let (m, u, d, h) = (&c.method[..], &c.uri[..], &c.destination[..], &c.header[..]);

    verify(&c, h, "POST", u, d, content, &keys);
    verify(&c, h, m, &format!("{u}?x=1"), d, content, &keys);
    verify(&c, h, m, &u.replace('!', "%21"), d, content, &keys); // the URI is signed as sent
    verify(&c, h, m, u, d, None, &keys);
    let mut other = content.unwrap().clone();
    other
        .as_object_mut()
        .unwrap()
        .insert("extra".into(), Value::Int(1));
    verify(&c, h, m, u, d, Some(&other), &keys);

    // Addressed to someone else.
    let e = verify(&c, h, m, u, "other.example", content, &keys);
    assert!(e.message().contains("addressed to"), "{e}");

    // Unknown key: the error names it.
    let e = verify(
        &c,
        &h.replace("ed25519:1", "ed25519:2"),
        m,
        u,
        d,
        content,
        &keys,
    );
    assert!(e.message().contains("ed25519:2"), "{e}");
    let e = verify(&c, h, m, u, d, content, &[]);
    assert!(e.message().contains("ed25519:1"), "{e}");

    // A key that is not a key ID.
    let e = verify(
        &c,
        &h.replace("ed25519:1", "rsa:1"),
        m,
        u,
        d,
        content,
        &keys,
    );
    assert!(e.message().contains("key"), "{e}");

    // A different key under the same ID.
    let other_key = SigningKey::from_seed("ed25519:1", &[7; 32]).unwrap();
    verify(&c, h, m, u, d, content, &[other_key.verify_key()]);

    // A claimed origin that did not sign (the signature covers origin).
    verify(
        &c,
        &h.replace("origin=\"domain\"", "origin=\"evil.example\""),
        m,
        u,
        d,
        content,
        &keys,
    );

    // A broken signature.
    let broken = h.replace("sig=\"C", "sig=\"D");
    verify(&c, &broken, m, u, d, content, &keys);
    verify(
        &c,
        &h.replace(&c.signature, "dGVzdA"),
        m,
        u,
        d,
        content,
        &keys,
    );
    verify(&c, &h.replace(&c.signature, "!!!"), m, u, d, content, &keys);
}

#[test]
fn header_variants_that_still_verify() {
    let (c, keys) = put_case();
    let content = c.content.as_ref();
    let sig = &c.signature;
    for header in [
        // No destination (pre-v1.3 sender): verified against our own name.
        format!(r#"X-Matrix origin="domain",key="ed25519:1",sig="{sig}""#),
        // Lenient forms a recipient must accept.
        format!("x-matrix  ORIGIN=domain ,\tKey=ed25519:1 ,, sig={sig}==,"),
        format!(
            r#"X-MATRIX destination=remote.example,sig="{sig}",key="ed25519:1",origin="dom\ain",foo="b,a\"r""#
        ),
    ] {
        x_matrix::verify_request(&header, &c.method, &c.uri, &c.destination, content, &keys)
            .unwrap_or_else(|e| panic!("{header}: {e}"));
    }
}

#[test]
fn body_bytes_are_parsed_strictly() {
    let (c, keys) = put_case();
    let (m, u, d, h) = (&c.method[..], &c.uri[..], &c.destination[..], &c.header[..]);
    // Whitespace and key order do not matter: the parsed body is what is signed.
    let body = br#" { "room_version" : "12", "invite_room_state": [], "event": {} } "#;
    x_matrix::verify_request_body(h, m, u, d, Some(body), &keys).unwrap();

    let e = x_matrix::verify_request_body(h, m, u, d, Some(b"{not json"), &keys).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::NotJson, "{e}");
    let e = x_matrix::verify_request_body(h, m, u, d, Some(br#"{"a":1.5}"#), &keys).unwrap_err();
    assert!(
        matches!(e.errcode(), ErrCode::BadJson | ErrCode::NotJson),
        "{e}"
    );
    let e =
        x_matrix::verify_request_body(h, m, u, d, Some(br#"{"a":1,"a":2}"#), &keys).unwrap_err();
    assert!(
        matches!(e.errcode(), ErrCode::BadJson | ErrCode::NotJson),
        "{e}"
    );
    let e = x_matrix::verify_request_body(h, m, u, d, Some(b"\xff"), &keys).unwrap_err();
    assert!(
        matches!(e.errcode(), ErrCode::BadJson | ErrCode::NotJson),
        "{e}"
    );

    // A well-formed but different body: unauthorized.
    let e = x_matrix::verify_request_body(h, m, u, d, Some(b"{}"), &keys).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::Unauthorized);

    // No body and an empty body are the same: the GET vector verifies with both.
    let get = signed_cases()
        .into_iter()
        .find(|c| c.content.is_none())
        .unwrap();
    for body in [None, Some(&b""[..])] {
        let (_, parsed) = x_matrix::verify_request_body(
            &get.header,
            &get.method,
            &get.uri,
            &get.destination,
            body,
            &keys,
        )
        .unwrap();
        assert!(parsed.is_none());
    }

    // A bad header is reported before the body is looked at.
    let e =
        x_matrix::verify_request_body("Bearer x", m, u, d, Some(b"{not json"), &keys).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::Unauthorized);
}

#[test]
fn parse_error_messages() {
    let cases = [
        ("Bearer origin=foo", "not X-Matrix"),
        (
            "X-Matrix key=\"ed25519:1\",sig=x",
            "origin parameter is missing",
        ),
        ("X-Matrix origin=a..b,key=k,sig=s", "origin"),
        (
            "X-Matrix origin=a,destination=\"x y\",key=k,sig=s",
            "destination",
        ),
        ("X-Matrix origin=a,ORIGIN=b,key=k,sig=s", "more than once"),
        (
            "X-Matrix origin=a,foo=1,FOO=2,key=k,sig=s",
            "more than once",
        ),
        ("X-Matrix origin=a,key=k,sig=\"s", "not terminated"),
        ("X-Matrix origin=a key=k,sig=s", "expected ','"),
        ("X-Matrix origin=,key=k,sig=s", "no value"),
        ("X-Matrix origin,key=k,sig=s", "no '='"),
        ("X-Matrix =a", "parameter name"),
        ("X-Matrix origin=a,key=k,sig=\"a\0b\"", "control character"),
    ];
    for (header, needle) in cases {
        let e = x_matrix::parse_header(header).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::Unauthorized, "{header}");
        assert!(e.message().contains(needle), "{header}: {e}");
    }
}

#[test]
fn hostile_headers_fail_cleanly() {
    let ten_mb = "a".repeat(10 * 1024 * 1024);
    let many_params: String = (0..10_000).map(|i| format!("p{i}=v,")).collect();
    let many_same: String = "p=v,".repeat(10_000);
    let many_commas = ",".repeat(1_000_000);
    let headers = [
        String::new(),
        " ".into(),
        "X-Matrix".into(),
        "X-Matrix ".into(),
        "X-Matrix\0origin=a,key=k,sig=s".into(),
        "X-Matrix origin=a\0,key=k,sig=s".into(),
        "X-Matrix origin=\"a\\".into(),
        "X-Matrix origin=\"".into(),
        "X-Matrix origin=\"\\\"".into(),
        "X-Matrix origin=[::1,key=k,sig=s".into(),
        "X-Matrix origin=\"[zz::1]\",key=k,sig=s".into(),
        "X-Matrix origin=a:99999999999999999999,key=k,sig=s".into(),
        "X-Matrix origin=\"ä\",key=k,sig=s".into(),
        "X-Matrix origin=ä,key=k,sig=s".into(),
        "X-Mätrix origin=a,key=k,sig=s".into(),
        "X-Matrix abc==".into(),
        format!("X-Matrix origin={ten_mb},key=k,sig=s"),
        format!("X-Matrix origin=a,key=k,sig=\"{ten_mb}"),
        format!("X-Matrix {ten_mb}"),
        format!("X-Matrix {many_params}"),
        format!("X-Matrix origin=a,key=k,sig=s,{many_same}"),
        format!("X-Matrix {many_commas}"),
        format!("X-Matrix {}", "\\".repeat(1_000_000)),
        format!("X-Matrix x=\"{}\"", "\\\"".repeat(1_000_000)),
    ];
    let keys = [spec_key().verify_key()];
    for header in &headers {
        let shown = &header[..header.len().min(40)];
        let e = x_matrix::parse_header(header).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::Unauthorized, "{shown:?}");
        assert!(
            e.message().len() < 400,
            "{shown:?}: {} bytes",
            e.message().len()
        );
        x_matrix::verify_request(header, "GET", "/", "domain", None, &keys).unwrap_err();
    }
    // Many unknown parameters around the real ones are fine, and still linear.
    let header = format!("X-Matrix {many_params}origin=a,key=k,sig=s");
    let parsed = x_matrix::parse_header(&header).unwrap();
    assert_eq!(parsed.origin.as_str(), "a");
}

#[test]
fn to_header_round_trip_and_escaping() {
    let x = XMatrix {
        origin: "a.example:8448".parse().unwrap(),
        destination: None,
        key_id: "we\"ird\\".into(),
        signature: "sig".into(),
    };
    let header = x.to_header();
    assert_eq!(
        header,
        r#"X-Matrix origin="a.example:8448",key="we\"ird\\",sig="sig""#
    );
    assert_eq!(x_matrix::parse_header(&header).unwrap(), x);
    // Signed with a body parsed from bytes, verified from a Value: same signing bytes.
    let key = spec_key();
    let content = json::parse(br#"{"b":[1,"\u00e9"],"a":{}}"#).unwrap();
    let header = x_matrix::sign_request(
        "POST",
        "/_matrix/x?y=%20",
        "domain",
        "dest",
        Some(&content),
        &key,
    );
    x_matrix::verify_request(
        &header,
        "POST",
        "/_matrix/x?y=%20",
        "dest",
        Some(&content),
        &[key.verify_key()],
    )
    .unwrap();
}
