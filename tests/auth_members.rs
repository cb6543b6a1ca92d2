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
