//! The MSC4329 invite check on a realistic v12 request: the invite, the create event and four
//! more state events (the creator's join, power levels, join rules, history visibility), all
//! really signed, checked with and without signature verification (with keys the four are
//! promoted, so the auth rules run on each). The creator's join names the create event in
//! `prev_events`, as auth rule 6.3.1 needs, which makes the body 3,811 bytes; before the auth
//! rules ran, every `prev_events` was empty and the body was 3,765 bytes.
//!
//! `invite_state_per_byte` compares, per byte of body, the hostile body of issue 11 (14 events
//! that each list the create event 1,300 times, about 878 KB) with an honest history of about
//! 733 KB (the same chain plus 14 large state events with real auth events), both with keys.
//!
//! Run: `cargo bench --bench invite` (add `-- --warm-up-time 1 --measurement-time 2` for a quick
//! pass).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use servership::event::{event_id, room_id_from_create_event, sign_event};
use servership::invite::{KeyRing, build_invite_request, check_invite};
use servership::json::{self, Object, Value};
use servership::room_version::RoomVersion;
use servership::signing::SigningKey;

const ORIGIN: &str = "matrix.example.org";
const RECEIVER: &str = "remote.example.com";

fn signed(text: &str, key: &SigningKey) -> Object {
    let mut e = json::parse_object(text.as_bytes()).unwrap();
    sign_event(&mut e, ORIGIN, key, RoomVersion::V12).unwrap();
    e
}

#[allow(clippy::too_many_arguments)]
fn state_event(
    key: &SigningKey,
    room_id: &str,
    kind: &str,
    state_key: &str,
    content: &str,
    auth: &[&str],
    prev: &[&str],
    depth: i64,
) -> Object {
    let quote = |ids: &[&str]| -> String {
        ids.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    signed(
        &format!(
            r#"{{"type":"{kind}","state_key":"{state_key}","sender":"@alice:{ORIGIN}","room_id":"{room_id}",
               "origin_server_ts":{},"depth":{depth},"auth_events":[{}],"prev_events":[{}],"content":{content}}}"#,
            1_767_225_600_000 + depth,
            quote(auth),
            quote(prev)
        ),
        key,
    )
}

