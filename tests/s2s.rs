//! MSC3348: s2s room type, server-user policy, initial state, upgrade negotiation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Ordering;

use servership::decision::{ReasonCode, Verdict};
use servership::json::{self, Object, Value};
use servership::room_state::RoomState;
use servership::s2s::negotiation::{
    FailError, Incoming, Negotiation, NegotiationPolicy, Outcome, Outgoing, Step, VersionOffer,
    choose_version, compare_versions, parse_reply_versions, parse_versions, referenced_event,
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

fn member(user: &str, membership: &str) -> Object {
    ev(
        "m.room.member",
        user,
        &format!(r#"{{"membership":"{membership}"}}"#),
    )
}

#[test]
fn server_user_in_a_normal_room_under_each_policy() {
    let plain = room(None, "public", vec![]);
    let peekable = room(None, "peekable", vec![]);
    let s2s_invited = room(
        Some("m.s2s"),
        "invite",
        vec![member("@:remote.example", "invite")],
    );
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
    assert!(check_server_user_membership(&s2s_invited, u, "join", S2sOnly).is_allowed());
    // peeking: MSC1777 rules and the room's auth rules.
    assert_eq!(
        check_server_user_membership(&plain, u, "join", Peeking).reason,
        ReasonCode::NoUserOfServer
    );
    // `peekable` is unknown to every standard room version: Synapse refuses every join.
    assert_eq!(
        check_server_user_membership(&peekable, u, "join", Peeking).reason,
        ReasonCode::UnknownJoinRule
    );
    assert!(!check_server_user_membership(&s2s_invited, u, "join", Peeking).is_allowed());
    // either (default).
    assert_eq!(ServerUserPolicy::default(), Either);
    assert!(!check_server_user_membership(&plain, u, "join", Either).is_allowed());
    assert_eq!(
        check_server_user_membership(&s2s_invited, u, "join", Either).reason,
        ReasonCode::S2sRoom
    );
    let invited = room(
        None,
        "public",
        vec![member("@bob:remote.example", "invite")],
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
        assert_eq!(
            check_server_user_membership(&plain, u, "dance", p).reason,
            ReasonCode::UnknownMembership
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
fn s2s_rooms_respect_bans_and_membership_state_under_every_policy() {
    use ServerUserPolicy::*;
    let u = "@:remote.example";
    // Issue 12: any pseudouser got into any s2s room, banned or uninvited.
    let uninvited = room(Some("m.s2s"), "invite", vec![]);
    let banned = room(Some("m.s2s"), "invite", vec![member(u, "ban")]);
    let banned_public = room(Some("m.s2s"), "public", vec![member(u, "ban")]);
    for p in [S2sOnly, Either] {
        let d = check_server_user_membership(&uninvited, u, "join", p);
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::Deny, ReasonCode::NotInvited),
            "{p:?}"
        );
    }
    for p in [S2sOnly, Peeking, Either] {
        for m in ["join", "invite", "knock"] {
            for state in [&banned, &banned_public] {
                let d = check_server_user_membership(state, u, m, p);
                assert_eq!(
                    (d.verdict, d.reason),
                    (Verdict::Deny, ReasonCode::PseudouserBanned),
                    "{p:?} {m}"
                );
            }
        }
        // Unbanning (a leave) stays allowed.
        assert!(check_server_user_membership(&banned, u, "leave", p).is_allowed());
    }
    // A public s2s room needs no invite; an already joined server user may rejoin.
    assert!(
        check_server_user_membership(&room(Some("m.s2s"), "public", vec![]), u, "join", S2sOnly)
            .is_allowed()
    );
    let joined = room(Some("m.s2s"), "invite", vec![member(u, "join")]);
    assert!(check_server_user_membership(&joined, u, "join", S2sOnly).is_allowed());
    // Invites: not for one already joined.
    assert_eq!(
        check_server_user_membership(&joined, u, "invite", S2sOnly).reason,
        ReasonCode::AlreadyInRoom
    );
    assert!(check_server_user_membership(&uninvited, u, "invite", S2sOnly).is_allowed());
    // Knocks: only where the join rule allows it, never when invited or joined.
    assert_eq!(
        check_server_user_membership(&uninvited, u, "knock", S2sOnly).reason,
        ReasonCode::KnockNotAllowed
    );
    let knock = room(Some("m.s2s"), "knock", vec![]);
    assert!(check_server_user_membership(&knock, u, "knock", S2sOnly).is_allowed());
    let knock_invited = room(Some("m.s2s"), "knock", vec![member(u, "invite")]);
    assert_eq!(
        check_server_user_membership(&knock_invited, u, "knock", S2sOnly).reason,
        ReasonCode::AlreadyInvited
    );
    // An unknown join rule refuses every join, even of the invited.
    let odd = room(Some("m.s2s"), "peekable", vec![member(u, "invite")]);
    assert_eq!(
        check_server_user_membership(&odd, u, "join", S2sOnly).reason,
        ReasonCode::UnknownJoinRule
    );
}

#[test]
fn reason_codes_say_what_refused() {
    use ServerUserPolicy::*;
    let u = "@:remote.example";
    let plain = room(None, "public", vec![]);
    // Invites and knocks under peeking: not "no_user_of_server", which is about joins.
    for m in ["invite", "knock"] {
        let d = check_server_user_membership(&plain, u, m, Peeking);
        assert_eq!(d.reason, ReasonCode::PseudouserJoinsDirectly, "{m}");
    }
    // Under either, a denial by both paths shows not_s2s_room, and names both rules.
    let d = check_server_user_membership(&plain, u, "join", Either);
    assert_eq!(d.reason, ReasonCode::NotS2sRoom);
    assert!(d.detail.contains("not_s2s_room"), "{}", d.detail);
    assert!(d.detail.contains("no_user_of_server"), "{}", d.detail);
    let d = check_server_user_membership(&plain, u, "invite", Either);
    assert_eq!(d.reason, ReasonCode::NotS2sRoom);
    assert!(
        d.detail.contains("pseudouser_joins_directly"),
        "{}",
        d.detail
    );
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
    // Numerically equal, spelled differently: ordered by bytes, never equal (a total order).
    assert_eq!(compare_versions("010", "10"), Ordering::Less);
    assert_eq!(compare_versions("10", "10"), Ordering::Equal);
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

const A: &str = "a.example";
const B: &str = "b.example";

fn incoming(id: &str, sender_server: &str, out: &Outgoing) -> Incoming {
    Incoming {
        event_id: id.to_owned(),
        event_type: out.event_type.clone(),
        sender: format!("@:{sender_server}"),
        content: out.content.clone(),
    }
}

/// Drives two machines against each other over a perfect network, echoing each event back to
/// its sender too; returns both outcomes, the event types sent and the upgrades each side was
/// told to perform.
fn drive(
    a: &NegotiationPolicy,
    b: &NegotiationPolicy,
) -> (Outcome, Outcome, Vec<String>, [Vec<String>; 2]) {
    let (mut ma, first) = Negotiation::initiate(a, A, B).unwrap();
    ma.sent("$1").unwrap();
    let mut upgrades: [Vec<String>; 2] = [vec![], vec![]];
    // The echo of our own proposal is ignored.
    let echo = ma.handle(&incoming("$1", A, &first)).unwrap();
    assert_eq!((echo.send, echo.outcome), (None, Outcome::InProgress));
    let mut sent = vec![first.event_type.clone()];
    let (mut mb, mut step): (Negotiation, Step) =
        Negotiation::respond(b, B, &incoming("$1", A, &first)).unwrap();
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
        let (sender, receiver, from, slot) = if to_a {
            (&mut mb, &mut ma, B, 0)
        } else {
            (&mut ma, &mut mb, A, 1)
        };
        sender.sent(&id).unwrap();
        // Its own echo never moves the sender.
        let before = sender.outcome();
        let echo = sender.handle(&incoming(&id, from, &out)).unwrap();
        assert_eq!((echo.send, echo.outcome), (None, before));
        if matches!(receiver.outcome(), Outcome::InProgress) {
            step = receiver.handle(&incoming(&id, from, &out)).unwrap();
            upgrades[slot].extend(step.upgrade.clone());
        } else {
            break;
        }
        to_a = !to_a;
        assert!(n < 20, "negotiation does not terminate");
    }
    (ma.outcome(), mb.outcome(), sent, upgrades)
}

#[test]
fn negotiations_agree_and_only_the_initiator_upgrades() {
    // Different lists: proposal, reply, accept (initiator), ack, ack.
    let (a, b, sent, upgrades) = drive(
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
    assert_eq!(upgrades, [vec!["10".to_owned()], vec![]]);
    // Same lists: the responder accepts straight away; the initiator still upgrades.
    let same = policy(&[("10", 5), ("11", 9)]);
    let (a, b, sent, upgrades) = drive(&same, &same);
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
    assert_eq!(upgrades, [vec!["11".to_owned()], vec![]]);
}

#[test]
fn negotiation_with_no_common_version_fails_on_both_sides() {
    let (a, b, sent, upgrades) = drive(&policy(&[("10", 5)]), &policy(&[("11", 5)]));
    assert_eq!(
        (a, b),
        (
            Outcome::Failed(FailError::NoMatch),
            Outcome::Failed(FailError::NoMatch)
        )
    );
    assert_eq!(sent.last().map(String::as_str), Some("m.s2s.upgrade.fail"));
    assert_eq!(upgrades, [Vec::<String>::new(), vec![]]);
}

#[test]
fn a_responder_with_nothing_to_offer_still_ends_the_negotiation() {
    // Issue 12 (a): the floor leaves the responder nothing; it replies with an empty list, which
    // the initiator reads as "no match" and answers with a fail, so both finish.
    let mut b = policy(&[("9", 10), ("10", 3)]);
    b.floor = Some("11".into());
    let (oa, ob, sent, _) = drive(&policy(&[("9", 10), ("10", 1)]), &b);
    assert_eq!(
        (oa, ob),
        (
            Outcome::Failed(FailError::NoMatch),
            Outcome::Failed(FailError::NoMatch)
        )
    );
    assert_eq!(
        sent,
        [
            "m.s2s.upgrade.proposal",
            "m.s2s.upgrade.reply",
            "m.s2s.upgrade.fail"
        ]
    );
    // An empty policy too.
    let (oa, ob, _, _) = drive(&policy(&[("10", 1)]), &policy(&[]));
    assert_eq!(oa, Outcome::Failed(FailError::NoMatch));
    assert_eq!(oa, ob);
}

#[test]
fn floor_and_most_preferred_only_refuse_downgrades() {
    // The only shared version is below the initiator's floor.
    let mut a = policy(&[("9", 10), ("11", 1)]);
    a.floor = Some("10".into());
    let (oa, ob, _, _) = drive(&a, &policy(&[("9", 10), ("8", 5)]));
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
fn equal_numbers_spelled_differently_do_not_depend_on_list_order() {
    // Issue 12 (b): "1" and "01" used to compare equal, so list order picked the winner.
    assert_ne!(compare_versions("1", "01"), Ordering::Equal);
    assert_eq!(
        compare_versions("1", "01"),
        compare_versions("01", "1").reverse()
    );
    let a = policy(&[("1", 5), ("01", 5)]);
    let b = policy(&[("01", 5), ("1", 5)]);
    let ab = choose_version(&a.versions, &b.versions);
    assert_eq!(ab, choose_version(&b.versions, &a.versions));
    assert_eq!(ab, choose_version(&a.versions, &a.versions));
    let (oa, ob, _, _) = drive(&a, &b);
    assert_eq!(oa, Outcome::Agreed(ab.unwrap()));
    assert_eq!(oa, ob);
}

fn fail_with(error: &str, to: &str) -> Outgoing {
    let mut rel = Object::new();
    rel.insert("rel_type".into(), "m.reference".into());
    rel.insert("event_id".into(), to.into());
    let mut c = Object::new();
    c.insert("error".into(), error.into());
    c.insert("m.relates_to".into(), Value::Object(rel));
    Outgoing {
        event_type: "m.s2s.upgrade.fail".into(),
        content: c,
    }
}

#[test]
fn a_fail_with_any_error_ends_the_negotiation() {
    // Issue 12 (c).
    let (mut a, _) = Negotiation::initiate(&policy(&[("10", 1)]), A, B).unwrap();
    a.sent("$1").unwrap();
    let step = a
        .handle(&incoming("$2", B, &fail_with("server on fire", "$1")))
        .unwrap();
    assert_eq!(
        step.outcome,
        Outcome::Failed(FailError::Other("server on fire".into()))
    );
    assert_eq!(a.outcome(), step.outcome);
    // A fail with no error string at all ends it too.
    let (mut a, _) = Negotiation::initiate(&policy(&[("10", 1)]), A, B).unwrap();
    a.sent("$1").unwrap();
    let mut bare = fail_with("x", "$1");
    bare.content.remove("error");
    assert_eq!(
        a.handle(&incoming("$2", B, &bare)).unwrap().outcome,
        Outcome::Failed(FailError::Other(String::new()))
    );
}

#[test]
fn an_own_ack_is_never_taken_for_the_peers() {
    // Issue 12 (d): the initiator that hears the echo of its own ack must not report agreement.
    let same = policy(&[("10", 5)]);
    let (mut a, proposal) = Negotiation::initiate(&same, A, B).unwrap();
    // Handling anything before reporting the proposal's ID is refused.
    assert!(a.handle(&incoming("$x", B, &proposal)).is_err());
    a.sent("$1").unwrap();
    let (mut b, step) = Negotiation::respond(&same, B, &incoming("$1", A, &proposal)).unwrap();
    let accept = step.send.unwrap();
    b.sent("$2").unwrap();
    let step = a.handle(&incoming("$2", B, &accept)).unwrap();
    let ack = step.send.unwrap();
    a.sent("$3").unwrap();
    // The echo of a's own ack: ignored, still in progress.
    let echo = a.handle(&incoming("$3", A, &ack)).unwrap();
    assert_eq!(echo.outcome, Outcome::InProgress);
    assert_eq!(a.outcome(), Outcome::InProgress);
    // The same ack "from" a third server is refused.
    assert!(a.handle(&incoming("$3", "c.example", &ack)).is_err());
    // b's real ack of the ack ends it, and tells a (the initiator) to upgrade.
    let step = b.handle(&incoming("$3", A, &ack)).unwrap();
    let ack2 = step.send.unwrap();
    assert_eq!(step.upgrade, None);
    b.sent("$4").unwrap();
    let step = a.handle(&incoming("$4", B, &ack2)).unwrap();
    assert_eq!(step.outcome, Outcome::Agreed("10".into()));
    assert_eq!(step.upgrade, Some("10".into()));
    assert_eq!(b.outcome(), Outcome::Agreed("10".into()));
}

#[test]
fn vendor_methods_are_accepted_or_failed_and_both_sides_finish() {
    // Issue 12 (e): an accepted vendor method is answered, so the initiator finishes too.
    let mut b_policy = policy(&[("11", 1)]);
    b_policy.vendor_methods.push("org.example.fast".into());
    let (mut a, open) =
        Negotiation::initiate_vendor(&policy(&[]), "org.example.fast", A, B).unwrap();
    a.sent("$v").unwrap();
    let (b, step) = Negotiation::respond(&b_policy, B, &incoming("$v", A, &open)).unwrap();
    let accept = step.send.unwrap();
    assert_eq!(accept.event_type, "m.s2s.upgrade.accept");
    assert_eq!(
        accept.content.get("method"),
        Some(&"org.example.fast".into())
    );
    assert_eq!(step.outcome, Outcome::Vendor("org.example.fast".into()));
    assert_eq!(
        a.handle(&incoming("$w", B, &accept)).unwrap().outcome,
        b.outcome()
    );
    // An unknown method: fail with invalid method, on both sides.
    let (mut a, open) =
        Negotiation::initiate_vendor(&policy(&[]), "org.example.slow", A, B).unwrap();
    a.sent("$v").unwrap();
    let (_, step) = Negotiation::respond(&b_policy, B, &incoming("$v", A, &open)).unwrap();
    let fail = step.send.unwrap();
    assert_eq!(fail.content.get("error"), Some(&"invalid method".into()));
    assert_eq!(step.outcome, Outcome::Failed(FailError::InvalidMethod));
    assert_eq!(
        a.handle(&incoming("$w", B, &fail)).unwrap().outcome,
        Outcome::Failed(FailError::InvalidMethod)
    );
}

#[test]
fn simultaneous_proposals_the_lower_server_name_wins() {
    // Issue 12 (f): both propose at once. a.example < b.example, so a's proposal is answered,
    // b drops its own, and a is the initiator (the one told to upgrade).
    let pa = policy(&[("10", 5), ("11", 9)]);
    let pb = policy(&[("11", 2), ("12", 9), ("10", 9)]);
    let (mut a, prop_a) = Negotiation::initiate(&pa, A, B).unwrap();
    a.sent("$a1").unwrap();
    let (mut b, prop_b) = Negotiation::initiate(&pb, B, A).unwrap();
    b.sent("$b1").unwrap();
    // a ignores b's proposal.
    let step = a.handle(&incoming("$b1", B, &prop_b)).unwrap();
    assert_eq!((step.send, step.outcome), (None, Outcome::InProgress));
    // b answers a's.
    let step = b.handle(&incoming("$a1", A, &prop_a)).unwrap();
    let reply = step.send.unwrap();
    assert_eq!(reply.event_type, "m.s2s.upgrade.reply");
    assert_eq!(referenced_event(&reply.content), Some("$a1"));
    assert_eq!(b.role(), servership::s2s::negotiation::Role::Responder);
    b.sent("$b2").unwrap();
    let accept = a.handle(&incoming("$b2", B, &reply)).unwrap().send.unwrap();
    a.sent("$a2").unwrap();
    let ack = b
        .handle(&incoming("$a2", A, &accept))
        .unwrap()
        .send
        .unwrap();
    b.sent("$b3").unwrap();
    let step = a.handle(&incoming("$b3", B, &ack)).unwrap();
    assert_eq!(step.upgrade, Some("10".into()));
    let ack2 = step.send.unwrap();
    a.sent("$a3").unwrap();
    let step = b.handle(&incoming("$a3", A, &ack2)).unwrap();
    assert_eq!(step.upgrade, None);
    assert_eq!(a.outcome(), Outcome::Agreed("10".into()));
    assert_eq!(b.outcome(), a.outcome());
    // The same from the other end of the alphabet: the names decide, not who is "a".
    let (mut z, _) = Negotiation::initiate(&pa, "z.example", A).unwrap();
    z.sent("$z1").unwrap();
    let (_, prop_a) = Negotiation::initiate(&pb, A, "z.example").unwrap();
    let step = z.handle(&incoming("$a1", A, &prop_a)).unwrap();
    assert_eq!(step.send.unwrap().event_type, "m.s2s.upgrade.reply");
}

#[test]
fn lost_events_are_delivered_again_on_tick_and_duplicates_change_nothing() {
    let same = policy(&[("10", 5)]);
    let (mut a, proposal) = Negotiation::initiate(&same, A, B).unwrap();
    a.sent("$1").unwrap();
    assert_eq!(a.tick().resend.as_deref(), Some("$1"));
    let (mut b, step) = Negotiation::respond(&same, B, &incoming("$1", A, &proposal)).unwrap();
    let accept = step.send.unwrap();
    // b has not reported its accept's ID: tick says to send it (it was never sent).
    assert_eq!(b.tick().send.as_ref(), Some(&accept));
    b.sent("$2").unwrap();
    // A duplicate of the proposal changes nothing.
    let dup = b.handle(&incoming("$1", A, &proposal)).unwrap();
    assert_eq!((dup.send, dup.resend), (None, None));
    let ack = a.handle(&incoming("$2", B, &accept)).unwrap().send.unwrap();
    a.sent("$3").unwrap();
    let ack2 = b.handle(&incoming("$3", A, &ack)).unwrap().send.unwrap();
    b.sent("$4").unwrap();
    // ack2 is lost. a ticks and delivers its ack again; b, finished, delivers ack2 again.
    assert_eq!(a.tick().resend.as_deref(), Some("$3"));
    let again = b.handle(&incoming("$3", A, &ack)).unwrap();
    assert_eq!(again.resend.as_deref(), Some("$4"));
    assert_eq!(
        b.tick(),
        Step {
            send: None,
            resend: None,
            upgrade: None,
            outcome: Outcome::Agreed("10".into())
        }
    );
    let step = a.handle(&incoming("$4", B, &ack2)).unwrap();
    assert_eq!(step.outcome, Outcome::Agreed("10".into()));
    // A peer that never answers: the side gives up after GIVE_UP_AFTER_TICKS ticks.
    let (mut lonely, _) = Negotiation::initiate(&same, A, B).unwrap();
    lonely.sent("$1").unwrap();
    for _ in 0..servership::s2s::negotiation::GIVE_UP_AFTER_TICKS {
        assert!(lonely.tick().resend.is_some());
    }
    assert_eq!(
        lonely.tick().outcome,
        Outcome::Failed(FailError::Other("timed out".into()))
    );
}

#[test]
fn forged_or_out_of_order_events_are_refused_without_state_change() {
    let (mut a, _) = Negotiation::initiate(&policy(&[("10", 1)]), A, B).unwrap();
    a.sent("$1").unwrap();
    let mut c = Object::new();
    c.insert("version".into(), "10".into());
    let ev = |t: &str, c: &Object| Incoming {
        event_id: "$2".into(),
        event_type: t.into(),
        sender: "@bob:b.example".into(),
        content: c.clone(),
    };
    // No relation.
    assert!(a.handle(&ev("m.s2s.upgrade.accept", &c)).is_err());
    // Points elsewhere.
    let mut rel = Object::new();
    rel.insert("rel_type".into(), "m.reference".into());
    rel.insert("event_id".into(), "$other".into());
    c.insert("m.relates_to".into(), Value::Object(rel.clone()));
    assert!(a.handle(&ev("m.s2s.upgrade.accept", &c)).is_err());
    // Right relation, but an ack before any accept: unexpected.
    rel.insert("event_id".into(), "$1".into());
    let mut ack = Object::new();
    ack.insert("m.relates_to".into(), Value::Object(rel.clone()));
    assert!(a.handle(&ev("m.s2s.upgrade.ack", &ack)).is_err());
    // A sender that is not a user ID.
    let mut bad = ev("m.s2s.upgrade.ack", &ack);
    bad.sender = "b.example".into();
    assert!(a.handle(&bad).is_err());
    assert_eq!(a.outcome(), Outcome::InProgress);
    // An accept for a version we never offered: fail with no match.
    c.insert("version".into(), "3".into());
    c.insert("m.relates_to".into(), Value::Object(rel));
    let step = a.handle(&ev("m.s2s.upgrade.accept", &c)).unwrap();
    assert_eq!(step.outcome, Outcome::Failed(FailError::NoMatch));
    // Bad policies and names are refused up front.
    assert!(Negotiation::initiate(&policy(&[("UPPER", 1)]), A, B).is_err());
    assert!(Negotiation::initiate(&policy(&[("10", 1), ("10", 2)]), A, B).is_err());
    assert!(Negotiation::initiate(&policy(&[("10", 1)]), A, A).is_err());
    assert!(Negotiation::initiate(&policy(&[("10", 1)]), A, "not a name").is_err());
    assert!(Negotiation::initiate_vendor(&policy(&[]), "", A, B).is_err());
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
        // A reply may be empty; nothing else changes.
        assert_eq!(
            parse_reply_versions(&content).is_err(),
            b != r#"{"versions":[]}"#,
            "{b}"
        );
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
        sender: "@:a.example".into(),
        content: Object::new(),
    };
    assert!(Negotiation::respond(&policy(&[("10", 1)]), B, &open).is_err());
    let mut ev = Object::new();
    ev.insert("type".into(), "m.s2s.upgrade".into());
    assert!(Incoming::from_event(&ev).is_err());
}
