//! The `discover_common_rooms` responder and requester, through the JSON bytes federation carries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use servership::discovery::{
    MemoryBudget, ParticipationTag, Requester, Responder, ResponderConfig, STABLE_PATH,
    UNSTABLE_PATH, normalise_origin, participation_tag,
};
use servership::json::{self, Value};
use servership::store::TagStore;

const SERVER: &str = "yellow.example";

struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "servership-endpoint-{}-{name}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn responder(name: &str, config: ResponderConfig) -> (TempDir, Responder) {
    let dir = TempDir::new(name);
    let store = TagStore::open(dir.0.join("tags.sqlite"), SERVER).unwrap();
    store
        .backfill(
            &["!one:example.org", "!two:example.org", "!three:example.org"],
            1,
        )
        .unwrap();
    (dir, Responder::new(Arc::new(store), config).unwrap())
}

fn tag(room: &str) -> String {
    participation_tag(SERVER, room).to_base64()
}

fn body(tags: &[String]) -> Vec<u8> {
    let arr: Vec<Value> = tags.iter().map(|t| Value::from(t.as_str())).collect();
    let mut o = json::Object::new();
    o.insert("room_participation_tags".into(), Value::Array(arr));
    Value::Object(o).to_canonical()
}

fn recognised(response: &[u8]) -> Vec<String> {
    let v = json::parse(response).unwrap();
    v.get("recognised_tags")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// Asserts `respond` fails with `errcode`, HTTP `status`, and a message containing `needle`.
fn expect_error(r: &Responder, body: &[u8], errcode: &str, status: u16, needle: &str) {
    let err = r.respond(body, "evil.example", 0).unwrap_err();
    assert_eq!(err.errcode().as_str(), errcode, "{err}");
    assert_eq!(err.status(), status, "{err}");
    assert!(
        err.message().contains(needle),
        "{:?} lacks {needle:?}",
        err.message()
    );
    let wire = json::parse(err.to_json().as_bytes()).unwrap();
    assert_eq!(wire.get("errcode").unwrap().as_str(), Some(errcode));
}

#[test]
fn answers_the_recognised_subset_in_request_order_each_once() {
    let (_d, r) = responder("subset", ResponderConfig::default());
    let asked = vec![
        tag("!three:example.org"),
        tag("!unknown:example.org"),
        tag("!one:example.org"),
        tag("!three:example.org"),
        participation_tag("other.example", "!two:example.org").to_base64(),
        // Padded spelling of a known tag: recognised, echoed as sent, but !one only once.
        format!("{}=", tag("!one:example.org")),
        tag("!two:example.org"),
    ];
    let out = r.respond(&body(&asked), "green.example", 0).unwrap();
    assert_eq!(
        recognised(&out),
        vec![
            tag("!three:example.org"),
            tag("!one:example.org"),
            tag("!two:example.org")
        ]
    );
    // The answer is canonical JSON.
    assert_eq!(json::canonicalize(&out).unwrap(), out);
    let empty = r
        .respond(br#"{"room_participation_tags": []}"#, "green.example", 0)
        .unwrap();
    assert_eq!(empty, br#"{"recognised_tags":[]}"#);
}

#[test]
fn bad_requests_get_the_documented_errors() {
    let (_d, r) = responder("bad", ResponderConfig::default());
    expect_error(&r, b"not json", "M_NOT_JSON", 400, "");
    expect_error(
        &r,
        b"{\"room_participation_tags\": [\xff]}",
        "M_NOT_JSON",
        400,
        "",
    );
    expect_error(
        &r,
        b"[]",
        "M_BAD_JSON",
        400,
        "must be an object, not an array",
    );
    expect_error(
        &r,
        b"{}",
        "M_MISSING_PARAM",
        400,
        "room_participation_tags is required",
    );
    expect_error(
        &r,
        br#"{"room_participation_tags": "abc"}"#,
        "M_BAD_JSON",
        400,
        "room_participation_tags must be an array, not a string",
    );
    let good = tag("!one:example.org");
    let wrong_type = format!(r#"{{"room_participation_tags": ["{good}", "{good}", 7]}}"#);
    expect_error(
        &r,
        wrong_type.as_bytes(),
        "M_BAD_JSON",
        400,
        "room_participation_tags[2] must be a string, not an integer",
    );
    let malformed = body(&[
        good.clone(),
        good.clone(),
        good.clone(),
        "!!!not base64!!!".into(),
    ]);
    expect_error(
        &r,
        &malformed,
        "M_INVALID_PARAM",
        400,
        "room_participation_tags[3] is not 32 bytes of base64",
    );
    let short = servership::b64::encode(&[1u8; 31]);
    expect_error(
        &r,
        &body(&[short]),
        "M_INVALID_PARAM",
        400,
        "room_participation_tags[0] is not 32 bytes of base64",
    );
    let long = servership::b64::encode(&[1u8; 33]);
    expect_error(
        &r,
        &body(&[good.clone(), long]),
        "M_INVALID_PARAM",
        400,
        "[1] is not 32 bytes",
    );
    // Duplicate keys and floats are refused by the strict parser.
    expect_error(
        &r,
        br#"{"room_participation_tags": [], "room_participation_tags": []}"#,
        "M_BAD_JSON",
        400,
        "",
    );
}

#[test]
fn too_many_tags_is_413() {
    let (_d, r) = responder("large", ResponderConfig::default());
    // 100,000 real tags: refused on size before parsing.
    let many: Vec<String> = (0..100_000).map(|i| tag(&format!("!r{i}:x"))).collect();
    expect_error(&r, &body(&many), "M_TOO_LARGE", 413, "request body is");
    // 1001 short strings fit in the byte limit but exceed the count cap.
    let small = format!(
        r#"{{"room_participation_tags": [{}]}}"#,
        vec!["\"\""; 1001].join(",")
    );
    expect_error(
        &r,
        small.as_bytes(),
        "M_TOO_LARGE",
        413,
        "has 1001 tags; at most 1000",
    );
    // Exactly the cap is fine.
    let cap: Vec<String> = many[..1000].to_vec();
    assert!(r.respond(&body(&cap), "ok.example", 0).is_ok());
}

#[test]
fn budget_per_origin_is_429_with_retry_after() {
    let config = ResponderConfig {
        max_tags_per_request: 10,
        budget_tags: 25,
        budget_window_ms: 1000,
        ..ResponderConfig::default()
    };
    let (_d, r) = responder("budget", config);
    let ten: Vec<String> = (0..10).map(|i| tag(&format!("!b{i}:x"))).collect();
    assert!(r.respond(&body(&ten), "a.example", 100).is_ok());
    assert!(r.respond(&body(&ten), "a.example", 200).is_ok());
    assert_eq!(r.remaining_budget("a.example", 300).unwrap(), 5);
    let err = r.respond(&body(&ten), "a.example", 300).unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_LIMIT_EXCEEDED");
    assert_eq!(err.status(), 429);
    assert_eq!(err.retry_after_ms(), Some(800));
    let wire = json::parse(err.to_json().as_bytes()).unwrap();
    assert_eq!(wire.get("retry_after_ms").unwrap().as_int(), Some(800));
    // Another origin has its own budget; a smaller request still fits.
    assert!(r.respond(&body(&ten), "b.example", 300).is_ok());
    assert!(r.respond(&body(&ten[..5]), "a.example", 300).is_ok());
    // Malformed requests are not charged.
    assert!(r.respond(b"nope", "c.example", 0).is_err());
    assert_eq!(r.remaining_budget("c.example", 0).unwrap(), 25);
    // A new window restores the budget.
    assert!(r.respond(&body(&ten), "a.example", 1100).is_ok());
}

#[test]
fn budget_memory_is_bounded() {
    let config = ResponderConfig::default();
    let dir = TempDir::new("bounded");
    let store = TagStore::open(dir.0.join("tags.sqlite"), SERVER).unwrap();
    let budget = Arc::new(MemoryBudget::new(10_000, 60_000, 100).unwrap());
    let r = Responder::with_budget(Arc::new(store), config, budget.clone()).unwrap();
    let one = body(&[tag("!one:example.org")]);
    for i in 0..1000 {
        r.respond(&one, &format!("s{i}.example"), i).unwrap();
        assert!(budget.tracked_origins() <= 100);
    }
    assert_eq!(budget.tracked_origins(), 100);
}

#[test]
fn origins_are_normalised() {
    for (given, want) in [
        ("ASKER.example", "asker.example"),
        ("asker.example:8448", "asker.example"),
        ("asker.example.", "asker.example"),
        ("Asker.Example.:8448", "asker.example"),
        ("asker.example:08448", "asker.example"),
        ("asker.example", "asker.example"),
        ("asker.example:443", "asker.example:443"),
        ("Asker.Example.:0443", "asker.example:443"),
        ("[2001:DB8::1]:8448", "[2001:db8::1]"),
        ("[2001:0DB8:0:0:0:0:0:1]", "[2001:db8::1]"),
        ("[2001:db8::1]:8008", "[2001:db8::1]:8008"),
        ("1.2.3.4:8448", "1.2.3.4"),
        ("", ""),
        (":", ":"),
        ("[", "["),
        ("[]", "[]"),
        ("[zz]:8448", "[zz]"),
        ("[::1]x", "[::1]x"),
        ("a:b:c", "a:b:c"),
        ("a:99999", "a:99999"),
        ("é.EXAMPLE", "é.example"),
        ("a..", "a"),
        ("a..:8448", "a"),
    ] {
        let got = normalise_origin(given);
        assert_eq!(got, want, "{given:?}");
        assert_eq!(normalise_origin(&got), got, "normalising {given:?} twice");
    }
}

#[test]
fn ten_spellings_of_one_origin_share_one_budget() {
    let config = ResponderConfig {
        max_tags_per_request: 10,
        budget_tags: 95,
        budget_window_ms: 60_000,
        ..ResponderConfig::default()
    };
    let (_d, r) = responder("spellings", config);
    let ten: Vec<String> = (0..10).map(|i| tag(&format!("!s{i}:x"))).collect();
    let spellings = [
        "asker.example",
        "ASKER.example",
        "asker.example.",
        "asker.example:8448",
        "Asker.Example.:8448",
        "ASKER.EXAMPLE",
        "asker.EXAMPLE.",
        "aSkEr.example:8448",
        "asker.example:08448",
        "ASKER.EXAMPLE.:8448",
    ];
    for (i, origin) in spellings.iter().enumerate().take(9) {
        assert!(r.respond(&body(&ten), origin, 1).is_ok(), "{origin}");
        assert_eq!(
            r.remaining_budget(spellings[9], 1).unwrap(),
            95 - 10 * (i as u64 + 1)
        );
    }
    let err = r.respond(&body(&ten), spellings[9], 1).unwrap_err();
    assert_eq!(err.errcode().as_str(), "M_LIMIT_EXCEEDED");
    assert!(
        err.message()
            .starts_with("asker.example has asked about 90"),
        "{}",
        err.message()
    );
    // Another port is another server, with its own budget.
    assert!(r.respond(&body(&ten), "asker.example:443", 1).is_ok());
}

#[test]
fn config_is_checked_and_paths_follow_the_setting() {
    let dir = TempDir::new("config");
    let store = Arc::new(TagStore::open(dir.0.join("t.sqlite"), SERVER).unwrap());
    let bad = ResponderConfig {
        budget_tags: 10,
        ..ResponderConfig::default()
    };
    let err = Responder::new(Arc::clone(&store), bad).unwrap_err();
    assert!(err.message().contains("budget_tags"), "{err}");
    let r = Responder::new(Arc::clone(&store), ResponderConfig::default()).unwrap();
    assert_eq!(r.paths(), vec![UNSTABLE_PATH]);
    assert_eq!(
        UNSTABLE_PATH,
        "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"
    );
    let stable = ResponderConfig {
        stable_path: true,
        ..ResponderConfig::default()
    };
    let r = Responder::new(store, stable).unwrap();
    assert_eq!(r.paths(), vec![UNSTABLE_PATH, STABLE_PATH]);
    assert_eq!(STABLE_PATH, "/_matrix/federation/v1/discover_common_rooms");
}

#[test]
fn requester_round_trip_through_bytes_in_chunks() {
    let (_d, r) = responder("roundtrip", ResponderConfig::default());
    let mut rooms: Vec<String> = (0..2500).map(|i| format!("!n{i}:example.org")).collect();
    rooms.insert(1200, "!two:example.org".into());
    rooms.insert(10, "!one:example.org".into());
    rooms.push("!one:example.org".into()); // duplicate, asked once
    let req = Requester::new(SERVER, &rooms, 1000);
    assert_eq!(req.target(), SERVER);
    assert_eq!(req.chunk_count(), 3);
    let mut found = Vec::new();
    for (i, b) in req.request_bodies().iter().enumerate() {
        let answer = r.respond(b, "purple.example", 0).unwrap();
        found.extend(req.map_response(i, &answer).unwrap());
    }
    assert_eq!(found, vec!["!one:example.org", "!two:example.org"]);
}

#[test]
fn requester_rejects_answers_it_did_not_ask_for() {
    let req = Requester::new(SERVER, &["!one:example.org", "!two:example.org"], 1000);
    let asked = tag("!one:example.org");
    let stranger = tag("!never:example.org");
    let check = |body: &str, needle: &str| {
        let err = req.map_response(0, body.as_bytes()).unwrap_err();
        assert!(
            matches!(err.errcode().as_str(), "M_BAD_JSON" | "M_NOT_JSON"),
            "{err}"
        );
        assert!(
            err.message().contains(needle),
            "{:?} lacks {needle:?}",
            err.message()
        );
    };
    check(
        &format!(r#"{{"recognised_tags": ["{asked}", "{stranger}"]}}"#),
        &format!("recognised_tags[1] names tag {stranger} that was not asked"),
    );
    check(
        r#"{"recognised_tags": ["abc"]}"#,
        "recognised_tags[0] is not 32 bytes",
    );
    check(
        r#"{"recognised_tags": [1]}"#,
        "recognised_tags[0] must be a string",
    );
    check(r#"{"recognised_tags": {}}"#, "must be an array");
    check(r#"{}"#, "recognised_tags is missing");
    check(r#"[]"#, "must be an object");
    check("garbage", "");
    assert!(req.map_response(1, br#"{"recognised_tags": []}"#).is_err());
    // Duplicates in an answer are tolerated; each room is reported once.
    let ok = format!(r#"{{"recognised_tags": ["{asked}", "{asked}"]}}"#);
    assert_eq!(
        req.map_response(0, ok.as_bytes()).unwrap(),
        vec!["!one:example.org"]
    );
    assert_eq!(
        ParticipationTag::from_base64(&asked),
        Some(participation_tag(SERVER, "!one:example.org"))
    );
}
