//! The fuzz targets' invariants (`fuzz/src/checks.rs`) under plain `cargo test`: every vector
//! input, and a few thousand deterministic mutations of them, go through the same checks the fuzz
//! targets run. No libFuzzer, no randomness: a failure here reproduces exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use common::rng::Rng;
use servership::json::{self, Value};

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

/// Seeds for `s2s_negotiation` (the layout is in `fuzz/src/checks.rs`): two machines (first byte
/// odd) with and without faults, twins, both opening, vendor methods; one machine (first byte
/// even) against a hostile peer's events, as initiator, vendor initiator and responder.
fn negotiation_seeds() -> Vec<Vec<u8>> {
    let offers = |vr: &[(&str, i64)]| {
        let items: Vec<String> = vr
            .iter()
            .map(|(v, r)| format!(r#"{{"version":"{v}","rating":{r}}}"#))
            .collect();
        format!(r#"{{"versions":[{}]}}"#, items.join(","))
    };
    let one = |header: &[u8], lines: &[String]| {
        let mut out = header.to_vec();
        for l in lines {
            out.push(b'\n');
            out.extend_from_slice(l.as_bytes());
        }
        out
    };
    // 10*5, 11*2 (a rating byte b >= 4 is b % 8 - 2).
    let doc = [2u8, 4, 15, 7, 12, 0];
    let proposal = |vr: &[(&str, i64)]| {
        format!(
            r#"{{"event_id":"$p1","type":"m.s2s.upgrade.proposal","sender":"@p:b.example","content":{}}}"#,
            offers(vr)
        )
    };
    let mut seeds = vec![
        [
            &[1u8, 0, 0][..],
            &doc,
            &[3, 7, 10, 8, 15, 4, 15, 0],
            &[0; 6],
        ]
        .concat(),
        [&[1u8, 0, 0][..], &doc, &doc, &[0; 6]].concat(),
        [
            &[1u8, 3, 1][..],
            &[2, 0, 13, 1, 13, 0],
            &[0, 0],
            &[1, 1, 0, 0, 0, 0],
        ]
        .concat(),
        [&[1u8, 1, 2][..], &doc, &[1, 4, 5, 4], &[0, 2, 0, 0, 0, 0]].concat(),
        [
            &[1u8, 2, 0][..],
            &[3, 4, 0, 7, 1, 8, 2, 3, 7],
            &[2, 7, 3, 8, 1, 1],
            &[
                0, 0, 0xff, 4, 4, 3, 0x80, 0xa1, 0xc0, 0xe3, 0x01, 0x82, 0xa0, 0x00, 0xe0,
            ],
        ]
        .concat(),
    ];
    let mut header = vec![0u8];
    header.extend_from_slice(&doc);
    seeds.push(one(
        &header,
        &[
            format!("R{}", offers(&[("10", 9), ("12", 1)])),
            "K{}".into(),
            "t".into(),
        ],
    ));
    seeds.push(one(&header, &[r#"A{"version":"10"}"#.into(), "K{}".into()]));
    seeds.push(one(&header, &[r#"F{"error":"the cat sat on it"}"#.into()]));
    seeds.push(one(&header, &[format!("R{}", offers(&[])), "t".into()]));
    seeds.push(one(
        &header,
        &[
            "m".into(),
            format!("R{}", offers(&[("10", 9)])),
            "t".into(),
            "m".into(),
            "t".into(),
            "s$o2".into(),
            "K{}".into(),
        ],
    ));
    header[0] = 6;
    seeds.push(one(
        &header,
        &[proposal(&[("10", 5), ("11", 2)]), "K{}".into()],
    ));
    seeds.push(one(
        &header,
        &[
            proposal(&[("10", 1), ("9", 4)]),
            r#"A{"version":"10"}"#.into(),
            "K{}".into(),
            "e".into(),
            "x".into(),
        ],
    ));
    header[0] = 8;
    seeds.push(one(
        &header,
        &[
            format!("P{}", offers(&[("10", 1)])),
            r#"A{"version":"10"}"#.into(),
            "K{}".into(),
        ],
    ));
    seeds.push(one(
        &[4, 0, 0, 0],
        &[r#"A{"method":"org.example.fast"}"#.into()],
    ));
    seeds.push(one(
        &[6, 0, 4],
        &[r#"V{"method":"org.example.fast"}"#.into(), "d0".into()],
    ));
    seeds
}

#[test]
fn negotiation_invariants_hold_on_flows_and_mutations() {
    run(&negotiation_seeds(), 300, checks::s2s_negotiation);
}

/// Seeds for `membership_decisions`: a subject line, state events one a line, and a `#` line of
/// knock-store operations.
fn membership_seeds() -> Vec<Vec<u8>> {
    let ev = |t: &str, key: &str, content: &str| {
        format!(
            r#"{{"type":"{t}","state_key":"{key}","sender":"@admin:fuzz.example","content":{content}}}"#
        )
    };
    let member =
        |user: &str, m: &str| ev("m.room.member", user, &format!(r#"{{"membership":"{m}"}}"#));
    let rules = |r: &str| {
        ev(
            "m.room.join_rules",
            "",
            &format!(r#"{{"join_rule":"{r}"}}"#),
        )
    };
    let create = |c: &str| ev("m.room.create", "", c);
    let acl = ev(
        "m.room.server_acl",
        "",
        r#"{"allow":["*"],"deny":["EVIL.example","*.bad.example","1.2.3.4"],"allow_ip_literals":false}"#,
    );
    let ban = ev(
        "m.policy.rule.server",
        "rule1",
        r#"{"entity":"*.evil.example","recommendation":"m.ban","reason":"spam"}"#,
    );
    let room = |lines: &[String]| lines.join("\n").into_bytes();
    let v11 = create(r#"{"room_version":"11"}"#);
    let mut seeds = vec![
        room(&[
            "evil.example".into(),
            v11.clone(),
            rules("public"),
            acl.clone(),
        ]),
        room(&[
            "Evil.Example:8448".into(),
            v11.clone(),
            rules("public"),
            acl.clone(),
        ]),
        room(&[
            "good.example".into(),
            v11.clone(),
            rules("public"),
            ev(
                "m.room.server_acl",
                "",
                r#"{"allow":["*.GOOD.example","good.example"]}"#,
            ),
            ev(
                "m.server.is_able_to_subscribe",
                "good.example",
                r#"{"is_able_to_subscribe":true}"#,
            ),
            member("@a:good.example", "invite"),
        ]),
        room(&[
            "@:b.example".into(),
            create(r#"{"room_version":"11","type":"m.s2s"}"#),
            rules("invite"),
            member("@:b.example", "invite"),
            member("@bob:b.example", "join"),
        ]),
        room(&[
            "@:b.example".into(),
            create(r#"{"room_version":"10","type":"support.feline.s2s"}"#),
            rules("knock_restricted"),
            member("@:b.example", "ban"),
        ]),
        room(&[
            "@:b.example".into(),
            create(r#"{"room_version":"11","m.federate":false}"#),
            rules("invite"),
            member("@bob:b.example", "join"),
        ]),
        room(&[
            "b.example".into(),
            create(r#"{"room_version":"6"}"#),
            rules("peekable"),
            member("@bob:b.example", "invite"),
        ]),
        room(&[
            "[::1]:8448".into(),
            create(r#"{"room_version":"12"}"#),
            rules("public"),
            acl,
        ]),
    ];
    // Hostile state is up to 64 KiB: long join rules, policy reasons, ACL entries, state keys.
    let long = "x".repeat(5000);
    let s2s = create(r#"{"room_version":"11","type":"m.s2s"}"#);
    seeds.push(room(&[
        "@:b.example".into(),
        s2s.clone(),
        rules(&long),
        member("@bob:b.example", "join"),
    ]));
    seeds.push(room(&[
        "@:b.example".into(),
        s2s,
        ev(
            "m.room.join_rules",
            "",
            &format!(r#"{{"join_rule":{{"k":["{long}"]}}}}"#),
        ),
    ]));
    seeds.push(room(&[
        "x.evil.example".into(),
        v11.clone(),
        rules("knock"),
        ev(
            "m.policy.rule.server",
            "r",
            &format!(r#"{{"entity":"*.evil.example","recommendation":"m.ban","reason":"{long}"}}"#),
        ),
        ev(
            "m.room.server_acl",
            "",
            &format!(r#"{{"allow":["*{long}","*"],"deny":["{long}*"]}}"#),
        ),
        ev("m.server.subscription", &long, "{}"),
    ]));
    let mut knocky = room(&["X.EVIL.example".into(), v11, rules("knock"), ban]);
    knocky.extend_from_slice(b"\n#");
    knocky.extend_from_slice(&[
        0, 1, 2, 3, 8, 9, 0x80, 0x41, 0, 8, 16, 0xbf, 0x40, 0xc0, 0xc1, 0x43,
    ]);
    seeds.push(knocky);
    seeds
}

#[test]
fn membership_invariants_hold_on_rooms_and_mutations() {
    run(&membership_seeds(), 150, checks::membership_decisions);
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
