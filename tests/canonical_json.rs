//! Every case in `tests/vectors/canonical_json.json`, through the strict parser and encoder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use servership::json;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn canonical_json_vectors() {
    let cases = common::vectors("canonical_json.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() > 100);
    let mut failures = Vec::new();
    for case in cases {
        let name = common::s(case, "name");
        let input = match case.get("input").and_then(|v| v.as_str()) {
            Some(text) => text.as_bytes().to_vec(),
            None => hex(common::s(case, "input_hex")),
        };
        let expect = common::s(case, "expect");
        let got = json::canonicalize(&input);
        match (expect, got) {
            ("reject", Err(_)) => {}
            ("reject", Ok(out)) => failures.push(format!(
                "{name}: accepted as {}",
                String::from_utf8_lossy(&out)
            )),
            (want, Ok(out)) if out == want.as_bytes() => {}
            (want, Ok(out)) => failures.push(format!(
                "{name}: got {} want {want}",
                String::from_utf8_lossy(&out)
            )),
            (want, Err(e)) => failures.push(format!("{name}: rejected ({e}), want {want}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_vector_file_is_strict_json() {
    for f in [
        "canonical_json.json",
        "event_ids.json",
        "identifiers.json",
        "redaction.json",
        "signing.json",
        "v12_room_ids.json",
        "x_matrix.json",
    ] {
        common::vectors(f);
    }
}
