//! The fuzz targets' invariants (`fuzz/src/checks.rs`) under plain `cargo test`: every vector
//! input, and a few thousand deterministic mutations of them, go through the same checks the fuzz
//! targets run. No libFuzzer, no randomness: a failure here reproduces exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use servership::json::{self, Value};

/// A small deterministic generator (xorshift64*), so the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
}

/// Bytes that matter to the parsers under test: JSON structure, escapes, ID sigils and
/// separators, header syntax, percent escapes, and bytes that are not UTF-8.
const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b":",
    b",",
    b"0",
    b"-",
    b"1e5",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"\xc3\xa9",
    b"\xed\xa0\x80",
    b" ",
    b"\t",
    b"\n",
    b"@",
    b"!",
    b"$",
    b"%",
    b"%00",
    b"%zz",
    b"%3A",
    b"[::1]",
    b":8448",
    b"=",
    b"sig=",
    b"origin=",
    b"\"\\\"",
    b"9007199254740992",
    b"null",
    b"true",
];

/// One mutation: delete, duplicate, flip or insert at a random place.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at.min(end)..end);
            }
            1 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                let piece = out[at.min(end)..end].to_vec();
                out.splice(at..at, piece);
            }
            2 if at < out.len() => out[at] ^= 1 << rng.below(8),
            _ => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
        }
    }
    out
}

/// Runs `check` on every seed and on `per_seed` mutations of each.
fn run(seeds: &[Vec<u8>], per_seed: usize, check: fn(&[u8])) {
    assert!(!seeds.is_empty());
    let mut rng = Rng(0x5EED_5EED_5EED_5EED);
    for seed in seeds {
        check(seed);
        for _ in 0..per_seed {
            check(&mutate(&mut rng, seed));
        }
    }
}

