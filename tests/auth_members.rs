//! The members rules (`servership::auth::members`) against the spec-style vectors in
//! `tests/vectors/auth_members_room_version.json`: each case's decision from
//! `check_members_rules`, and the whole room version's verdict from `check_create` /
//! `check_event` (v12 with `peekable` read as `public`, then the additions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use servership::auth::{self, AuthState, check_members_rules};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;

fn cases() -> Vec<Value> {
    let text = std::fs::read("tests/vectors/auth_members_room_version.json").unwrap();
    let doc = json::parse(&text).unwrap();
    doc.get("cases").unwrap().as_array().unwrap().clone()
}

fn field<'a>(case: &'a Value, key: &str) -> &'a str {
    case.get(key).and_then(Value::as_str).unwrap()
}

/// The whole room version's verdict on the case.
fn full_verdict(event: &Object, auth: &[Object], version: RoomVersion) -> bool {
    if event.get("type").and_then(Value::as_str) == Some("m.room.create") {
        return auth::check_create(event, version).is_allowed();
    }
    let creates: Vec<&Object> = auth
        .iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.room.create"))
        .collect();
    let [create] = creates.as_slice() else {
        return false;
    };
    if auth::check_create(create, version.with_marker_of(create)).verdict
        != servership::decision::Verdict::Allow
    {
        return false;
    }
    let mut state = AuthState::new(create, "$create", version);
    let mut keys = std::collections::BTreeSet::new();
    for e in auth.iter().filter(|e| !std::ptr::eq(*e, *create)) {
        let key = (e.get("type").cloned(), e.get("state_key").cloned());
        if !keys.insert(format!("{key:?}")) {
            return false;
        }
        state.insert(e);
    }
    auth::check_event(event, &state).is_allowed()
}

#[test]
fn every_vector_passes() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = field(case, "name");
        let version = RoomVersion::from_id(field(case, "room_version")).unwrap();
        let event = case.get("event").unwrap().as_object().unwrap();
        let auth: Vec<Object> = case
            .get("auth_events")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_object().unwrap().clone())
            .collect();
        let refs: Vec<&Object> = auth.iter().collect();
        let d = check_members_rules(event, &refs, version);
        let expect = case.get("expect").unwrap();
        let (verdict, reason) = (field(expect, "verdict"), field(expect, "reason"));
        if d.verdict.as_str() != verdict || d.reason.as_str() != reason {
            failures.push(format!(
                "{name}: got {} {} ({}), want {verdict} {reason}",
                d.verdict.as_str(),
                d.reason.as_str(),
                d.detail
            ));
        }
        let full = full_verdict(event, &auth, version);
        if full != (field(case, "full_verdict") == "allow") {
            failures.push(format!("{name}: full room version verdict {full}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_has_both_verdicts() {
    let cases = cases();
    for rule in ["a", "b", "c", "d", "e", "f"] {
        for verdict in ["allow", "deny"] {
            let seen = cases.iter().any(|c| {
                field(c, "rule") == rule
                    && (c.get("expect").map(|e| field(e, "verdict")) == Some(verdict)
                        || field(c, "full_verdict") == verdict)
            });
            assert!(seen, "rule {rule} has no {verdict} case");
        }
    }
}

fn obj(text: &str) -> Object {
    json::parse_object(text.as_bytes()).unwrap()
}

const X: &str = "org.servership.v12.members.1";

fn create_x() -> Object {
    obj(&format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"@alice:a.example","content":{{"room_version":"{X}","org.servership.gated":true}},"prev_events":[]}}"#
    ))
}

