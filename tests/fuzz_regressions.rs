//! Inputs the fuzz targets (`fuzz/`, see `docs/fuzzing.md`) found failing, replayed through the
//! same invariant checks under `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

use servership::subscription::knock::parse_knock;

/// A target's invariant check.
type Check = fn(&[u8]);

/// Every file of the small minimised corpora committed under `fuzz/corpus-min/<target>/` (see
/// docs/fuzzing.md), through the target's checks: what the fuzzer once reached stays covered.
#[test]
fn committed_minimised_corpora_replay() {
    let targets: [(&str, Check); 13] = [
        ("identifiers", checks::identifiers),
        ("knock_edu", checks::knock_edu),
        ("json_parse", checks::json_parse),
        ("event_id", checks::event_id),
        ("x_matrix_header", checks::x_matrix_header),
        ("invite_check", checks::invite_check),
        ("audit_response", checks::audit_response),
        ("discover_common_rooms", checks::discover_common_rooms),
        ("s2s_negotiation", checks::s2s_negotiation),
        ("membership_decisions", checks::membership_decisions),
        ("invite_promotion", checks::invite_promotion),
        ("spec_invite", checks::spec_invite),
        ("members_rules", checks::members_rules),
    ];
    for (target, check) in targets {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus-min")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{target}: only {} files", files.len());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            check(&data);
        }
    }
}