fn strings(values: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<Vec<u8>> {
    values
        .into_iter()
        .map(|s| s.as_ref().as_bytes().to_vec())
        .collect()
}

fn list(file: &str) -> Vec<Value> {
    common::vectors(file).as_array().unwrap().clone()
}

#[test]
fn json_parse_invariants_hold_on_vectors_and_mutations() {
    let mut seeds = Vec::new();
    for v in list("canonical_json.json") {
        if let Some(hex) = v.get("input_hex").and_then(Value::as_str) {
            seeds.push(
                (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect(),
            );
        } else if let Some(input) = v.get("input").and_then(Value::as_str) {
            seeds.push(input.as_bytes().to_vec());
        }
    }
    for v in list("event_ids.json") {
        seeds.push(v.get("event").unwrap().to_canonical());
    }
    // Deep nesting around the limit.
    for depth in [127, 128, 129] {
        seeds.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes());
    }
    run(&seeds, 40, checks::json_parse);
}

#[test]
fn identifier_invariants_hold_on_vectors_and_mutations() {
    let values: Vec<String> = list("identifiers.json")
        .iter()
        .map(|v| common::s(v, "value").to_owned())
        .collect();
    let mut seeds = strings(&values);
    seeds.extend(strings([
        "%21abc%3Aexample.org",
        "[::ffff:1.2.3.4]:08448",
        "255.255.255.255:65535",
        &"a".repeat(253),
        &format!("@:{}", "a".repeat(253)),
    ]));
    run(&seeds, 40, checks::identifiers);
}

#[test]
fn x_matrix_invariants_hold_on_vectors_and_mutations() {
    let vectors = common::vectors("x_matrix.json");
    let mut seeds = Vec::new();
    for v in vectors.get("parse").unwrap().as_array().unwrap() {
        seeds.push(common::s(v, "header").as_bytes().to_vec());
    }
    for v in vectors.get("signed_requests").unwrap().as_array().unwrap() {
        if let Some(header) = v.get("expect_header").and_then(Value::as_str) {
            let mut seed = header.as_bytes().to_vec();
            if let Some(content) = v.get("request").and_then(|r| r.get("content")) {
                seed.push(b'\n');
                seed.extend(content.to_canonical());
            }
            seeds.push(seed);
        }
    }
    run(&seeds, 25, checks::x_matrix_header);
}

#[test]
fn event_id_and_redaction_invariants_hold_on_vectors_and_mutations() {
    let mut seeds = Vec::new();
    for v in list("event_ids.json") {
        seeds.push(v.get("event").unwrap().to_canonical());
    }
    for v in list("redaction.json") {
        seeds.push(v.get("input").unwrap().to_canonical());
    }
    run(&seeds, 8, checks::event_id);
}

#[test]
fn invite_invariants_hold_on_vector_scenarios_and_mutations() {
    let v = common::vectors("v12_room_ids.json");
    let mut seeds = Vec::new();
    for s in v.get("invite_scenarios").unwrap().as_array().unwrap() {
        let path = common::s(s, "path_room_id");
        let invite = json::parse(
            format!(
                r#"{{"type":"m.room.member","state_key":"@bob:receiver.example","sender":"@alice:alpha.example",
                   "content":{{"membership":"invite"}},"origin_server_ts":1,"depth":3,"prev_events":[],
                   "auth_events":[],"room_id":"{path}"}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        // Signed with the key the target's key ring holds for the origin, so the run with keys
        // gets past the invite's own signature.
        let mut invite = invite.as_object().unwrap().clone();
        let version =
            servership::room_version::RoomVersion::from_id(common::s(s, "room_version")).unwrap();
        let key = servership::signing::SigningKey::from_seed("ed25519:fuzz", &[7; 32]).unwrap();
        servership::event::sign_event(&mut invite, "alpha.example", &key, version).unwrap();
        let mut body = servership::Object::new();
        body.insert("event".into(), Value::Object(invite));
        let state = s
            .get("state_create_event")
            .filter(|c| !c.is_null())
            .cloned();
        body.insert("state".into(), Value::Array(state.into_iter().collect()));
        seeds.push(Value::Object(body).to_canonical());
    }
    // At least one scenario must get through the checks without keys, or the mutations would
    // only ever exercise the early errors.
    let accepted = seeds
        .iter()
        .filter(|b| {
            let path = json::parse(b).unwrap();
            let path = path.get("event").unwrap().get("room_id").unwrap();
            servership::invite::check_invite(
                path.as_str().unwrap(),
                b,
                "receiver.example",
                "alpha.example",
                None,
            )
            .map_err(|e| eprintln!("seed refused: {e}"))
            .is_ok()
        })
        .count();
    assert!(accepted > 0, "no seed invite is accepted");
    run(&seeds, 30, checks::invite_check);
}

#[test]
fn knock_invariants_hold_on_edus_and_mutations() {
    let seeds = strings([
        r#"{"edu_type":"m.server.knock","content":{"room_id":"!abc:example.org"}}"#,
        r#"{"room_id":"!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        r#"{"content":{"room_id":"!a:[::1]:8448"},"edu_type":"m.server.knock"}"#,
    ]);
    run(&seeds, 300, checks::knock_edu);
}

#[test]
fn discovery_invariants_hold_on_requests_and_mutations() {
    let known =
        servership::discovery::participation_tag("fuzz.example", "!a:fuzz.example").to_base64();
    let seeds = strings([
        r#"{"room_participation_tags":[]}"#.to_owned(),
        format!(r#"{{"room_participation_tags":["{known}","{known}="]}}"#),
        format!(r#"{{"room_participation_tags":["AAAA","{known}",1]}}"#),
    ]);
    run(&seeds, 300, checks::discover_common_rooms);
}

#[test]
fn audit_invariants_hold_on_answers_histories_and_mutations() {
    let tag =
        servership::discovery::participation_tag("peer.example", "!audit:fuzz.example").to_base64();
    let history = [
        "@a:blue.example join @a:blue.example",
        "@g:peer.example join @g:peer.example",
        "@g:peer.example leave @mallory:blue.example",
        "@h:peer.example ban @eve:cyan.example",
        "@k:knock.example knock @k:knock.example",
        "@:gray.example join @:gray.example",
        "@:gray.example leave @:gray.example",
        "@i:white.example invite @a:blue.example",
        "@x:black.example ban @a:blue.example",
        "@t:teal.example join @t:teal.example",
        "@t:teal.example ban @admin:teal.example",
    ]
    .join("\n");
    let seeds = strings([
        format!(r#"{{"recognised_tags":["{tag}"]}}"#),
        format!(r#"{{"recognised_tags":["{tag}","{tag}="]}}"#),
        r#"{"recognised_tags":[]}"#.to_owned(),
        r#"{"recognised_tags":["AAAA",1]}"#.to_owned(),
        history,
    ]);
    run(&seeds, 400, checks::audit_response);
}

/// `invite_promotion`: 40 deterministic byte programs (each a signed history of up to 15 events
/// of room versions 3-12; debug builds sign and verify slowly, the fuzzer runs millions), so the
/// auth rules and the promotion's bookkeeping run under `cargo test` against the independent
/// check in the target.
#[test]
fn promotion_invariants_hold_on_generated_histories() {
    let mut rng = Rng(0x0DD_BA11_5EED_0001);
    for _ in 0..40 {
        let len = 2 + rng.below(120);
        let program: Vec<u8> = (0..len).map(|_| (rng.next() >> 24) as u8).collect();
        checks::invite_promotion(&program);
    }
}

/// `spec_invite`: the MSC4311 fixtures (v1/v2 bodies built from the invite fixtures) and their
/// mutations.
#[test]
fn spec_invite_invariants_hold_on_bodies_and_mutations() {
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/fixtures/invite_v12.json"),
    )
    .unwrap();
    let v3 = json::parse(&fixture).unwrap();
    let mut v2 = servership::Object::new();
    v2.insert("room_version".into(), "12".into());
    v2.insert("event".into(), v3.get("event").unwrap().clone());
    let mut irs = v3
        .get("invite_room_state")
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    irs.extend(v3.get("state").unwrap().as_array().unwrap().iter().cloned());
    v2.insert("invite_room_state".into(), Value::Array(irs));
    let body = Value::Object(v2).to_canonical();
    let mut seeds = vec![
        body.clone(),
        [b"!x:alpha.example $y\n".as_slice(), &body].concat(),
        br#"{"room_version":"1","event":{}}"#.to_vec(),
        br#"{"type":"m.room.member","unsigned":{"invite_room_state":[{"type":"m.room.create"}]}}"#
            .to_vec(),
    ];
    // Programs (first byte below 0x20): a signed room of each version with good and bad entries.
    for version in 0..12u8 {
        for shape in [
            [6, 5, 1, 0, 0, 5, 2],
            [3, 3, 0, 4, 1, 5, 0],
            [2, 1, 0, 2, 1, 0, 0],
        ] {
            let mut program = vec![0x01, version];
            program.extend(shape);
            program.extend([0, 5, 1, 5, 2, 0]);
            seeds.push(program);
        }
    }
    run(&seeds, 20, checks::spec_invite);
}
