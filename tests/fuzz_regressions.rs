//! Inputs the fuzz targets (`fuzz/`, see `docs/fuzzing.md`) found failing, replayed through the
//! same invariant checks under `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use servership::subscription::knock::parse_knock;

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