fn body(key: &SigningKey) -> (String, Vec<u8>) {
    let create = signed(
        &format!(
            r#"{{"type":"m.room.create","state_key":"","sender":"@alice:{ORIGIN}","origin_server_ts":1767225600123,
               "depth":1,"auth_events":[],"prev_events":[],
               "content":{{"room_version":"12","additional_creators":["@bob:chat.example.net"],"m.federate":true,
                           "fi.mau.randomness":"nA8Wm2nXq6V0Kc1zTnP4bQ"}}}}"#
        ),
        key,
    );
    let room_id = room_id_from_create_event(&create).unwrap();
    let id = |e: &Object| event_id(e, RoomVersion::V12).unwrap();
    let join = state_event(
        key,
        &room_id,
        "m.room.member",
        &format!("@alice:{ORIGIN}"),
        r#"{"membership":"join","displayname":"Alice"}"#,
        &[],
        &[&id(&create)],
        2,
    );
    let pl = state_event(
        key,
        &room_id,
        "m.room.power_levels",
        "",
        r#"{"users":{"@carol:chat.example.net":50},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":100}}"#,
        &[&id(&join)],
        &[],
        3,
    );
    let jr = state_event(
        key,
        &room_id,
        "m.room.join_rules",
        "",
        r#"{"join_rule":"invite"}"#,
        &[&id(&join), &id(&pl)],
        &[],
        4,
    );
    let hv = state_event(
        key,
        &room_id,
        "m.room.history_visibility",
        "",
        r#"{"history_visibility":"shared"}"#,
        &[&id(&join), &id(&pl)],
        &[],
        5,
    );
    let invite = state_event(
        key,
        &room_id,
        "m.room.member",
        &format!("@carol:{RECEIVER}"),
        r#"{"membership":"invite","displayname":"Carol Example","reason":"Join us in the planning room"}"#,
        &[&id(&join), &id(&pl), &id(&jr)],
        &[],
        6,
    );
    let stripped: Vec<Value> = vec![
        json::parse(format!(r#"{{"type":"m.room.name","state_key":"","sender":"@alice:{ORIGIN}","content":{{"name":"Spring planning"}}}}"#).as_bytes()).unwrap(),
        json::parse(format!(r#"{{"type":"m.room.join_rules","state_key":"","sender":"@alice:{ORIGIN}","content":{{"join_rule":"invite"}}}}"#).as_bytes()).unwrap(),
    ];
    let parts = build_invite_request(&invite, &create, &[join, pl, jr, hv], &stripped).unwrap();
    (room_id, parts.body)
}

/// The honest history and the hostile body of `invite_state_per_byte`:
/// `(room_id, honest, hostile)`.
fn big_bodies(key: &SigningKey) -> (String, Vec<u8>, Vec<u8>) {
    let create = signed(
        &format!(
            r#"{{"type":"m.room.create","state_key":"","sender":"@alice:{ORIGIN}","origin_server_ts":1767225600123,
               "depth":1,"auth_events":[],"prev_events":[],"content":{{"room_version":"12","nonce":"big"}}}}"#
        ),
        key,
    );
    let room_id = room_id_from_create_event(&create).unwrap();
    let id = |e: &Object| event_id(e, RoomVersion::V12).unwrap();
    let create_id = id(&create);
    let alice = format!("@alice:{ORIGIN}");
    let join = state_event(
        key,
        &room_id,
        "m.room.member",
        &alice,
        r#"{"membership":"join"}"#,
        &[],
        &[&create_id],
        2,
    );
    let pl = state_event(
        key,
        &room_id,
        "m.room.power_levels",
        "",
        r#"{"users":{},"state_default":50}"#,
        &[&id(&join)],
        &[&id(&join)],
        3,
    );
    let jr = state_event(
        key,
        &room_id,
        "m.room.join_rules",
        "",
        r#"{"join_rule":"invite"}"#,
        &[&id(&join), &id(&pl)],
        &[&id(&pl)],
        4,
    );
    let invite = state_event(
        key,
        &room_id,
        "m.room.member",
        &format!("@carol:{RECEIVER}"),
        r#"{"membership":"invite"}"#,
        &[&id(&join), &id(&pl), &id(&jr)],
        &[&id(&jr)],
        5,
    );
    // Honest: 14 state events of about 51 KB, each authorised by the join and power levels.
    let blob = "x".repeat(51_000);
    let mut honest = vec![join.clone(), pl.clone(), jr.clone()];
    for i in 0..14 {
        honest.push(state_event(
            key,
            &room_id,
            "org.example.blob",
            &format!("b{i}"),
            &format!(r#"{{"data":"{blob}"}}"#),
            &[&id(&join), &id(&pl)],
            &[&id(&jr)],
            6 + i,
        ));
    }
    // Hostile: 14 events that each list the create event 1,300 times.
    let refs: Vec<&str> = std::iter::repeat_n(create_id.as_str(), 1300).collect();
    let mut hostile = vec![join, pl, jr];
    for i in 0..14 {
        hostile.push(state_event(
            key,
            &room_id,
            "m.room.topic",
            &format!("t{i}"),
            r#"{"topic":"x"}"#,
            &refs,
            &[],
            6 + i,
        ));
    }
    let body = |extra: &[Object]| {
        build_invite_request(&invite, &create, extra, &[])
            .unwrap()
            .body
    };
    (room_id, body(&honest), body(&hostile))
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_seed("ed25519:a_bench", &[42u8; 32]).unwrap();
    let (room_id, body) = body(&key);
    let mut ring = KeyRing::new();
    ring.add(ORIGIN, key.verify_key());
    // Sanity: the body passes and promotes all four extra events.
    let check = check_invite(&room_id, &body, RECEIVER, ORIGIN, Some(&ring)).unwrap();
    assert_eq!(check.promoted.len(), 4);
    println!("invite body: {} bytes", body.len());

    let mut group = c.benchmark_group("invite_check_v12");
    group.bench_function("without_keys", |b| {
        b.iter(|| {
            check_invite(
                black_box(&room_id),
                black_box(&body),
                RECEIVER,
                ORIGIN,
                None,
            )
            .unwrap()
        })
    });
    group.bench_function("with_signatures", |b| {
        b.iter(|| {
            check_invite(
                black_box(&room_id),
                black_box(&body),
                RECEIVER,
                ORIGIN,
                Some(&ring),
            )
            .unwrap()
        })
    });
    group.finish();

    let (room_id, honest, hostile) = big_bodies(&key);
    let honest_check = check_invite(&room_id, &honest, RECEIVER, ORIGIN, Some(&ring)).unwrap();
    assert_eq!(
        honest_check.promoted.len(),
        17,
        "{:?}",
        honest_check.dropped
    );
    let hostile_check = check_invite(&room_id, &hostile, RECEIVER, ORIGIN, Some(&ring)).unwrap();
    assert_eq!(
        hostile_check.promoted.len(),
        3,
        "{:?}",
        hostile_check.dropped
    );
    println!(
        "honest history: {} bytes, hostile body: {} bytes",
        honest.len(),
        hostile.len()
    );
    let mut group = c.benchmark_group("invite_state_per_byte");
    group.sample_size(20);
    for (name, body) in [("honest_733k", &honest), ("hostile_878k", &hostile)] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                check_invite(
                    black_box(&room_id),
                    black_box(body),
                    RECEIVER,
                    ORIGIN,
                    Some(&ring),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
