//! MSC3348: s2s room type, server-user policy, initial state, upgrade negotiation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;

use servership::decision::ReasonCode;
use servership::json::{self, Object, Value};
use servership::room_state::RoomState;
use servership::s2s::negotiation::{
    FailError, Incoming, Negotiation, NegotiationPolicy, Outcome, Outgoing, Step, VersionOffer,
    choose_version, compare_versions, parse_versions, referenced_event,
};
use servership::s2s::{ServerUserPolicy, check_server_user_membership, initial_state, is_s2s_room};

fn ev(t: &str, key: &str, content: &str) -> Object {
    let mut o = Object::new();
    o.insert("type".into(), t.into());
    o.insert("state_key".into(), key.into());
    o.insert("content".into(), json::parse(content.as_bytes()).unwrap());
    o
}

fn room(room_type: Option<&str>, join_rule: &str, extra: Vec<Object>) -> RoomState {
    let create = match room_type {
        Some(t) => format!(r#"{{"room_version":"11","type":"{t}"}}"#),
        None => r#"{"room_version":"11"}"#.to_owned(),
    };
    let mut events = vec![
        ev("m.room.create", "", &create),
        ev(
            "m.room.join_rules",
            "",
            &format!(r#"{{"join_rule":"{join_rule}"}}"#),
        ),
    ];
    events.extend(extra);
    RoomState::from_events(&events).unwrap()
}

#[test]
fn recognises_the_room_type() {
    assert!(is_s2s_room(&room(Some("m.s2s"), "invite", vec![])));
    assert!(is_s2s_room(&room(
        Some("support.feline.s2s"),
        "invite",
        vec![]
    )));
    assert!(!is_s2s_room(&room(Some("m.space"), "invite", vec![])));
    assert!(!is_s2s_room(&room(None, "invite", vec![])));
    assert!(!is_s2s_room(&RoomState::new()));
}

#[test]
fn server_user_in_a_normal_room_under_each_policy() {
    let plain = room(None, "public", vec![]);
    let peekable = room(None, "peekable", vec![]);
    let s2s = room(Some("m.s2s"), "invite", vec![]);
    let u = "@:remote.example";
    use ServerUserPolicy::*;
    // s2s_only: ill-formed outside s2s rooms, even peekable ones.
    assert_eq!(
        check_server_user_membership(&plain, u, "join", S2sOnly).reason,
        ReasonCode::NotS2sRoom
    );
    assert_eq!(
        check_server_user_membership(&peekable, u, "join", S2sOnly).reason,
        ReasonCode::NotS2sRoom
    );
    assert!(check_server_user_membership(&s2s, u, "join", S2sOnly).is_allowed());
    // peeking: MSC1777 rules only.
    assert_eq!(
        check_server_user_membership(&plain, u, "join", Peeking).reason,
        ReasonCode::NoUserOfServer
    );
    assert!(check_server_user_membership(&peekable, u, "join", Peeking).is_allowed());
    assert!(!check_server_user_membership(&s2s, u, "join", Peeking).is_allowed());
    // either (default).
    assert_eq!(ServerUserPolicy::default(), Either);
    assert!(!check_server_user_membership(&plain, u, "join", Either).is_allowed());
    assert_eq!(
        check_server_user_membership(&peekable, u, "join", Either).reason,
        ReasonCode::PeekableRoom
    );
    assert_eq!(
        check_server_user_membership(&s2s, u, "join", Either).reason,
        ReasonCode::S2sRoom
    );
    let invited = room(
        None,
        "public",
        vec![ev(
            "m.room.member",
            "@bob:remote.example",
            r#"{"membership":"invite"}"#,
        )],
    );
    assert!(check_server_user_membership(&invited, u, "join", Either).is_allowed());
    // Leaving is always allowed; non-server users are refused by this call.
    for p in [S2sOnly, Peeking, Either] {
        assert_eq!(
            check_server_user_membership(&plain, u, "leave", p).reason,
            ReasonCode::LeavingAlwaysAllowed
        );
        assert_eq!(
            check_server_user_membership(&plain, "@bob:remote.example", "join", p).reason,
            ReasonCode::NotAPseudouser
        );
    }
    assert_eq!(ServerUserPolicy::parse("s2s_only").unwrap(), S2sOnly);
    assert_eq!(
        ServerUserPolicy::parse("either").unwrap().as_str(),
        "either"
    );
    assert!(ServerUserPolicy::parse("S2S_ONLY").is_err());
}

#[test]
fn initial_state_for_a_room_with_a_peer() {
    let events = initial_state("a.example", "b.example", "11", false).unwrap();
    let state = RoomState::from_events(&events).unwrap();
    assert!(is_s2s_room(&state));
    assert_eq!(state.room_type(), Some("m.s2s"));
    assert_eq!(state.membership("@:a.example"), Some("join"));
    assert_eq!(state.membership("@:b.example"), Some("invite"));
    assert_eq!(state.join_rule(), Some("invite"));
    let pl = state.content("m.room.power_levels", "").unwrap();
    let users = pl.get("users").unwrap().as_object().unwrap();
    assert_eq!(users.get("@:b.example"), Some(&Value::Int(100)));
    assert_eq!(
        events[0].get("sender").and_then(Value::as_str),
        Some("@:a.example")
    );
    // The peer's pseudouser may join under the strictest policy.
    assert!(
        check_server_user_membership(&state, "@:b.example", "join", ServerUserPolicy::S2sOnly)
            .is_allowed()
    );

    let v12 = initial_state("a.example", "b.example", "12", true).unwrap();
    let state = RoomState::from_events(&v12).unwrap();
    assert_eq!(state.room_type(), Some("support.feline.s2s"));
    let create = state.content("m.room.create", "").unwrap();
    assert_eq!(
        create.get("additional_creators"),
        Some(&Value::Array(vec!["@:b.example".into()]))
    );
    let users = state
        .content("m.room.power_levels", "")
        .unwrap()
        .get("users")
        .unwrap()
        .as_object()
        .unwrap();
    assert!(
        users.is_empty(),
        "v12 creators must not appear in power levels"
    );
    assert!(initial_state("a.example", "a.example", "11", false).is_err());
    assert!(initial_state("a.example", "bad peer", "11", false).is_err());
}

#[test]
fn version_order_and_choice_rule() {
    assert_eq!(compare_versions("9", "10"), Ordering::Less);
    assert_eq!(compare_versions("10", "10.1"), Ordering::Less);
    assert_eq!(compare_versions("org.example.1", "11"), Ordering::Less);
    assert_eq!(compare_versions("010", "10"), Ordering::Equal);
    assert_eq!(
        compare_versions("99999999999999999999999", "1"),
        Ordering::Greater
    );
    let v = |list: &[(&str, i64)]| {
        list.iter()
            .map(|(s, r)| VersionOffer::new(s, *r))
            .collect::<Vec<_>>()
    };
    // Highest minimum wins over a higher single rating.
    assert_eq!(
        choose_version(&v(&[("10", 10), ("11", 5)]), &v(&[("10", 1), ("11", 5)])),
        Some("11".into())
    );
    // Equal minimum: highest sum.
    assert_eq!(
        choose_version(&v(&[("10", 3), ("11", 3)]), &v(&[("10", 9), ("11", 4)])),
        Some("10".into())
    );
    // Equal minimum and sum: newest.
    assert_eq!(
        choose_version(&v(&[("9", 4), ("10", 4)]), &v(&[("9", 4), ("10", 4)])),
        Some("10".into())
    );
    assert_eq!(choose_version(&v(&[("9", 4)]), &v(&[("10", 4)])), None);
    // Symmetric.
    let (a, b) = (
        v(&[("6", 1), ("10", 7), ("11", 3)]),
        v(&[("10", 2), ("11", 9), ("12", 10)]),
    );
    assert_eq!(choose_version(&a, &b), choose_version(&b, &a));
}

fn policy(list: &[(&str, i64)]) -> NegotiationPolicy {
    NegotiationPolicy {
        versions: list.iter().map(|(s, r)| VersionOffer::new(s, *r)).collect(),
        ..Default::default()
    }
}

fn incoming(id: &str, out: &Outgoing) -> Incoming {
    Incoming {
        event_id: id.to_owned(),
        event_type: out.event_type.clone(),
        content: out.content.clone(),
    }
}

/// Drives two machines against each other; returns both outcomes and the event types sent.
fn drive(a: &NegotiationPolicy, b: &NegotiationPolicy) -> (Outcome, Outcome, Vec<String>) {
    let (mut ma, first) = Negotiation::initiate(a).unwrap();
    ma.sent("$1");
    let mut sent = vec![first.event_type.clone()];
    let (mut mb, mut step): (Negotiation, Step) =
        Negotiation::respond(b, &incoming("$1", &first)).unwrap();
    let mut n = 1;
    let mut to_a = true;
    while let Some(out) = step.send.clone() {
        n += 1;
        let id = format!("${n}");
        sent.push(out.event_type.clone());
        assert_eq!(
            referenced_event(&out.content).map(str::to_owned),
            Some(format!("${}", n - 1)),
            "every answer points at the previous event"
        );
        let (sender, receiver) = if to_a {
            (&mut mb, &mut ma)
        } else {
            (&mut ma, &mut mb)
        };
        sender.sent(&id);
        if matches!(receiver.outcome(), Outcome::InProgress) {
            step = receiver.handle(&incoming(&id, &out)).unwrap();
        } else {
            break;
        }
        to_a = !to_a;
        assert!(n < 20, "negotiation does not terminate");
    }
    (ma.outcome(), mb.outcome(), sent)
}

#[test]
fn negotiations_agree() {
    // Different lists: proposal, reply, accept (initiator), ack, ack.
    let (a, b, sent) = drive(
        &policy(&[("10", 5), ("11", 9)]),
        &policy(&[("11", 2), ("12", 9), ("10", 9)]),
    );
    assert_eq!(a, Outcome::Agreed("10".into()));
    assert_eq!(a, b);
    assert_eq!(
        sent,
        [
            "m.s2s.upgrade.proposal",
            "m.s2s.upgrade.reply",
            "m.s2s.upgrade.accept",
            "m.s2s.upgrade.ack",
            "m.s2s.upgrade.ack"
        ]
    );
    // Same lists: the responder accepts straight away.
    let same = policy(&[("10", 5), ("11", 9)]);
    let (a, b, sent) = drive(&same, &same);
    assert_eq!(
        (a.clone(), b),
        (Outcome::Agreed("11".into()), Outcome::Agreed("11".into()))
    );
    assert_eq!(
        sent,
        [
            "m.s2s.upgrade.proposal",
            "m.s2s.upgrade.accept",
            "m.s2s.upgrade.ack",
            "m.s2s.upgrade.ack"
        ]
    );
}

#[test]
fn negotiation_with_no_common_version_fails_on_both_sides() {
    let (a, b, sent) = drive(&policy(&[("10", 5)]), &policy(&[("11", 5)]));
    assert_eq!(
        (a, b),
        (
            Outcome::Failed(FailError::NoMatch),
            Outcome::Failed(FailError::NoMatch)
        )
    );
    assert_eq!(sent.last().map(String::as_str), Some("m.s2s.upgrade.fail"));
}

#[test]
fn floor_and_most_preferred_only_refuse_downgrades() {
    // The only shared version is below the initiator's floor.
    let mut a = policy(&[("9", 10), ("11", 1)]);
    a.floor = Some("10".into());
    let (oa, ob, _) = drive(&a, &policy(&[("9", 10), ("8", 5)]));
    assert_eq!(
        (oa, ob),
        (
            Outcome::Failed(FailError::NoMatch),
            Outcome::Failed(FailError::NoMatch)
        )
    );
    // Without the floor they would have agreed on 9.
    a.floor = None;
    assert_eq!(
        drive(&a, &policy(&[("9", 10), ("8", 5)])).0,
        Outcome::Agreed("9".into())
    );
    // Most-preferred-only: the responder offers only its top version.
    let mut b = policy(&[("11", 10), ("10", 9)]);
    b.most_preferred_only = true;
    assert_eq!(
        drive(&policy(&[("10", 10), ("11", 1)]), &b).0,
        Outcome::Agreed("11".into())
    );
    assert_eq!(
        drive(&policy(&[("10", 10)]), &b).1,
        Outcome::Failed(FailError::NoMatch)
    );
}

#[test]
fn unknown_vendor_method_fails_with_invalid_method() {
    let (mut a, open) = Negotiation::initiate_vendor("org.example.fast");
    a.sent("$v");
    let mut b_policy = policy(&[("11", 1)]);
    let (_, step) = Negotiation::respond(&b_policy, &incoming("$v", &open)).unwrap();
    let fail = step.send.unwrap();
    assert_eq!(fail.event_type, "m.s2s.upgrade.fail");
    assert_eq!(fail.content.get("error"), Some(&"invalid method".into()));
    assert_eq!(step.outcome, Outcome::Failed(FailError::InvalidMethod));
    assert_eq!(
        a.handle(&incoming("$w", &fail)).unwrap().outcome,
        Outcome::Failed(FailError::InvalidMethod)
    );
    // A known method is handed over.
    b_policy.vendor_methods.push("org.example.fast".into());
    let (_, step) = Negotiation::respond(&b_policy, &incoming("$v", &open)).unwrap();
    assert_eq!(
        (step.send, step.outcome),
        (None, Outcome::Vendor("org.example.fast".into()))
    );
}

#[test]
fn forged_or_out_of_order_events_are_refused_without_state_change() {
    let (mut a, _) = Negotiation::initiate(&policy(&[("10", 1)])).unwrap();
    a.sent("$1");
    let mut c = Object::new();
    c.insert("version".into(), "10".into());
    // No relation.
    assert!(
        a.handle(&Incoming {
            event_id: "$2".into(),
            event_type: "m.s2s.upgrade.accept".into(),
            content: c.clone()
        })
        .is_err()
    );
    // Points elsewhere.
    let mut rel = Object::new();
    rel.insert("rel_type".into(), "m.reference".into());
    rel.insert("event_id".into(), "$other".into());
    c.insert("m.relates_to".into(), Value::Object(rel.clone()));
    assert!(
        a.handle(&Incoming {
            event_id: "$2".into(),
            event_type: "m.s2s.upgrade.accept".into(),
            content: c.clone()
        })
        .is_err()
    );
    // Right relation, but an ack before any accept: unexpected.
    rel.insert("event_id".into(), "$1".into());
    let mut ack = Object::new();
    ack.insert("m.relates_to".into(), Value::Object(rel.clone()));
    assert!(
        a.handle(&Incoming {
            event_id: "$2".into(),
            event_type: "m.s2s.upgrade.ack".into(),
            content: ack
        })
        .is_err()
    );
    // An accept for a version we never offered: fail with no match.
    c.insert("version".into(), "3".into());
    c.insert("m.relates_to".into(), Value::Object(rel));
    let step = a
        .handle(&Incoming {
            event_id: "$2".into(),
            event_type: "m.s2s.upgrade.accept".into(),
            content: c,
        })
        .unwrap();
    assert_eq!(step.outcome, Outcome::Failed(FailError::NoMatch));
}

#[test]
fn hostile_version_lists_are_errors() {
    let bad = [
        r#"{}"#,
        r#"{"versions":{}}"#,
        r#"{"versions":[]}"#,
        r#"{"versions":[1]}"#,
        r#"{"versions":[{"version":"10"}]}"#,
        r#"{"versions":[{"version":"10","rating":"high"}]}"#,
        r#"{"versions":[{"version":"UPPER","rating":1}]}"#,
        r#"{"versions":[{"version":"","rating":1}]}"#,
        r#"{"versions":[{"version":"10","rating":1},{"version":"10","rating":2}]}"#,
    ];
    for b in bad {
        let content = json::parse_object(b.as_bytes()).unwrap();
        assert!(parse_versions(&content).is_err(), "{b}");
    }
    let many: Vec<String> = (0..65)
        .map(|i| format!(r#"{{"version":"{i}","rating":1}}"#))
        .collect();
    let content =
        json::parse_object(format!(r#"{{"versions":[{}]}}"#, many.join(",")).as_bytes()).unwrap();
    assert_eq!(
        parse_versions(&content).unwrap_err().errcode().as_str(),
        "M_TOO_LARGE"
    );
    let e = parse_versions(
        &json::parse_object(
            br#"{"versions":[{"version":"10","rating":1},{"version":7,"rating":1}]}"#,
        )
        .unwrap(),
    )
    .unwrap_err();
    assert!(
        e.message().contains("content.versions[1].version"),
        "{}",
        e.message()
    );
    // A malformed opening event is an error, not a panic.
    let open = Incoming {
        event_id: "$1".into(),
        event_type: "m.s2s.upgrade.proposal".into(),
        content: Object::new(),
    };
    assert!(Negotiation::respond(&policy(&[("10", 1)]), &open).is_err());
    let mut ev = Object::new();
    ev.insert("type".into(), "m.s2s.upgrade".into());
    assert!(Incoming::from_event(&ev).is_err());
}
