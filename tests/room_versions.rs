//! The room version table: lookups, flags per version, unknown versions, create-event versions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use servership::ErrCode;
use servership::json::{self, Object};
use servership::room_version::{
    EventIdFormat, RedactionRules, RoomIdFormat, RoomVersion, create_event_room_version_id,
};

fn obj(text: &str) -> Object {
    json::parse_object(text.as_bytes()).unwrap()
}

#[test]
fn all_versions_round_trip_through_from_id() {
    let all = RoomVersion::all();
    assert_eq!(all.len(), 12);
    for (i, v) in all.iter().enumerate() {
        assert_eq!(v.id, (i + 1).to_string());
        assert_eq!(RoomVersion::from_id(v.id).unwrap(), *v);
        assert_eq!(v.to_string(), v.id);
    }
    assert_eq!(RoomVersion::from_id("12").unwrap(), RoomVersion::V12);
}

#[test]
fn flags_follow_the_spec_matrix() {
    use RedactionRules as R;
    let expect_redaction = [
        R::V1,
        R::V1,
        R::V1,
        R::V1,
        R::V1,
        R::V6,
        R::V6,
        R::V8,
        R::V9,
        R::V9,
        R::V11,
        R::V11,
    ];
    for (v, r) in RoomVersion::all().iter().zip(expect_redaction) {
        assert_eq!(v.redaction, r, "v{}", v.id);
        let n: u32 = v.id.parse().unwrap();
        let id_format = match n {
            1 | 2 => EventIdFormat::Opaque,
            3 => EventIdFormat::Base64,
            _ => EventIdFormat::UrlSafeBase64,
        };
        assert_eq!(v.event_id_format, id_format, "v{n}");
        assert_eq!(v.strict_canonical_json, n >= 6, "v{n}");
        assert_eq!(v.enforce_key_validity, n >= 5, "v{n}");
        let v12 = n == 12;
        assert_eq!(
            v.room_id_format,
            if v12 {
                RoomIdFormat::CreateEventHash
            } else {
                RoomIdFormat::Legacy
            },
            "v{n}"
        );
        assert_eq!(v.create_event_has_room_id, !v12, "v{n}");
        assert_eq!(v.privileged_creators, v12, "v{n}");
    }
    assert!(R::V11 > R::V9 && R::V9 > R::V8 && R::V8 > R::V6 && R::V6 > R::V1);
}

#[test]
fn unknown_versions_are_an_explicit_error() {
    for id in [
        "",
        "0",
        "13",
        "org.matrix.hydra.11",
        "12 ",
        "1.0",
        "v12",
        "\u{0}",
    ] {
        let e = RoomVersion::from_id(id).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::IncompatibleRoomVersion, "{id:?}");
        assert_eq!(e.status(), 400);
        assert_eq!(e.room_version(), Some(id));
        assert!(e.message().contains("unknown"), "{}", e.message());
        assert!(e.to_json().contains("\"room_version\""));
    }
}

#[test]
fn create_event_room_version() {
    assert_eq!(
        create_event_room_version_id(&obj(r#"{"content":{"room_version":"11"}}"#)).unwrap(),
        "11"
    );
    // Absent means "1".
    assert_eq!(
        create_event_room_version_id(&obj(r#"{"content":{}}"#)).unwrap(),
        "1"
    );
    assert_eq!(
        RoomVersion::from_create_event(&obj(r#"{"content":{}}"#)).unwrap(),
        RoomVersion::V1
    );
    for bad in [
        r#"{"content":{"room_version":12}}"#,
        r#"{"content":{"room_version":null}}"#,
        r#"{"content":{"room_version":["12"]}}"#,
        r#"{"content":[]}"#,
        r#"{}"#,
    ] {
        let e = create_event_room_version_id(&obj(bad)).unwrap_err();
        assert_eq!(e.errcode(), ErrCode::BadJson, "{bad}");
    }
    let e =
        RoomVersion::from_create_event(&obj(r#"{"content":{"room_version":"99"}}"#)).unwrap_err();
    assert_eq!(e.errcode(), ErrCode::IncompatibleRoomVersion);
    assert_eq!(e.room_version(), Some("99"));
}
