//! MSC4099 draft: knocks, the knock store, subscription state, the join gate, ACLs, policy lists,
//! the knock decision, and hostile inputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use servership::decision::{ReasonCode, Verdict};
use servership::json::{self, Object, Value};
use servership::room_state::RoomState;
use servership::store::{KnockLimits, KnockStore};
use servership::subscription::acl::{ServerAcl, check_server_acl};
use servership::subscription::decision::{KnockMode, PolicyList, Research, decide_knock};
use servership::subscription::glob::Glob;
use servership::subscription::knock::parse_knock;
use servership::subscription::{
    JoinGate, able_to_subscribe_content, check_subscription_event, is_able_to_subscribe,
    parse_able_to_subscribe,
};

fn ev(t: &str, key: &str, sender: &str, content: &str) -> Object {
    let mut o = Object::new();
    o.insert("type".into(), t.into());
    o.insert("state_key".into(), key.into());
    o.insert("sender".into(), sender.into());
    o.insert("content".into(), json::parse(content.as_bytes()).unwrap());
    o
}

fn base() -> Vec<Object> {
    vec![ev(
        "m.room.create",
        "",
        "@mod:hs.example",
        r#"{"room_version":"11"}"#,
    )]
}

fn able(server: &str, v: &str) -> Object {
    ev(
        "m.server.is_able_to_subscribe",
        server,
        "@mod:hs.example",
        &format!(r#"{{"is_able_to_subscribe":{v}}}"#),
    )
}

#[test]
fn knock_edus_parse_whole_or_content() {
    let k = parse_knock(
        br#"{"edu_type":"m.server.knock","content":{"room_id":"!example:example.com"}}"#,
    )
    .unwrap();
    assert_eq!(k.room_id, "!example:example.com");
    assert_eq!(
        parse_knock(br#"{"room_id":"!example:example.com"}"#).unwrap(),
        k
    );
    let v12 = format!(r#"{{"room_id":"!{}"}}"#, "a".repeat(43));
    assert!(parse_knock(v12.as_bytes()).is_ok());
}

#[test]
fn hostile_knocks_are_errors() {
    let cases: &[&[u8]] = &[
        b"",
        b"not json",
        &[0xff, 0xfe],
        b"[]",
        b"{}",
        br#"{"edu_type":"m.typing","content":{"room_id":"!a:b.example"}}"#,
        br#"{"edu_type":5,"content":{"room_id":"!a:b.example"}}"#,
        br#"{"edu_type":"m.server.knock"}"#,
        br#"{"edu_type":"m.server.knock","content":"!a:b.example"}"#,
        br#"{"edu_type":"m.server.knock","content":{"room_id":7}}"#,
        br##"{"room_id":"#alias:b.example"}"##,
        br#"{"room_id":"!:b.example"}"#,
        br#"{"room_id":"!a:"}"#,
        br#"{"room_id":"!a:bad host"}"#,
        br#"{"room_id":"!short"}"#,
        br#"{"room_id":"!a\u0000b:b.example"}"#,
        br#"{"room_id":"!a:b.example","room_id":"!c:d.example"}"#,
        br#"{"content":{"room_id":"!a:b.example"}}"#,
    ];
    for c in cases {
        assert!(parse_knock(c).is_err(), "{:?}", String::from_utf8_lossy(c));
    }
    let long = format!(r#"{{"room_id":"!{}:b.example"}}"#, "a".repeat(300));
    assert!(parse_knock(long.as_bytes()).is_err());
    let huge = vec![b' '; 70_000];
    assert_eq!(
        parse_knock(&huge).unwrap_err().errcode().as_str(),
        "M_TOO_LARGE"
    );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_knock(deep.as_bytes()).is_err());
    let e = parse_knock(br#"{"edu_type":"m.server.knock","content":{"room_id":7}}"#).unwrap_err();
    assert!(e.message().contains("content.room_id"), "{}", e.message());
}

// The knock store's properties on both backends are in tests/store_conformance.rs.

mod tempdir {
    /// A directory under the target dir, removed on drop.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "servership-knocks-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[test]
fn purging_goes_in_short_batches() {
    let dir = tempdir::Dir::new();
    let s = KnockStore::open_with_limits(
        dir.path.join("k.db"),
        Duration::from_millis(10),
        KnockLimits {
            max_per_origin: 10_000,
            window: Duration::from_secs(60),
        },
    )
    .unwrap();
    for i in 0..2_500 {
        s.record_at(&format!("!r{i}:hs.example"), "remote.example", 0)
            .unwrap();
    }
    s.record_at("!fresh:hs.example", "remote.example", 1_000)
        .unwrap();
    assert_eq!(s.purge_expired_batch_at(1_000, 1_000).unwrap(), 1_000);
    assert_eq!(s.purge_expired_at(1_000).unwrap(), 1_500);
    assert_eq!(s.purge_expired_at(1_000).unwrap(), 0);
    assert_eq!(s.row_count().unwrap(), 1);
}

#[test]
fn able_to_subscribe_content_and_state() {
    let c = able_to_subscribe_content(true);
    assert!(parse_able_to_subscribe(&c).unwrap());
    assert!(parse_able_to_subscribe(&Object::new()).is_err());
    assert!(
        parse_able_to_subscribe(
            &json::parse_object(br#"{"is_able_to_subscribe":"true"}"#).unwrap()
        )
        .is_err()
    );
    let mut events = base();
    events.push(able("remote.example", "true"));
    events.push(ev(
        "m.server.is_able_to_subscribe",
        "odd.example",
        "@mod:hs.example",
        r#"{"is_able_to_subscribe":1}"#,
    ));
    let state = RoomState::from_events(&events).unwrap();
    assert!(is_able_to_subscribe(&state, "remote.example"));
    assert!(!is_able_to_subscribe(&state, "odd.example"));
    assert!(!is_able_to_subscribe(&state, "unknown.example"));
}

#[test]
fn subscription_events_only_from_that_server_while_able() {
    let mut events = base();
    events.push(able("remote.example", "true"));
    let state = RoomState::from_events(&events).unwrap();
    let sub = |sender: &str, key: &str| ev("m.server.subscription", key, sender, "{}");
    assert!(
        check_subscription_event(&state, &sub("@:remote.example", "remote.example")).is_allowed()
    );
    assert!(
        check_subscription_event(&state, &sub("@bot:remote.example", "remote.example"))
            .is_allowed()
    );
    let d = check_subscription_event(&state, &sub("@eve:evil.example", "remote.example"));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, ReasonCode::WrongSenderServer)
    );
    let d = check_subscription_event(&state, &sub("@x:remote.example:8448", "remote.example"));
    assert_eq!(d.reason, ReasonCode::WrongSenderServer);
    let d = check_subscription_event(&state, &sub("@eve:evil.example", "evil.example"));
    assert_eq!(d.reason, ReasonCode::NotAbleToSubscribe);
    // Revoked.
    events.push(able("remote.example", "false"));
    let state = RoomState::from_events(&events).unwrap();
    assert_eq!(
        check_subscription_event(&state, &sub("@:remote.example", "remote.example")).reason,
        ReasonCode::NotAbleToSubscribe
    );
    // Malformed.
    let mut bad = sub("@:remote.example", "remote.example");
    bad.insert("state_key".into(), Value::Int(1));
    assert_eq!(
        check_subscription_event(&state, &bad).reason,
        ReasonCode::MalformedEvent
    );
    bad.insert("type".into(), "m.room.member".into());
    assert_eq!(
        check_subscription_event(&state, &bad).reason,
        ReasonCode::MalformedEvent
    );
}

#[test]
fn gated_join_before_and_after_able_to_subscribe() {
    let mut gate = JoinGate::new();
    let room = "!r:hs.example";
    let mut events = base();
    let state = RoomState::from_events(&events).unwrap();
    assert_eq!(
        gate.check_join(room, &state, "remote.example").reason,
        ReasonCode::RoomNotGated
    );
    gate.gate(room);
    let d = gate.check_join(room, &state, "remote.example");
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Deny, ReasonCode::NotAbleToSubscribe)
    );
    events.push(able("remote.example", "true"));
    let state = RoomState::from_events(&events).unwrap();
    assert!(gate.check_join(room, &state, "remote.example").is_allowed());
    assert!(!gate.check_join(room, &state, "other.example").is_allowed());
    gate.ungate(room);
    assert!(gate.check_join(room, &state, "other.example").is_allowed());
}

#[test]
fn globs() {
    let g = |p: &str, s: &str| Glob::new(p).unwrap().matches(s);
    assert!(g("*.example", "a.example"));
    assert!(g("*", ""));
    assert!(g("a?c", "abc"));
    assert!(!g("a?c", "ac"));
    assert!(g("*a*b", "xxaxxb"));
    assert!(!g("*a*b", "xxaxxbx"));
    assert!(g("**", "anything"));
    // ASCII case is ignored on both sides (MSC4436, Synapse's evaluator); non-ASCII is exact.
    assert!(g("Example.org", "example.org"));
    assert!(g("example.org", "EXAMPLE.ORG"));
    assert!(g("*.GOOD.example", "a.good.EXAMPLE"));
    assert!(g("?.x", "A.X"));
    assert!(!g("é.example", "É.example"));
    // `[` and `]` are literals, not classes.
    assert!(g("[a]", "[A]"));
    assert!(!g("[a]", "a"));
    // Patterns longer than 1,024 characters are honoured (Synapse honours them): runs of `*`
    // collapse, and a pattern needing more characters than the subject has fails at once.
    let long = format!("{}evil.example", "*".repeat(2000));
    assert!(g(&long, "EVIL.example"));
    let literal = "a".repeat(5000);
    assert!(!g(&literal, "aaaa"));
    // Only a pattern no event can carry is refused.
    assert!(Glob::new(&"a".repeat(65_536)).is_ok());
    assert!(Glob::new(&"a".repeat(65_537)).is_err());
    // Pathological: `*a*a*…*a*b` against a long run of `a`s must not backtrack exponentially.
    let pattern = format!("{}b", "*a".repeat(500));
    let subject = "a".repeat(1000);
    assert!(!Glob::new(&pattern).unwrap().matches(&subject));
    assert!(
        Glob::new(&pattern)
            .unwrap()
            .matches(&format!("{}b", &subject[..1000 - 1]))
    );
    // A subject longer than any server name never matches.
    assert!(!g("*", &"a".repeat(2000)));
    // Bounded however long the pattern: 30,000 `*a` pairs against a 253-character name.
    let huge = format!("{}b", "*a".repeat(30_000));
    let started = std::time::Instant::now();
    assert!(!g(&huge, &"a".repeat(253)));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn server_acl_per_spec() {
    let acl = |c: &str| ServerAcl::from_content(&json::parse_object(c.as_bytes()).unwrap());
    let a = acl(r#"{"allow":["*"],"deny":["*.evil.example"],"allow_ip_literals":false}"#);
    assert!(a.check("good.example:8448").is_allowed());
    assert_eq!(
        a.check("x.evil.example").reason,
        ReasonCode::ServerAclDenied
    );
    assert_eq!(a.check("1.2.3.4:8448").reason, ReasonCode::IpLiteralDenied);
    assert_eq!(a.check("[::1]:8448").reason, ReasonCode::IpLiteralDenied);
    // Missing allow denies everyone; a non-boolean allow_ip_literals defaults to true.
    assert!(!acl(r#"{}"#).check("good.example").is_allowed());
    assert!(
        acl(r#"{"allow":["*"],"allow_ip_literals":"no"}"#)
            .check("1.2.3.4")
            .is_allowed()
    );
    // Wrong types are treated as empty lists; non-string entries are skipped.
    assert!(!acl(r#"{"allow":"*"}"#).check("good.example").is_allowed());
    assert!(
        acl(r#"{"allow":[1,"good.*"],"deny":{}}"#)
            .check("good.example")
            .is_allowed()
    );
    // No ACL event: allowed.
    assert!(check_server_acl(&RoomState::new(), "anyone.example").is_allowed());
}

#[test]
fn server_acl_ignores_ascii_case_and_the_port() {
    let acl = |c: &str| ServerAcl::from_content(&json::parse_object(c.as_bytes()).unwrap());
    let deny = acl(r#"{"allow":["*"],"deny":["evil.example"]}"#);
    for name in [
        "evil.example",
        "EVIL.example",
        "Evil.Example:8448",
        "evil.EXAMPLE:1",
    ] {
        let d = deny.check(name);
        assert_eq!(d.reason, ReasonCode::ServerAclDenied, "{name}");
        assert!(d.detail.contains("\"evil.example\""), "{}", d.detail);
    }
    assert!(deny.check("notevil.example").is_allowed());
    let allow = acl(r#"{"allow":["*.good.example"]}"#);
    for name in ["a.good.example", "A.GOOD.EXAMPLE", "A.Good.Example:8448"] {
        assert!(allow.check(name).is_allowed(), "{name}");
    }
    assert!(!allow.check("good.example").is_allowed());
    // An entry longer than 1,024 characters is honoured, as Synapse does.
    let long = format!("{}evil.example", "*".repeat(1100));
    let content = format!(r#"{{"allow":["*"],"deny":["{long}"]}}"#);
    assert_eq!(
        acl(&content).check("X.EVIL.example:8448").reason,
        ReasonCode::ServerAclDenied
    );
    let long_allow = format!(r#"{{"allow":["{}good.example"]}}"#, "*".repeat(1100));
    assert!(acl(&long_allow).check("GOOD.example").is_allowed());
    // IP literals as Synapse sees them: after the port is removed, `[` or a dotted quad.
    let no_ip = acl(r#"{"allow":["*"],"allow_ip_literals":false}"#);
    for name in ["1.2.3.4", "1.2.3.4:8448", "[::1]", "[::1]:8448"] {
        assert_eq!(
            no_ip.check(name).reason,
            ReasonCode::IpLiteralDenied,
            "{name}"
        );
    }
    for name in ["1.2.3", "01.2.3.4", "256.1.1.1", "ip.example"] {
        assert!(no_ip.check(name).is_allowed(), "{name}");
    }
    // A name too long to be a server name is refused, never matched by accident.
    let huge = "a".repeat(2000);
    assert_eq!(
        acl(r#"{"allow":["*"]}"#).check(&huge).reason,
        ReasonCode::ServerAclDenied
    );
}

fn room_with_acl() -> RoomState {
    let mut events = base();
    events.push(ev(
        "m.room.server_acl",
        "",
        "@mod:hs.example",
        r#"{"allow":["*"],"deny":["acl-denied.example"]}"#,
    ));
    RoomState::from_events(&events).unwrap()
}

fn bans() -> PolicyList {
    let events = vec![
        ev(
            "m.policy.rule.server",
            "rule1",
            "@mod:policy.example",
            r#"{"entity":"*.spam.example","recommendation":"m.ban","reason":"spam"}"#,
        ),
        ev(
            "m.policy.rule.server",
            "rule2",
            "@mod:policy.example",
            r#"{"entity":"watch.example","recommendation":"org.example.watch"}"#,
        ),
        ev(
            "m.policy.rule.server",
            "redacted",
            "@mod:policy.example",
            r#"{}"#,
        ),
        ev(
            "m.policy.rule.server",
            "pathological",
            "@mod:policy.example",
            &format!(
                r#"{{"entity":"{}b","recommendation":"m.ban"}}"#,
                "*a".repeat(400)
            ),
        ),
    ];
    PolicyList::from_state(&RoomState::from_events(&events).unwrap())
}

#[test]
fn knock_decisions() {
    let room = room_with_acl();
    let list = bans();
    assert_eq!(list.len(), 3);
    let decide =
        |server: &str, mode| decide_knock("!r:hs.example", server, Some(&room), &list, None, mode);
    // Matches a policy-list glob.
    let d = decide("node1.spam.example", KnockMode::AutoAccept);
    assert_eq!(
        (d.decision.reason, d.outward_event()),
        (ReasonCode::PolicyBan, None)
    );
    assert!(d.decision.detail.contains("spam"));
    // A non-ban recommendation does not ban.
    assert_eq!(
        decide("watch.example", KnockMode::AutoAccept)
            .decision
            .reason,
        ReasonCode::AutoAccepted
    );
    // ACL.
    assert_eq!(
        decide("acl-denied.example", KnockMode::AutoAccept)
            .decision
            .reason,
        ReasonCode::ServerAclDenied
    );
    // Pathological rule against a long name: bounded, and the answer is right.
    let long = format!("{}.example", "a".repeat(240));
    assert_eq!(
        decide(&long, KnockMode::Moderator).decision.verdict,
        Verdict::Pending
    );
    // Pending for a moderator.
    let d = decide("fine.example", KnockMode::Moderator);
    assert_eq!(
        (d.decision.verdict, d.decision.reason, d.outward_event()),
        (Verdict::Pending, ReasonCode::AwaitingModerator, None)
    );
    // Auto-accept: the only outward effect is the is_able_to_subscribe event.
    let d = decide("fine.example", KnockMode::AutoAccept);
    let out = d.outward_event().unwrap();
    assert_eq!(
        out.get("type"),
        Some(&"m.server.is_able_to_subscribe".into())
    );
    assert_eq!(out.get("state_key"), Some(&"fine.example".into()));
    assert_eq!(
        out.get("content"),
        Some(&Value::Object(able_to_subscribe_content(true)))
    );
    assert_eq!(
        d.to_json().get("decision").and_then(|x| x.get("reason")),
        Some(&"auto_accepted".into())
    );
}

#[test]
fn knock_decisions_ignore_ascii_case_in_acls_and_policy_lists() {
    let mut events = base();
    events.push(ev(
        "m.room.server_acl",
        "",
        "@mod:hs.example",
        r#"{"allow":["*"],"deny":["evil.example"]}"#,
    ));
    let room = RoomState::from_events(&events).unwrap();
    let long_entity = format!("{}.long.example", "*".repeat(1100));
    let policy = vec![
        ev(
            "m.policy.rule.server",
            "r1",
            "@mod:policy.example",
            r#"{"entity":"*.evil.example","recommendation":"m.ban"}"#,
        ),
        ev(
            "m.policy.rule.server",
            "r2",
            "@mod:policy.example",
            &format!(r#"{{"entity":"{long_entity}","recommendation":"m.ban"}}"#),
        ),
    ];
    let list = PolicyList::from_state(&RoomState::from_events(&policy).unwrap());
    assert_eq!(list.len(), 2, "an entity over 1,024 characters is kept");
    let decide = |server: &str| {
        decide_knock(
            "!r:hs.example",
            server,
            Some(&room),
            &list,
            None,
            KnockMode::Moderator,
        )
    };
    for server in ["x.evil.example", "X.EVIL.example", "X.Evil.Example:8448"] {
        let d = decide(server);
        assert_eq!(
            (d.decision.verdict, d.decision.reason),
            (Verdict::Deny, ReasonCode::PolicyBan),
            "{server}"
        );
        assert!(d.decision.detail.contains("*.evil.example"));
    }
    for server in ["EVIL.example", "Evil.Example:8448"] {
        assert_eq!(
            decide(server).decision.reason,
            ReasonCode::ServerAclDenied,
            "{server}"
        );
    }
    assert_eq!(
        decide("A.LONG.example").decision.reason,
        ReasonCode::PolicyBan
    );
    assert_eq!(decide("good.example").decision.verdict, Verdict::Pending);
}

#[test]
fn research_hook_accepts_and_denies() {
    let room = room_with_acl();
    let list = PolicyList::new();
    let research = |_: &str, server: &str| match server {
        "trusted.example" => Research::Accept("on the partner list".into()),
        "new.example" => Research::Deny("registered yesterday".into()),
        _ => Research::NoOpinion,
    };
    let d = decide_knock(
        "!r:hs.example",
        "trusted.example",
        Some(&room),
        &list,
        Some(&research),
        KnockMode::Moderator,
    );
    assert_eq!(d.decision.reason, ReasonCode::ResearchAccepted);
    assert!(d.outward_event().is_some());
    let d = decide_knock(
        "!r:hs.example",
        "new.example",
        Some(&room),
        &list,
        Some(&research),
        KnockMode::AutoAccept,
    );
    assert_eq!(
        (d.decision.reason, d.outward_event()),
        (ReasonCode::ResearchDenied, None)
    );
    let d = decide_knock(
        "!r:hs.example",
        "other.example",
        Some(&room),
        &list,
        Some(&research),
        KnockMode::Moderator,
    );
    assert_eq!(d.decision.verdict, Verdict::Pending);
    // The hook is never asked about servers the ACL refuses.
    let d = decide_knock(
        "!r:hs.example",
        "acl-denied.example",
        Some(&room),
        &list,
        Some(&research),
        KnockMode::AutoAccept,
    );
    assert_eq!(d.decision.reason, ReasonCode::ServerAclDenied);
}

#[test]
fn unknown_and_denied_rooms_look_the_same_from_outside() {
    let room = room_with_acl();
    let list = bans();
    let unknown = decide_knock(
        "!nope:hs.example",
        "fine.example",
        None,
        &list,
        None,
        KnockMode::AutoAccept,
    );
    let denied = decide_knock(
        "!r:hs.example",
        "acl-denied.example",
        Some(&room),
        &list,
        None,
        KnockMode::AutoAccept,
    );
    let pending = decide_knock(
        "!r:hs.example",
        "fine.example",
        Some(&room),
        &list,
        None,
        KnockMode::Moderator,
    );
    assert_eq!(unknown.decision.reason, ReasonCode::UnknownRoom);
    assert_eq!(unknown.outward_event(), None);
    assert_eq!(unknown.outward_event(), denied.outward_event());
    assert_eq!(unknown.outward_event(), pending.outward_event());
    // Already able: allowed, nothing new to send.
    let mut events = base();
    events.push(able("fine.example", "true"));
    let state = RoomState::from_events(&events).unwrap();
    let d = decide_knock(
        "!r:hs.example",
        "fine.example",
        Some(&state),
        &list,
        None,
        KnockMode::AutoAccept,
    );
    assert_eq!(
        (d.decision.reason, d.outward_event()),
        (ReasonCode::AbleToSubscribe, None)
    );
}
