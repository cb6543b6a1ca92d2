//! Participation tags agree with HMAC-SHA256 as computed independently by Python's `hmac` module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use servership::discovery::{ParticipationTag, Tagger, participation_tag};

/// (server name, room ID) pairs covering the forms the tag must handle.
const CASES: &[(&str, &str)] = &[
    // ASCII host, classic room ID.
    ("example.org", "!abcdefgh:example.org"),
    // Port included, exactly as in Matrix IDs.
    ("matrix.example.org:8448", "!room:matrix.example.org:8448"),
    // IDN in its punycode form, as Matrix IDs carry it.
    ("xn--mnchen-3ya.example", "!opaque:xn--mnchen-3ya.example"),
    // The same name as raw UTF-8: a different key, so a different tag.
    ("münchen.example", "!opaque:xn--mnchen-3ya.example"),
    // IPv6 literal with port.
    ("[2001:db8::1]:8448", "!room:[2001:db8::1]:8448"),
    ("[::1]", "!r:[::1]"),
    // IPv4 with port.
    ("192.0.2.1:8008", "!x:192.0.2.1:8008"),
    // Room version 12 room ID: no server part, url-safe hash.
    (
        "example.org",
        "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM",
    ),
];

/// Runs Python's hmac over every case; returns unpadded standard base64 per case.
fn python_tags(cases: &[(&str, &str)]) -> Vec<String> {
    let script = r#"
import base64, hashlib, hmac, sys
for line in sys.stdin.buffer.read().split(b"\n"):
    if not line:
        continue
    key, msg = line.split(b"\t")
    key, msg = bytes.fromhex(key.decode()), bytes.fromhex(msg.decode())
    tag = hmac.new(key, msg, hashlib.sha256).digest()
    print(base64.b64encode(tag).decode().rstrip("="))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed for the tag vectors");
    let mut input = String::new();
    for (server, room) in cases {
        input.push_str(&hex(server.as_bytes()));
        input.push('\t');
        input.push_str(&hex(room.as_bytes()));
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn tags_match_python_hmac() {
    let expected = python_tags(CASES);
    assert_eq!(expected.len(), CASES.len());
    for ((server, room), want) in CASES.iter().zip(&expected) {
        let tag = participation_tag(server, room);
        assert_eq!(&tag.to_base64(), want, "tag for {server} / {room}");
        assert_eq!(want.len(), 43);
        // The batch API gives the same answer.
        assert_eq!(Tagger::new(server).tag_all(&[*room]), vec![tag]);
    }
}

#[test]
fn raw_utf8_and_punycode_names_give_different_tags() {
    let puny = participation_tag("xn--mnchen-3ya.example", "!opaque:xn--mnchen-3ya.example");
    let raw = participation_tag("münchen.example", "!opaque:xn--mnchen-3ya.example");
    assert_ne!(
        puny, raw,
        "server names are used as written, never normalised"
    );
}

#[test]
fn port_and_case_are_part_of_the_key() {
    let room = "!room:example.org";
    let plain = participation_tag("example.org", room);
    assert_ne!(plain, participation_tag("example.org:8448", room));
    assert_ne!(plain, participation_tag("Example.org", room));
}

#[test]
fn batch_tags_for_many_rooms_match_python() {
    let rooms: Vec<String> = (0..200).map(|i| format!("!room{i}:example.org")).collect();
    let cases: Vec<(&str, &str)> = rooms
        .iter()
        .map(|r| ("bronze.example:443", r.as_str()))
        .collect();
    let expected = python_tags(&cases);
    let got: Vec<String> = Tagger::new("bronze.example:443")
        .tag_all(&rooms)
        .iter()
        .map(ParticipationTag::to_base64)
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn wire_form_decoding() {
    let tag = participation_tag("example.org", "!a:example.org");
    let text = tag.to_base64();
    assert_eq!(text.len(), 43);
    assert!(!text.contains('='));
    // Padding accepted.
    assert_eq!(
        ParticipationTag::from_base64(&format!("{text}=")),
        Some(tag)
    );
    // Anything that is not 32 bytes is invalid.
    let b64 = |n: usize| servership::b64::encode(&vec![7u8; n]);
    assert_eq!(ParticipationTag::from_base64(&b64(31)), None);
    assert_eq!(ParticipationTag::from_base64(&b64(33)), None);
    assert_eq!(ParticipationTag::from_base64(""), None);
    // The URL-safe alphabet is not the wire form.
    let url = servership::b64::encode_url_safe(&[0xfb; 32]);
    assert_eq!(ParticipationTag::from_base64(&url), None);
    assert_eq!(
        ParticipationTag::from_base64(&servership::b64::encode(&[0xfb; 32])),
        Some(ParticipationTag([0xfb; 32]))
    );
}
