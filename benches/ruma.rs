//! servership against ruma on the inputs of `benches/foundation.rs`: canonical JSON of a ~900-byte
//! v12 invite (bytes in, canonical bytes out) and event IDs (reference hashes) of that invite and
//! of its room's create event.
//!
//! ruma parses with `serde_json` into `CanonicalJsonValue` (whose `Display` is canonical JSON) and
//! hashes with `ruma_signatures::reference_hash`. Both sides start from the same bytes.
//!
//! Run: `cargo bench --bench ruma` (add `-- --warm-up-time 1 --measurement-time 2` for a quick
//! pass). `benches/compare.py` runs it and puts the numbers in `docs/performance.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ruma_common::CanonicalJsonValue;
use ruma_common::room_version_rules::RoomVersionRules;
use servership::event::{event_id, event_id_from_json, room_id_from_create_event, sign_event};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;

/// The same v12 create event as `benches/foundation.rs`.
fn create_event(key: &SigningKey) -> Object {
    let mut create = json::parse_object(
        br#"{"type":"m.room.create","state_key":"","sender":"@alice:matrix.example.org",
            "origin_server_ts":1767225600123,"depth":1,"auth_events":[],"prev_events":[],
            "content":{"room_version":"12","additional_creators":["@bob:chat.example.net"],
                       "m.federate":true,"fi.mau.randomness":"nA8Wm2nXq6V0Kc1zTnP4bQ"},
            "unsigned":{"age_ts":1767225600123}}"#,
    )
    .unwrap();
    sign_event(&mut create, "matrix.example.org", key, RoomVersion::V12).unwrap();
    create
}

/// The same v12 invite as `benches/foundation.rs`.
fn invite_event(key: &SigningKey, room_id: &str, create_id: &str) -> Object {
    let text = format!(
        r#"{{"type":"m.room.member","state_key":"@carol:remote.example.com",
            "sender":"@alice:matrix.example.org","room_id":"{room_id}",
            "origin_server_ts":1767225712456,"depth":7,
            "auth_events":["$Qm1sU0Jc3fWkTrbF9n2hRz8YtXoLpA6vEdGiKuNyM0c",
                           "$hTn3Vr8xWq0LsJb5mYdPz2gKfAuCeOi7RkXtBl9NaZs"],
            "prev_events":["$Zp4Lk9Qw2Rt7Yx1Nm5Bv8Cs3Df6Gh0Jk2Lz4Xc7Vb9M"],
            "content":{{"membership":"invite","displayname":"Carol Example",
                        "avatar_url":"mxc://remote.example.com/AbCdEfGhIjKlMnOpQrStUvWx",
                        "is_direct":false,
                        "reason":"Join us in the planning room for the spring release",
                        "create_event_id":"{create_id}"}},
            "unsigned":{{"age":12}}}}"#
    );
    let mut invite = json::parse_object(text.as_bytes()).unwrap();
    sign_event(&mut invite, "matrix.example.org", key, RoomVersion::V12).unwrap();
    invite
}

/// ruma's event ID from bytes: parse into a canonical JSON object, then the reference hash.
fn ruma_event_id(bytes: &[u8], rules: &RoomVersionRules) -> String {
    let object: ruma_common::CanonicalJsonObject = serde_json::from_slice(bytes).unwrap();
    format!(
        "${}",
        ruma_signatures::reference_hash(&object, rules).unwrap()
    )
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_seed("ed25519:a_bench", &[42u8; 32]).unwrap();
    let create = create_event(&key);
    let room_id = room_id_from_create_event(&create).unwrap();
    let create_id = event_id(&create, RoomVersion::V12).unwrap();
    let invite = invite_event(&key, &room_id, &create_id);
    let invite_bytes = Value::Object(invite.clone()).to_canonical();
    let create_bytes = Value::Object(create.clone()).to_canonical();
    let rules = RoomVersionRules::V12;

    // Both libraries must agree before their speed means anything.
    let ruma_canonical = serde_json::from_slice::<CanonicalJsonValue>(&invite_bytes)
        .unwrap()
        .to_string();
    assert_eq!(ruma_canonical.as_bytes(), &invite_bytes[..]);
    for (bytes, object) in [(&invite_bytes, &invite), (&create_bytes, &create)] {
        assert_eq!(
            ruma_event_id(bytes, &rules),
            event_id(object, RoomVersion::V12).unwrap()
        );
    }
    let ruma_invite: ruma_common::CanonicalJsonObject =
        serde_json::from_slice(&invite_bytes).unwrap();

    let mut g = c.benchmark_group("ruma_canonical_json");
    g.throughput(Throughput::Bytes(invite_bytes.len() as u64));
    g.bench_function("servership invite bytes to canonical bytes", |b| {
        b.iter(|| json::canonicalize(black_box(&invite_bytes)).unwrap())
    });
    g.bench_function("ruma invite bytes to canonical string", |b| {
        b.iter(|| {
            serde_json::from_slice::<CanonicalJsonValue>(black_box(&invite_bytes))
                .unwrap()
                .to_string()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("ruma_event_id");
    for (name, bytes) in [("invite", &invite_bytes), ("create", &create_bytes)] {
        g.bench_function(format!("servership v12 {name} from bytes"), |b| {
            b.iter(|| event_id_from_json(black_box(bytes), RoomVersion::V12).unwrap())
        });
        g.bench_function(format!("ruma v12 {name} from bytes"), |b| {
            b.iter(|| ruma_event_id(black_box(bytes), &rules))
        });
    }
    g.bench_function("servership v12 invite from parsed object", |b| {
        b.iter(|| event_id(black_box(&invite), RoomVersion::V12).unwrap())
    });
    g.bench_function("ruma v12 invite from parsed object", |b| {
        b.iter(|| ruma_signatures::reference_hash(black_box(&ruma_invite), &rules).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
