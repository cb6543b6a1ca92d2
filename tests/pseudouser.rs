//! MSC1777: pseudouser IDs, the pseudouser join rule, operator deny lists, member lists and room
//! names without pseudousers, and the peek tracker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use servership::decision::{ReasonCode, Verdict};
use servership::json::{self, Object};
use servership::pseudouser::names::{RoomName, active_members, room_display_name, room_summary};
use servership::pseudouser::tracker::{PeekAction, PeekTracker};
use servership::pseudouser::{
    OperatorPolicy, check_pseudouser_join, is_pseudouser, pseudouser_id, pseudouser_server,
};
use servership::room_state::RoomState;

fn ev(t: &str, key: &str, content: &str) -> Object {
    let c = json::parse(content.as_bytes()).unwrap();
    let mut o = Object::new();
    o.insert("type".into(), t.into());
    o.insert("state_key".into(), key.into());
    o.insert("sender".into(), "@creator:hs.example".into());
    o.insert("content".into(), c);
    o
}

fn member(user: &str, membership: &str) -> Object {
    ev(
        "m.room.member",
        user,
        &format!(r#"{{"membership":"{membership}"}}"#),
    )
}

fn named(user: &str, membership: &str, name: &str) -> Object {
    ev(
        "m.room.member",
        user,
        &format!(r#"{{"membership":"{membership}","displayname":"{name}"}}"#),
    )
}

fn public_room() -> Vec<Object> {
    vec![
        ev("m.room.create", "", r#"{"room_version":"11"}"#),
        ev("m.room.join_rules", "", r#"{"join_rule":"public"}"#),
        member("@alice:hs.example", "join"),
    ]
}

#[test]
fn builds_and_recognises_pseudousers() {
    assert_eq!(pseudouser_id("remote.example").unwrap(), "@:remote.example");
    assert_eq!(
        pseudouser_id("remote.example:8448").unwrap(),
        "@:remote.example:8448"
    );
    assert!(pseudouser_id("").is_err());
    assert!(pseudouser_id("bad host").is_err());
    assert!(pseudouser_id(&"a".repeat(300)).is_err());
    assert!(is_pseudouser("@:remote.example"));
    assert_eq!(pseudouser_server("@:[::1]:8448"), Some("[::1]:8448"));
    for not in [
        "@alice:remote.example",
        "@ :remote.example",
        "@:",
        "@::x",
        ":remote.example",
        "@remote.example",
        "",
    ] {
        assert!(!is_pseudouser(not), "{not:?}");
    }
}

#[test]
fn pseudouser_may_not_join_public_room_without_users_of_its_server() {
    let state = RoomState::from_events(&public_room()).unwrap();
    let d = check_pseudouser_join(&state, "@:remote.example");
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.reason, ReasonCode::NoUserOfServer);
}

#[test]
fn pseudouser_may_join_after_a_user_of_its_server_is_invited_or_joined() {
    let mut events = public_room();
    events.push(member("@bob:remote.example", "invite"));
    let state = RoomState::from_events(&events).unwrap();
    let d = check_pseudouser_join(&state, "@:remote.example");
    assert!(d.is_allowed());
    assert_eq!(d.reason, ReasonCode::ServerHasInvitedUser);

    events.push(member("@bob:remote.example", "join"));
    let d = check_pseudouser_join(
        &RoomState::from_events(&events).unwrap(),
        "@:remote.example",
    );
    assert_eq!(d.reason, ReasonCode::ServerHasJoinedUser);

    // Left again: the later event wins and the rule denies.
    events.push(member("@bob:remote.example", "leave"));
    let d = check_pseudouser_join(
        &RoomState::from_events(&events).unwrap(),
        "@:remote.example",
    );
    assert_eq!(d.reason, ReasonCode::NoUserOfServer);
}

#[test]
fn users_of_other_servers_or_ports_do_not_count() {
    let mut events = public_room();
    events.push(member("@bob:remote.example:8448", "join"));
    events.push(member("@carol:evil.remote.example", "join"));
    let state = RoomState::from_events(&events).unwrap();
    assert!(!check_pseudouser_join(&state, "@:remote.example").is_allowed());
}

#[test]
fn peekable_is_unknown_to_standard_room_versions_so_no_join_is_allowed() {
    // Synapse's event auth refuses every join under a join rule the room version does not know
    // (the bricked room of issue 12): the library must not say "allow" there.
    let mut events = public_room();
    events.push(ev("m.room.join_rules", "", r#"{"join_rule":"peekable"}"#));
    events.push(member("@bob:remote.example", "join"));
    events.push(member("@:remote.example", "invite"));
    let state = RoomState::from_events(&events).unwrap();
    let d = check_pseudouser_join(&state, "@:remote.example");
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, ReasonCode::UnknownJoinRule)
    );
    assert!(d.detail.contains("peekable"), "{}", d.detail);
    events.push(member("@:remote.example", "ban"));
    let d = check_pseudouser_join(
        &RoomState::from_events(&events).unwrap(),
        "@:remote.example",
    );
    assert_eq!(d.reason, ReasonCode::PseudouserBanned);
    assert_eq!(
        check_pseudouser_join(&state, "@bob:remote.example").reason,
        ReasonCode::NotAPseudouser
    );
}

#[test]
fn in_an_invite_only_room_the_pseudouser_itself_needs_an_invite() {
    // Issue 12: `@:b` into an invite-only room because `@bob:b` is joined there is refused by
    // Synapse; the pseudouser needs its own invite (or a public room).
    let mut events = vec![
        ev("m.room.create", "", r#"{"room_version":"11"}"#),
        ev("m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
        member("@alice:hs.example", "join"),
        member("@bob:remote.example", "join"),
    ];
    let d = check_pseudouser_join(
        &RoomState::from_events(&events).unwrap(),
        "@:remote.example",
    );
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, ReasonCode::NotInvited)
    );
    events.push(member("@:remote.example", "invite"));
    let d = check_pseudouser_join(
        &RoomState::from_events(&events).unwrap(),
        "@:remote.example",
    );
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Allow, ReasonCode::ServerHasJoinedUser)
    );
    // Invited but no user of its server: MSC1777 still refuses.
    let lonely = vec![
        ev("m.room.create", "", r#"{"room_version":"11"}"#),
        ev("m.room.join_rules", "", r#"{"join_rule":"invite"}"#),
        member("@:remote.example", "invite"),
    ];
    assert_eq!(
        check_pseudouser_join(
            &RoomState::from_events(&lonely).unwrap(),
            "@:remote.example"
        )
        .reason,
        ReasonCode::NoUserOfServer
    );
    // No join rules event means invite, as in the spec.
    let no_rules = vec![
        ev("m.room.create", "", r#"{"room_version":"11"}"#),
        member("@bob:remote.example", "join"),
    ];
    assert_eq!(
        check_pseudouser_join(
            &RoomState::from_events(&no_rules).unwrap(),
            "@:remote.example"
        )
        .reason,
        ReasonCode::NotInvited
    );
}

#[test]
fn the_room_version_and_m_federate_count() {
    let with = |create: &str, rule: &str| {
        let events = vec![
            ev("m.room.create", "", create),
            ev(
                "m.room.join_rules",
                "",
                &format!(r#"{{"join_rule":"{rule}"}}"#),
            ),
            member("@bob:remote.example", "join"),
        ];
        check_pseudouser_join(
            &RoomState::from_events(&events).unwrap(),
            "@:remote.example",
        )
    };
    assert!(with(r#"{"room_version":"11"}"#, "public").is_allowed());
    // Not federated: only the creator's server may join (the creator is @creator:hs.example).
    assert_eq!(
        with(r#"{"room_version":"11","m.federate":false}"#, "public").reason,
        ReasonCode::RoomNotFederated
    );
    // An unknown room version: nothing is allowed.
    assert_eq!(
        with(r#"{"room_version":"org.example.99"}"#, "public").reason,
        ReasonCode::UnknownRoomVersion
    );
    // `knock` before v7 and `restricted` before v8 are unknown rules; `private` refuses always.
    assert_eq!(
        with(r#"{"room_version":"6"}"#, "knock").reason,
        ReasonCode::UnknownJoinRule
    );
    assert_eq!(
        with(r#"{"room_version":"7"}"#, "knock").reason,
        ReasonCode::NotInvited
    );
    assert_eq!(
        with(r#"{"room_version":"7"}"#, "restricted").reason,
        ReasonCode::UnknownJoinRule
    );
    assert_eq!(
        with(r#"{"room_version":"8"}"#, "restricted").reason,
        ReasonCode::NotInvited
    );
    assert_eq!(
        with(r#"{"room_version":"11"}"#, "private").reason,
        ReasonCode::UnknownJoinRule
    );
    // No create event at all.
    let bare = vec![member("@bob:remote.example", "join")];
    assert_eq!(
        check_pseudouser_join(&RoomState::from_events(&bare).unwrap(), "@:remote.example").reason,
        ReasonCode::UnknownRoomVersion
    );
}

#[test]
fn operator_deny_lists_refuse_servers_and_rooms() {
    let mut events = public_room();
    events.push(member("@bob:good.example", "join"));
    events.push(member("@bob:a.spam.example:8448", "join"));
    let state = RoomState::from_events(&events).unwrap();
    let mut policy = OperatorPolicy::new();
    policy.deny_server("*.spam.example").unwrap();
    policy.deny_room("!secret:hs.example");
    let d = policy.check_remote_pseudouser_join("!r:hs.example", &state, "@:a.spam.example:8448");
    assert_eq!(d.reason, ReasonCode::ServerDeniedByOperator);
    let d = policy.check_remote_pseudouser_join("!secret:hs.example", &state, "@:good.example");
    assert_eq!(d.reason, ReasonCode::RoomDeniedByOperator);
    assert!(
        policy
            .check_remote_pseudouser_join("!r:hs.example", &state, "@:good.example")
            .is_allowed()
    );
    assert!(policy.room_denied("!x:b.spam.example").is_some());
    assert!(policy.room_denied("!x:good.example").is_none());
    // ASCII case is ignored, as for server ACLs.
    let d = policy.check_remote_pseudouser_join("!r:hs.example", &state, "@:A.SPAM.Example:8448");
    assert_eq!(d.reason, ReasonCode::ServerDeniedByOperator);
    assert!(policy.room_denied("!x:B.Spam.EXAMPLE").is_some());
}

#[test]
fn member_lists_and_names_leave_pseudousers_out() {
    let events = vec![
        ev("m.room.create", "", r#"{"room_version":"11"}"#),
        named("@me:hs.example", "join", "Me"),
        member("@:remote.example", "join"),
        named("@bob:b.example", "join", "Bob"),
    ];
    let state = RoomState::from_events(&events).unwrap();
    let users: Vec<String> = active_members(&state)
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(users, vec!["@bob:b.example", "@me:hs.example"]);
    let s = room_summary(&state, "@me:hs.example");
    assert_eq!(
        (s.heroes.clone(), s.joined_member_count),
        (vec!["@bob:b.example".to_owned()], 2)
    );
    assert_eq!(
        room_display_name(&state, "@me:hs.example"),
        RoomName::Members("Bob".into())
    );
}

#[test]
fn room_name_follows_the_spec_steps() {
    let mut events = vec![
        named("@me:hs.example", "join", "Me"),
        named("@a:x.example", "join", "Alice"),
        named("@b:x.example", "invite", "Bob"),
        named("@c:x.example", "join", "Alice"),
    ];
    let name =
        |e: &[Object]| room_display_name(&RoomState::from_events(e).unwrap(), "@me:hs.example");
    // 3 others, all heroes; the clashing "Alice" is disambiguated.
    assert_eq!(
        name(&events),
        RoomName::Members("Alice (@a:x.example), Bob, and Alice (@c:x.example)".into())
    );
    // More than 5 others: 5 heroes in stream order and a count.
    for i in 0..4 {
        events.push(member(&format!("@u{i}:x.example"), "join"));
    }
    assert_eq!(
        name(&events),
        RoomName::Members("Alice (@a:x.example), Bob, Alice (@c:x.example), @u0:x.example, @u1:x.example, and 2 others".into())
    );
    // Canonical alias wins over members; an invalid alias is skipped; a name wins over both.
    events.push(ev(
        "m.room.canonical_alias",
        "",
        r#"{"alias":"not an alias"}"#,
    ));
    assert!(matches!(name(&events), RoomName::Members(_)));
    events.push(ev(
        "m.room.canonical_alias",
        "",
        r##"{"alias":"#room:x.example"}"##,
    ));
    assert_eq!(name(&events), RoomName::Alias("#room:x.example".into()));
    events.push(ev("m.room.name", "", r#"{"name":""}"#));
    assert_eq!(name(&events), RoomName::Alias("#room:x.example".into()));
    events.push(ev("m.room.name", "", r#"{"name":"Lobby"}"#));
    assert_eq!(name(&events), RoomName::Named("Lobby".into()));
}

#[test]
fn empty_rooms() {
    let alone = vec![
        named("@me:hs.example", "join", "Me"),
        member("@:remote.example", "join"),
    ];
    let state = RoomState::from_events(&alone).unwrap();
    assert_eq!(
        room_display_name(&state, "@me:hs.example"),
        RoomName::Empty("Empty Room".into())
    );
    let mut was = alone.clone();
    was.push(named("@a:x.example", "leave", "Alice"));
    let state = RoomState::from_events(&was).unwrap();
    assert_eq!(
        room_display_name(&state, "@me:hs.example"),
        RoomName::Empty("Empty Room (was Alice)".into())
    );
    for i in 0..6 {
        was.push(member(&format!("@u{i}:x.example"), "ban"));
    }
    let state = RoomState::from_events(&was).unwrap();
    assert_eq!(
        room_display_name(&state, "@me:hs.example").as_str(),
        "Empty Room (was Alice, @u0:x.example, @u1:x.example, @u2:x.example, @u3:x.example, and 2 others)"
    );
}

#[test]
fn tracker_joins_to_peek_and_leaves_when_nobody_is_left() {
    let mut t = PeekTracker::new("hs.example", OperatorPolicy::new()).unwrap();
    let room = "!r:remote.example";
    let a = t.request_peek(room, "@alice:hs.example", true);
    assert_eq!(a.action, PeekAction::JoinAsPseudouser);
    // A second peeker while joining: nothing more.
    assert_eq!(
        t.request_peek(room, "@bob:hs.example", true)
            .decision
            .reason,
        ReasonCode::JoinInProgress
    );
    assert_eq!(
        t.membership_changed(room, "@:hs.example", "join").action,
        PeekAction::Nothing
    );
    assert!(t.pseudouser_joined(room));
    assert_eq!(
        t.end_peek(room, "@alice:hs.example").action,
        PeekAction::Nothing
    );
    let last = t.end_peek(room, "@bob:hs.example");
    assert_eq!(
        (last.action, last.decision.reason),
        (PeekAction::LeaveAsPseudouser, ReasonCode::NoLocalInterest)
    );
    t.membership_changed(room, "@:hs.example", "leave");
    assert!(!t.pseudouser_joined(room));
    assert!(t.peekers(room).is_empty());
}

#[test]
fn tracker_refuses_non_peekable_denied_and_non_local() {
    let mut policy = OperatorPolicy::new();
    policy.deny_room("!bad:remote.example");
    policy.deny_server("spam.example").unwrap();
    let mut t = PeekTracker::new("hs.example", policy).unwrap();
    let a = t.request_peek("!r:remote.example", "@alice:hs.example", false);
    assert_eq!(
        (a.action, a.decision.reason),
        (PeekAction::Refuse, ReasonCode::RoomNotPeekable)
    );
    assert_eq!(
        t.request_peek("!bad:remote.example", "@alice:hs.example", true)
            .decision
            .reason,
        ReasonCode::RoomDeniedByOperator
    );
    assert_eq!(
        t.request_peek("!x:spam.example", "@alice:hs.example", true)
            .decision
            .reason,
        ReasonCode::ServerDeniedByOperator
    );
    // A remote user (or our own pseudouser) is not a local user: the reason says so.
    for user in ["@eve:remote.example", "@:hs.example"] {
        let a = t.request_peek("!r:remote.example", user, true);
        assert_eq!(
            (a.action, a.decision.reason),
            (PeekAction::Refuse, ReasonCode::NotALocalUser),
            "{user}"
        );
        assert!(a.decision.detail.contains("not a local user"));
    }
}

#[test]
fn tracker_does_not_join_when_a_local_user_is_in_and_stays_for_members() {
    let mut t = PeekTracker::new("hs.example", OperatorPolicy::new()).unwrap();
    let room = "!r:remote.example";
    t.membership_changed(room, "@carol:hs.example", "join");
    let a = t.request_peek(room, "@alice:hs.example", true);
    assert_eq!(
        (a.action, a.decision.reason),
        (PeekAction::Nothing, ReasonCode::AlreadyInRoom)
    );

    // Pseudouser in, a local member joins, the peek ends: stay; the member leaves: leave.
    let room2 = "!r2:remote.example";
    assert_eq!(
        t.request_peek(room2, "@alice:hs.example", true).action,
        PeekAction::JoinAsPseudouser
    );
    t.membership_changed(room2, "@:hs.example", "join");
    t.membership_changed(room2, "@dave:hs.example", "join");
    assert_eq!(
        t.end_peek(room2, "@alice:hs.example").decision.reason,
        ReasonCode::LocalInterestRemains
    );
    assert_eq!(
        t.membership_changed(room2, "@dave:hs.example", "leave")
            .action,
        PeekAction::LeaveAsPseudouser
    );
}

#[test]
fn remote_invites_never_lure_the_pseudouser_in() {
    let mut t = PeekTracker::new("hs.example", OperatorPolicy::new()).unwrap();
    let room = "!peekable:evil.example";
    let a = t.remote_invite(room, "@alice:hs.example");
    assert_eq!(
        (a.action, a.decision.reason),
        (PeekAction::Nothing, ReasonCode::RemoteInviteIsNoReason)
    );
    let a = t.membership_changed(room, "@alice:hs.example", "invite");
    assert_eq!(
        (a.action, a.decision.reason),
        (PeekAction::Nothing, ReasonCode::RemoteInviteIsNoReason)
    );
    assert!(!t.pseudouser_joined(room));
}

#[test]
fn failed_join_lets_the_next_peek_retry() {
    let mut t = PeekTracker::new("hs.example", OperatorPolicy::new()).unwrap();
    let room = "!r:remote.example";
    t.request_peek(room, "@alice:hs.example", true);
    t.join_failed(room);
    assert_eq!(
        t.request_peek(room, "@alice:hs.example", true).action,
        PeekAction::JoinAsPseudouser
    );
}

#[test]
fn decisions_serialise_to_json() {
    let state = RoomState::from_events(&public_room()).unwrap();
    let j = check_pseudouser_join(&state, "@:remote.example").to_json();
    assert_eq!(j.get("allowed"), Some(&false.into()));
    assert_eq!(j.get("verdict"), Some(&"deny".into()));
    assert_eq!(j.get("reason"), Some(&"no_user_of_server".into()));
    assert!(
        j.get("detail")
            .and_then(|d| d.as_str())
            .unwrap()
            .contains("remote.example")
    );
}

#[test]
fn hostile_state_is_an_error_naming_the_place() {
    let e = RoomState::from_json(
        br#"[{"type":"m.room.member","state_key":"@a:b","content":{}},{"type":"x","state_key":5}]"#,
    )
    .unwrap_err();
    assert_eq!(e.errcode().as_str(), "M_BAD_JSON");
    assert!(
        e.message()
            .starts_with("state[1]: state_key must be a string"),
        "{}",
        e.message()
    );
    assert!(RoomState::from_json(b"{}").is_err());
    assert!(RoomState::from_json(b"[1]").is_err());
    assert!(RoomState::from_json(br#"[{"type":"t","state_key":"","content":[]}]"#).is_err());
    assert!(
        RoomState::from_json(
            b"[{\"type\":\"t\",\"state_key\":\"\",\"content\":{\"membership\":\"\\u0000\"}}]"
        )
        .is_ok()
    );
    assert!(RoomState::from_json(&[0xff, 0xfe]).is_err());
    // A membership that is not a string is no membership.
    let s = RoomState::from_json(br#"[{"type":"m.room.member","state_key":"@b:remote.example","content":{"membership":["join"]}}]"#).unwrap();
    assert!(!check_pseudouser_join(&s, "@:remote.example").is_allowed());
}
