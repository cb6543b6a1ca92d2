//! The post-join audit: planning whom to ask, and classifying their answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use servership::discovery::{
    Audit, AuditReport, Departure, PeerAnswer, Removal, Responder, ResponderConfig, RoomView,
    Standing, participation_tag, read_response_for, recognised_in, request_body_for,
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
            ("gray.example".to_owned(), "leave".to_owned()),
            ("red.example".to_owned(), "ban".to_owned())
        ]
    );
    assert!(report.removed.is_empty(), "pairs carry no sender");
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

// --- the membership history ------------------------------------------------------------------

/// The room as Purple received its membership events: who joined, who left, who removed whom.
const HISTORY: &[(&str, &str, &str)] = &[
    ("@alice:blue.example", "join", "@alice:blue.example"),
    ("@me:purple.example", "join", "@me:purple.example"),
    // Left on its own, then re-invited: it was in the room, so its recognition is explained.
    ("@g:gray.example", "join", "@g:gray.example"),
    ("@g:gray.example", "leave", "@g:gray.example"),
    ("@g:gray.example", "invite", "@alice:blue.example"),
    // Knocked only: never joined.
    ("@k:knock.example", "knock", "@k:knock.example"),
    // Kicked by Blue's user.
    ("@v:green.example", "join", "@v:green.example"),
    ("@v:green.example", "leave", "@mallory:blue.example"),
    // Banned by its own server's admin.
    ("@u:red.example", "join", "@u:red.example"),
    ("@u:red.example", "ban", "@admin:red.example"),
    // Banned without ever joining.
    ("@x:black.example", "ban", "@alice:blue.example"),
    // Invited only.
    ("@i:white.example", "invite", "@alice:blue.example"),
    // Two users of orange: one kicked by blue's mallory, one banned by cyan's eve, and a third
    // kicked by mallory again (named once).
    ("@o1:orange.example", "join", "@o1:orange.example"),
    ("@o2:orange.example", "join", "@o2:orange.example"),
    ("@o3:orange.example", "invite", "@alice:blue.example"),
    ("@o1:orange.example", "leave", "@mallory:blue.example"),
    ("@o2:orange.example", "ban", "@eve:cyan.example"),
    ("@o3:orange.example", "leave", "@mallory:blue.example"),
    // Re-joined after a kick, then left on its own: the last entry decides.
    ("@t:teal.example", "join", "@t:teal.example"),
    ("@t:teal.example", "leave", "@mallory:blue.example"),
    ("@t:teal.example", "join", "@t:teal.example"),
    ("@t:teal.example", "leave", "@t:teal.example"),
    // The server pseudouser counts for its server.
    ("@:pseudo.example", "join", "@:pseudo.example"),
    ("@:pseudo.example", "leave", "@:pseudo.example"),
    // Malformed entries are skipped, whatever they claim.
    ("not-a-user", "join", "@alice:blue.example"),
    ("@y:yellow.example", "join", "garbage"),
    ("@y:yellow.example", "dance", "@y:yellow.example"),
    ("@y:bad..name", "join", "@y:bad..name"),
    ("", "", ""),
];

fn history_view(visible: Option<&[&str]>) -> RoomView {
    RoomView::from_history(ROOM, "purple.example", HISTORY, visible)
}

#[test]
fn history_gives_visibility_from_last_entries() {
    let v = history_view(None);
    assert!(v.is_visible("blue.example"));
    assert!(v.is_visible("purple.example"));
    for server in [
        "gray.example",
        "green.example",
        "teal.example",
        "pseudo.example",
    ] {
        assert!(!v.is_visible(server), "{server}");
    }
    assert!(
        !v.is_visible("yellow.example"),
        "malformed entries are skipped"
    );
    assert_eq!(
        v.visible_servers().collect::<Vec<_>>(),
        ["blue.example", "purple.example"]
    );
    // The homeserver's list wins over the history.
    let v = history_view(Some(&["blue.example", "gray.example"]));
    assert!(v.is_visible("gray.example"));
    assert!(!v.is_visible("purple.example"));
    assert_eq!(v.standing("gray.example"), Standing::Visible);
}

