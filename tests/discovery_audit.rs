//! The post-join audit: planning whom to ask, and classifying their answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use servership::discovery::{
    Audit, Departure, PeerAnswer, Responder, ResponderConfig, RoomView, participation_tag,
};
use servership::json;
use servership::store::TagStore;

const ROOM: &str = "!hidden:blue.example";

fn view() -> RoomView {
    RoomView::from_memberships(
        ROOM,
        "purple.example",
        &[
            ("@alice:blue.example", "join"),
            ("@me:purple.example", "join"),
            ("@:gray.example", "leave"),
            ("@troll:red.example", "leave"),
            ("@troll2:red.example", "ban"),
            ("@guest:white.example", "invite"),
            ("not-a-user-id", "join"),
        ],
    )
}

#[test]
fn membership_view_is_built_from_user_ids() {
    let v = view();
    assert!(v.is_visible("blue.example"));
    assert!(v.is_visible("purple.example"));
    assert!(!v.is_visible("white.example"));
    assert_eq!(v.departure("gray.example"), Some(Departure::Left));
    assert_eq!(v.departure("red.example"), Some(Departure::Banned));
    assert_eq!(v.departure("white.example"), None);
}

#[test]
fn plan_skips_visible_self_and_duplicates_and_is_bounded() {
    let peers = [
        "green.example",
        "blue.example",
        "purple.example",
        "gray.example",
        "green.example",
        "",
        "yellow.example",
        "bronze.example",
    ];
    let audit = Audit::plan(view(), &peers, 3);
    assert_eq!(
        audit.peers(),
        ["green.example", "gray.example", "yellow.example"]
    );
    let again = Audit::plan(view(), &peers, 3);
    assert_eq!(audit.peers(), again.peers(), "planning is deterministic");
    assert_eq!(
        Audit::plan(view(), &peers, 10).peers(),
        [
            "green.example",
            "gray.example",
            "yellow.example",
            "bronze.example"
        ]
    );
}

#[test]
fn report_classifies_every_answer() {
    let peers = [
        "green.example",
        "gray.example",
        "red.example",
        "white.example",
        "black.example",
        "silent.example",
    ];
    let audit = Audit::plan(view(), &peers, 10);
    let answers = vec![
        ("green.example".to_owned(), PeerAnswer::Recognised),
        ("gray.example".to_owned(), PeerAnswer::Recognised),
        ("red.example".to_owned(), PeerAnswer::Recognised),
        ("white.example".to_owned(), PeerAnswer::NotRecognised),
        (
            "black.example".to_owned(),
            PeerAnswer::Failed("timed out".into()),
        ),
        // Asked although visible: consistent.
        ("blue.example".to_owned(), PeerAnswer::Recognised),
    ];
    let report = audit.report(&answers);
    assert_eq!(report.unexplained, vec!["green.example"]);
    assert_eq!(
        report.explained,
        vec![
            ("gray.example".to_owned(), Departure::Left),
            ("red.example".to_owned(), Departure::Banned)
        ]
    );
    assert_eq!(report.not_recognising, vec!["white.example"]);
    assert_eq!(
        report.failed,
        vec![
            ("black.example".to_owned(), "timed out".to_owned()),
            ("silent.example".to_owned(), "no answer".to_owned())
        ]
    );
    assert_eq!(report.visible, vec!["blue.example"]);
    assert!(report.hidden_branch_suspected());
    assert_eq!(report.verdict(), "hidden_branch_suspected");

    let parsed = json::parse(&report.to_json()).unwrap();
    assert_eq!(
        parsed.get("verdict").unwrap().as_str(),
        Some("hidden_branch_suspected")
    );
    assert_eq!(parsed.get("room_id").unwrap().as_str(), Some(ROOM));
    let explained = parsed.get("explained").unwrap().as_array().unwrap();
    assert_eq!(
        explained[1].get("membership").unwrap().as_str(),
        Some("ban")
    );
    assert_eq!(
        parsed.get("failed").unwrap().as_array().unwrap()[0]
            .get("error")
            .unwrap()
            .as_str(),
        Some("timed out")
    );
    assert_eq!(
        json::canonicalize(&report.to_json()).unwrap(),
        report.to_json()
    );

    let text = report.to_text();
    assert!(text.contains("HIDDEN BRANCH SUSPECTED"), "{text}");
    assert!(text.contains("green.example"), "{text}");
    assert!(text.contains("gray.example (leave)"), "{text}");
}

#[test]
fn verdicts_without_findings() {
    let audit = Audit::plan(view(), &["green.example", "yellow.example"], 10);
    let ok = audit.report(&[
        ("green.example".into(), PeerAnswer::NotRecognised),
        (
            "yellow.example".into(),
            PeerAnswer::Failed("HTTP 500".into()),
        ),
    ]);
    assert_eq!(ok.verdict(), "consistent");
    assert!(!ok.hidden_branch_suspected());
    let none = audit.report(&[]);
    assert_eq!(none.verdict(), "inconclusive");
    assert_eq!(none.failed.len(), 2);
}

#[test]
fn audit_requests_and_responses_go_through_real_bytes() {
    let dir = std::env::temp_dir().join(format!(
        "servership-audit-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let green = TagStore::open(dir.join("green.sqlite"), "green.example").unwrap();
    green.record_join(ROOM, 1).unwrap();
    let green = Responder::new(Arc::new(green), ResponderConfig::default()).unwrap();
    let audit = Audit::plan(view(), &["green.example"], 10);
    let body = audit.request_body("green.example");
    let parsed = json::parse(&body).unwrap();
    assert_eq!(
        parsed
            .get("room_participation_tags")
            .unwrap()
            .as_array()
            .unwrap()[0]
            .as_str(),
        Some(
            participation_tag("green.example", ROOM)
                .to_base64()
                .as_str()
        )
    );
    let answer = green.respond(&body, "purple.example", 0).unwrap();
    assert_eq!(
        audit.read_response("green.example", &answer),
        PeerAnswer::Recognised
    );
    // The same answer read as another peer's names a tag that was not asked: a failure.
    assert!(matches!(
        audit.read_response("yellow.example", &answer),
        PeerAnswer::Failed(_)
    ));
    assert_eq!(
        audit.read_response("green.example", br#"{"recognised_tags":[]}"#),
        PeerAnswer::NotRecognised
    );
    let _ = std::fs::remove_dir_all(&dir);
}
