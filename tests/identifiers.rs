//! Identifier grammar: every case of `tests/vectors/identifiers.json`, the server pseudouser,
//! percent-encoding, and hostile input (which must fail cleanly and quickly, never panic).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use servership::ErrCode;
use servership::ids::{self, EventId, EventIdFormat, RoomId, RoomIdFormat, ServerName, UserId};
use servership::json::Value;

fn cases() -> Vec<Value> {
    common::vectors("identifiers.json")
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn every_identifier_vector() {
    let mut seen = 0;
    for case in cases() {
        let kind = common::s(&case, "kind");
        let value = common::s(&case, "value");
        let valid = case.get("valid").and_then(Value::as_bool).unwrap();
        let outcome: Result<(), servership::Error> = match kind {
            "server_name" => ServerName::parse(value).map(|s| assert_eq!(s.as_str(), value)),
            "user_id" => UserId::parse(value).map(|u| {
                let strict = case.get("strict").and_then(Value::as_bool).unwrap();
                assert_eq!(u.is_strict(), strict, "strict for {value:?}");
                assert_eq!(u.as_str(), value);
                assert!(!u.is_server_pseudouser());
            }),
            "room_id" => RoomId::parse(value).map(|r| {
                let expected = match common::s(&case, "format") {
                    "legacy" => RoomIdFormat::Legacy,
                    "hash" => RoomIdFormat::Hash,
                    other => panic!("unknown format {other}"),
                };
                assert_eq!(r.format(), expected, "format of {value:?}");
                assert_eq!(r.server_name().is_some(), expected == RoomIdFormat::Legacy);
            }),
            "event_id" => EventId::parse(value).map(|e| {
                assert_eq!(e.format().as_str(), common::s(&case, "format"), "{value:?}");
            }),
            other => panic!("unknown kind {other}"),
        };
        match (valid, outcome) {
            (true, Ok(())) => {}
            (true, Err(e)) => panic!("{kind} {value:?} must be valid, got {e}"),
            (false, Ok(())) => panic!("{kind} {value:?} must be invalid"),
            (false, Err(e)) => {
                assert_eq!(e.errcode(), ErrCode::InvalidParam);
                assert_eq!(e.status(), 400);
            }
        }
        seen += 1;
    }
    assert!(seen >= 45, "only {seen} vectors");
}

#[test]
fn server_name_accessors() {
    let s = ServerName::parse("matrix.org:8888").unwrap();
    assert_eq!((s.host(), s.port()), ("matrix.org", Some(8888)));
    assert_eq!(s.ip(), None);
    let s = ServerName::parse("[1234:5678::abcd]:5678").unwrap();
    assert_eq!((s.host(), s.port()), ("[1234:5678::abcd]", Some(5678)));
    assert_eq!(s.ip(), Some("1234:5678::abcd".parse().unwrap()));
    let s = ServerName::parse("1.2.3.4").unwrap();
    assert_eq!((s.host(), s.port()), ("1.2.3.4", None));
    assert_eq!(s.ip(), Some("1.2.3.4".parse().unwrap()));
    let s = ServerName::parse("[::ffff:1.2.3.4]").unwrap();
    assert_eq!((s.host(), s.port()), ("[::ffff:1.2.3.4]", None));
}

#[test]
fn server_name_decisions() {
    for ok in [
        "a",
        "localhost",
        "x-y.example",
        "-weird-.example", // Synapse's host pattern allows edge hyphens; so do we
        "01.2.3.4",        // 1*3DIGIT allows leading zeros
        "255.255.255.255:65535",
        "example.org:1",
        "example.org:08448",
        "[::]",
    ] {
        ServerName::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for bad in [
        "a..b",
        ".example.org",
        "example.org.",
        "999.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4:0",
        "example.org:65536",
        "example.org:99999",
        "example.org:123456",
        "example.org:-1",
        "example.org:+80",
        "[::1",
        "[]",
        "[::1]:",
        "[::1]x",
        "[1:2:3:4:5:6:7:8:9]",
        "[fe80::1%eth0]",
        "[::g]",
        "[1.2.3.4]",
        "::1",
        "exa mple.org",
        "exämple.org",
        "example.org/",
        "example.org:80:80",
        "EXAMPLE.ORG:",
    ] {
        let e = ServerName::parse(bad).expect_err(bad);
        assert_eq!(e.errcode(), ErrCode::InvalidParam, "{bad:?}");
    }
    // Case-sensitive: two different names.
    assert_ne!(
        ServerName::parse("matrix.org").unwrap(),
        ServerName::parse("MATRIX.ORG").unwrap()
    );
}

#[test]
fn server_name_length_limit() {
    let label = "a".repeat(63);
    let name253 = format!("{label}.{label}.{label}.{}", "b".repeat(61));
    assert_eq!(name253.len(), 253);
    ServerName::parse(&name253).unwrap();
    let e = ServerName::parse(&format!("{name253}c")).unwrap_err();
    assert!(e.message().contains("253"), "{e}");
    // The pseudouser of the longest name still fits the identifier limit.
    let pseudo = ids::server_pseudouser(&ServerName::parse(&name253).unwrap());
    assert_eq!(pseudo.as_str().len(), 255);
    assert_eq!(UserId::parse(pseudo.as_str()).unwrap(), pseudo);
}

#[test]
fn error_messages_say_what_is_wrong() {
    let e = UserId::parse("@a:b:c:d").unwrap_err();
    assert!(
        e.message().starts_with(
            r#""@a:b:c:d" is not a valid user ID: server name "b:c:d" has an invalid port"#
        ),
        "{}",
        e.message()
    );
    let e = UserId::parse("carl:example.com").unwrap_err();
    assert!(e.message().contains("must start with '@'"), "{e}");
    let e = UserId::parse("@carl").unwrap_err();
    assert!(e.message().contains("no ':'"), "{e}");
    let e = ServerName::parse("999.1.1.1").unwrap_err();
    assert!(e.message().contains("IPv4"), "{e}");
    let e = ServerName::parse("a..b").unwrap_err();
    assert!(e.message().contains("empty label"), "{e}");
    let e = RoomId::parse("!wronglength").unwrap_err();
    assert!(e.message().contains("43"), "{e}");
    let e = EventId::parse("$a\0b:example.org").unwrap_err();
    assert!(e.message().contains("NUL"), "{e}");
    assert!(e.message().contains(r"\0"), "NUL shown escaped: {e}");
}

#[test]
fn user_id_parts() {
    let u = UserId::parse("@carl:example.com:5000").unwrap();
    assert_eq!(u.localpart(), "carl");
    assert_eq!(u.server_name().as_str(), "example.com:5000");
    assert_eq!(u.server_name().port(), Some(5000));
    assert!(u.is_strict());
    let u = UserId::parse("@τ:example.com").unwrap();
    assert_eq!(u.localpart(), "τ");
    assert!(!u.is_strict());
    let u = UserId::parse("@a/b=c+d_e.f-9:[::1]:8448").unwrap();
    assert_eq!(u.localpart(), "a/b=c+d_e.f-9");
    assert_eq!(u.server_name().host(), "[::1]");
    assert!(u.is_strict());
}

#[test]
fn user_id_length_limit() {
    let server = "example.org";
    let localpart = "a".repeat(255 - 2 - server.len());
    let id = format!("@{localpart}:{server}");
    assert_eq!(id.len(), 255);
    UserId::parse(&id).unwrap();
    let e = UserId::parse(&format!("@a{localpart}:{server}")).unwrap_err();
    assert!(e.message().contains("256 bytes"), "{e}");
}

#[test]
fn server_pseudouser() {
    let server = ServerName::parse("example.org:8448").unwrap();
    let pseudo = ids::server_pseudouser(&server);
    assert_eq!(pseudo.as_str(), "@:example.org:8448");
    assert!(pseudo.is_server_pseudouser());
    assert_eq!(pseudo.localpart(), "");
    assert!(!pseudo.is_strict());
    assert_eq!(pseudo.server_name(), &server);

    let parsed = UserId::parse("@:example.org:8448").unwrap();
    assert_eq!(parsed, pseudo);
    assert!(parsed.is_server_pseudouser());

    assert!(ids::is_server_pseudouser("@:example.org"));
    assert!(ids::is_server_pseudouser("@:[::1]:8448"));
    for not in [
        "@alice:example.org",
        "@:",
        "@",
        "@::8448",
        "@:example.org:0",
        "@:a..b",
        ":example.org",
        "@ :example.org",
        "@\0:example.org",
        "@:example.org\0",
        "",
    ] {
        assert!(!ids::is_server_pseudouser(not), "{not:?}");
    }
    assert!(
        !UserId::parse("@alice:example.org")
            .unwrap()
            .is_server_pseudouser()
    );

    UserId::parse_not_pseudouser("@alice:example.org").unwrap();
    let e = UserId::parse_not_pseudouser("@:example.org").unwrap_err();
    assert_eq!(e.errcode(), ErrCode::InvalidParam);
    assert!(e.message().contains("pseudouser"), "{e}");
}

#[test]
fn room_and_event_id_parts() {
    let r = RoomId::parse("!foo:example.com:8448").unwrap();
    assert_eq!(r.opaque_id(), "foo");
    assert_eq!(r.server_name().unwrap().as_str(), "example.com:8448");
    assert_eq!(r.server_name_str(), Some("example.com:8448"));
    let r = RoomId::parse("!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM").unwrap();
    assert_eq!(r.server_name(), None);
    assert_eq!(r.opaque_id(), "31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM");

    let e = EventId::parse("$31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM").unwrap();
    assert_eq!(e.format(), EventIdFormat::V4);
    assert!(e.format().fits_v4() && !e.format().fits_v3());
    assert_eq!(
        RoomId::from_create_event_id(&e).unwrap().as_str(),
        "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"
    );
    let v1 = EventId::parse("$abc:example.org").unwrap();
    assert_eq!(v1.format(), EventIdFormat::V1);
    assert_eq!(v1.server_name_str(), Some("example.org"));
    assert!(RoomId::from_create_event_id(&v1).is_err());

    for bad in [
        "!:example.org",
        "$:example.org",
        "!abc:",
        "$abc",
        "$31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3og+M", // mixes both alphabets
        "$31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM=", // padding
        "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogL",  // 42
    ] {
        let e = RoomId::parse(bad)
            .map(|_| ())
            .or_else(|_| EventId::parse(bad).map(|_| ()));
        assert!(e.is_err(), "{bad:?}");
    }
}

#[test]
fn traits_behave_like_strings() {
    let a: UserId = "@a:example.org".parse().unwrap();
    let b = UserId::try_from("@b:example.org").unwrap();
    assert!(a < b);
    assert_eq!(a.to_string(), "@a:example.org");
    assert_eq!(format!("{a:?}"), r#"UserId("@a:example.org")"#);
    assert_eq!(a, "@a:example.org");
    let set: HashSet<UserId> = [a.clone(), b.clone(), a.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert!(set.contains("@b:example.org")); // Borrow<str>
    let r: &str = a.as_ref();
    assert_eq!(r, "@a:example.org");
    assert_eq!(String::from(b), "@b:example.org");
    assert_eq!(Value::from(&a), Value::from("@a:example.org"));
}

#[test]
fn percent_decoding() {
    assert_eq!(
        ids::percent_decode_path_segment("%21abc%3Aexample.org").unwrap(),
        "!abc:example.org"
    );
    assert_eq!(
        ids::percent_decode_path_segment("%24a%2fb%2Bc+d").unwrap(),
        "$a/b+c+d"
    );
    assert_eq!(ids::percent_decode_path_segment("%CF%84").unwrap(), "τ");
    assert_eq!(ids::percent_decode_path_segment("τ").unwrap(), "τ");
    assert_eq!(ids::percent_decode_path_segment("").unwrap(), "");
    for bad in [
        "%",
        "%2",
        "%2G",
        "%G2",
        "abc%",
        "%00",
        "a\0b",
        "%FF",
        "%C3%28",
        "%ED%A0%80",
    ] {
        let e = ids::percent_decode_path_segment(bad).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::InvalidParam, "{bad:?}");
    }
}

#[test]
fn percent_encoding_round_trips() {
    assert_eq!(
        ids::percent_encode_path_segment("!abc:example.org"),
        "%21abc%3Aexample.org"
    );
    assert_eq!(ids::percent_encode_path_segment("a-b.c_d~e"), "a-b.c_d~e");
    assert_eq!(
        ids::percent_encode_path_segment("$a/b+c d"),
        "%24a%2Fb%2Bc%20d"
    );
    assert_eq!(ids::percent_encode_path_segment("τ"), "%CF%84");
    for case in cases() {
        let value = common::s(&case, "value");
        if value.contains('\0') {
            continue;
        }
        let encoded = ids::percent_encode_path_segment(value);
        assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(ids::percent_decode_path_segment(&encoded).unwrap(), value);
    }
}

#[test]
fn hostile_input_fails_cleanly() {
    let huge = "a".repeat(10 * 1024 * 1024);
    let inputs = [
        String::new(),
        "@".into(),
        "!".into(),
        "$".into(),
        "@:".into(),
        "!:".into(),
        "$:".into(),
        ":".into(),
        "\0".into(),
        "@\0:example.org".into(),
        "@a:example.org\0".into(),
        "@a:example.org:99999999999999999999".into(),
        "@a:example.org:".into(),
        "@a:[::1".into(),
        "@a:[".into(),
        "@a:]".into(),
        "@a:[[::1]]".into(),
        "@a:[:::::::::::::]".into(),
        format!("@a:[{}]", "1:".repeat(200)),
        "@a:ex\u{e4}mple.org".into(),
        "@a:example.org\u{202e}".into(),
        "@a:\u{1F4A9}".into(),
        format!("@{huge}:example.org"),
        format!("@a:{huge}"),
        format!("!{huge}"),
        format!("${huge}"),
        format!("!a:{}", ".".repeat(200)),
        format!("@a:{}", "1.".repeat(100)),
        huge.clone(),
    ];
    for input in &inputs {
        for sigil_input in [
            input.clone(),
            format!("@{input}"),
            format!("!{input}"),
            format!("${input}"),
        ] {
            let results = [
                ServerName::parse(&sigil_input).is_ok(),
                UserId::parse(&sigil_input).is_ok(),
                RoomId::parse(&sigil_input).is_ok(),
                EventId::parse(&sigil_input).is_ok(),
                ids::is_server_pseudouser(&sigil_input),
            ];
            if sigil_input.len() > 255 || sigil_input.contains('\0') {
                assert_eq!(
                    results,
                    [false; 5],
                    "{}",
                    &sigil_input[..sigil_input.len().min(40)]
                );
            }
        }
    }
    // Messages quote at most a short prefix of huge values.
    let e = UserId::parse(&format!("@{huge}:example.org")).unwrap_err();
    assert!(e.message().len() < 300, "{} bytes", e.message().len());
    let e = ids::percent_decode_path_segment(&format!("{huge}%")).unwrap_err();
    assert!(e.message().len() < 300, "{} bytes", e.message().len());
    // Linear time on a 10 MB segment.
    assert_eq!(
        ids::percent_decode_path_segment(&"%41".repeat(3 * 1024 * 1024))
            .unwrap()
            .len(),
        3 * 1024 * 1024
    );
}
