//! Foundation benchmarks: canonical JSON, event IDs and v12 room IDs on realistic, really signed
//! events built with the library's own signing.
//!
//! Run: `cargo bench --bench foundation` (add `-- --warm-up-time 1 --measurement-time 2` for a
//! quick pass).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use servership::event::{event_id, event_id_from_json, room_id_from_create_event, sign_event};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;

/// A v12 create event as a current server would send it, signed by its creator's server.
fn create_event(key: &SigningKey) -> Object {
    let mut create = json::parse_object(
        br#"{
            "type": "m.room.create",
            "state_key": "",
            "sender": "@alice:matrix.example.org",
            "origin_server_ts": 1767225600123,
            "depth": 1,
            "auth_events": [],
            "prev_events": [],
            "content": {
                "room_version": "12",
                "additional_creators": ["@bob:chat.example.net"],
                "m.federate": true,
                "fi.mau.randomness": "nA8Wm2nXq6V0Kc1zTnP4bQ"
            },
            "unsigned": {"age_ts": 1767225600123}
        }"#,
    )
    .unwrap();
    sign_event(&mut create, "matrix.example.org", key, RoomVersion::V12).unwrap();
    create
}

/// A v12 invite of a remote user into that room, signed by the inviting server, about 900 bytes
/// of canonical JSON.
fn invite_event(key: &SigningKey, room_id: &str, create_id: &str) -> Object {
    let text = format!(
        r#"{{
            "type": "m.room.member",
            "state_key": "@carol:remote.example.com",
            "sender": "@alice:matrix.example.org",
            "room_id": "{room_id}",
            "origin_server_ts": 1767225712456,
            "depth": 7,
            "auth_events": [
                "$Qm1sU0Jc3fWkTrbF9n2hRz8YtXoLpA6vEdGiKuNyM0c",
                "$hTn3Vr8xWq0LsJb5mYdPz2gKfAuCeOi7RkXtBl9NaZs"
            ],
            "prev_events": ["$Zp4Lk9Qw2Rt7Yx1Nm5Bv8Cs3Df6Gh0Jk2Lz4Xc7Vb9M"],
            "content": {{
                "membership": "invite",
                "displayname": "Carol Example",
                "avatar_url": "mxc://remote.example.com/AbCdEfGhIjKlMnOpQrStUvWx",
                "is_direct": false,
                "reason": "Join us in the planning room for the spring release",
                "create_event_id": "{create_id}"
            }},
            "unsigned": {{"age": 12}}
        }}"#
    );
    let mut invite = json::parse_object(text.as_bytes()).unwrap();
    sign_event(&mut invite, "matrix.example.org", key, RoomVersion::V12).unwrap();
    invite
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_seed("ed25519:a_bench", &[42u8; 32]).unwrap();
    let create = create_event(&key);
    let room_id = room_id_from_create_event(&create).unwrap();
    let create_id = event_id(&create, RoomVersion::V12).unwrap();
    let invite = invite_event(&key, &room_id, &create_id);
    let invite_value = Value::Object(invite.clone());
    let invite_bytes = invite_value.to_canonical();
    eprintln!(
        "invite event: {} bytes of canonical JSON; create event: {} bytes",
        invite_bytes.len(),
        Value::Object(create.clone()).to_canonical().len()
    );

    let mut g = c.benchmark_group("canonical_json");
    g.throughput(Throughput::Bytes(invite_bytes.len() as u64));
    g.bench_function("invite_parse_and_encode", |b| {
        b.iter(|| json::canonicalize(black_box(&invite_bytes)).unwrap())
    });
    g.bench_function("invite_encode_only", |b| {
        b.iter(|| black_box(&invite_value).to_canonical())
    });
    g.finish();

    let mut g = c.benchmark_group("event_id");
    g.bench_function("invite_from_json_bytes", |b| {
        b.iter(|| event_id_from_json(black_box(&invite_bytes), RoomVersion::V12).unwrap())
    });
    g.bench_function("invite_from_object", |b| {
        b.iter(|| event_id(black_box(&invite), RoomVersion::V12).unwrap())
    });
    g.finish();

    c.bench_function("room_id/v12_create_event", |b| {
        b.iter(|| room_id_from_create_event(black_box(&create)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