#[test]
fn every_classification_rule() {
    let v = history_view(None);
    let explained = |s: &str| Standing::Explained(s.to_owned());
    assert_eq!(
        v.standing("gray.example"),
        explained("invite"),
        "left then re-invited"
    );
    assert_eq!(
        v.standing("knock.example"),
        Standing::Unexplained,
        "knocked only"
    );
    assert_eq!(
        v.standing("green.example"),
        Standing::RemovedByOther {
            membership: Departure::Left,
            removed_by: vec!["@mallory:blue.example".into()]
        },
        "kicked by another server's user"
    );
    assert_eq!(
        v.standing("red.example"),
        explained("ban"),
        "banned by its own admin"
    );
    assert_eq!(
        v.standing("black.example"),
        Standing::Unexplained,
        "ban without a join"
    );
    assert_eq!(
        v.standing("white.example"),
        Standing::Unexplained,
        "invited only"
    );
    assert_eq!(
        v.standing("orange.example"),
        Standing::RemovedByOther {
            membership: Departure::Banned,
            removed_by: vec!["@mallory:blue.example".into(), "@eve:cyan.example".into()]
        },
        "a ban outranks a kick; removers once each, in history order"
    );
    assert_eq!(
        v.standing("teal.example"),
        explained("leave"),
        "re-joined, then left"
    );
    assert_eq!(
        v.standing("pseudo.example"),
        explained("leave"),
        "the pseudouser"
    );
    assert_eq!(
        v.standing("yellow.example"),
        Standing::Unexplained,
        "malformed only"
    );
    assert_eq!(v.standing("never.example"), Standing::Unexplained);
    assert_eq!(v.standing("blue.example"), Standing::Visible);
    assert!(v.ever_joined("gray.example") && !v.ever_joined("black.example"));
    assert_eq!(v.last_membership("black.example"), Some("ban"));
    assert_eq!(
        v.departure("black.example"),
        None,
        "a ban without a join is no departure"
    );
    assert_eq!(v.departure("red.example"), Some(Departure::Banned));
}

#[test]
fn a_kick_by_the_same_server_is_no_removal() {
    // A moderator of the removed server itself (or the user leaving) explains the departure.
    let history = [
        ("@a:green.example", "join", "@a:green.example"),
        ("@a:green.example", "leave", "@mod:green.example"),
    ];
    let v = RoomView::from_history(ROOM, "purple.example", &history, None::<&[&str]>);
    assert_eq!(
        v.standing("green.example"),
        Standing::Explained("leave".into())
    );
    // The same kick sent from another server is a removal.
    let history = [
        ("@a:green.example", "join", "@a:green.example"),
        ("@a:green.example", "leave", "@mod:green.example:8448"),
    ];
    let v = RoomView::from_history(ROOM, "purple.example", &history, None::<&[&str]>);
    assert!(matches!(
        v.standing("green.example"),
        Standing::RemovedByOther { .. }
    ));
}

fn all_recognise(view: RoomView, peers: &[&str]) -> AuditReport {
    let audit = Audit::plan(view, peers, peers.len());
    let answers: Vec<(String, PeerAnswer)> = peers
        .iter()
        .map(|p| ((*p).to_owned(), PeerAnswer::Recognised))
        .collect();
    audit.report(&answers)
}