/// `knock_edu`, 60 s run: `subscription::knock` used its own server-name check and accepted
/// `!ab:333`, a room ID `ids::RoomId` refuses (a host of digits must be a dotted-quad IPv4).
#[test]
fn knock_room_id_agrees_with_ids_room_id() {
    let input = br#"{"room_id":"!ab:333"}"#;
    assert!(parse_knock(input).is_err());
    checks::knock_edu(input);
    for room in [
        "!a:[:]",
        "!a:1.2.3",
        "!a:-x-",
        "!a:b..c",
        "!a:999.1.1.1",
        "!a:b.example",
    ] {
        let edu = format!(r#"{{"room_id":"{room}"}}"#);
        assert_eq!(
            parse_knock(edu.as_bytes()).is_ok(),
            servership::ids::RoomId::parse(room).is_ok(),
            "{room}"
        );
        checks::knock_edu(edu.as_bytes());
    }
    assert!(parse_knock(br#"{"room_id":"!ab:example.org:8448"}"#).is_ok());
}

#[test]
fn unknown_room_versions_are_not_echoed_whole() {
    let long = "x".repeat(100_000);
    let e = servership::room_version::RoomVersion::from_id(&long).unwrap_err();
    assert_eq!(e.errcode(), servership::ErrCode::IncompatibleRoomVersion);
    assert!(e.message().len() < 100, "{}", e.message());
    assert_eq!(e.room_version().map(str::len), Some(32));
}

/// `s2s_negotiation` (found by its invariants under `cargo test` before any fuzzing): a
/// responder answered an opening whose `event_id` was `":$p1"`, and its reply's `m.reference`
/// pointed at that, which `referenced_event` (so the peer) does not read as a reference: the
/// initiator refused every answer and the negotiation could only time out. `respond` and
/// `handle` now refuse an `event_id` that is not `$…` of at most 255 bytes (as `sent` did).
#[test]
fn negotiation_refuses_events_whose_id_is_not_an_event_id() {
    use servership::json::Object;
    use servership::s2s::negotiation::{Incoming, Negotiation, NegotiationPolicy, VersionOffer};
    let policy = NegotiationPolicy {
        versions: vec![VersionOffer::new("10", 5), VersionOffer::new("11", 2)],
        ..NegotiationPolicy::default()
    };
    let content = servership::json::parse_object(
        br#"{"versions":[{"version":"10","rating":1},{"version":"9","rating":4}]}"#,
    )
    .unwrap();
    let opening = |id: &str| Incoming {
        event_id: id.to_owned(),
        event_type: "m.s2s.upgrade.proposal".to_owned(),
        sender: "@p:b.example".to_owned(),
        content: content.clone(),
    };
    for bad in [":$p1", "", "p1", &format!("${}", "x".repeat(255))] {
        let e = Negotiation::respond(&policy, "a.example", &opening(bad)).unwrap_err();
        assert_eq!(e.errcode(), servership::ErrCode::InvalidParam, "{bad:?}");
    }
    let (mut responder, step) =
        Negotiation::respond(&policy, "a.example", &opening("$p1")).unwrap();
    assert!(step.send.is_some());
    responder.sent("$r1").unwrap();
    let mut accept = Object::new();
    accept.insert("version".into(), "10".into());
    let mut rel = Object::new();
    rel.insert("rel_type".into(), "m.reference".into());
    rel.insert("event_id".into(), "$r1".into());
    accept.insert("m.relates_to".into(), servership::Value::Object(rel));
    let before = format!("{responder:?}");
    let e = responder
        .handle(&Incoming {
            event_id: "no-sigil".to_owned(),
            event_type: "m.s2s.upgrade.accept".to_owned(),
            sender: "@p:b.example".to_owned(),
            content: accept,
        })
        .unwrap_err();
    assert_eq!(e.errcode(), servership::ErrCode::InvalidParam);
    assert_eq!(format!("{responder:?}"), before);
}

/// `s2s_negotiation`, first 600 s run (after 143 k inputs): an initiator whose own server name
/// is the higher (so a peer's simultaneous opening wins) reset its give-up counter on a peer's
/// *malformed* opening before refusing it, so a refused event changed the machine, and a peer
/// sending one broken proposal every few ticks kept the negotiation from ever timing out. The
/// counter is now reset only when the opening is answered.
#[test]
fn a_malformed_winning_opening_does_not_keep_a_negotiation_alive() {
    use servership::s2s::negotiation::{
        FailError, GIVE_UP_AFTER_TICKS, Incoming, Negotiation, NegotiationPolicy, Outcome,
        VersionOffer,
    };
    // The fuzzer's input, shortened by hand: c.example proposes 10*5, 11*2; a tick; then
    // b.example (lower, so its opening would win) sends a proposal whose versions is not a list.
    checks::s2s_negotiation(b"\x08\x02\x04\x0f\x07\x0c\x00\nt\nP{\"versions\":1}");
    checks::s2s_negotiation(&[
        0x08, 0x02, 0x04, 0x11, 0x07, 0x18, 0x00, 0x0c, 0, 0, 0, 0, 0, b'\n', b'P', b'{', b'"',
        b'v', b'e', b'r', b's', b'i', b'o', b'n', b's', b'"', b':', b'[', b'{', b'"', b'\n', b't',
    ]);

    let policy = NegotiationPolicy {
        versions: vec![VersionOffer::new("10", 5)],
        ..NegotiationPolicy::default()
    };
    let (mut m, _) = Negotiation::initiate(&policy, "c.example", "b.example").unwrap();
    m.sent("$c1").unwrap();
    let broken = |n: u32| Incoming {
        event_id: format!("$b{n}"),
        event_type: "m.s2s.upgrade.proposal".to_owned(),
        sender: "@p:b.example".to_owned(),
        content: servership::json::parse_object(br#"{"versions":1}"#).unwrap(),
    };
    for n in 0..GIVE_UP_AFTER_TICKS {
        assert_eq!(m.tick().outcome, Outcome::InProgress);
        let before = format!("{m:?}");
        assert!(m.handle(&broken(n)).is_err());
        assert_eq!(
            format!("{m:?}"),
            before,
            "a refused opening changed the machine"
        );
    }
    assert_eq!(
        m.tick().outcome,
        Outcome::Failed(FailError::Other("timed out".to_owned()))
    );
}

/// `membership_decisions`, with seeds holding long hostile state (before its first run could grow
/// inputs that long): decision details quoted whole what room state or an event carried — a
/// 5,000-character join rule (`check_pseudouser_join`, `check_server_user_membership`'s knock
/// path), a policy rule's `reason` (`decide_knock`), an `m.server.subscription` state key and
/// sender (`check_subscription_event`) — although hostile state may be 64 KiB and
/// `Glob::shown` already cut patterns for the same reason. They are now cut to 100 characters.
#[test]
fn decision_details_quote_hostile_state_shortened() {
    use servership::json::Object;
    use servership::pseudouser::check_pseudouser_join;
    use servership::room_state::RoomState;
    use servership::s2s::{ServerUserPolicy, check_server_user_membership};
    use servership::subscription::check_subscription_event;
    use servership::subscription::decision::{KnockMode, PolicyList, decide_knock};
    let long = "x".repeat(5000);
    let ev = |t: &str, key: &str, content: String| -> Object {
        servership::json::parse_object(
            format!(
                r#"{{"type":"{t}","state_key":"{key}","sender":"@a:fuzz.example","content":{content}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    };
    let create = ev(
        "m.room.create",
        "",
        r#"{"room_version":"11","type":"m.s2s"}"#.to_owned(),
    );
    let short = |d: &servership::decision::Decision| {
        assert!(
            d.detail.len() < 600,
            "{} bytes: {:.200}",
            d.detail.len(),
            d.detail
        );
        assert!(!d.detail.is_empty());
    };
    for rule in [format!(r#""{long}""#), format!(r#"{{"k":["{long}"]}}"#)] {
        let state = RoomState::from_events(&[
            create.clone(),
            ev(
                "m.room.join_rules",
                "",
                format!(r#"{{"join_rule":{rule}}}"#),
            ),
        ])
        .unwrap();
        short(&check_pseudouser_join(&state, "@:b.example"));
        for membership in ["join", "knock"] {
            for policy in [ServerUserPolicy::S2sOnly, ServerUserPolicy::Either] {
                short(&check_server_user_membership(
                    &state,
                    "@:b.example",
                    membership,
                    policy,
                ));
            }
        }
    }
    let state = RoomState::from_events(&[
        create,
        ev(
            "m.policy.rule.server",
            "r",
            format!(r#"{{"entity":"*.evil.example","recommendation":"m.ban","reason":"{long}"}}"#),
        ),
    ])
    .unwrap();
    let knock = decide_knock(
        "!r:fuzz.example",
        "x.evil.example",
        Some(&state),
        &PolicyList::from_state(&state),
        None,
        KnockMode::Moderator,
    );
    short(&knock.decision);
    short(&check_subscription_event(
        &state,
        &ev("m.server.subscription", &long, "{}".to_owned()),
    ));
    let mut wrong = ev("m.server.subscription", "b.example", "{}".to_owned());
    wrong.insert("sender".into(), format!("@{long}:c.example").into());
    short(&check_subscription_event(&state, &wrong));

    let input = format!(
        "@:b.example\n{}\n{}",
        r#"{"type":"m.room.create","state_key":"","content":{"room_version":"11","type":"m.s2s"}}"#,
        format_args!(
            r#"{{"type":"m.room.join_rules","state_key":"","content":{{"join_rule":"{long}"}}}}"#
        )
    );
    checks::membership_decisions(input.as_bytes());
}

/// `identifiers`, 600 s run for issues 11 and 12 (after 200,033 inputs): `ids::quote` cut a
/// hostile value to 80 characters *before* escaping, so 80 DEL characters became 480 bytes
/// (`\u{7f}` each); a user ID quoted whole, then its server name, then its IPv6 literal, gave a
/// 1,501-byte message. Now the cut is after escaping.
#[test]
fn identifier_errors_quote_escaped_values_shortened() {
    let mut input = b":[".to_vec();
    input.extend([0x7f; 97]);
    input.extend(b"]:[]");
    checks::identifiers(&input);
    let user = format!("@:[{}]:[]", "\u{7f}".repeat(97));
    let error = servership::ids::UserId::parse(&user).unwrap_err();
    assert!(error.message().len() < 600, "{}", error.message().len());
    assert!(error.message().contains(r"\u{7f}"), "{}", error.message());
}
