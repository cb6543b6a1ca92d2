//! The fuzz targets' invariants (`fuzz/src/checks.rs`) under plain `cargo test`: every vector
//! input, and a few thousand deterministic mutations of them, go through the same checks the fuzz
//! targets run. No libFuzzer, no randomness: a failure here reproduces exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use servership::json::Value;

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