#[test]
fn report_from_history_lists_each_class() {
    let peers = [
        "gray.example",
        "knock.example",
        "green.example",
        "red.example",
        "black.example",
        "orange.example",
    ];
    let report = all_recognise(history_view(None), &peers);
    assert_eq!(report.unexplained, ["knock.example", "black.example"]);
    assert_eq!(
        report.removed,
        vec![
            Removal {
                server: "green.example".into(),
                membership: Departure::Left,
                removed_by: vec!["@mallory:blue.example".into()],
            },
            Removal {
                server: "orange.example".into(),
                membership: Departure::Banned,
                removed_by: vec!["@mallory:blue.example".into(), "@eve:cyan.example".into()],
            },
        ]
    );
    assert_eq!(
        report.explained,
        vec![
            ("gray.example".to_owned(), "invite".to_owned()),
            ("red.example".to_owned(), "ban".to_owned())
        ]
    );
    assert_eq!(report.verdict(), "hidden_branch_suspected");
    let json = json::parse(&report.to_json()).unwrap();
    let removed = json.get("removed").unwrap().as_array().unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(
        removed[0].get("server").unwrap().as_str(),
        Some("green.example")
    );
    assert_eq!(
        removed[0].get("membership").unwrap().as_str(),
        Some("leave")
    );
    assert_eq!(
        removed[1].get("removed_by").unwrap().as_array().unwrap()[1].as_str(),
        Some("@eve:cyan.example")
    );
    let text = report.to_text();
    assert!(
        text.contains("REMOVED BY ANOTHER SERVER: green.example (kicked by @mallory:blue.example); orange.example (banned by @mallory:blue.example, @eve:cyan.example)"),
        "{text}"
    );
    assert!(text.contains("HIDDEN BRANCH SUSPECTED"), "{text}");
    assert!(text.contains("gray.example (invite)"), "{text}");
}

#[test]
fn verdict_precedence() {
    let v = || history_view(None);
    // Unexplained outranks removed.
    assert_eq!(
        all_recognise(v(), &["green.example", "knock.example"]).verdict(),
        "hidden_branch_suspected"
    );
    // Removed alone: never folded into consistent.
    let removed = all_recognise(v(), &["green.example", "gray.example"]);
    assert_eq!(removed.verdict(), "removed_by_other_server");
    assert!(!removed.hidden_branch_suspected());
    // Removed outranks inconclusive (every other peer failed).
    let audit = Audit::plan(v(), &["green.example", "down.example"], 5);
    let r = audit.report(&[("green.example".into(), PeerAnswer::Recognised)]);
    assert_eq!(r.verdict(), "removed_by_other_server");
    // Explained and not-recognising peers only: consistent.
    let audit = Audit::plan(v(), &["gray.example", "white.example"], 5);
    let r = audit.report(&[
        ("gray.example".into(), PeerAnswer::Recognised),
        ("white.example".into(), PeerAnswer::NotRecognised),
    ]);
    assert_eq!(r.verdict(), "consistent");
    // Every asked peer failed, or nobody was asked: inconclusive.
    assert_eq!(audit.report(&[]).verdict(), "inconclusive");
    let nobody = Audit::plan(v(), &[] as &[&str], 5);
    assert_eq!(nobody.report(&[]).verdict(), "inconclusive");
    assert!(
        nobody
            .report(&[])
            .to_text()
            .contains("Verdict: inconclusive")
    );
}

// --- choosing peers ----------------------------------------------------------------------------

fn candidates() -> Vec<(&'static str, u64)> {
    vec![
        ("green.example", 5),
        ("blue.example", 100),   // visible
        ("purple.example", 100), // us
        ("", 100),               // empty
        ("gray.example", 0),
        ("green.example", 1_000), // repeated: the first counts
        ("yellow.example", 2),
        ("bronze.example", u64::MAX),
    ]
}

