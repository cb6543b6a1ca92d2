//! Inputs the fuzz targets (`fuzz/`, see `docs/fuzzing.md`) found failing, replayed through the
//! same invariant checks under `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

use servership::subscription::knock::parse_knock;

/// A target's invariant check.
type Check = fn(&[u8]);

/// Every file of the small minimised corpora committed under `fuzz/corpus-min/<target>/` (see
/// docs/fuzzing.md), through the target's checks: what the fuzzer once reached stays covered.
#[test]
fn committed_minimised_corpora_replay() {
    let targets: [(&str, Check); 4] = [
        ("audit_response", checks::audit_response),
        ("discover_common_rooms", checks::discover_common_rooms),
        ("invite_promotion", checks::invite_promotion),
        ("spec_invite", checks::spec_invite),
    ];
    for (target, check) in targets {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus-min")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{target}: only {} files", files.len());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            check(&data);
        }
    }
}

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