/// Hostile sizes: a 60 KiB sender and state key, thousands of auth events, deep content. The
/// answer stays a decision with a short detail, and comes quickly.
#[test]
fn huge_and_deep_events_are_decided_with_short_details() {
    let long = "x".repeat(60_000);
    let create = create_x();
    let grant = obj(&format!(
        r#"{{"type":"m.server.is_able_to_subscribe","state_key":"b.example","sender":"@{long}:a.example","content":{{"is_able_to_subscribe":true}}}}"#
    ));
    let d = check_members_rules(&grant, &[&create], RoomVersion::SERVERSHIP_MEMBERS_1);
    assert!(!d.is_allowed(), "{}", d.detail);
    assert!(d.detail.len() < 1000, "{} bytes", d.detail.len());

    let join = obj(&format!(
        r#"{{"type":"m.room.member","state_key":"@{long}:b.example","sender":"@{long}:b.example","content":{{"membership":"join"}}}}"#
    ));
    let d = check_members_rules(&join, &[&create], RoomVersion::SERVERSHIP_MEMBERS_1);
    assert!(!d.is_allowed());
    assert!(d.detail.len() < 1000, "{} bytes", d.detail.len());

    // 20,000 distinct auth events the selection does not name: read past, not refused.
    let many: Vec<Object> = (0..20_000)
        .map(|i| {
            obj(&format!(
                r#"{{"type":"m.room.member","state_key":"@u{i}:b.example","sender":"@u{i}:b.example","content":{{"membership":"join"}}}}"#
            ))
        })
        .collect();
    let bob = obj(
        r#"{"type":"m.room.member","state_key":"@bob:b.example","sender":"@bob:b.example","content":{"membership":"join"}}"#,
    );
    let mut refs: Vec<&Object> = vec![&create];
    refs.extend(many.iter());
    let start = std::time::Instant::now();
    let d = check_members_rules(&bob, &refs, RoomVersion::SERVERSHIP_MEMBERS_1);
    assert_eq!(d.reason.as_str(), "not_able_to_subscribe", "{}", d.detail);
    assert!(start.elapsed().as_secs() < 5);

    // Content nested as deep as the parser allows.
    let depth = json::MAX_DEPTH - 3;
    let deep = format!(
        r#"{{"type":"m.room.member","state_key":"@bob:b.example","sender":"@bob:b.example","content":{{"membership":"join","x":{}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let deep = obj(&deep);
    let d = check_members_rules(&deep, &[&create], RoomVersion::SERVERSHIP_MEMBERS_1);
    assert_eq!(d.reason.as_str(), "not_able_to_subscribe");
}

/// The attacks of docs/protocol.md's rules, each refused, in one place.
#[test]
fn attacks_on_the_rules_are_refused() {
    let create = create_x();
    let grant_b = obj(
        r#"{"type":"m.server.is_able_to_subscribe","state_key":"b.example","sender":"@alice:a.example","content":{"is_able_to_subscribe":true}}"#,
    );
    let rules = obj(
        r#"{"type":"m.room.join_rules","state_key":"","sender":"@alice:a.example","content":{"join_rule":"peekable"}}"#,
    );
    let v = RoomVersion::SERVERSHIP_MEMBERS_1;
    let check = |event: &str, auth: &[&Object]| {
        let mut all = vec![&create];
        all.extend_from_slice(auth);
        check_members_rules(&obj(event), &all, v)
    };
    // c.example's pseudouser joining as b.example's.
    let d = check(
        r#"{"type":"m.room.member","state_key":"@:b.example","sender":"@:c.example","content":{"membership":"join"}}"#,
        &[&rules, &grant_b],
    );
    assert_eq!(d.reason.as_str(), "not_sent_by_pseudouser");
    // Spellings of b.example that b.example's grant must not admit.
    for user in [
        "@bob:B.EXAMPLE",
        "@bob:b.example:8448",
        "@bob:b.example:443",
        "@bob:b.example.",
        "@:B.example",
    ] {
        let d = check(
            &format!(
                r#"{{"type":"m.room.member","state_key":"{user}","sender":"{user}","content":{{"membership":"join"}}}}"#
            ),
            &[&rules, &grant_b],
        );
        assert!(!d.is_allowed(), "{user}: {}", d.detail);
    }
    // A subscription for b.example while it is not able to, and one sent by a user, not @:.
    let d = check(
        r#"{"type":"m.server.subscription","state_key":"b.example","sender":"@:b.example","content":{}}"#,
        &[],
    );
    assert_eq!(d.reason.as_str(), "not_able_to_subscribe");
    let d = check(
        r#"{"type":"m.server.subscription","state_key":"b.example","sender":"@bob:b.example","content":{}}"#,
        &[&grant_b],
    );
    assert_eq!(d.reason.as_str(), "not_sent_by_pseudouser");
    // A grant from a member without power, and with a wrong-typed value.
    let bob = obj(
        r#"{"type":"m.room.member","state_key":"@bob:b.example","sender":"@bob:b.example","content":{"membership":"join"}}"#,
    );
    let d = check(
        r#"{"type":"m.server.is_able_to_subscribe","state_key":"b.example","sender":"@bob:b.example","content":{"is_able_to_subscribe":true}}"#,
        &[&bob],
    );
    assert_eq!(d.reason.as_str(), "insufficient_power");
    let d = check(
        r#"{"type":"m.server.is_able_to_subscribe","state_key":"b.example","sender":"@alice:a.example","content":{"is_able_to_subscribe":1}}"#,
        &[],
    );
    assert_eq!(d.reason.as_str(), "malformed_event");
}