#[test]
fn choose_drops_us_visible_empty_and_repeats_and_is_bounded() {
    for seed in 0..200 {
        let audit = Audit::choose(view(), &candidates(), 10, seed);
        let mut peers = audit.peers().to_vec();
        peers.sort();
        assert_eq!(
            peers,
            [
                "bronze.example",
                "gray.example",
                "green.example",
                "yellow.example"
            ],
            "seed {seed}"
        );
        let two = Audit::choose(view(), &candidates(), 2, seed);
        assert_eq!(two.peers().len(), 2);
        assert_eq!(
            two.peers(),
            &audit.peers()[..2],
            "a shorter plan is a prefix (seed {seed})"
        );
    }
    assert!(
        Audit::choose(view(), &candidates(), 0, 1)
            .peers()
            .is_empty()
    );
    assert!(
        Audit::choose(view(), &[] as &[(&str, u64)], 5, 1)
            .peers()
            .is_empty()
    );
}

#[test]
fn choose_is_reproducible_per_seed_and_varies_across_seeds() {
    let many: Vec<(String, u64)> = (0..50).map(|i| (format!("s{i}.example"), 1)).collect();
    let a = Audit::choose(view(), &many, 5, 42);
    let b = Audit::choose(view(), &many, 5, 42);
    assert_eq!(a.peers(), b.peers());
    let plans: std::collections::HashSet<Vec<String>> = (0..100u64)
        .map(|seed| Audit::choose(view(), &many, 5, seed).peers().to_vec())
        .collect();
    assert!(
        plans.len() > 90,
        "only {} distinct plans from 100 seeds",
        plans.len()
    );
}

#[test]
fn choose_prefers_higher_scores_in_proportion() {
    // Weight = score + 1: b (score 9) is ten times likelier than a (score 0).
    let pair = [("a.example", 0u64), ("b.example", 9)];
    let seeds = 20_000u64;
    let b_first = (0..seeds)
        .filter(|&seed| Audit::choose(view(), &pair, 1, seed).peers() == ["b.example"])
        .count() as f64;
    let share = b_first / seeds as f64;
    assert!(
        (0.89..0.93).contains(&share),
        "b chosen first {share} of the time, want ~10/11"
    );

    // Equal scores: every peer is chosen first about as often.
    let four = [
        ("p.example", 3u64),
        ("q.example", 3),
        ("r.example", 3),
        ("s.example", 3),
    ];
    let mut counts = std::collections::HashMap::new();
    for seed in 0..8_000u64 {
        let first = Audit::choose(view(), &four, 1, seed).peers()[0].clone();
        *counts.entry(first).or_insert(0u32) += 1;
    }
    for (peer, n) in &counts {
        assert!((1_800..2_200).contains(n), "{peer} first {n} times of 8000");
    }
    assert_eq!(counts.len(), 4);

    // A huge score does not overflow and dominates.
    let skewed = [("small.example", 0u64), ("huge.example", u64::MAX)];
    for seed in 0..100 {
        assert_eq!(
            Audit::choose(view(), &skewed, 1, seed).peers(),
            ["huge.example"]
        );
    }
}

// --- asking one peer about one room in one call --------------------------------------------------

#[test]
fn one_room_helpers_match_the_audit() {
    let audit = Audit::plan(view(), &["green.example"], 1);
    assert_eq!(
        request_body_for("green.example", ROOM),
        audit.request_body("green.example")
    );
    let tag = participation_tag("green.example", ROOM).to_base64();
    let yes = format!(r#"{{"recognised_tags":["{tag}"]}}"#);
    assert!(recognised_in("green.example", ROOM, yes.as_bytes()).unwrap());
    assert!(!recognised_in("green.example", ROOM, br#"{"recognised_tags":[]}"#).unwrap());
    let err = recognised_in("yellow.example", ROOM, yes.as_bytes()).unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_BAD_JSON");
    assert!(err.message().contains("was not asked"), "{}", err.message());
    assert_eq!(
        read_response_for("green.example", ROOM, yes.as_bytes()),
        PeerAnswer::Recognised
    );
    assert!(matches!(
        read_response_for("green.example", ROOM, b"\xff"),
        PeerAnswer::Failed(why) if why.starts_with("malformed response")
    ));
}
