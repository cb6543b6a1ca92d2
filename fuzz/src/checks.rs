//! The invariants the fuzz targets assert, one function per target.
//!
//! Each function takes arbitrary bytes, feeds them to one network entry point of servership and
//! panics (through `assert!`) when an invariant breaks; a panic inside the library is a finding
//! too. The same file is compiled into `cargo test` (`tests/properties.rs` and
//! `tests/fuzz_regressions.rs` include it with `#[path]`), so every invariant is also checked
//! without libFuzzer, and a crashing input found by fuzzing becomes a regression test by calling
//! the same function on it. It therefore depends on nothing but `servership` and `std`.

use servership::ids::{self, EventId, EventIdFormat, RoomId, RoomIdFormat, ServerName, UserId};
use servership::json::{self, Value};
use servership::signing::SigningKey;
use servership::{ErrCode, Error, x_matrix};

/// Error messages quote hostile values shortened (80 characters, Rust-escaped), so a message is
/// never anywhere near the size of the input. This is the bound asserted for the modules that
/// promise it (identifiers, X-Matrix).
const MAX_QUOTING_MESSAGE: usize = 1500;

/// The input as text: the UTF-8 itself, or its lossy decoding so that invalid bytes still
/// exercise the string parsers (as U+FFFD).
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn assert_short_message(e: &Error, what: &str) {
    assert!(
        e.message().len() <= MAX_QUOTING_MESSAGE,
        "{what}: error message is {} bytes long: {:.200}",
        e.message().len(),
        e.message()
    );
}

// ---------------------------------------------------------------------------------------------
// json_parse
// ---------------------------------------------------------------------------------------------

/// Strict JSON: whatever parses re-encodes to canonical JSON that parses to the same value and
/// re-encodes byte-identically; canonical JSON is never longer than its input; errors are
/// `M_NOT_JSON` or `M_BAD_JSON`.
pub fn json_parse(data: &[u8]) {
    let value = match json::parse(data) {
        Ok(value) => value,
        Err(e) => {
            assert!(
                matches!(e.errcode(), ErrCode::NotJson | ErrCode::BadJson),
                "json::parse error has errcode {:?}: {}",
                e.errcode(),
                e.message()
            );
            assert!(
                json::canonicalize(data).is_err(),
                "canonicalize accepts what parse refuses"
            );
            assert!(json::parse_object(data).is_err());
            let _ = e.to_json();
            check_lenient(data, None);
            return;
        }
    };
    let canonical = value.to_canonical();
    assert!(
        std::str::from_utf8(&canonical).is_ok(),
        "canonical JSON is not UTF-8"
    );
    assert_eq!(
        value.to_canonical_string().as_bytes(),
        canonical.as_slice(),
        "to_canonical_string differs from to_canonical"
    );
    assert!(
        canonical.len() <= data.len(),
        "canonical JSON ({} bytes) is longer than its input ({} bytes)",
        canonical.len(),
        data.len()
    );
    match json::canonicalize(data) {
        Ok(c) => assert_eq!(
            c, canonical,
            "canonicalize differs from parse + to_canonical"
        ),
        Err(e) => panic!("canonicalize refuses what parse accepts: {}", e.message()),
    }
    let reparsed = match json::parse(&canonical) {
        Ok(v) => v,
        Err(e) => panic!(
            "canonical output does not re-parse: {}: {:?}",
            e.message(),
            String::from_utf8_lossy(&canonical)
        ),
    };
    assert_eq!(
        reparsed, value,
        "canonical output re-parses to another value"
    );
    assert_eq!(
        reparsed.to_canonical(),
        canonical,
        "canonical output is not a fixed point"
    );
    let mut appended = b"prefix".to_vec();
    json::encode_into(&value, &mut appended);
    assert_eq!(appended.get(6..), Some(canonical.as_slice()));

    match (&value, json::parse_object(data)) {
        (Value::Object(object), Ok(parsed)) => {
            assert_eq!(&parsed, object);
            assert_eq!(json::canonical_object_without(object, &[]), canonical);
            let skip = ["signatures", "unsigned"];
            let mut stripped = object.clone();
            for key in skip {
                stripped.remove(key);
            }
            assert_eq!(
                json::canonical_object_without(object, &skip),
                Value::Object(stripped).to_canonical(),
                "canonical_object_without differs from removing the keys"
            );
        }
        (Value::Object(_), Err(e)) => panic!("parse_object refuses an object: {}", e.message()),
        (_, Ok(_)) => panic!("parse_object accepts a non-object"),
        (_, Err(e)) => assert_eq!(e.errcode(), ErrCode::BadJson),
    }
    check_value_invariants(&value, 0);
    check_lenient(data, Some(&value));
}

/// What the parser promises about every value it returns.
fn check_value_invariants(value: &Value, depth: usize) {
    assert!(depth <= json::MAX_DEPTH, "nesting deeper than MAX_DEPTH");
    match value {
        Value::Int(i) => assert!(
            (-json::MAX_SAFE_INTEGER..=json::MAX_SAFE_INTEGER).contains(i),
            "integer {i} out of range"
        ),
        Value::Array(items) => items
            .iter()
            .for_each(|v| check_value_invariants(v, depth + 1)),
        Value::Object(object) => object
            .values()
            .for_each(|v| check_value_invariants(v, depth + 1)),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
        Value::Number(n) => panic!("the strict parser made a lenient number {}", n.as_str()),
    }
}

/// Lenient JSON (room versions 1–5): accepts everything the strict parser accepts, with the same
/// value; whatever it accepts re-encodes to JSON that it reads back as the same value, and that
/// re-encodes byte-identically; a value without [`Value::Number`] is one the strict parser
/// accepts in its encoded form.
fn check_lenient(data: &[u8], strict: Option<&Value>) {
    let lenient = json::parse_lenient(data);
    match (strict, &lenient) {
        (Some(s), Ok(l)) => assert_eq!(s, l, "lenient and strict parses differ"),
        (Some(_), Err(e)) => panic!("parse_lenient refuses strict JSON: {}", e.message()),
        _ => {}
    }
    let Ok(value) = lenient else { return };
    let encoded = value.to_canonical();
    let again = match json::parse_lenient(&encoded) {
        Ok(v) => v,
        Err(e) => panic!("lenient output does not read back: {}", e.message()),
    };
    assert_eq!(again, value, "lenient output reads back differently");
    assert_eq!(
        again.to_canonical(),
        encoded,
        "lenient encoding is not stable"
    );
    if !value.has_number() {
        assert!(
            json::parse(&encoded).is_ok(),
            "a value without numbers is not strict JSON"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// identifiers
// ---------------------------------------------------------------------------------------------

/// Every identifier parser on the input as text, bare and behind each sigil (so the fuzzer need
/// not discover the sigils), plus percent coding.
pub fn identifiers(data: &[u8]) {
    let s = text(data);
    for candidate in [
        s.clone(),
        format!("@{s}"),
        format!("@:{s}"),
        format!("!{s}"),
        format!("${s}"),
    ] {
        check_server_name(&candidate);
        check_user_id(&candidate);
        check_room_id(&candidate);
        check_event_id(&candidate);
    }
    check_percent(&s);
}

fn check_server_name(s: &str) {
    match ServerName::parse(s) {
        Ok(name) => {
            assert_eq!(name.as_str(), s);
            assert!(s.len() <= ids::MAX_SERVER_NAME_BYTES);
            assert!(s.is_ascii(), "non-ASCII server name accepted: {s:?}");
            let host = name.host();
            assert!(!host.is_empty(), "empty host in {s:?}");
            // What follows the host is nothing, or ':' and the digits of the port (leading
            // zeros allowed: the grammar is 1*5DIGIT).
            let after_host = s.strip_prefix(host).unwrap_or("?");
            match name.port() {
                Some(port) => {
                    assert_ne!(port, 0, "port 0 accepted in {s:?}");
                    let digits = after_host.strip_prefix(':').unwrap_or("?");
                    assert!((1..=5).contains(&digits.len()), "port {digits:?} in {s:?}");
                    assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                    assert_eq!(digits.parse::<u16>().ok(), Some(port));
                }
                None => assert_eq!(after_host, "", "unparsed text after the host in {s:?}"),
            }
            if let Some(ip) = name.ip() {
                let shown = match ip {
                    std::net::IpAddr::V4(_) => ip.to_string(),
                    std::net::IpAddr::V6(_) => format!("[{ip}]"),
                };
                // The address is what the host says (the literal may spell it differently,
                // e.g. IPv6 zero compression, so compare parsed forms).
                assert_eq!(
                    ServerName::parse(&shown).ok().and_then(|n| n.ip()),
                    Some(ip)
                );
            }
            assert!(host.starts_with('[') == name.ip().is_some_and(|ip| ip.is_ipv6()));
            // A server's pseudouser always fits in a user ID.
            let pseudo = ids::server_pseudouser(&name);
            assert!(pseudo.is_server_pseudouser());
            assert_eq!(UserId::parse(pseudo.as_str()).ok().as_ref(), Some(&pseudo));
            assert!(ids::is_server_pseudouser(pseudo.as_str()));
            assert!(UserId::parse_not_pseudouser(pseudo.as_str()).is_err());
        }
        Err(e) => check_id_error(&e, s),
    }
}

fn check_user_id(s: &str) {
    let predicate = ids::is_server_pseudouser(s);
    match UserId::parse(s) {
        Ok(user) => {
            assert_eq!(user.as_str(), s);
            assert_eq!(
                format!("@{}:{}", user.localpart(), user.server_name()),
                s,
                "localpart and server name do not rebuild the user ID"
            );
            assert!(!user.localpart().contains(':'), "localpart holds ':'");
            assert_eq!(
                ServerName::parse(user.server_name().as_str()).ok().as_ref(),
                Some(user.server_name())
            );
            assert_eq!(user.is_server_pseudouser(), user.localpart().is_empty());
            assert_eq!(
                predicate,
                user.is_server_pseudouser(),
                "is_server_pseudouser({s:?}) disagrees with UserId::parse"
            );
            assert_eq!(
                UserId::parse_not_pseudouser(s).is_ok(),
                !user.is_server_pseudouser()
            );
            if user.is_strict() {
                assert!(!user.localpart().is_empty());
            }
        }
        Err(e) => {
            assert!(
                !predicate,
                "is_server_pseudouser({s:?}) is true but UserId::parse refuses it"
            );
            assert!(UserId::parse_not_pseudouser(s).is_err());
            check_id_error(&e, s);
        }
    }
}

fn check_room_id(s: &str) {
    match RoomId::parse(s) {
        Ok(room) => {
            assert_eq!(room.as_str(), s);
            assert!(s.len() <= ids::MAX_ID_BYTES && !s.contains('\0'));
            match room.format() {
                RoomIdFormat::Legacy => {
                    let server = room.server_name_str().unwrap_or_default();
                    assert_eq!(format!("!{}:{server}", room.opaque_id()), s);
                    assert!(!room.opaque_id().is_empty());
                    assert_eq!(
                        room.server_name().as_ref().map(ServerName::as_str),
                        Some(server)
                    );
                    assert!(ServerName::parse(server).is_ok());
                }
                RoomIdFormat::Hash => {
                    assert!(room.server_name().is_none());
                    assert_eq!(room.opaque_id().len(), 43);
                    assert_eq!(format!("!{}", room.opaque_id()), s);
                    // A v12 room ID is the hash of its create event: the matching event ID must
                    // parse, fit v4, and lead back to the same room.
                    let event = format!("${}", room.opaque_id());
                    let event_id = EventId::parse(&event);
                    assert!(event_id.is_ok(), "{event:?} is refused as an event ID");
                    if let Ok(event_id) = event_id {
                        assert!(event_id.format().fits_v4());
                        let back = RoomId::from_create_event_id(&event_id);
                        assert_eq!(back.ok().as_ref(), Some(&room));
                    }
                }
            }
        }
        Err(e) => check_id_error(&e, s),
    }
}

fn check_event_id(s: &str) {
    match EventId::parse(s) {
        Ok(event) => {
            assert_eq!(event.as_str(), s);
            assert!(s.len() <= ids::MAX_ID_BYTES && !s.contains('\0'));
            let format = event.format();
            assert_eq!(
                format == EventIdFormat::V1,
                event.server_name_str().is_some()
            );
            if let Some(server) = event.server_name_str() {
                assert!(ServerName::parse(server).is_ok());
            } else {
                assert_eq!(s.len(), 44);
            }
            match RoomId::from_create_event_id(&event) {
                Ok(room) => {
                    assert!(format.fits_v4());
                    assert_eq!(RoomId::parse(room.as_str()).ok().as_ref(), Some(&room));
                    assert_eq!(room.format(), RoomIdFormat::Hash);
                }
                Err(e) => {
                    assert!(!format.fits_v4());
                    check_id_error(&e, s);
                }
            }
        }
        Err(e) => check_id_error(&e, s),
    }
}

fn check_id_error(e: &Error, s: &str) {
    assert_eq!(e.errcode(), ErrCode::InvalidParam, "{s:?}: {}", e.message());
    assert_short_message(e, "identifier");
}

fn check_percent(s: &str) {
    let encoded = ids::percent_encode_path_segment(s);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
        "encoding left a reserved character: {encoded:?}"
    );
    match ids::percent_decode_path_segment(&encoded) {
        Ok(decoded) => assert_eq!(decoded, s, "decode(encode(s)) != s"),
        Err(e) => {
            assert!(
                s.contains('\0'),
                "decode(encode({s:?})) fails: {}",
                e.message()
            );
            check_id_error(&e, s);
        }
    }
    match ids::percent_decode_path_segment(s) {
        Ok(decoded) => {
            assert!(!decoded.contains('\0'));
            assert!(decoded.len() <= s.len());
            let again = ids::percent_encode_path_segment(&decoded);
            assert_eq!(
                ids::percent_decode_path_segment(&again).ok().as_deref(),
                Some(decoded.as_str())
            );
        }
        Err(e) => check_id_error(&e, s),
    }
}

// ---------------------------------------------------------------------------------------------
// x_matrix_header
// ---------------------------------------------------------------------------------------------

/// The server name every fuzzed request is addressed to.
const OUR_NAME: &str = "dest.example";

/// `Authorization` header parsing (the whole input as a header, and the input up to the first
/// newline as a header with the rest as the request body): parse → `to_header` → parse is the
/// identity and `to_header` is stable; no forged request authenticates; a request we sign with
/// the parsed origin and the fuzzed body and URI verifies, and stops verifying when the URI
/// changes.
pub fn x_matrix_header(data: &[u8]) {
    let whole = text(data);
    check_header(&whole);

    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (data.get(..i).unwrap_or_default(), data.get(i + 1..)),
        None => (data, None),
    };
    let header = text(head);
    let parsed = check_header(&header);

    let key = signing_key();
    let uri = "/_matrix/federation/v1/send/fuzz";
    match x_matrix::verify_request_body(&header, "PUT", uri, OUR_NAME, body, &[key.verify_key()]) {
        Ok((x, _)) => panic!("a forged request authenticated as {}", x.origin),
        Err(e) => {
            assert!(
                matches!(
                    e.errcode(),
                    ErrCode::Unauthorized | ErrCode::NotJson | ErrCode::BadJson
                ),
                "verify_request_body: errcode {:?}: {}",
                e.errcode(),
                e.message()
            );
            if e.errcode() == ErrCode::Unauthorized {
                assert_eq!(e.status(), 401);
            }
        }
    }

    // Sign a real request from the parsed origin, with the fuzzed body and a URI made of the
    // header text, and check that it verifies (and only for that URI).
    let Some(parsed) = parsed else { return };
    let content = body.filter(|b| !b.is_empty()).map(json::parse);
    let content = match content {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return,
        None => None,
    };
    let uri = format!("/_matrix/federation/v1/{}", header.escape_default());
    let signed = x_matrix::sign_request(
        "PUT",
        &uri,
        parsed.origin.as_str(),
        OUR_NAME,
        content.as_ref(),
        &key,
    );
    let body_bytes = content.as_ref().map(Value::to_canonical);
    match x_matrix::verify_request_body(
        &signed,
        "PUT",
        &uri,
        OUR_NAME,
        body_bytes.as_deref(),
        &[key.verify_key()],
    ) {
        Ok((x, back)) => {
            assert_eq!(x.origin, parsed.origin);
            assert_eq!(back, content);
        }
        Err(e) => panic!("our own signed request does not verify: {}", e.message()),
    }
    let other = format!("{uri}x");
    assert!(
        x_matrix::verify_request(
            &signed,
            "PUT",
            &other,
            OUR_NAME,
            content.as_ref(),
            &[key.verify_key()]
        )
        .is_err(),
        "a signature verified for another URI"
    );
}

/// Parses one header and checks the round trip; returns the parsed header.
fn check_header(header: &str) -> Option<x_matrix::XMatrix> {
    match x_matrix::parse_header(header) {
        Ok(x) => {
            let written = x.to_header();
            match x_matrix::parse_header(&written) {
                Ok(again) => {
                    assert_eq!(again, x, "parse(to_header(x)) != x for {written:?}");
                    assert_eq!(again.to_header(), written, "to_header is not stable");
                }
                Err(e) => panic!(
                    "to_header output {written:?} does not parse: {}",
                    e.message()
                ),
            }
            assert!(ServerName::parse(x.origin.as_str()).is_ok());
            Some(x)
        }
        Err(e) => {
            assert_eq!(e.errcode(), ErrCode::Unauthorized, "{}", e.message());
            assert_eq!(e.status(), 401);
            assert_short_message(&e, "X-Matrix");
            None
        }
    }
}

/// A fixed signing key (the fuzzer must not be able to learn its seed from the input).
fn signing_key() -> SigningKey {
    match SigningKey::from_seed("ed25519:fuzz", &[7; 32]) {
        Ok(key) => key,
        Err(e) => panic!("fixed key: {}", e.message()),
    }
}

// ---------------------------------------------------------------------------------------------
// event_id
// ---------------------------------------------------------------------------------------------

/// Event IDs and redaction for every room version: `event_id_from_json` agrees with parsing then
/// `event_id`, and hash-based IDs are valid event IDs of the version's format; redaction is
/// idempotent, keeps no key the event did not have, leaves the event ID unchanged, and its
/// signing bytes are the redacted event's canonical JSON without `signatures`.
pub fn event_id(data: &[u8]) {
    use servership::event;
    use servership::redaction;
    use servership::room_version::{EventIdFormat as Format, RoomVersion};

    let parsed = json::parse_object(data);
    for &version in RoomVersion::all() {
        let from_bytes = event::event_id_from_json(data, version);
        let Ok(object) = &parsed else {
            assert!(
                from_bytes.is_err(),
                "event_id_from_json accepts a non-object"
            );
            continue;
        };
        let from_object = event::event_id(object, version);
        assert_eq!(
            from_bytes, from_object,
            "event_id_from_json and event_id disagree (v{})",
            version.id
        );
        if let Ok(id) = &from_object {
            match version.event_id_format {
                Format::Opaque => assert_eq!(
                    object.get("event_id").and_then(Value::as_str),
                    Some(id.as_str())
                ),
                Format::Base64 | Format::UrlSafeBase64 => {
                    let parsed_id = EventId::parse(id);
                    assert!(parsed_id.is_ok(), "computed event ID {id:?} does not parse");
                    let format = parsed_id.map(|e| e.format()).ok();
                    if version.event_id_format == Format::Base64 {
                        assert!(format.is_some_and(EventIdFormat::fits_v3), "{id} for v3");
                    } else {
                        assert!(format.is_some_and(EventIdFormat::fits_v4), "{id} for v4+");
                    }
                }
            }
        }
        let _ = event::content_hash(object);
        let _ = event::check_content_hash(object);
        let _ = event::check_pdu_size(object);
        let _ = event::required_signers(object, version);
        let _ = event::room_id_from_create_event(object);
        let _ = RoomVersion::from_create_event(object);

        let redacted = match redaction::redact(object, version) {
            Ok(redacted) => redacted,
            Err(e) => {
                assert!(redaction::redacted_signing_bytes(object, version).is_err());
                let _ = e.to_json();
                continue;
            }
        };
        for key in redacted.keys() {
            assert!(
                object.contains_key(key) || key == "content",
                "redaction added the key {key:?}"
            );
        }
        match redaction::redact(&redacted, version) {
            Ok(again) => assert_eq!(
                again, redacted,
                "redaction is not idempotent (v{})",
                version.id
            ),
            Err(e) => panic!(
                "a redacted event cannot be redacted again (v{}): {}",
                version.id,
                e.message()
            ),
        }
        match redaction::redacted_signing_bytes(object, version) {
            Ok(bytes) => assert_eq!(
                bytes,
                json::canonical_object_without(&redacted, &["signatures", "unsigned"]),
                "redacted_signing_bytes differs from redact (v{})",
                version.id
            ),
            Err(e) => panic!(
                "redact accepts but redacted_signing_bytes refuses: {}",
                e.message()
            ),
        }
        if version.event_id_format != Format::Opaque {
            assert_eq!(
                event::event_id(&redacted, version).ok(),
                from_object.as_ref().ok().cloned(),
                "redaction changed the event ID (v{})",
                version.id
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// invite_check
// ---------------------------------------------------------------------------------------------

/// The server sending the fuzzed invites (as the vectors' create events are by `alpha.example`).
const INVITE_ORIGIN: &str = "alpha.example";
/// The server receiving them.
const INVITE_RECEIVER: &str = "receiver.example";

/// MSC4329 invite checks on the input as the request body. The path room ID is the first line
/// when the input starts with `!`, otherwise the body's `event.room_id` (so the fuzzer reaches
/// the deep checks). Run without keys, and with a key ring that holds only an unrelated key for
/// the origin: anything accepted with keys is accepted without them and gives the same answer;
/// an accepted invite is consistent with itself (computed event ID, valid IDs, create event last
/// in `invite_room_state`); errors carry the documented codes.
pub fn invite_check(data: &[u8]) {
    use servership::invite::{self, KeyRing};

    let (path, body) = match data.split(|&b| b == b'\n').next() {
        Some(first) if data.first() == Some(&b'!') => {
            (text(first), data.get(first.len() + 1..).unwrap_or_default())
        }
        _ => {
            let path = json::parse(data)
                .ok()
                .and_then(|v| {
                    v.get("event")
                        .and_then(|e| e.get("room_id"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| format!("!fuzz:{INVITE_ORIGIN}"));
            (path, data)
        }
    };

    let unchecked = invite::check_invite(&path, body, INVITE_RECEIVER, INVITE_ORIGIN, None);
    check_invite_result(&path, &unchecked, false);

    let mut ring = KeyRing::new();
    ring.add(INVITE_ORIGIN, signing_key().verify_key());
    let checked = invite::check_invite(&path, body, INVITE_RECEIVER, INVITE_ORIGIN, Some(&ring));
    check_invite_result(&path, &checked, true);
    if let Ok(with_keys) = &checked {
        match &unchecked {
            Ok(without) => {
                assert_eq!(with_keys.event_id, without.event_id);
                assert_eq!(with_keys.room_id, without.room_id);
            }
            Err(e) => panic!("accepted with keys, refused without: {}", e.message()),
        }
    }
}

fn check_invite_result(
    path: &str,
    result: &servership::Result<servership::invite::InviteCheck>,
    with_keys: bool,
) {
    use servership::event;

    let check = match result {
        Ok(check) => check,
        Err(e) => {
            assert!(
                matches!(
                    e.errcode(),
                    ErrCode::TooLarge
                        | ErrCode::NotJson
                        | ErrCode::BadJson
                        | ErrCode::MissingParam
                        | ErrCode::InvalidParam
                        | ErrCode::IncompatibleRoomVersion
                ),
                "invite error with errcode {:?}: {}",
                e.errcode(),
                e.message()
            );
            assert!(matches!(e.status(), 400 | 413), "status {}", e.status());
            let _ = e.to_json();
            return;
        }
    };
    assert_eq!(check.signatures_checked, with_keys);
    assert_eq!(check.room_id, path);
    assert!(RoomId::parse(&check.room_id).is_ok());
    assert!(!matches!(check.room_version.id, "1" | "2"));
    assert_eq!(
        event::event_id(&check.event, check.room_version)
            .ok()
            .as_ref(),
        Some(&check.event_id),
        "the event ID is not the invite event's"
    );
    assert!(EventId::parse(&check.event_id).is_ok());
    assert!(!check.creators.is_empty());
    check_creators(&check.creators, &check.creator_servers);
    check_inviter_proof(check);
    // The verified create event comes last, in stripped form.
    let last = check.invite_room_state.last();
    for key in ["type", "state_key", "sender", "content"] {
        assert_eq!(
            last.and_then(|v| v.get(key)),
            check.create_event.get(key),
            "the verified create event is not last in invite_room_state ({key})"
        );
    }
    let encoded = check.to_json().to_canonical();
    assert!(json::parse(&encoded).is_ok());
}

/// Creators are user IDs by the auth rules' grammar (Synapse's, looser than `ids::UserId` for
/// `additional_creators`), each once, and their servers (after the first `:`) are listed, each
/// once.
fn check_creators(creators: &[String], servers: &[String]) {
    use servership::auth;
    assert!(!creators.is_empty());
    for (i, creator) in creators.iter().enumerate() {
        assert!(
            auth::is_valid_user_id(creator),
            "creator {creator:?} is not a user ID"
        );
        assert!(!creators[..i].contains(creator), "creator {creator} twice");
        let server = auth::server_part(creator).unwrap_or_default();
        assert!(servers.iter().any(|s| s == server), "{server} not listed");
    }
    for (i, s) in servers.iter().enumerate() {
        assert!(!servers[..i].contains(s), "server {s} twice");
    }
}

/// The proof that the origin is in the room: a promoted join of the invite's sender, by the
/// sender, that the invite's `auth_events` name; creator servers count only with it.
fn check_inviter_proof(check: &servership::invite::InviteCheck) {
    let Some(join) = &check.inviter_membership else {
        assert!(check.proven_creator_servers().is_empty());
        return;
    };
    assert!(check.signatures_checked, "proof without keys");
    assert!(
        check.promoted.contains(join),
        "{join} is proof but was not promoted"
    );
    let names = |key: &str| check.event.get(key).and_then(Value::as_str);
    let sender = names("sender");
    let auth_events = check.event.get("auth_events").and_then(Value::as_array);
    assert!(
        auth_events.is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(join))),
        "{join} is proof but the invite does not name it"
    );
    let joined = check.invite_room_state.iter().any(|e| {
        e.get("type").and_then(Value::as_str) == Some("m.room.member")
            && e.get("state_key").and_then(Value::as_str) == sender
            && e.get("sender").and_then(Value::as_str) == sender
            && e.get("content")
                .and_then(|c| c.get("membership"))
                .and_then(Value::as_str)
                == Some("join")
    });
    assert!(joined, "the inviter's join is not in invite_room_state");
    assert_eq!(
        check.proven_creator_servers(),
        check.creator_servers.as_slice()
    );
}

// ---------------------------------------------------------------------------------------------
// invite_promotion
// ---------------------------------------------------------------------------------------------

/// The second server of the promotion histories, whose key the receiver also holds.
const PROMOTION_OTHER: &str = "beta.example";

fn other_signing_key() -> SigningKey {
    match SigningKey::from_seed("ed25519:fuzz", &[8; 32]) {
        Ok(key) => key,
        Err(e) => panic!("fixed key: {}", e.message()),
    }
}

/// Reads the input a byte at a time, then zeros.
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }

    fn pick<'t, T>(&mut self, from: &'t [T]) -> &'t T {
        let i = usize::from(self.next()) % from.len().max(1);
        &from[i]
    }
}

/// Promotion of `state` events (MSC4329) on histories the input describes, really signed (so the
/// fuzzer gets past the signatures and reaches the auth rules), or on a raw body when the input
/// starts with `{` or `!`.
///
/// A history: the first byte picks the room version (3-12), then each group of bytes adds one
/// event: sender (alice or bob of the origin, mallory of another server whose key we hold), type
/// (member, power levels, join rules, name, topic, a message, third-party invite, aliases),
/// state key, content (memberships, power levels built from the input, join rules), which earlier
/// events it names as auth events (and the create event or not), prev_events, and whether it is
/// signed properly, by a key we do not know, or tampered after signing.
///
/// Invariants, with the key ring: the invite passes; every `state` event other than the create is
/// promoted or dropped, exactly once; the promoted ones were properly signed, there is at most
/// one per `(type, state_key)`, and each passes an independent check of the spec's "auth against
/// its auth events": its auth events are the create event or accepted events, `auth::
/// check_auth_events` allows them and `auth::check_event` allows it against the state they make.
/// Without keys nothing is promoted.
pub fn invite_promotion(data: &[u8]) {
    if matches!(data.first(), Some(b'{' | b'!')) {
        invite_check(data);
        return;
    }
    use servership::auth::{self, AuthState};
    use servership::event;
    use servership::invite::{self, KeyRing};
    use servership::json::Object;
    use servership::room_version::RoomVersion;

    let mut b = Bytes(data.iter());
    let versions: Vec<RoomVersion> = RoomVersion::all()[2..].to_vec();
    let version = *b.pick(&versions);
    let v12 = version.room_id_format == servership::room_version::RoomIdFormat::CreateEventHash;
    let alice = format!("@alice:{INVITE_ORIGIN}");
    let bob = format!("@bob:{INVITE_ORIGIN}");
    let mallory = format!("@mallory:{PROMOTION_OTHER}");
    let carol = format!("@carol:{INVITE_RECEIVER}");
    let origin_key = signing_key();
    let other_key = other_signing_key();
    let obj = |text: String| -> Object {
        match json::parse_object(text.as_bytes()) {
            Ok(o) => o,
            Err(e) => panic!("fixture JSON: {}: {text}", e.message()),
        }
    };
    let sign = |e: &mut Object, server: &str| {
        let key = if server == INVITE_ORIGIN {
            &origin_key
        } else {
            &other_key
        };
        if let Err(e) = event::sign_event(e, server, key, version) {
            panic!("signing: {}", e.message());
        }
    };
    let id_of = |e: &Object| event::event_id(e, version).unwrap_or_default();

    let mut create = obj(format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"{alice}","origin_server_ts":1,"depth":1,
            "prev_events":[],"auth_events":[],"content":{{"room_version":"{}","creator":"{alice}"}}}}"#,
        version.id
    ));
    if b.next() % 4 == 0 && v12 {
        if let Some(Value::Object(c)) = create.get_mut("content") {
            c.insert(
                "additional_creators".into(),
                Value::Array(vec![bob.as_str().into()]),
            );
        }
    }
    let room_id = if v12 {
        String::new()
    } else {
        format!("!fuzz:{INVITE_ORIGIN}")
    };
    if !v12 {
        create.insert("room_id".into(), room_id.as_str().into());
    }
    sign(&mut create, INVITE_ORIGIN);
    let create_id = id_of(&create);
    let room_id = if v12 {
        format!("!{}", create_id.trim_start_matches('$'))
    } else {
        room_id
    };

    let users = [
        alice.as_str(),
        bob.as_str(),
        mallory.as_str(),
        carol.as_str(),
    ];
    let levels = [
        Value::Int(0),
        Value::Int(50),
        Value::Int(100),
        Value::Int(-1),
        "50".into(),
    ];
    let mut events: Vec<Object> = Vec::new();
    // The events' IDs, computed once each (hashing is most of a run's cost).
    let mut ids: Vec<String> = Vec::new();
    let mut properly_signed: Vec<String> = Vec::new();
    let count = usize::from(b.next() % 16);
    for n in 0..count {
        let sender = *b.pick(&users[..3]);
        let kind = *b.pick(&[
            "m.room.member",
            "m.room.member",
            "m.room.power_levels",
            "m.room.join_rules",
            "m.room.name",
            "m.room.topic",
            "m.room.message",
            "m.room.third_party_invite",
            "m.room.aliases",
        ]);
        let mut content = Object::new();
        let state_key: Option<String> = match kind {
            "m.room.member" => {
                let target = *b.pick(&users);
                let membership = *b.pick(&["join", "join", "invite", "leave", "ban", "knock"]);
                content.insert("membership".into(), membership.into());
                Some(target.to_owned())
            }
            "m.room.power_levels" => {
                let mut u = Object::new();
                for user in &users[..3] {
                    if b.next() % 2 == 1 {
                        u.insert((*user).to_owned(), b.pick(&levels).clone());
                    }
                }
                content.insert("users".into(), Value::Object(u));
                for name in ["state_default", "invite", "kick", "ban"] {
                    if b.next() % 3 == 0 {
                        content.insert(name.into(), b.pick(&levels).clone());
                    }
                }
                Some(String::new())
            }
            "m.room.join_rules" => {
                let rule = *b.pick(&["public", "invite", "knock", "restricted", "private"]);
                content.insert("join_rule".into(), rule.into());
                Some(String::new())
            }
            "m.room.message" => {
                content.insert("body".into(), "hi".into());
                None
            }
            "m.room.aliases" => Some(b.pick(&[INVITE_ORIGIN, PROMOTION_OTHER, ""]).to_string()),
            _ => {
                content.insert("x".into(), Value::Int(i64::from(b.next())));
                Some(b.pick(&["", "", "@alice:alpha.example", "x"]).to_string())
            }
        };
        let mask = b.next();
        let mut auth: Vec<Value> = Vec::new();
        if !v12 && mask & 0x80 == 0 || v12 && mask & 0x80 != 0 {
            auth.push(create_id.as_str().into());
        }
        let window = ids.len().saturating_sub(7);
        for (k, id) in ids.iter().enumerate().skip(window) {
            if mask & (1 << (k - window)) != 0 {
                auth.push(id.as_str().into());
            }
        }
        let prev = if n == 0 || b.next() % 4 == 0 {
            create_id.clone()
        } else {
            ids.last().cloned().unwrap_or_else(|| create_id.clone())
        };
        let mut e = Object::new();
        e.insert("type".into(), kind.into());
        if let Some(k) = state_key {
            e.insert("state_key".into(), k.into());
        }
        e.insert("sender".into(), sender.into());
        e.insert("room_id".into(), room_id.as_str().into());
        e.insert("content".into(), Value::Object(content));
        e.insert("origin_server_ts".into(), Value::Int(2 + n as i64));
        e.insert("depth".into(), Value::Int(2 + n as i64));
        e.insert("prev_events".into(), Value::Array(vec![prev.into()]));
        e.insert("auth_events".into(), Value::Array(auth));
        let server = if sender == mallory.as_str() {
            PROMOTION_OTHER
        } else {
            INVITE_ORIGIN
        };
        match b.next() % 8 {
            0 => {
                // Signed by a key we do not hold for that server.
                let wrong = if server == INVITE_ORIGIN {
                    &other_key
                } else {
                    &origin_key
                };
                let _ = event::sign_event(&mut e, server, wrong, version);
            }
            1 => {
                sign(&mut e, server);
                if let Some(Value::Object(c)) = e.get_mut("content") {
                    c.insert("tampered".into(), Value::Bool(true));
                }
            }
            _ => {
                sign(&mut e, server);
                properly_signed.push(id_of(&e));
            }
        }
        ids.push(id_of(&e));
        events.push(e);
    }

    let mut invite = obj(format!(
        r#"{{"type":"m.room.member","state_key":"{carol}","sender":"{alice}","origin_server_ts":99,"depth":99,
            "prev_events":["{create_id}"],"auth_events":[],"content":{{"membership":"invite"}},"room_id":"{room_id}"}}"#
    ));
    sign(&mut invite, INVITE_ORIGIN);
    let body = match invite::build_invite_request(&invite, &create, &events, &[]) {
        Ok(parts) => parts.body,
        Err(e) => panic!("building the request: {}", e.message()),
    };
    let mut ring = KeyRing::new();
    ring.add(INVITE_ORIGIN, origin_key.verify_key());
    ring.add(PROMOTION_OTHER, other_key.verify_key());

    let without = match invite::check_invite(&room_id, &body, INVITE_RECEIVER, INVITE_ORIGIN, None)
    {
        Ok(c) => c,
        Err(e) => panic!("a valid invite is refused without keys: {}", e.message()),
    };
    assert!(without.promoted.is_empty(), "promoted without keys");
    let check =
        match invite::check_invite(&room_id, &body, INVITE_RECEIVER, INVITE_ORIGIN, Some(&ring)) {
            Ok(c) => c,
            Err(e) => panic!("a valid invite is refused: {}", e.message()),
        };
    // Every state event (state[1..]) once, promoted or dropped.
    for (i, id) in ids.iter().enumerate() {
        let place = format!("state[{}]", i + 1);
        let dropped = check.dropped.iter().filter(|d| d.place == place).count();
        let promoted = usize::from(check.promoted.contains(id));
        // Two identical events: the second is dropped as a duplicate.
        let first = ids.iter().position(|x| x == id) == Some(i);
        if first {
            assert_eq!(
                dropped + promoted,
                1,
                "{place} ({id}) is not promoted or dropped once"
            );
        } else {
            assert_eq!(dropped, 1, "{place} (a duplicate) not dropped");
        }
        assert_eq!(
            without.dropped.iter().filter(|d| d.place == place).count(),
            1,
            "{place} not dropped without keys"
        );
    }
    let accepted: Vec<&str> = check
        .promoted
        .iter()
        .map(String::as_str)
        .chain(
            check
                .dropped
                .iter()
                .filter(|d| d.reason.starts_with("superseded"))
                .filter_map(|d| d.event_id.as_deref()),
        )
        .collect();
    let by_id = |id: &str| ids.iter().position(|x| x == id).and_then(|i| events.get(i));
    let mut keys_seen: Vec<(String, String)> = Vec::new();
    for id in &check.promoted {
        assert!(
            properly_signed.contains(id),
            "{id} is promoted but not properly signed"
        );
        let Some(e) = by_id(id) else {
            panic!("promoted {id} is not a state event of the request")
        };
        let key = (
            e.get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            e.get("state_key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
        assert!(!keys_seen.contains(&key), "two promoted events for {key:?}");
        keys_seen.push(key);
        // The spec's check against the event's own auth events, as an independent oracle.
        let mut listed: Vec<(&str, &Object)> = Vec::new();
        for a in e
            .get("auth_events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let a = a.as_str().unwrap_or_default();
            if a == create_id {
                listed.push((create_id.as_str(), &create));
                continue;
            }
            assert!(
                accepted.contains(&a),
                "{id} names {a}, which was not accepted"
            );
            match by_id(a) {
                Some(ae) => listed.push((a, ae)),
                None => panic!("{id} names {a}, which is not in state"),
            }
        }
        let d = auth::check_auth_events(e, version, &create_id, &listed);
        assert!(
            d.is_allowed(),
            "{id}: its auth events are refused: {}",
            d.detail
        );
        let mut state = AuthState::new(&create, &create_id, version);
        for (_, ae) in &listed {
            state.insert(ae);
        }
        let d = auth::check_event(e, &state);
        assert!(
            d.is_allowed(),
            "{id} promoted, but refused against its auth events: {}",
            d.detail
        );
    }
    check_creators(&check.creators, &check.creator_servers);
    check_inviter_proof(&check);
}

// ---------------------------------------------------------------------------------------------
// spec_invite
// ---------------------------------------------------------------------------------------------

/// MSC4311 checks (`invite::check_spec_invite`) on the input as a `/v1` and a `/v2` body. The
/// path is the first line when the input starts with `!` (`!room $event`), otherwise taken from
/// the body's event (`room_id`, and its computed or `event_id` ID) so the fuzzer reaches the deep
/// checks. Each endpoint runs without keys and with a key ring holding the fixed key of the
/// origin.
///
/// Invariants: errors carry the documented codes (400/413); anything accepted with keys is
/// accepted without, with the same answer; an accepted invite has the path's room and event IDs,
/// a room version of 1–2 on `/v1`, creators by the auth rules' grammar, the create event
/// last in `invite_room_state` and every entry there in stripped form (`type`, `state_key`,
/// `sender`, `content` only); no entry of the body that claims to be a PDU of another room (it
/// has a `room_id` that is not the path's) is ever accepted.
pub fn spec_invite(data: &[u8]) {
    use servership::invite::{self, KeyRing, SpecInviteEndpoint};
    use servership::room_version::RoomVersion;

    if data.first().is_some_and(|&b| b < 0x20) {
        spec_invite_program(data);
        return;
    }
    let (path_room, path_event, body) = match data.split(|&b| b == b'\n').next() {
        Some(first) if data.first() == Some(&b'!') => {
            let line = text(first);
            let (room, event) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            (
                room.to_owned(),
                event.to_owned(),
                data.get(first.len() + 1..).unwrap_or_default(),
            )
        }
        _ => {
            let parsed = json::parse_lenient(data).ok();
            let event = parsed.as_ref().map(|v| v.get("event").unwrap_or(v));
            let room = event
                .and_then(|e| e.get("room_id"))
                .and_then(Value::as_str)
                .unwrap_or("!fuzz:alpha.example")
                .to_owned();
            let version = parsed
                .as_ref()
                .and_then(|v| v.get("room_version"))
                .and_then(Value::as_str)
                .and_then(|v| RoomVersion::from_id(v).ok())
                .unwrap_or(RoomVersion::V1);
            let id = event
                .and_then(Value::as_object)
                .and_then(|e| servership::event::event_id(e, version).ok())
                .unwrap_or_else(|| "$fuzz".into());
            (room, id, data)
        }
    };
    let mut ring = KeyRing::new();
    ring.add(INVITE_ORIGIN, signing_key().verify_key());
    for endpoint in [SpecInviteEndpoint::V1, SpecInviteEndpoint::V2] {
        let run = |keys: Option<&KeyRing>| {
            invite::check_spec_invite(
                endpoint,
                &path_room,
                &path_event,
                body,
                INVITE_RECEIVER,
                INVITE_ORIGIN,
                keys,
            )
        };
        let without = run(None);
        let with = run(Some(&ring));
        for (result, keyed) in [(&without, false), (&with, true)] {
            let check = match result {
                Ok(c) => c,
                Err(e) => {
                    assert!(
                        matches!(
                            e.errcode(),
                            ErrCode::TooLarge
                                | ErrCode::NotJson
                                | ErrCode::BadJson
                                | ErrCode::MissingParam
                                | ErrCode::InvalidParam
                                | ErrCode::IncompatibleRoomVersion
                        ),
                        "spec invite error with errcode {:?}: {}",
                        e.errcode(),
                        e.message()
                    );
                    assert!(matches!(e.status(), 400 | 413), "status {}", e.status());
                    let _ = e.to_json();
                    continue;
                }
            };
            assert_eq!(check.signatures_checked, keyed);
            assert_eq!(check.room_id, path_room);
            assert_eq!(check.event_id, path_event);
            if endpoint == SpecInviteEndpoint::V1 {
                assert!(
                    matches!(check.room_version.id, "1" | "2"),
                    "v{} on the /v1 endpoint",
                    check.room_version.id
                );
            }
            check_creators(&check.creators, &check.creator_servers);
            let last = check.invite_room_state.last();
            assert_eq!(
                last.and_then(|v| v.get("type")).and_then(Value::as_str),
                Some("m.room.create")
            );
            for entry in &check.invite_room_state {
                let o = entry.as_object();
                assert!(
                    o.is_some_and(|o| o.len() == 4
                        && ["type", "state_key", "sender", "content"]
                            .iter()
                            .all(|k| o.contains_key(*k))),
                    "not stripped: {}",
                    entry.to_canonical_string()
                );
            }
            // No entry of another room got through.
            let parsed = json::parse_lenient(body).ok();
            let list = parsed.as_ref().and_then(|v| match endpoint {
                SpecInviteEndpoint::V1 => {
                    v.get("unsigned").and_then(|u| u.get("invite_room_state"))
                }
                SpecInviteEndpoint::V2 => v.get("invite_room_state"),
            });
            for entry in list.and_then(Value::as_array).into_iter().flatten() {
                if let Some(room) = entry.get("room_id").and_then(Value::as_str) {
                    assert_eq!(room, path_room, "an entry of room {room} was accepted");
                }
            }
            let _ = check.to_json().to_canonical();
        }
        if let Ok(w) = &with {
            match &without {
                Ok(wo) => {
                    assert_eq!(w.event_id, wo.event_id);
                    assert_eq!(w.invite_room_state, wo.invite_room_state);
                }
                Err(e) => panic!("accepted with keys, refused without: {}", e.message()),
            }
        }
    }
}

/// `spec_invite` on a body the input describes (first byte below 0x20): a real room of a
/// version the input picks (1–12), its create event and the invite signed with the origin's
/// fixed key, and up to six more `invite_room_state` entries, each stripped state, a good PDU of
/// the room, or a bad one (another room's, with `hashes` removed, a `depth` given as a string,
/// tampered after signing, signed with a key we do not hold). The body then goes through the
/// raw checks with the path it really has, and an oracle: an invite with only good entries is
/// accepted with keys; one with a malformed entry or an entry of another room is refused
/// without keys too; one whose only bad entries are signature or hash faults is refused with
/// keys and accepted without.
fn spec_invite_program(data: &[u8]) {
    use servership::event;
    use servership::invite::{self, KeyRing, SpecInviteEndpoint};
    use servership::json::Object;
    use servership::room_version::{EventIdFormat, RoomIdFormat, RoomVersion};

    let mut b = Bytes(data.get(1..).unwrap_or_default().iter());
    let version = *b.pick(RoomVersion::all());
    let opaque = version.event_id_format == EventIdFormat::Opaque;
    let v12 = version.room_id_format == RoomIdFormat::CreateEventHash;
    let alice = format!("@alice:{INVITE_ORIGIN}");
    let key = signing_key();
    let stranger = other_signing_key();
    let obj = |text: String| -> Object {
        match json::parse_object(text.as_bytes()) {
            Ok(o) => o,
            Err(e) => panic!("fixture JSON: {}: {text}", e.message()),
        }
    };
    let sign = |e: &mut Object, k: &SigningKey| {
        if let Err(e) = event::sign_event(e, INVITE_ORIGIN, k, version) {
            panic!("signing: {}", e.message());
        }
    };
    let mut create = obj(format!(
        r#"{{"type":"m.room.create","state_key":"","sender":"{alice}","origin_server_ts":1,"depth":1,
            "prev_events":[],"auth_events":[],"content":{{"room_version":"{}","creator":"{alice}"}}}}"#,
        version.id
    ));
    if !v12 {
        create.insert("room_id".into(), format!("!fz:{INVITE_ORIGIN}").into());
    }
    if opaque {
        create.insert("event_id".into(), format!("$create:{INVITE_ORIGIN}").into());
    }
    sign(&mut create, &key);
    let create_id = event::event_id(&create, version).unwrap_or_default();
    let room_id = if v12 {
        format!("!{}", create_id.trim_start_matches('$'))
    } else {
        format!("!fz:{INVITE_ORIGIN}")
    };
    let pdu = |kind: &str, n: u8, room: &str| -> Object {
        let mut e = obj(format!(
            r#"{{"type":"{kind}","state_key":"","sender":"{alice}","origin_server_ts":2,"depth":2,
                "prev_events":[],"auth_events":[],"content":{{"n":{n}}},"room_id":"{room}"}}"#
        ));
        if opaque {
            e.insert("event_id".into(), format!("$e{n}:{INVITE_ORIGIN}").into());
        }
        e
    };
    let mut entries: Vec<Value> = vec![Value::Object(create.clone())];
    let (mut malformed_or_foreign, mut unsigned_fault) = (false, false);
    for n in 0..usize::from(b.next() % 7) {
        let n = u8::try_from(n).unwrap_or(0);
        let entry = match b.next() % 7 {
            0 => obj(format!(
                r#"{{"type":"m.room.topic","state_key":"","sender":"{alice}","content":{{"n":{n}}}}}"#
            )),
            1 => {
                let mut e = pdu("m.room.name", n, "!elsewhere:alpha.example");
                sign(&mut e, &key);
                if b.next() % 2 == 0 {
                    e.remove("hashes");
                }
                malformed_or_foreign = true;
                e
            }
            2 => {
                let mut e = pdu("m.room.name", n, &room_id);
                e.insert("depth".into(), "2".into());
                sign(&mut e, &key);
                malformed_or_foreign = true;
                e
            }
            3 => {
                let mut e = pdu("m.room.name", n, &room_id);
                sign(&mut e, &key);
                if let Some(Value::Object(c)) = e.get_mut("content") {
                    c.insert("tampered".into(), Value::Bool(true));
                }
                unsigned_fault = true;
                e
            }
            4 => {
                let mut e = pdu("m.room.name", n, &room_id);
                sign(&mut e, &stranger);
                unsigned_fault = true;
                e
            }
            _ => {
                let mut e = pdu("m.room.name", n, &room_id);
                sign(&mut e, &key);
                e
            }
        };
        let at = usize::from(b.next()) % (entries.len() + 1);
        entries.insert(at, Value::Object(entry));
    }
    let mut invite = obj(format!(
        r#"{{"type":"m.room.member","state_key":"@carol:{INVITE_RECEIVER}","sender":"{alice}","origin_server_ts":3,
            "depth":3,"prev_events":[],"auth_events":[],"content":{{"membership":"invite"}},"room_id":"{room_id}"}}"#
    ));
    if opaque {
        invite.insert("event_id".into(), format!("$invite:{INVITE_ORIGIN}").into());
    }
    sign(&mut invite, &key);
    let event_id = event::event_id(&invite, version).unwrap_or_default();
    let (endpoint, body) = if opaque && b.next() % 2 == 0 {
        let mut unsigned = Object::new();
        unsigned.insert("invite_room_state".into(), Value::Array(entries));
        let mut e = invite.clone();
        e.insert("unsigned".into(), Value::Object(unsigned));
        (SpecInviteEndpoint::V1, Value::Object(e).to_canonical())
    } else {
        let mut body = Object::new();
        body.insert("room_version".into(), version.id.into());
        body.insert("event".into(), Value::Object(invite));
        body.insert("invite_room_state".into(), Value::Array(entries));
        (SpecInviteEndpoint::V2, Value::Object(body).to_canonical())
    };
    // The raw invariants, with the real path.
    let mut raw = format!("{room_id} {event_id}\n").into_bytes();
    raw.extend_from_slice(&body);
    spec_invite(&raw);
    // The oracle.
    let mut ring = KeyRing::new();
    ring.add(INVITE_ORIGIN, key.verify_key());
    let run = |keys: Option<&KeyRing>| {
        invite::check_spec_invite(
            endpoint,
            &room_id,
            &event_id,
            &body,
            INVITE_RECEIVER,
            INVITE_ORIGIN,
            keys,
        )
    };
    let (with, without) = (run(Some(&ring)), run(None));
    if malformed_or_foreign {
        assert!(
            without.is_err(),
            "a malformed or foreign PDU got through without keys"
        );
        assert!(with.is_err(), "a malformed or foreign PDU got through");
    } else if unsigned_fault {
        assert!(
            with.is_err(),
            "a forged or tampered PDU got through with keys"
        );
        assert!(without.is_ok(), "refused without keys: {:?}", without.err());
    } else {
        assert!(with.is_ok(), "a good invite is refused: {:?}", with.err());
    }
}

// ---------------------------------------------------------------------------------------------
// knock_edu
// ---------------------------------------------------------------------------------------------

/// `m.server.knock` EDU parsing: never panics; what it accepts has a room ID that the identifier
/// module accepts too; errors carry the documented codes.
pub fn knock_edu(data: &[u8]) {
    use servership::subscription::knock;

    match knock::parse_knock(data) {
        Ok(k) => {
            let room = RoomId::parse(&k.room_id);
            assert!(
                room.is_ok(),
                "a knock for {:?} is accepted, but ids::RoomId refuses it: {}",
                k.room_id,
                room.err()
                    .map(|e| e.message().to_owned())
                    .unwrap_or_default()
            );
            assert!(knock::is_valid_room_id(&k.room_id));
            if let Ok(value) = json::parse(data) {
                assert_eq!(knock::parse_knock_value(&value).ok(), Some(k));
            }
        }
        Err(e) => {
            assert!(
                matches!(
                    e.errcode(),
                    ErrCode::TooLarge
                        | ErrCode::NotJson
                        | ErrCode::BadJson
                        | ErrCode::MissingParam
                        | ErrCode::InvalidParam
                ),
                "knock error with errcode {:?}: {}",
                e.errcode(),
                e.message()
            );
        }
    }
}

/// `discover_common_rooms`: the responder over a small real store. Never panics; an answer is a
/// subset of the request, in request order, each tag once; errors use the documented codes.
pub fn discover_common_rooms(data: &[u8]) {
    use servership::discovery::{Responder, ResponderConfig, participation_tag};
    use servership::store::TagStore;
    use std::sync::{Arc, OnceLock};

    static RESPONDER: OnceLock<Option<Responder>> = OnceLock::new();
    let responder = RESPONDER.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("servership-fuzz-discovery-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let store = TagStore::open(dir.join("tags.sqlite3"), "fuzz.example").ok()?;
        store
            .backfill(&["!a:fuzz.example", "!b:other.example"], 1)
            .ok()?;
        let config = ResponderConfig {
            budget_tags: u64::MAX / 2,
            ..ResponderConfig::default()
        };
        Responder::new(Arc::new(store), config).ok()
    });
    let Some(responder) = responder else {
        panic!("could not set up the discovery store");
    };
    // Budget keys: normalising is total and idempotent on any text.
    let origin = servership::discovery::normalise_origin(&text(data));
    assert_eq!(servership::discovery::normalise_origin(&origin), origin);
    // Known tags are recognised: prove the responder is not answering "nothing" to everything.
    let known = participation_tag("fuzz.example", "!a:fuzz.example").to_base64();
    let probe = format!(r#"{{"room_participation_tags":["{known}"]}}"#);
    let answer = responder.respond(probe.as_bytes(), "peer.example", 1);
    assert_eq!(
        answer.ok().and_then(|a| json::parse(&a).ok()),
        json::parse(format!(r#"{{"recognised_tags":["{known}"]}}"#).as_bytes()).ok()
    );

    match responder.respond(data, "peer.example", 1) {
        Ok(out) => {
            let answer = json::parse(&out).expect("the responder answers JSON");
            let request = json::parse(data).expect("an answered request was JSON");
            let asked: Vec<&str> = request
                .get("room_participation_tags")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let got: Vec<&str> = answer
                .get("recognised_tags")
                .and_then(Value::as_array)
                .expect("recognised_tags is an array")
                .iter()
                .map(|v| v.as_str().expect("tags are strings"))
                .collect();
            let mut last = 0;
            for (n, tag) in got.iter().enumerate() {
                assert!(!got[..n].contains(tag), "{tag} answered twice");
                let at = asked.iter().skip(last).position(|a| a == tag);
                assert!(at.is_some(), "{tag} answered out of order or never asked");
                last += at.unwrap_or(0) + 1;
            }
        }
        Err(e) => assert!(
            matches!(
                e.errcode(),
                ErrCode::NotJson
                    | ErrCode::BadJson
                    | ErrCode::InvalidParam
                    | ErrCode::MissingParam
                    | ErrCode::TooLarge
            ),
            "discovery error with errcode {:?}: {}",
            e.errcode(),
            e.message()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// audit_response
// ---------------------------------------------------------------------------------------------

/// What [`audit_response`] expects of `RoomView::standing`, computed the slow, obvious way from
/// the rules in `docs/protocol.md` ("MSC4358 audit and budgets").
fn expected_standing(
    history: &[(String, String, String)],
    server: &str,
) -> servership::discovery::Standing {
    use servership::discovery::{Departure, Standing};
    struct Valid<'a> {
        user: &'a str,
        user_server: String,
        membership: &'a str,
        sender: &'a str,
        sender_server: String,
    }
    let server_of = |id: &str| UserId::parse(id).ok().map(|u| u.server_name().to_string());
    let valid: Vec<Valid<'_>> = history
        .iter()
        .filter(|(_, m, _)| ["join", "leave", "ban", "invite", "knock"].contains(&m.as_str()))
        .filter_map(|(u, m, s)| {
            Some(Valid {
                user: u,
                user_server: server_of(u)?,
                membership: m,
                sender: s,
                sender_server: server_of(s)?,
            })
        })
        .collect();
    let is_last = |i: usize| !valid[i + 1..].iter().any(|e| e.user == valid[i].user);
    let ours = |e: &Valid<'_>| e.user_server == server;
    if (0..valid.len()).any(|i| ours(&valid[i]) && valid[i].membership == "join" && is_last(i)) {
        return Standing::Visible;
    }
    if !valid.iter().any(|e| ours(e) && e.membership == "join") {
        return Standing::Unexplained;
    }
    let mut removed_by: Vec<String> = Vec::new();
    let mut banned = false;
    for (i, e) in valid.iter().enumerate() {
        let removal = matches!(e.membership, "leave" | "ban") && e.sender_server != server;
        if ours(e) && is_last(i) && removal {
            if !removed_by.iter().any(|r| r == e.sender) {
                removed_by.push(e.sender.to_owned());
            }
            banned |= e.membership == "ban";
        }
    }
    if !removed_by.is_empty() {
        let membership = if banned {
            Departure::Banned
        } else {
            Departure::Left
        };
        return Standing::RemovedByOther {
            membership,
            removed_by,
        };
    }
    let last = valid.iter().rev().find(|e| ours(e)).map(|e| e.membership);
    Standing::Explained(last.unwrap_or_default().to_owned())
}

/// `audit_response`: a peer's answer bytes through `Audit::read_response` and the report, and the
/// same bytes read as a membership history (one `user membership sender` a line).
///
/// - `read_response_for` agrees with `recognised_in`: recognised exactly when the body is an
///   object whose `recognised_tags` holds the asked tag (and only that tag); not recognised when
///   it is an empty array; otherwise a failure saying `malformed response`, from an `M_NOT_JSON` /
///   `M_BAD_JSON` error. A correct answer is always recognised (so the target cannot pass by
///   failing everything).
/// - `RoomView::from_history` classifies every server as the obvious slow reading of the rules
///   does ([`expected_standing`]); the report puts every asked peer in exactly one class, in the
///   class its standing says, and its verdict follows the precedence; its JSON is canonical.
/// - `Audit::choose` returns distinct eligible peers, as many as asked for or available.
pub fn audit_response(data: &[u8]) {
    use servership::discovery::{
        Audit, PeerAnswer, RoomView, Standing, participation_tag, read_response_for, recognised_in,
        request_body_for,
    };
    const ROOM: &str = "!audit:fuzz.example";
    const PEER: &str = "peer.example";
    let tag = participation_tag(PEER, ROOM).to_base64();
    let good = format!(r#"{{"recognised_tags":["{tag}"]}}"#);
    assert_eq!(
        read_response_for(PEER, ROOM, good.as_bytes()),
        PeerAnswer::Recognised
    );
    let asked = json::parse(&request_body_for(PEER, ROOM)).expect("request bodies are JSON");
    assert_eq!(
        asked
            .get("room_participation_tags")
            .and_then(Value::as_array)
            .map(|a| a.len()),
        Some(1)
    );

    let answer = read_response_for(PEER, ROOM, data);
    match (recognised_in(PEER, ROOM, data), &answer) {
        (Ok(true), PeerAnswer::Recognised) | (Ok(false), PeerAnswer::NotRecognised) => {
            let body = json::parse(data).expect("an accepted answer is JSON");
            let tags = body
                .get("recognised_tags")
                .and_then(Value::as_array)
                .expect("an accepted answer has recognised_tags");
            assert_eq!(matches!(answer, PeerAnswer::Recognised), !tags.is_empty());
            for t in tags {
                let decoded = t
                    .as_str()
                    .and_then(servership::discovery::ParticipationTag::from_base64);
                assert_eq!(
                    decoded.map(|d| d.to_base64()),
                    Some(tag.clone()),
                    "an accepted answer names only the asked tag"
                );
            }
        }
        (Err(e), PeerAnswer::Failed(why)) => {
            assert!(
                matches!(e.errcode(), ErrCode::NotJson | ErrCode::BadJson),
                "answer error with errcode {:?}: {}",
                e.errcode(),
                e.message()
            );
            assert_eq!(why, &format!("malformed response: {}", e.message()));
        }
        (strict, lenient) => panic!("recognised_in gave {strict:?}, read_response {lenient:?}"),
    }

    // The same bytes as a membership history.
    let text = text(data);
    let history: Vec<(String, String, String)> = text
        .lines()
        .take(64)
        .filter_map(|line| {
            let mut parts = line.split(' ');
            Some((
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
            ))
        })
        .collect();
    let view = RoomView::from_history(ROOM, "me.example", &history, None::<&[&str]>);
    let mut servers: Vec<String> = Vec::new();
    for (u, _, s) in &history {
        for id in [u, s] {
            if let Ok(user) = UserId::parse(id) {
                let name = user.server_name().to_string();
                if !servers.contains(&name) {
                    servers.push(name);
                }
            }
        }
    }
    for server in servers
        .iter()
        .map(String::as_str)
        .chain([PEER, "never.example"])
    {
        assert_eq!(
            view.standing(server),
            expected_standing(&history, server),
            "standing of {server} in {history:?}"
        );
    }

    // Everyone recognises the room, except PEER, whose answer is the fuzzed one.
    let mut peers: Vec<String> = servers
        .iter()
        .filter(|s| s.as_str() != "me.example")
        .cloned()
        .collect();
    peers.push(PEER.to_owned());
    let audit = Audit::plan(view.clone(), &peers, peers.len());
    let answers: Vec<(String, PeerAnswer)> = peers
        .iter()
        .map(|p| {
            let a = if p == PEER {
                answer.clone()
            } else {
                PeerAnswer::Recognised
            };
            (p.clone(), a)
        })
        .collect();
    let report = audit.report(&answers);
    let mut seen = std::collections::HashSet::new();
    for peer in &report.asked {
        assert!(seen.insert(peer.clone()), "{peer} asked twice");
        let classes = [
            report.visible.contains(peer),
            report.explained.iter().any(|(s, _)| s == peer),
            report.removed.iter().any(|r| &r.server == peer),
            report.unexplained.contains(peer),
            report.not_recognising.contains(peer),
            report.failed.iter().any(|(s, _)| s == peer),
        ];
        assert_eq!(
            classes.iter().filter(|&&c| c).count(),
            1,
            "{peer} is in {classes:?}"
        );
        if report.not_recognising.contains(peer) || report.failed.iter().any(|(s, _)| s == peer) {
            continue;
        }
        match view.standing(peer) {
            Standing::Visible => assert!(classes[0]),
            Standing::Explained(last) => {
                assert!(report.explained.contains(&(peer.clone(), last)))
            }
            Standing::RemovedByOther {
                membership,
                removed_by,
            } => assert!(report.removed.iter().any(|r| &r.server == peer
                && r.membership == membership
                && r.removed_by == removed_by)),
            Standing::Unexplained => assert!(classes[3]),
        }
    }
    let verdict = if !report.unexplained.is_empty() {
        "hidden_branch_suspected"
    } else if !report.removed.is_empty() {
        "removed_by_other_server"
    } else if report.failed.len() == report.asked.len() {
        "inconclusive"
    } else {
        "consistent"
    };
    assert_eq!(report.verdict(), verdict);
    let json_report = report.to_json();
    assert_eq!(
        json::canonicalize(&json_report).ok().as_deref(),
        Some(json_report.as_slice())
    );
    let parsed = json::parse(&json_report).expect("the report is JSON");
    assert_eq!(
        parsed
            .get("removed")
            .and_then(Value::as_array)
            .map(|a| a.len()),
        Some(report.removed.len())
    );
    assert!(report.to_text().contains(verdict));

    // Choosing among the same servers, scored by their bytes.
    let candidates: Vec<(String, u64)> = peers
        .iter()
        .map(|p| (p.clone(), p.bytes().map(u64::from).sum::<u64>()))
        .collect();
    let eligible: std::collections::HashSet<&str> = candidates
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !p.is_empty() && *p != "me.example" && !view.is_visible(p))
        .collect();
    let seed = data
        .iter()
        .fold(0u64, |a, b| a.rotate_left(7) ^ u64::from(*b));
    for max in [0usize, 1, 3, 100] {
        let chosen = Audit::choose(view.clone(), &candidates, max, seed);
        let distinct: std::collections::HashSet<&str> =
            chosen.peers().iter().map(String::as_str).collect();
        assert_eq!(distinct.len(), chosen.peers().len(), "a peer chosen twice");
        assert!(distinct.is_subset(&eligible));
        assert_eq!(chosen.peers().len(), max.min(eligible.len()));
    }
}

// ---------------------------------------------------------------------------------------------
// s2s_negotiation
// ---------------------------------------------------------------------------------------------

use servership::s2s::negotiation::{
    self as neg, FailError, Incoming, Negotiation, NegotiationPolicy, Outcome, Outgoing, Role,
    Step, VersionOffer,
};

/// Reads fuzz bytes one at a time; past the end it reads zeros.
struct ByteReader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> ByteReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        ByteReader { data, at: 0 }
    }

    fn pop(&mut self) -> Option<u8> {
        let b = self.data.get(self.at).copied();
        if b.is_some() {
            self.at += 1;
        }
        b
    }

    fn byte(&mut self) -> u8 {
        self.pop().unwrap_or(0)
    }

    fn index(&mut self, len: usize) -> usize {
        usize::from(self.byte()) % len.max(1)
    }
}

/// Versions the policies pick from: numeric spellings that compare equal part by part (`1`,
/// `01`, `001`), dotted versions, vendor versions, and non-numeric parts.
const NEG_VERSIONS: [&str; 16] = [
    "1",
    "01",
    "001",
    "9",
    "10",
    "10.1",
    "10.01",
    "11",
    "12",
    "1.0",
    "org.example.1",
    "org.matrix.hydra.11",
    "a",
    "a.1",
    "0",
    "9.9.9",
];
const NEG_METHODS: [&str; 3] = ["org.example.fast", "org.example.slow", "org.example.odd"];

/// Ratings: a few small values (many ties) and the extremes (sums must not overflow).
fn neg_rating(b: u8) -> i64 {
    match b {
        0 => i64::MIN,
        1 => i64::MAX,
        2 => i64::MIN + 1,
        3 => i64::MAX - 1,
        b => i64::from(b % 8) - 2,
    }
}

/// A valid policy from the bytes: up to 8 versions (no duplicates), a floor, most-preferred-only,
/// vendor methods.
fn neg_policy(r: &mut ByteReader<'_>) -> NegotiationPolicy {
    let n = r.byte() % 9;
    let mut versions: Vec<VersionOffer> = Vec::new();
    for _ in 0..n {
        let v = NEG_VERSIONS[r.index(NEG_VERSIONS.len())];
        let rating = neg_rating(r.byte());
        if versions.iter().all(|o| o.version != v) {
            versions.push(VersionOffer::new(v, rating));
        }
    }
    let flags = r.byte();
    let floor = if flags & 2 != 0 {
        Some(NEG_VERSIONS[r.index(NEG_VERSIONS.len())].to_owned())
    } else {
        None
    };
    NegotiationPolicy {
        versions,
        most_preferred_only: flags & 1 != 0,
        floor,
        vendor_methods: NEG_METHODS
            .iter()
            .enumerate()
            .filter(|(i, _)| flags & (4 << i) != 0)
            .map(|(_, m)| (*m).to_owned())
            .collect(),
    }
}

fn neg_error_is_documented(e: &Error, what: &str) {
    assert!(
        matches!(
            e.errcode(),
            ErrCode::InvalidParam
                | ErrCode::Forbidden
                | ErrCode::BadJson
                | ErrCode::MissingParam
                | ErrCode::TooLarge
        ),
        "{what}: error with errcode {:?}: {}",
        e.errcode(),
        e.message()
    );
}

fn is_opening(event_type: &str) -> bool {
    matches!(event_type, neg::PROPOSAL | neg::VENDOR)
}

/// What a machine asks to send is something its peer can read: the shape its type needs, the
/// side's own advertised list, a version from it or a method of the policy, a fail error the
/// peer knows, and (for every answer) a reference to the event it answers.
fn check_outgoing(
    out: &Outgoing,
    mine: &[VersionOffer],
    policy: &NegotiationPolicy,
    answers: Option<&str>,
) {
    let c = &out.content;
    match out.event_type.as_str() {
        neg::PROPOSAL => assert_eq!(
            neg::parse_versions(c).ok().as_deref(),
            Some(mine),
            "a proposal is not the advertised list"
        ),
        neg::REPLY => assert_eq!(
            neg::parse_reply_versions(c).ok().as_deref(),
            Some(mine),
            "a reply is not the advertised list"
        ),
        neg::ACCEPT => match (
            c.get("version").and_then(Value::as_str),
            c.get("method").and_then(Value::as_str),
        ) {
            (Some(v), None) => assert!(
                mine.iter().any(|o| o.version == v),
                "accepts {v}, which it does not advertise"
            ),
            (None, Some(m)) => assert!(
                policy.vendor_methods.iter().any(|x| x == m),
                "accepts the method {m}, which its policy does not list"
            ),
            other => panic!("an accept with version/method {other:?}"),
        },
        neg::ACK => {}
        neg::FAIL => assert!(
            matches!(
                c.get("error").and_then(Value::as_str),
                Some("no match" | "invalid method")
            ),
            "a machine fails with {:?}",
            c.get("error")
        ),
        neg::VENDOR => assert!(
            c.get("method")
                .and_then(Value::as_str)
                .is_some_and(|m| !m.is_empty() && m.len() <= neg::MAX_METHOD_BYTES),
            "a vendor opening without a method"
        ),
        other => panic!("a machine sends an event of type {other:?}"),
    }
    if is_opening(&out.event_type) {
        assert!(
            c.get("m.relates_to").is_none(),
            "an opening answers something"
        );
    } else {
        let to = neg::referenced_event(c);
        assert!(to.is_some(), "{} answers nothing", out.event_type);
        if let Some(a) = answers {
            assert_eq!(to, Some(a), "{} answers another event", out.event_type);
        }
    }
}

/// `compare_versions` is a total order in which only identical strings are equal, and the choice
/// rule is symmetric, on the versions of these lists (at most 10 distinct, all triples).
fn check_version_order(lists: &[&[VersionOffer]]) {
    let mut vs: Vec<&str> = Vec::new();
    for l in lists {
        for o in l.iter() {
            if vs.len() < 10 && !vs.contains(&o.version.as_str()) {
                vs.push(&o.version);
            }
        }
    }
    for a in &vs {
        for b in &vs {
            let ab = neg::compare_versions(a, b);
            assert_eq!(ab, neg::compare_versions(b, a).reverse(), "{a} vs {b}");
            assert_eq!(ab.is_eq(), a == b, "{a} and {b} compare equal");
            for c in &vs {
                if ab.is_le() && neg::compare_versions(b, c).is_le() {
                    assert!(neg::compare_versions(a, c).is_le(), "{a} <= {b} <= {c}");
                }
            }
        }
    }
    for x in lists {
        for y in lists {
            assert_eq!(
                neg::choose_version(x, y),
                neg::choose_version(y, x),
                "the choice is not symmetric"
            );
        }
    }
}

/// `s2s_negotiation` (`s2s::negotiation`): the first byte chooses the mode. Even: one machine
/// against a hostile peer whose events come from the input ([`negotiation_hostile_peer`]).
/// Odd: two honest machines over a network the input schedules ([`negotiation_two_machines`]).
pub fn s2s_negotiation(data: &[u8]) {
    match data.first() {
        Some(b) if b & 1 == 1 => negotiation_two_machines(data.get(1..).unwrap_or_default()),
        _ => negotiation_hostile_peer(data),
    }
}

/// One machine, with everything it is fed and everything it says watched.
struct Watched {
    m: Negotiation,
    own: String,
    policy: NegotiationPolicy,
    mine: Vec<VersionOffer>,
    /// The terminal outcome, once reached.
    finished: Option<Outcome>,
    upgrades: Vec<String>,
    /// New events asked for by `handle`/`respond` (not the opening, not `tick`'s).
    answers_sent: usize,
    /// The peer's list this side took (a proposal or reply it answered).
    peer_list: Option<Vec<VersionOffer>>,
    /// Every peer list that parsed, for the order checks.
    lists: Vec<Vec<VersionOffer>>,
    next_out: usize,
    /// This side's event IDs are `$<prefix><n>`.
    prefix: String,
    /// Whether the harness reports the IDs of sent events (`sent`), as it must.
    report: bool,
    last_own_event: Option<Incoming>,
}

impl Watched {
    fn new(m: Negotiation, own: &str, policy: &NegotiationPolicy) -> Self {
        Watched {
            m,
            own: own.to_owned(),
            policy: policy.clone(),
            mine: policy.advertised(),
            finished: None,
            upgrades: Vec::new(),
            answers_sent: 0,
            peer_list: None,
            lists: Vec::new(),
            next_out: 0,
            prefix: "o".to_owned(),
            report: true,
            last_own_event: None,
        }
    }

    fn state(&self) -> String {
        format!("{:?}", self.m)
    }

    /// Checks one step: `trigger` is the event handled (if any), `answer` whether the step comes
    /// from `handle`/`respond` (so a new event it sends answers `trigger`).
    fn observe(&mut self, step: &Step, trigger: Option<&Incoming>, was: &Outcome) {
        let now = self.m.outcome();
        assert_eq!(step.outcome, now, "the step's outcome is not the machine's");
        if let Some(f) = &self.finished {
            assert_eq!(&now, f, "a finished negotiation changed its outcome");
            assert!(
                step.send.is_none() && step.upgrade.is_none(),
                "a finished negotiation sends or upgrades"
            );
        }
        if let Some(id) = &step.resend {
            assert_eq!(
                Some(id.as_str()),
                self.m.last_sent(),
                "resends an event that is not its last"
            );
        }
        if let Some(out) = &step.send {
            check_outgoing(
                out,
                &self.mine,
                &self.policy,
                trigger.map(|e| e.event_id.as_str()),
            );
            if let Some(ev) = trigger {
                self.answers_sent += 1;
                assert!(
                    self.answers_sent <= 2,
                    "{} answers in one negotiation",
                    self.answers_sent
                );
                if matches!(ev.event_type.as_str(), neg::PROPOSAL | neg::REPLY) {
                    let parsed = if ev.event_type == neg::REPLY {
                        neg::parse_reply_versions(&ev.content)
                    } else {
                        neg::parse_versions(&ev.content)
                    };
                    self.peer_list = parsed.ok();
                    assert!(self.peer_list.is_some(), "answered a list it cannot parse");
                }
            }
        }
        if let Some(v) = &step.upgrade {
            assert_eq!(
                self.m.role(),
                Role::Initiator,
                "a responder is told to upgrade"
            );
            assert_eq!(
                now,
                Outcome::Agreed(v.clone()),
                "told to upgrade without agreement"
            );
            assert!(self.upgrades.is_empty(), "told to upgrade twice");
            self.upgrades.push(v.clone());
        }
        if !was.is_finished() && now.is_finished() {
            self.finished = Some(now.clone());
            if let Outcome::Agreed(v) = &now {
                let told = step.upgrade.as_deref() == Some(v.as_str());
                assert_eq!(
                    told,
                    self.m.role() == Role::Initiator,
                    "an initiator is not told to upgrade, or a responder is"
                );
                let theirs = self.peer_list.as_deref().unwrap_or(&self.mine);
                assert!(
                    self.mine.iter().any(|o| &o.version == v),
                    "agreed on {v}, not advertised"
                );
                assert_eq!(
                    neg::choose_version(&self.mine, theirs).as_deref(),
                    Some(v.as_str()),
                    "agreed on {v}, not the choice over its list and the peer's"
                );
            }
            let sent_fail = step
                .send
                .as_ref()
                .is_some_and(|o| o.event_type == neg::FAIL);
            if now == Outcome::Failed(FailError::NoMatch)
                && sent_fail
                && trigger
                    .is_some_and(|e| matches!(e.event_type.as_str(), neg::PROPOSAL | neg::REPLY))
            {
                let theirs = self.peer_list.as_deref().unwrap_or_default();
                assert_eq!(
                    neg::choose_version(&self.mine, theirs),
                    None,
                    "fails with no match although the lists share a version"
                );
            }
        }
        if let Some(out) = &step.send {
            self.next_out += 1;
            let id = format!("${}{}", self.prefix, self.next_out);
            if self.report {
                let r = self.m.sent(&id);
                assert!(r.is_ok(), "sent({id}) refused: {r:?}");
                self.last_own_event = Some(Incoming {
                    event_id: id,
                    event_type: out.event_type.clone(),
                    sender: format!("@:{}", self.own),
                    content: out.content.clone(),
                });
            }
        }
    }

    /// Feeds one event; an error must change nothing; an event handled is then fed again and must
    /// change nothing either (duplicates are harmless).
    fn feed(&mut self, ev: &Incoming) {
        let before = self.state();
        let was = self.m.outcome();
        match self.m.handle(ev) {
            Ok(step) => {
                self.observe(&step, Some(ev), &was);
                let settled = self.state();
                let outcome = self.m.outcome();
                match self.m.handle(ev) {
                    Ok(again) => {
                        assert!(
                            again.send.is_none() && again.upgrade.is_none(),
                            "a duplicate of {} {} moved the machine",
                            ev.event_type,
                            ev.event_id
                        );
                        assert_eq!(again.outcome, outcome);
                        if let Some(id) = &again.resend {
                            assert_eq!(Some(id.as_str()), self.m.last_sent());
                        }
                    }
                    Err(e) => neg_error_is_documented(&e, "a duplicate"),
                }
                assert_eq!(self.state(), settled, "a duplicate changed the machine");
            }
            Err(e) => {
                neg_error_is_documented(&e, "handle");
                assert_eq!(self.state(), before, "a refused event changed the machine");
            }
        }
        for l in [
            neg::parse_versions(&ev.content),
            neg::parse_reply_versions(&ev.content),
        ]
        .into_iter()
        .flatten()
        {
            if self.lists.len() < 4 {
                self.lists.push(l);
            }
        }
    }

    /// The opening an initiator sends, checked and reported like any other event.
    fn opened(&mut self, out: &Outgoing) {
        check_outgoing(out, &self.mine, &self.policy, None);
        let step = Step {
            send: Some(out.clone()),
            resend: None,
            upgrade: None,
            outcome: Outcome::InProgress,
        };
        self.observe(&step, None, &Outcome::InProgress);
    }

    fn tick(&mut self) {
        let was = self.m.outcome();
        let step = self.m.tick();
        if was.is_finished() {
            assert!(
                step.send.is_none() && step.resend.is_none() && step.upgrade.is_none(),
                "a finished side acts on a tick"
            );
        }
        self.observe(&step, None, &was);
    }
}

/// One machine (`a.example`, or `c.example` to lose simultaneous openings to `b.example`) against
/// a hostile `b.example` whose events are the input's lines.
///
/// The first line configures: byte 0 bits 1–2 the role (standard initiator, vendor initiator,
/// responder), bit 3 the own name; then the policy. Each further line is one operation:
/// - `{…}` an event as JSON (`event_id`, `type`, `sender`, `content`);
/// - `P`, `R`, `A`, `K`, `F` or `V` then a JSON content: a proposal, reply, accept, ack, fail or
///   vendor opening from `@p:b.example` with a fresh event ID, answering this side's last event
///   unless the content says what it answers;
/// - `t` a tick; `d<k>` the k-th last event again; `e` the machine's own last event (its echo);
///   `x` the last event as if sent by a third server; `s<id>` reports `<id>` with `sent`;
///   `m` stops (or resumes) reporting sent events.
///
/// Invariants: nothing panics; every error is a documented code and changes nothing; a duplicate
/// changes nothing; the outcome never changes once finished; what the machine sends is readable
/// by a peer ([`check_outgoing`]) and answers the event it reacts to; at most two answers per
/// negotiation; only an initiator is told to upgrade, once, exactly when it agrees; an agreed
/// version is in the side's advertised list and is the choice rule over that list and the peer's
/// list it took; a `no match` it sends is right; and after the input, ticks end it within
/// [`neg::GIVE_UP_AFTER_TICKS`] + 1 calls.
fn negotiation_hostile_peer(data: &[u8]) {
    const PEER: &str = "b.example";
    let mut lines = data.split(|&b| b == b'\n');
    let mut header = ByteReader::new(lines.next().unwrap_or_default());
    let config = header.byte();
    let role = (config >> 1) & 3;
    let own = if config & 8 != 0 {
        "c.example"
    } else {
        "a.example"
    };
    let policy = neg_policy(&mut header);
    let made = match role {
        0 | 1 => Negotiation::initiate(&policy, own, PEER),
        2 => {
            let method = NEG_METHODS[header.index(NEG_METHODS.len())];
            Negotiation::initiate_vendor(&policy, method, own, PEER)
        }
        _ => Err(Error::invalid_param("responder")),
    };
    let mut w: Option<Watched> = match made {
        Ok((m, out)) => {
            let mut w = Watched::new(m, own, &policy);
            w.opened(&out);
            Some(w)
        }
        Err(e) if role < 2 => {
            assert_eq!(e.errcode(), ErrCode::InvalidParam, "{}", e.message());
            assert!(
                policy.advertised().is_empty(),
                "initiate refused a usable policy: {}",
                e.message()
            );
            return;
        }
        Err(e) if role == 2 => panic!("initiate_vendor refused a valid policy: {}", e.message()),
        Err(_) => None,
    };

    let mut history: Vec<Incoming> = Vec::new();
    let mut next_in = 0usize;
    for line in lines {
        let Some((&op, rest)) = line.split_first() else {
            continue;
        };
        let event = match op {
            b'{' => match json::parse_object(line) {
                Ok(o) => match Incoming::from_event(&o) {
                    Ok(ev) => Some(ev),
                    Err(e) => {
                        assert!(
                            matches!(e.errcode(), ErrCode::BadJson | ErrCode::MissingParam),
                            "Incoming::from_event: {:?} {}",
                            e.errcode(),
                            e.message()
                        );
                        None
                    }
                },
                Err(_) => None,
            },
            b'P' | b'R' | b'A' | b'K' | b'F' | b'V' => {
                let Ok(mut content) = json::parse_object(rest) else {
                    continue;
                };
                let event_type = match op {
                    b'P' => neg::PROPOSAL,
                    b'R' => neg::REPLY,
                    b'A' => neg::ACCEPT,
                    b'K' => neg::ACK,
                    b'F' => neg::FAIL,
                    _ => neg::VENDOR,
                };
                let last = w.as_ref().and_then(|w| w.m.last_sent().map(str::to_owned));
                if let (false, false, Some(last)) = (
                    is_opening(event_type),
                    content.contains_key("m.relates_to"),
                    last,
                ) {
                    let mut rel = servership::Object::new();
                    rel.insert("rel_type".into(), Value::from("m.reference"));
                    rel.insert("event_id".into(), Value::from(last.as_str()));
                    content.insert("m.relates_to".into(), Value::Object(rel));
                }
                next_in += 1;
                Some(Incoming {
                    event_id: format!("$in{next_in}"),
                    event_type: event_type.to_owned(),
                    sender: format!("@p:{PEER}"),
                    content,
                })
            }
            b'd' => {
                let k = rest.first().map_or(0, |b| usize::from(b % 8));
                history.len().checked_sub(k + 1).map(|i| history[i].clone())
            }
            b'e' => w.as_ref().and_then(|w| w.last_own_event.clone()),
            b'x' => history.last().map(|ev| Incoming {
                sender: "@mallory:evil.example".to_owned(),
                ..ev.clone()
            }),
            b't' => {
                if let Some(w) = w.as_mut() {
                    w.tick();
                }
                None
            }
            b's' => {
                if let Some(w) = w.as_mut() {
                    let id = text(rest);
                    let before = w.state();
                    let was = w.m.outcome();
                    match w.m.sent(&id) {
                        Ok(()) => assert_eq!(w.m.last_sent(), Some(id.as_str())),
                        Err(e) => {
                            assert_eq!(e.errcode(), ErrCode::InvalidParam, "{}", e.message());
                            assert_eq!(w.state(), before, "a refused sent() changed the machine");
                        }
                    }
                    assert_eq!(w.m.outcome(), was);
                }
                None
            }
            b'm' => {
                if let Some(w) = w.as_mut() {
                    w.report = !w.report;
                }
                None
            }
            _ => None,
        };
        let Some(ev) = event else {
            continue;
        };
        match w.as_mut() {
            Some(w) => w.feed(&ev),
            None => match Negotiation::respond(&policy, own, &ev) {
                Ok((m, step)) => {
                    assert!(is_opening(&ev.event_type), "respond to a {}", ev.event_type);
                    let mut fresh = Watched::new(m, own, &policy);
                    assert_eq!(fresh.m.role(), Role::Responder);
                    fresh.observe(&step, Some(&ev), &Outcome::InProgress);
                    w = Some(fresh);
                }
                Err(e) => neg_error_is_documented(&e, "respond"),
            },
        }
        if history.len() < 64 {
            history.push(ev);
        }
    }
    let Some(mut w) = w else {
        return;
    };
    let lists: Vec<&[VersionOffer]> = std::iter::once(w.mine.as_slice())
        .chain(w.lists.iter().map(Vec::as_slice))
        .collect();
    check_version_order(&lists);
    // Bounded: with nothing more from the peer, ticks end it.
    w.report = true;
    for _ in 0..=neg::GIVE_UP_AFTER_TICKS {
        if w.finished.is_some() {
            break;
        }
        w.tick();
    }
    assert!(
        w.finished.is_some(),
        "not finished after {} ticks",
        neg::GIVE_UP_AFTER_TICKS + 1
    );
    let outcome = w.m.outcome();
    w.tick();
    assert_eq!(w.m.outcome(), outcome);
    match (&outcome, w.m.role()) {
        (Outcome::Agreed(v), Role::Initiator) => assert_eq!(w.upgrades, vec![v.clone()]),
        _ => assert!(
            w.upgrades.is_empty(),
            "upgrade without agreement as initiator"
        ),
    }
}

/// One honest side of [`negotiation_two_machines`].
struct Side {
    name: String,
    policy: NegotiationPolicy,
    machine: Option<Watched>,
    /// Events this side sent, by ID (a `resend` delivers one of them again).
    sent: std::collections::BTreeMap<String, Incoming>,
}

/// The network between two honest machines: what is in flight, to whom, and the faults left.
struct Net {
    queue: Vec<(usize, Incoming)>,
    echo_mask: u8,
}

/// Acts on a step of side `me`: sends and resends go to the peer (and sometimes echo back).
fn neg_apply(sides: &mut [Side; 2], me: usize, step: &Step, net: &mut Net) {
    let side = &mut sides[me];
    let Some(w) = side.machine.as_ref() else {
        return;
    };
    if step.send.is_some() {
        let ev = w
            .last_own_event
            .clone()
            .filter(|e| !side.sent.contains_key(&e.event_id));
        let Some(ev) = ev else {
            panic!("a send was not reported");
        };
        side.sent.insert(ev.event_id.clone(), ev.clone());
        if net.echo_mask & (1 << (side.sent.len() % 8)) != 0 {
            net.queue.push((me, ev.clone()));
        }
        net.queue.push((1 - me, ev));
    }
    if let Some(id) = &step.resend {
        let Some(ev) = side.sent.get(id).cloned() else {
            panic!("resend of {id}, which this side never sent");
        };
        net.queue.push((1 - me, ev));
    }
}

/// Delivers one event to side `to`. Between honest machines nothing is refused, except an
/// opening that reaches a side already finished (the losing opening of a simultaneous pair).
fn neg_deliver(sides: &mut [Side; 2], to: usize, ev: &Incoming, net: &mut Net) {
    let side = &mut sides[to];
    let step = match side.machine.as_mut() {
        Some(w) => {
            let before = w.state();
            let was = w.m.outcome();
            match w.m.handle(ev) {
                Ok(step) => {
                    w.observe(&step, Some(ev), &was);
                    step
                }
                Err(e) => {
                    assert!(
                        was.is_finished() && is_opening(&ev.event_type),
                        "{} refused {} {}: {}",
                        side.name,
                        ev.event_type,
                        ev.event_id,
                        e.message()
                    );
                    assert_eq!(w.state(), before, "a refused event changed the machine");
                    return;
                }
            }
        }
        None => {
            assert!(
                is_opening(&ev.event_type),
                "{} got {} before any opening",
                side.name,
                ev.event_type
            );
            let made = Negotiation::respond(&side.policy, &side.name, ev);
            let Ok((m, step)) = made else {
                panic!("respond refused an honest opening: {made:?}");
            };
            let mut w = Watched::new(m, &side.name, &side.policy);
            w.prefix = ["a", "b"][to].to_owned();
            w.observe(&step, Some(ev), &Outcome::InProgress);
            side.machine = Some(w);
            step
        }
    };
    neg_apply(sides, to, &step, net);
}

fn neg_tick(sides: &mut [Side; 2], net: &mut Net) {
    for s in 0..2 {
        let step = match sides[s].machine.as_mut() {
            Some(w) => {
                let was = w.m.outcome();
                let step = w.m.tick();
                w.observe(&step, None, &was);
                step
            }
            None => continue,
        };
        neg_apply(sides, s, &step, net);
    }
}

/// Two honest machines against each other; the input chooses names, policies (from
/// [`NEG_VERSIONS`], ratings up to the `i64` extremes, floors, most-preferred-only, vendor
/// methods), who opens and how, and schedules the network: which event in flight goes next, and a
/// bounded number of losses, duplicates and early ticks (ticks otherwise fire when nothing is in
/// flight), echoes of a side's own events, and forged copies from a third server or the
/// receiver's own (which must change nothing).
///
/// Invariants, besides those of every single machine ([`Watched`]): both sides finish within
/// 60 + 25 × faults steps with the same outcome, the one the choice rule predicts from the two
/// advertised lists (or the vendor method); an agreed version is in both advertised lists and at
/// or above both floors; the initiator (the only opener, or the lower server name of two) is told
/// to upgrade exactly once on agreement and the responder never; events still in flight after
/// the end change nothing.
fn negotiation_two_machines(data: &[u8]) {
    const NAMES: [&str; 6] = [
        "a.example",
        "b.example",
        "m.example:8448",
        "z.example",
        "A.example",
        "[::1]:8448",
    ];
    let mut r = ByteReader::new(data);
    let i = r.index(NAMES.len());
    let j = (i + 1 + r.index(NAMES.len() - 1)) % NAMES.len();
    let mut sides = [NAMES[i], NAMES[j]].map(|name| Side {
        name: name.to_owned(),
        policy: NegotiationPolicy::default(),
        machine: None,
        sent: std::collections::BTreeMap::new(),
    });
    sides[0].policy = neg_policy(&mut r);
    sides[1].policy = neg_policy(&mut r);
    let twins = r.byte();
    if twins & 1 != 0 {
        // The same offers in another order: equal lists, and ties ("1" against "01") that must
        // break the same way whatever the order.
        let mut twin = sides[0].policy.versions.clone();
        if !twin.is_empty() {
            let k = usize::from(twins >> 1) % twin.len();
            twin.rotate_left(k);
            twin.reverse();
        }
        sides[1].policy.versions = twin;
    }
    let openers = r.byte();
    let mut net = Net {
        queue: Vec::new(),
        echo_mask: r.byte(),
    };
    let mut losses = usize::from(r.byte() % 5);
    let mut dups = usize::from(r.byte() % 5);
    let mut early_ticks = usize::from(r.byte() % 4);
    let faults = losses + dups + early_ticks;

    // Who opens: side 0 always, side 1 too if bit 0; bits 1 and 2 make an opening a vendor one.
    let mut openings: [Option<Option<&str>>; 2] = [None, None];
    for s in 0..2 {
        if s == 1 && openers & 1 == 0 {
            break;
        }
        let vendor = (openers & (2 << s) != 0)
            .then(|| NEG_METHODS[usize::from(openers >> (3 + 2 * s)) % NEG_METHODS.len()]);
        let peer = sides[1 - s].name.clone();
        let made = match vendor {
            Some(m) => Negotiation::initiate_vendor(&sides[s].policy, m, &sides[s].name, &peer),
            None => Negotiation::initiate(&sides[s].policy, &sides[s].name, &peer),
        };
        match made {
            Ok((m, out)) => {
                let mut w = Watched::new(m, &sides[s].name, &sides[s].policy);
                w.prefix = ["a", "b"][s].to_owned();
                w.opened(&out);
                sides[s].machine = Some(w);
                openings[s] = Some(vendor);
                let step = Step {
                    send: Some(out),
                    resend: None,
                    upgrade: None,
                    outcome: Outcome::InProgress,
                };
                neg_apply(&mut sides, s, &step, &mut net);
            }
            Err(e) => assert!(
                vendor.is_none() && sides[s].policy.advertised().is_empty(),
                "initiate refused a usable policy: {}",
                e.message()
            ),
        }
    }
    let initiator = match openings {
        [None, None] => return,
        [Some(_), None] => 0,
        [None, Some(_)] => 1,
        [Some(_), Some(_)] => usize::from(sides[1].name.as_bytes() < sides[0].name.as_bytes()),
    };
    let responder = 1 - initiator;
    let opening = openings[initiator].flatten();
    let a = sides[initiator].policy.advertised();
    let b = sides[responder].policy.advertised();
    let want = match opening {
        Some(m)
            if sides[responder]
                .policy
                .vendor_methods
                .iter()
                .any(|x| x == m) =>
        {
            Outcome::Vendor(m.to_owned())
        }
        Some(_) => Outcome::Failed(FailError::InvalidMethod),
        None => match neg::choose_version(&a, &b) {
            Some(v) => Outcome::Agreed(v),
            None => Outcome::Failed(FailError::NoMatch),
        },
    };

    let bound = 60 + 25 * faults;
    let mut steps = 0usize;
    let finished = |sides: &[Side; 2]| {
        sides
            .iter()
            .all(|s| s.machine.as_ref().is_some_and(|w| w.finished.is_some()))
    };
    while !finished(&sides) {
        steps += 1;
        assert!(
            steps <= bound,
            "no end after {bound} steps ({:?} / {:?})",
            sides[0].machine.as_ref().map(|w| w.m.outcome()),
            sides[1].machine.as_ref().map(|w| w.m.outcome())
        );
        if net.queue.is_empty() {
            neg_tick(&mut sides, &mut net);
            continue;
        }
        let (op, k) = match r.pop() {
            Some(b) => (b >> 5, usize::from(b & 31) % net.queue.len()),
            None => (0, 0),
        };
        match op {
            4 if losses > 0 => {
                net.queue.remove(k);
                losses -= 1;
            }
            5 if dups > 0 => {
                let copy = net.queue[k].clone();
                net.queue.push(copy);
                dups -= 1;
            }
            6 if early_ticks > 0 => {
                neg_tick(&mut sides, &mut net);
                early_ticks -= 1;
            }
            7 => {
                // A forgery: the same event from a third server, or from the receiver's own.
                steps -= 1;
                let (to, ev) = net.queue[k].clone();
                let sender = if k % 2 == 0 {
                    "@mallory:evil.example".to_owned()
                } else {
                    format!("@x:{}", sides[to].name)
                };
                let forged = Incoming { sender, ..ev };
                if let Some(w) = sides[to].machine.as_mut() {
                    let before = w.state();
                    match w.m.handle(&forged) {
                        Ok(step) => assert!(
                            step.send.is_none() && step.resend.is_none() && step.upgrade.is_none(),
                            "a forged own event moved {}",
                            sides[to].name
                        ),
                        Err(e) => assert_eq!(e.errcode(), ErrCode::Forbidden, "{}", e.message()),
                    }
                    assert_eq!(w.state(), before, "a forgery changed the machine");
                }
            }
            _ => {
                let (to, ev) = net.queue.remove(k);
                neg_deliver(&mut sides, to, &ev, &mut net);
            }
        }
    }
    let outcomes: Vec<Outcome> = sides
        .iter()
        .filter_map(|s| s.machine.as_ref().map(|w| w.m.outcome()))
        .collect();
    // What is still in flight changes nothing, and answers to it stop.
    let mut drained = 0usize;
    while !net.queue.is_empty() {
        let (to, ev) = net.queue.remove(0);
        neg_deliver(&mut sides, to, &ev, &mut net);
        drained += 1;
        assert!(drained < 200, "answers never stop");
    }
    for (s, o) in sides.iter().zip(&outcomes) {
        assert_eq!(s.machine.as_ref().map(|w| w.m.outcome()).as_ref(), Some(o));
    }
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0], outcomes[1], "the sides disagree");
    assert_eq!(outcomes[0], want, "not what the choice rule says");
    if let Outcome::Agreed(v) = &want {
        for s in &sides {
            let adv = s.policy.advertised();
            assert!(
                adv.iter().any(|o| &o.version == v),
                "{v} not advertised by {}",
                s.name
            );
            if let Some(f) = &s.policy.floor {
                assert!(
                    neg::compare_versions(v, f).is_ge(),
                    "{v} is below the floor {f}"
                );
            }
        }
    }
    let upgrades = |s: usize| {
        sides[s]
            .machine
            .as_ref()
            .map(|w| w.upgrades.clone())
            .unwrap_or_default()
    };
    let told: Vec<String> = match &want {
        Outcome::Agreed(v) => vec![v.clone()],
        _ => Vec::new(),
    };
    assert_eq!(
        upgrades(initiator),
        told,
        "the initiator upgrades once, on agreement"
    );
    assert!(
        upgrades(responder).is_empty(),
        "the responder is told to upgrade"
    );
    for (s, role) in [(initiator, Role::Initiator), (responder, Role::Responder)] {
        assert_eq!(sides[s].machine.as_ref().map(|w| w.m.role()), Some(role));
    }
    check_version_order(&[&a, &b]);
}

// ---------------------------------------------------------------------------------------------
// membership_decisions
// ---------------------------------------------------------------------------------------------

use servership::decision::{Decision, ReasonCode, Verdict};
use servership::room_state::RoomState;

/// The longest detail a decision may carry when the server or user it is about is valid: details
/// name servers, users and rules, and hostile state (a 64 KiB join rule, policy reason or ACL
/// entry) is quoted shortened, as [`servership::subscription::glob::Glob::shown`] does.
const MAX_DETAIL_BYTES: usize = 2048;

/// Every decision: a non-empty reason, a bounded detail (`bounded`: the subject is valid), JSON
/// that says the same.
fn check_decision(d: &Decision, what: &str, bounded: bool) {
    assert!(
        !d.detail.trim().is_empty(),
        "{what}: a decision without a reason: {d:?}"
    );
    assert!(!d.reason.as_str().is_empty());
    if bounded {
        assert!(
            d.detail.len() <= MAX_DETAIL_BYTES,
            "{what}: a {}-byte detail: {:.300}",
            d.detail.len(),
            d.detail
        );
    }
    let j = d.to_json();
    assert_eq!(
        j.get("allowed").and_then(Value::as_bool),
        Some(d.is_allowed())
    );
    assert_eq!(
        j.get("verdict").and_then(Value::as_str),
        Some(d.verdict.as_str())
    );
    assert_eq!(
        j.get("reason").and_then(Value::as_str),
        Some(d.reason.as_str())
    );
    assert_eq!(
        j.get("detail").and_then(Value::as_str),
        Some(d.detail.as_str())
    );
}

fn vr(d: &Decision) -> (Verdict, ReasonCode) {
    (d.verdict, d.reason)
}

/// The slow reading of the room's current state: the last event of each `(type, state_key)`.
struct RefState {
    events: std::collections::BTreeMap<(String, String), servership::Object>,
}

impl RefState {
    fn event(&self, t: &str, k: &str) -> Option<&servership::Object> {
        self.events.get(&(t.to_owned(), k.to_owned()))
    }

    /// The content of an event that exists (an event without one reads as `{}`).
    fn content(&self, t: &str, k: &str) -> Option<&servership::Object> {
        static EMPTY: servership::Object = servership::Object::new();
        self.event(t, k).map(|e| {
            e.get("content")
                .and_then(Value::as_object)
                .unwrap_or(&EMPTY)
        })
    }

    fn membership(&self, user: &str) -> Option<&str> {
        self.content("m.room.member", user)?
            .get("membership")?
            .as_str()
    }

    fn of_type<'a>(
        &'a self,
        t: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a servership::Object)> + 'a {
        self.events
            .iter()
            .filter(move |((et, _), _)| et == t)
            .map(|((_, k), e)| (k.as_str(), e))
    }

    fn able(&self, server: &str) -> bool {
        self.content("m.server.is_able_to_subscribe", server)
            .and_then(|c| c.get("is_able_to_subscribe"))
            == Some(&Value::Bool(true))
    }
}

/// A glob as the spec reads it (`*` any run, `?` one character, ASCII case ignored), by dynamic
/// programming over the whole pattern: slow, obvious, and independent of `subscription::glob`.
fn slow_glob(pattern: &str, subject: &str) -> bool {
    let s: Vec<char> = subject.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut p: Vec<char> = Vec::new();
    for c in pattern.chars().map(|c| c.to_ascii_lowercase()) {
        if !(c == '*' && p.last() == Some(&'*')) {
            p.push(c);
        }
    }
    if p.iter().filter(|&&c| c != '*').count() > s.len() {
        return false;
    }
    // row[j]: the pattern so far matches the first j characters of the subject.
    let mut row = vec![false; s.len() + 1];
    row[0] = true;
    for &pc in &p {
        let mut next = vec![false; s.len() + 1];
        if pc == '*' {
            let mut any = false;
            for (j, cell) in next.iter_mut().enumerate() {
                any |= row[j];
                *cell = any;
            }
        } else {
            for j in 1..=s.len() {
                next[j] = row[j - 1] && (pc == '?' || pc == s[j - 1]);
            }
        }
        row = next;
    }
    row[s.len()]
}

/// The server name without its port (the documented rule: `[…]` kept whole, otherwise a final
/// `:digits` removed).
fn ref_strip_port(server: &str) -> &str {
    if server.starts_with('[') {
        return match server.find(']') {
            Some(i) => &server[..=i],
            None => server,
        };
    }
    match server.rfind(':') {
        Some(i) if i + 1 < server.len() && server[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &server[..i]
        }
        _ => server,
    }
}

fn too_long_for_a_server(host: &str) -> bool {
    host.chars().count() > servership::subscription::glob::MAX_SUBJECT_CHARS
}

fn string_entries<'a>(content: &'a servership::Object, key: &str) -> Vec<&'a str> {
    content
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `m.room.server_acl` as the spec's steps say it.
fn expected_acl(st: &RefState, server: &str) -> (Verdict, ReasonCode) {
    let Some(acl) = st.content("m.room.server_acl", "") else {
        return (Verdict::Allow, ReasonCode::ServerAclAllowed);
    };
    let host = ref_strip_port(server);
    if too_long_for_a_server(host) {
        return (Verdict::Deny, ReasonCode::ServerAclDenied);
    }
    let allow_ip = acl
        .get("allow_ip_literals")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !allow_ip && (host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()) {
        return (Verdict::Deny, ReasonCode::IpLiteralDenied);
    }
    if string_entries(acl, "deny")
        .iter()
        .any(|g| slow_glob(g, host))
    {
        return (Verdict::Deny, ReasonCode::ServerAclDenied);
    }
    if string_entries(acl, "allow")
        .iter()
        .any(|g| slow_glob(g, host))
    {
        return (Verdict::Allow, ReasonCode::ServerAclAllowed);
    }
    (Verdict::Deny, ReasonCode::ServerAclDenied)
}

/// The policy rules of the state that ban `server` (`m.ban`, or Mjolnir's older spelling).
fn expected_policy_ban(st: &RefState, server: &str) -> bool {
    let host = ref_strip_port(server);
    servership::subscription::decision::SERVER_RULE_TYPES
        .iter()
        .flat_map(|t| st.of_type(t))
        .filter_map(|(_, e)| {
            let c = e.get("content")?.as_object()?;
            Some((
                c.get("entity")?.as_str()?,
                c.get("recommendation")?.as_str()?,
            ))
        })
        .any(|(entity, rec)| {
            matches!(rec, "m.ban" | "org.matrix.mjolnir.ban")
                && (too_long_for_a_server(host) || slow_glob(entity, host))
        })
}

/// `decide_knock` as its documented order of checks says.
fn expected_knock(
    st: &RefState,
    server: &str,
    research: Option<bool>,
    auto: bool,
) -> (Verdict, ReasonCode, bool) {
    let acl = expected_acl(st, server);
    if acl.0 == Verdict::Deny {
        return (acl.0, acl.1, false);
    }
    if expected_policy_ban(st, server) {
        return (Verdict::Deny, ReasonCode::PolicyBan, false);
    }
    if st.able(server) {
        return (Verdict::Allow, ReasonCode::AbleToSubscribe, false);
    }
    match (research, auto) {
        (Some(false), _) => (Verdict::Deny, ReasonCode::ResearchDenied, false),
        (Some(true), _) => (Verdict::Allow, ReasonCode::ResearchAccepted, true),
        (None, true) => (Verdict::Allow, ReasonCode::AutoAccepted, true),
        (None, false) => (Verdict::Pending, ReasonCode::AwaitingModerator, false),
    }
}

fn ref_user_server(user: &str) -> Option<&str> {
    UserId::parse(user).ok()?;
    user.split_once(':').map(|(_, s)| s)
}

/// The room version number (1–12), if the create event names one servership knows.
fn ref_room_version(st: &RefState) -> Option<u32> {
    let content = st.event("m.room.create", "")?.get("content")?.as_object()?;
    match content.get("room_version") {
        None => Some(1),
        Some(Value::String(s)) => (1..=12u32).find(|n| n.to_string() == *s),
        Some(_) => None,
    }
}

/// The checks every membership of a user of `server` must pass: a known room version, and
/// `m.federate` not false unless `server` created the room.
fn expected_admits(st: &RefState, server: &str) -> Result<u32, ReasonCode> {
    let n = ref_room_version(st).ok_or(ReasonCode::UnknownRoomVersion)?;
    let create = st.event("m.room.create", "");
    let creator = create
        .and_then(|c| c.get("sender"))
        .and_then(Value::as_str)
        .and_then(ref_user_server);
    let federates = matches!(
        st.content("m.room.create", "")
            .and_then(|c| c.get("m.federate")),
        None | Some(Value::Bool(true))
    );
    if !federates && creator != Some(server) {
        return Err(ReasonCode::RoomNotFederated);
    }
    Ok(n)
}

/// The join rule the auth rules apply (`invite` when missing; `None` if not a string).
fn ref_join_rule(st: &RefState) -> Option<&str> {
    match st.content("m.room.join_rules", "") {
        None => Some("invite"),
        Some(c) => match c.get("join_rule") {
            None => Some("invite"),
            Some(v) => v.as_str(),
        },
    }
}

fn ref_knows_rule(n: u32, rule: &str) -> bool {
    match rule {
        "public" | "invite" | "private" => true,
        "knock" => n >= 7,
        "restricted" => n >= 8,
        "knock_restricted" => n >= 10,
        _ => false,
    }
}

/// The Matrix auth rules for `target` (of `server`) joining, on the state alone: what Synapse's
/// event auth would say (restricted joins without an invite need a signature the state cannot
/// show, so they count as refused).
fn expected_auth_join(st: &RefState, target: &str, server: &str) -> Result<(), ReasonCode> {
    let n = expected_admits(st, server)?;
    let own = st.membership(target);
    if own == Some("ban") {
        return Err(ReasonCode::PseudouserBanned);
    }
    let rule = ref_join_rule(st)
        .filter(|r| ref_knows_rule(n, r))
        .ok_or(ReasonCode::UnknownJoinRule)?;
    match (rule, own) {
        ("private", _) => Err(ReasonCode::UnknownJoinRule),
        ("public", _) | (_, Some("join" | "invite")) => Ok(()),
        _ => Err(ReasonCode::NotInvited),
    }
}

/// `check_pseudouser_join`: the auth rules, then MSC1777 (a non-pseudo user of the server joined,
/// else invited).
fn expected_pseudouser_join(st: &RefState, pu: &str) -> (Verdict, ReasonCode) {
    if !ids::is_server_pseudouser(pu) {
        return (Verdict::Deny, ReasonCode::NotAPseudouser);
    }
    let server = &pu[2..];
    if st.membership(pu) == Some("ban") {
        return (Verdict::Deny, ReasonCode::PseudouserBanned);
    }
    if let Err(r) = expected_auth_join(st, pu, server) {
        return (Verdict::Deny, r);
    }
    let of_server = |m: &str| {
        st.of_type("m.room.member").any(|(user, e)| {
            !ids::is_server_pseudouser(user)
                && ref_user_server(user) == Some(server)
                && e.get("content")
                    .and_then(|c| c.get("membership"))
                    .and_then(Value::as_str)
                    == Some(m)
        })
    };
    if of_server("join") {
        (Verdict::Allow, ReasonCode::ServerHasJoinedUser)
    } else if of_server("invite") {
        (Verdict::Allow, ReasonCode::ServerHasInvitedUser)
    } else {
        (Verdict::Deny, ReasonCode::NoUserOfServer)
    }
}

/// The s2s path of `check_server_user_membership` for join, invite and knock.
fn expected_s2s(st: &RefState, su: &str, server: &str, membership: &str) -> (Verdict, ReasonCode) {
    let s2s = matches!(
        st.content("m.room.create", "")
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str),
        Some("m.s2s" | "support.feline.s2s")
    );
    if !s2s {
        return (Verdict::Deny, ReasonCode::NotS2sRoom);
    }
    let n = match expected_admits(st, server) {
        Ok(n) => n,
        Err(r) => return (Verdict::Deny, r),
    };
    let own = st.membership(su);
    let allow = (Verdict::Allow, ReasonCode::S2sRoom);
    match membership {
        "join" => match expected_auth_join(st, su, server) {
            Ok(()) => allow,
            Err(r) => (Verdict::Deny, r),
        },
        "invite" if own == Some("join") => (Verdict::Deny, ReasonCode::AlreadyInRoom),
        "invite" => allow,
        _ => {
            let knockable = ref_join_rule(st)
                .is_some_and(|r| matches!(r, "knock" | "knock_restricted") && ref_knows_rule(n, r));
            match own {
                _ if !knockable => (Verdict::Deny, ReasonCode::KnockNotAllowed),
                Some("join") => (Verdict::Deny, ReasonCode::AlreadyInRoom),
                Some("invite") => (Verdict::Deny, ReasonCode::AlreadyInvited),
                _ => allow,
            }
        }
    }
}

/// `check_server_user_membership` as its documentation says.
fn expected_server_user(
    st: &RefState,
    su: &str,
    membership: &str,
    policy: servership::s2s::ServerUserPolicy,
) -> (Verdict, ReasonCode) {
    use servership::s2s::ServerUserPolicy as P;
    if !ids::is_server_pseudouser(su) {
        return (Verdict::Deny, ReasonCode::NotAPseudouser);
    }
    let server = &su[2..];
    match membership {
        "leave" | "ban" => return (Verdict::Allow, ReasonCode::LeavingAlwaysAllowed),
        "join" | "invite" | "knock" => {}
        _ => return (Verdict::Deny, ReasonCode::UnknownMembership),
    }
    if st.membership(su) == Some("ban") {
        return (Verdict::Deny, ReasonCode::PseudouserBanned);
    }
    let s2s = expected_s2s(st, su, server, membership);
    let peeking = if membership == "join" {
        expected_pseudouser_join(st, su)
    } else {
        (Verdict::Deny, ReasonCode::PseudouserJoinsDirectly)
    };
    match policy {
        P::S2sOnly => s2s,
        P::Peeking => peeking,
        P::Either if s2s.0 == Verdict::Allow => s2s,
        P::Either if peeking.0 == Verdict::Allow => peeking,
        P::Either => (Verdict::Deny, s2s.1),
    }
}

/// The case and port spellings of a server name that must get the same ACL and deny-list
/// verdicts: ASCII lower and upper case, and (for a valid name) with `:8448` added or its port
/// removed.
fn server_variants(server: &str) -> Vec<String> {
    let mut v = vec![server.to_ascii_lowercase(), server.to_ascii_uppercase()];
    if ServerName::parse(server).is_ok() {
        let host = ref_strip_port(server);
        v.push(if host == server {
            format!("{server}:8448")
        } else {
            host.to_owned()
        });
    }
    v
}

/// `membership_decisions` (`subscription::acl`, `glob`, `decide_knock`, `JoinGate::check_join`
/// (Python's `join_allowed`), `pseudouser::check_pseudouser_join` and `OperatorPolicy`,
/// `s2s::check_server_user_membership`, `check_subscription_event`, and the knock store's
/// per-origin cap). The input's first line is the subject: a server name, or a user ID whose
/// server is the subject's server; its pseudouser is `@:server`. Every further line starting with
/// `{` is a state event, in order (later ones replace earlier ones); a line starting with `#`
/// is a sequence of knock-store operations ([`knock_store_ops`]).
///
/// Invariants: nothing panics; every decision has a non-empty reason, a detail of at most
/// [`MAX_DETAIL_BYTES`] when the subject is valid, and JSON that says the same; each check gives
/// the verdict and reason code its documentation's steps give, read slowly from the raw events
/// (`expected_*`, with an independent glob matcher, [`slow_glob`], which `Glob` must agree with);
/// the ACL and deny-list verdicts are the same for the case and port spellings of the server
/// ([`server_variants`]), and so is a knock's denial by ACL or policy list; a server matched by a
/// deny glob (ACL, `m.ban` rule, operator list) is never allowed; nothing allows a server user's
/// join that the room's auth rules refuse; `either` allows exactly what `s2s_only` or `peeking`
/// allows and otherwise reports the s2s reason; a banned server user may not join, be invited or
/// knock under any policy; a knock's outward event exists exactly for a new acceptance and names
/// the server; a gated room lets a server join exactly while the room says it is able to
/// subscribe.
pub fn membership_decisions(data: &[u8]) {
    use servership::pseudouser::{OperatorPolicy, check_pseudouser_join};
    use servership::s2s::{ServerUserPolicy, check_server_user_membership};
    use servership::subscription::acl::{ServerAcl, check_server_acl};
    use servership::subscription::decision::{KnockMode, PolicyList, Research, decide_knock};
    use servership::subscription::glob::Glob;
    use servership::subscription::{JoinGate, check_subscription_event};
    const ROOM: &str = "!room:fuzz.example";

    let mut lines = data.split(|&b| b == b'\n');
    let subject = text(lines.next().unwrap_or_default());
    let mut events: Vec<servership::Object> = Vec::new();
    let mut knock_ops: Option<&[u8]> = None;
    for line in lines {
        match line.first() {
            Some(b'{') => {
                if let Ok(o) = json::parse_object(line) {
                    events.push(o);
                }
            }
            Some(b'#') if knock_ops.is_none() => knock_ops = line.get(1..),
            _ => {}
        }
    }
    let server: String = match subject.strip_prefix('@') {
        Some(rest) => rest
            .split_once(':')
            .map(|(_, s)| s)
            .unwrap_or("")
            .to_owned(),
        None => subject.clone(),
    };
    let pseudouser = format!("@:{server}");
    let server_user = if subject.starts_with('@') {
        subject.clone()
    } else {
        pseudouser.clone()
    };
    let bounded = ServerName::parse(&server).is_ok();

    // The state, event by event (malformed events are refused with M_BAD_JSON and left out).
    let mut state = RoomState::new();
    let mut reference = RefState {
        events: std::collections::BTreeMap::new(),
    };
    let mut all_valid = true;
    for e in &events {
        match state.insert(e.clone()) {
            Ok(()) => {
                let key = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                reference
                    .events
                    .insert((key("type"), key("state_key")), e.clone());
            }
            Err(err) => {
                assert_eq!(err.errcode(), ErrCode::BadJson, "{}", err.message());
                all_valid = false;
            }
        }
    }
    assert_eq!(RoomState::from_events(&events).is_ok(), all_valid);
    assert_eq!(state.len(), reference.events.len());
    let oracle = server.chars().count() <= 300;

    // The glob matcher against the slow one, on every ACL and policy entry (up to 300 characters).
    let mut globs: Vec<&str> = Vec::new();
    if let Some(acl) = reference.content("m.room.server_acl", "") {
        globs.extend(string_entries(acl, "allow"));
        globs.extend(string_entries(acl, "deny"));
    }
    for t in servership::subscription::decision::SERVER_RULE_TYPES {
        for (_, e) in reference.of_type(t) {
            if let Some(entity) = e
                .get("content")
                .and_then(|c| c.get("entity"))
                .and_then(Value::as_str)
            {
                globs.push(entity);
            }
        }
    }
    let variants = server_variants(&server);
    if oracle {
        for g in globs.iter().filter(|g| g.chars().count() <= 300).take(32) {
            let Ok(glob) = Glob::new(g) else {
                panic!("Glob::new refused a short pattern");
            };
            for s in std::iter::once(&server).chain(&variants) {
                let host = ref_strip_port(s);
                assert_eq!(
                    glob.matches(host),
                    !too_long_for_a_server(host) && slow_glob(g, host),
                    "glob {g:?} against {host:?}"
                );
            }
        }
    }

    // Server ACL.
    let acl = check_server_acl(&state, &server);
    check_decision(&acl, "check_server_acl", bounded);
    assert_ne!(acl.verdict, Verdict::Pending);
    if let Some(parsed) = ServerAcl::from_state(&state) {
        assert_eq!(parsed.check(&server), acl);
    }
    if oracle {
        assert_eq!(
            vr(&acl),
            expected_acl(&reference, &server),
            "ACL for {server:?}"
        );
    }
    let deny_globs: Vec<&str> = reference
        .content("m.room.server_acl", "")
        .map(|c| string_entries(c, "deny"))
        .unwrap_or_default();
    let denied_by_glob = |s: &str| {
        let host = ref_strip_port(s);
        !too_long_for_a_server(host) && deny_globs.iter().any(|g| slow_glob(g, host))
    };
    if oracle && denied_by_glob(&server) {
        assert_eq!(acl.verdict, Verdict::Deny, "a deny glob matches {server:?}");
    }
    for v in &variants {
        let d = check_server_acl(&state, v);
        check_decision(&d, "check_server_acl (variant)", bounded);
        assert_eq!(
            vr(&d),
            vr(&acl),
            "ACL verdict for {v:?} differs from {server:?}"
        );
    }

    // Knocks: every research answer and mode, the subject and its variants.
    let policies = PolicyList::from_state(&state);
    let unknown = decide_knock(ROOM, &server, None, &policies, None, KnockMode::AutoAccept);
    assert_eq!(
        vr(&unknown.decision),
        (Verdict::Deny, ReasonCode::UnknownRoom)
    );
    assert!(unknown.outward_event().is_none());
    let accept = |_: &str, _: &str| Research::Accept("the research accepts it".into());
    let deny = |_: &str, _: &str| Research::Deny("the research refuses it".into());
    let shrug = |_: &str, _: &str| Research::NoOpinion;
    let researches: [(
        Option<&dyn servership::subscription::decision::KnockResearch>,
        Option<bool>,
    ); 4] = [
        (None, None),
        (Some(&shrug), None),
        (Some(&accept), Some(true)),
        (Some(&deny), Some(false)),
    ];
    let stage = |d: &Decision| {
        matches!(
            d.reason,
            ReasonCode::ServerAclDenied | ReasonCode::IpLiteralDenied | ReasonCode::PolicyBan
        )
        .then_some(d.reason)
    };
    let mut first_stage: Option<Option<ReasonCode>> = None;
    // Every research answer and mode for the subject; its variants once each.
    let combos: Vec<(&String, usize, KnockMode)> = (0..researches.len())
        .flat_map(|r| {
            [
                (&server, r, KnockMode::AutoAccept),
                (&server, r, KnockMode::Moderator),
            ]
        })
        .chain(variants.iter().map(|v| (v, 0, KnockMode::AutoAccept)))
        .collect();
    for (s, r, mode) in combos {
        let (research, says) = &researches[r];
        let k = decide_knock(ROOM, s, Some(&state), &policies, *research, mode);
        let d = &k.decision;
        check_decision(d, "decide_knock", bounded);
        let auto = mode == KnockMode::AutoAccept;
        let out = k.outward_event();
        if oracle {
            let want = expected_knock(&reference, s, *says, auto);
            assert_eq!(
                (d.verdict, d.reason, out.is_some()),
                want,
                "knock from {s:?} ({says:?}, auto {auto})"
            );
            if denied_by_glob(s) || expected_policy_ban(&reference, s) {
                assert_eq!(d.verdict, Verdict::Deny, "a denied server's knock passes");
            }
        }
        assert_eq!(
            out.is_some(),
            d.is_allowed()
                && matches!(
                    d.reason,
                    ReasonCode::AutoAccepted | ReasonCode::ResearchAccepted
                )
        );
        if let Some(ev) = &out {
            assert_eq!(
                ev.get("type").and_then(Value::as_str),
                Some("m.server.is_able_to_subscribe")
            );
            assert_eq!(
                ev.get("state_key").and_then(Value::as_str),
                Some(s.as_str())
            );
            assert_eq!(
                ev.get("content")
                    .and_then(|c| c.get("is_able_to_subscribe"))
                    .and_then(Value::as_bool),
                Some(true)
            );
        }
        if d.verdict == Verdict::Pending {
            assert!(!auto && d.reason == ReasonCode::AwaitingModerator);
        }
        let j = k.to_json();
        assert_eq!(
            j.get("outward_event").is_some_and(|o| !o.is_null()),
            out.is_some()
        );
        match first_stage {
            None => first_stage = Some(stage(d)),
            Some(st) => assert_eq!(
                stage(d),
                st,
                "a knock from {s:?} is refused by ACL or policy differently from {server:?}"
            ),
        }
    }

    // Gated joins (`join_allowed`): exactly while the room says the server is able to subscribe.
    let mut gate = JoinGate::new();
    let open = gate.check_join(ROOM, &state, &server);
    check_decision(&open, "check_join (not gated)", bounded);
    assert_eq!(vr(&open), (Verdict::Allow, ReasonCode::RoomNotGated));
    gate.gate(ROOM);
    let gated = gate.check_join(ROOM, &state, &server);
    check_decision(&gated, "check_join (gated)", bounded);
    assert_eq!(
        vr(&gated),
        if reference.able(&server) {
            (Verdict::Allow, ReasonCode::AbleToSubscribe)
        } else {
            (Verdict::Deny, ReasonCode::NotAbleToSubscribe)
        }
    );

    // Pseudouser joins, with the operator denying the ACL's deny globs and the policy entities.
    let pj = check_pseudouser_join(&state, &pseudouser);
    check_decision(&pj, "check_pseudouser_join", bounded);
    if oracle {
        assert_eq!(vr(&pj), expected_pseudouser_join(&reference, &pseudouser));
    }
    if pj.is_allowed() {
        assert_eq!(
            expected_auth_join(&reference, &pseudouser, &server),
            Ok(()),
            "a pseudouser join the auth rules refuse is allowed"
        );
    }
    let mut operator = OperatorPolicy::new();
    for g in &globs {
        assert!(
            operator.deny_server(g).is_ok(),
            "deny_server refused a pattern an event holds"
        );
    }
    let remote = operator.check_remote_pseudouser_join(ROOM, &state, &pseudouser);
    check_decision(&remote, "check_remote_pseudouser_join", bounded);
    let op_denied = operator.server_denied(&server).map(|d| vr(&d));
    for v in &variants {
        assert_eq!(
            operator.server_denied(v).map(|d| vr(&d)),
            op_denied,
            "the operator's deny list treats {v:?} and {server:?} differently"
        );
    }
    if oracle {
        let host = ref_strip_port(&server);
        let want_denied = !globs.is_empty()
            && (too_long_for_a_server(host) || globs.iter().any(|g| slow_glob(g, host)));
        assert_eq!(
            op_denied.is_some(),
            want_denied,
            "operator deny list for {server:?}"
        );
    }
    if ids::is_server_pseudouser(&pseudouser) {
        match op_denied {
            Some(d) => assert_eq!(vr(&remote), d),
            None => assert_eq!(remote, pj),
        }
        if RoomId::parse(&format!("!x:{server}")).is_ok() {
            assert_eq!(
                operator
                    .room_denied(&format!("!x:{server}"))
                    .map(|d| vr(&d)),
                op_denied.map(|_| (Verdict::Deny, ReasonCode::ServerDeniedByOperator))
            );
        }
    }

    // Server users under every policy and membership.
    let policies_all = [
        ServerUserPolicy::S2sOnly,
        ServerUserPolicy::Peeking,
        ServerUserPolicy::Either,
    ];
    let banned = ids::is_server_pseudouser(&server_user)
        && reference.membership(&server_user) == Some("ban");
    for membership in ["join", "invite", "knock", "leave", "ban", "kick"] {
        let got =
            policies_all.map(|p| check_server_user_membership(&state, &server_user, membership, p));
        for (d, p) in got.iter().zip(policies_all) {
            check_decision(d, "check_server_user_membership", bounded);
            assert_ne!(d.verdict, Verdict::Pending);
            if oracle {
                assert_eq!(
                    vr(d),
                    expected_server_user(&reference, &server_user, membership, p),
                    "{membership} of {server_user:?} under {}",
                    p.as_str()
                );
            }
            if banned && matches!(membership, "join" | "invite" | "knock") {
                assert_eq!(vr(d), (Verdict::Deny, ReasonCode::PseudouserBanned));
            }
            if membership == "join" && d.is_allowed() {
                assert_eq!(
                    expected_auth_join(&reference, &server_user, &server),
                    Ok(()),
                    "a server user's join the auth rules refuse is allowed under {}",
                    p.as_str()
                );
            }
        }
        let [s2s, peeking, either] = &got;
        assert_eq!(
            either.is_allowed(),
            s2s.is_allowed() || peeking.is_allowed(),
            "either is not s2s_only or peeking"
        );
        if !either.is_allowed() {
            assert_eq!(either.reason, s2s.reason, "either hides the s2s reason");
        }
        if membership == "join" && ids::is_server_pseudouser(&server_user) {
            assert_eq!(
                vr(peeking),
                vr(&check_pseudouser_join(&state, &server_user))
            );
        }
    }

    // m.server.subscription events of the state.
    for e in events.iter().take(16) {
        let d = check_subscription_event(&state, e);
        let sender = e.get("sender").and_then(Value::as_str);
        check_decision(&d, "check_subscription_event", true);
        let key = e.get("state_key").and_then(Value::as_str);
        let want = if e.get("type").and_then(Value::as_str) != Some("m.server.subscription") {
            (Verdict::Deny, ReasonCode::MalformedEvent)
        } else if let Some(k) = key.filter(|k| ServerName::parse(k).is_ok()) {
            match sender {
                None => (Verdict::Deny, ReasonCode::MalformedEvent),
                Some(s) if ref_user_server(s) != Some(k) => {
                    (Verdict::Deny, ReasonCode::WrongSenderServer)
                }
                Some(_) if !reference.able(k) => (Verdict::Deny, ReasonCode::NotAbleToSubscribe),
                Some(_) => (Verdict::Allow, ReasonCode::AbleToSubscribe),
            }
        } else {
            (Verdict::Deny, ReasonCode::MalformedEvent)
        };
        assert_eq!(vr(&d), want, "check_subscription_event");
    }

    if let Some(ops) = knock_ops {
        knock_store_ops(ops, &server);
    }
}

/// The knock store's bounds (`store::knocks`), against a model: an in-memory store with a cap of
/// 3 new knocks per origin per second and a 3 s expiry, driven by the bytes (at most 32 bytes, each: bits 6–7
/// the operation — record now, record 400 ms later, advance the clock by `(b & 63) × 50` ms, purge
/// or remove; bits 0–2 the room, 3–5 the origin among the subject and a few others).
///
/// Invariants: every record, refusal (`M_LIMIT_EXCEEDED`, with the `retry_after_ms` at which the
/// oldest counted knock leaves the window), purge count, removal and listing is the model's; so
/// no origin ever gets more than 3 new knocks recorded in any window, repeats of a live knock are
/// always recorded, and expired knocks are never returned.
fn knock_store_ops(ops: &[u8], subject_server: &str) {
    use servership::store::{KnockLimits, KnockStore};
    use std::time::Duration;
    let limits = KnockLimits {
        max_per_origin: 3,
        window: Duration::from_millis(1000),
    };
    // One in-memory store per thread (opening one costs more than the rest of the input), emptied
    // first so every input starts from nothing.
    thread_local! {
        static STORE: std::cell::OnceCell<Option<KnockStore>> = const { std::cell::OnceCell::new() };
    }
    STORE.with(|cell| {
        let store = cell.get_or_init(|| {
            KnockStore::open_with_limits(
                std::path::Path::new(":memory:"),
                Duration::from_millis(3000),
                limits,
            )
            .ok()
        });
        let Some(store) = store else {
            panic!("could not open an in-memory knock store");
        };
        assert!(store.purge_expired_at(i64::MAX).is_ok());
        assert_eq!(store.row_count().ok(), Some(0));
        knock_store_model(store, ops, subject_server);
    });
}

fn knock_store_model(store: &servership::store::KnockStore, ops: &[u8], subject_server: &str) {
    const CAP: usize = 3;
    const WINDOW_MS: i64 = 1000;
    const EXPIRY_MS: i64 = 3000;
    struct Row {
        room: usize,
        server: usize,
        first: i64,
        last: i64,
        times: i64,
    }
    let mut servers: Vec<&str> = vec![subject_server];
    for s in ["b.example", "c.example", "B.example"] {
        if !servers.contains(&s) {
            servers.push(s);
        }
    }
    let rooms: Vec<String> = (0..8).map(|i| format!("!r{i}:fuzz.example")).collect();
    let mut model: Vec<Row> = Vec::new();
    let mut now: i64 = 1_000_000;
    for &b in ops.iter().take(32) {
        let room = usize::from(b & 7);
        let server = usize::from((b >> 3) & 7) % servers.len();
        match b >> 6 {
            0 | 1 => {
                if b >> 6 == 1 {
                    now += 400;
                }
                // No server name holds NUL, and PostgreSQL text cannot: both backends refuse it.
                if servers[server].contains('\0') {
                    let got = store.record_at(&rooms[room], servers[server], now);
                    assert_eq!(got.err().map(|e| e.errcode()), Some(ErrCode::InvalidParam));
                    continue;
                }
                let cutoff = now - EXPIRY_MS;
                let live = model
                    .iter()
                    .any(|r| r.room == room && r.server == server && r.last >= cutoff);
                let got = store.record_at(&rooms[room], servers[server], now);
                let counted: Vec<i64> = model
                    .iter()
                    .filter(|r| r.server == server && r.first > now - WINDOW_MS)
                    .map(|r| r.first)
                    .collect();
                if !live && counted.len() >= CAP {
                    let oldest = counted.iter().min().copied().unwrap_or(now);
                    match got {
                        Err(e) => {
                            assert_eq!(e.errcode(), ErrCode::LimitExceeded, "{}", e.message());
                            let retry = u64::try_from((oldest + WINDOW_MS - now).max(1)).ok();
                            assert_eq!(e.retry_after_ms(), retry);
                        }
                        Ok(r) => panic!("knock {} past the cap of {}", r.times, CAP),
                    }
                    continue;
                }
                let row = match model
                    .iter_mut()
                    .find(|r| r.room == room && r.server == server)
                {
                    Some(r) => {
                        if r.last < cutoff {
                            r.first = now;
                            r.times = 1;
                        } else {
                            r.times += 1;
                        }
                        r.last = r.last.max(now);
                        r
                    }
                    None => {
                        model.push(Row {
                            room,
                            server,
                            first: now,
                            last: now,
                            times: 1,
                        });
                        let i = model.len() - 1;
                        &mut model[i]
                    }
                };
                let rec = match got {
                    Ok(r) => r,
                    Err(e) => panic!("knock refused below the cap: {}", e.message()),
                };
                assert_eq!(
                    (rec.first_seen_ms, rec.last_seen_ms, rec.times),
                    (row.first, row.last, row.times)
                );
                assert_eq!(
                    (rec.room_id.as_str(), rec.server.as_str()),
                    (rooms[room].as_str(), servers[server])
                );
            }
            2 => now += i64::from(b & 63) * 50,
            _ if b & 1 == 0 => {
                let cutoff = now - EXPIRY_MS;
                let before = model.len();
                model.retain(|r| r.last >= cutoff);
                assert_eq!(store.purge_expired_at(now).ok(), Some(before - model.len()));
            }
            _ => {
                let existed = model.iter().any(|r| r.room == room && r.server == server);
                model.retain(|r| !(r.room == room && r.server == server));
                assert_eq!(
                    store.remove(&rooms[room], servers[server]).ok(),
                    Some(existed)
                );
            }
        }
    }
    assert_eq!(
        store.row_count().ok(),
        i64::try_from(model.len()).ok(),
        "row count"
    );
    let cutoff = now - EXPIRY_MS;
    for (i, room) in rooms.iter().enumerate() {
        let mut want: Vec<(i64, &str, i64, i64)> = model
            .iter()
            .filter(|r| r.room == i && r.last >= cutoff)
            .map(|r| (r.first, servers[r.server], r.last, r.times))
            .collect();
        want.sort();
        let got: Vec<(i64, String, i64, i64)> = match store.for_room_at(room, now) {
            Ok(list) => list
                .into_iter()
                .map(|r| (r.first_seen_ms, r.server, r.last_seen_ms, r.times))
                .collect(),
            Err(e) => panic!("for_room_at: {}", e.message()),
        };
        let got: Vec<(i64, &str, i64, i64)> = got
            .iter()
            .map(|(f, s, l, t)| (*f, s.as_str(), *l, *t))
            .collect();
        assert_eq!(got, want, "knocks on {room}");
        for (s, server) in servers.iter().enumerate() {
            if !model.iter().any(|r| r.room == i && r.server == s) && s > 0 {
                continue;
            }
            let live = model
                .iter()
                .find(|r| r.room == i && r.server == s && r.last >= cutoff)
                .map(|r| r.times);
            let got = store
                .get_at(room, server, now)
                .ok()
                .map(|r| r.map(|r| r.times));
            assert_eq!(got, Some(live));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// members_rules
// ---------------------------------------------------------------------------------------------

/// The members rules (`auth::check_members_rules`, the additions of room version
/// `org.servership.v12.members.1`). Input: line 1 the room version identifier (a byte `0`–`3`
/// alone picks the experimental one, `12`, the experimental one with a marker create, or `11`),
/// line 2 the event, every further line an auth event (lines that are not JSON objects are
/// skipped).
///
/// Invariants: the JSON entry point answers exactly as the object one; the decision is the same
/// for the auth events in reverse order; `no_additions` is always an allow, and never given for a
/// room with the rules; with one create event and no duplicate keys, the additions and the whole
/// room version (`check_event`) agree (an addition's deny is the version's deny, the version's
/// allow is the additions' allow), and the room version allows nothing that the same room as
/// plain v12 refuses, except a join under `peekable`.
pub fn members_rules(data: &[u8]) {
    use servership::auth::{self, AuthState, check_members_rules};
    use servership::decision::{ReasonCode, Verdict};
    use servership::room_version::{MEMBERS_MARKER, RoomVersion};

    let mut lines = data.split(|&b| b == b'\n');
    let first = text(lines.next().unwrap_or_default());
    let (version_id, marker) = match first.as_str() {
        "0" => (RoomVersion::SERVERSHIP_MEMBERS_1.id.to_owned(), false),
        "1" => ("12".to_owned(), false),
        "2" => ("12".to_owned(), true),
        "3" => ("11".to_owned(), false),
        other => (other.to_owned(), false),
    };
    let Some(event_line) = lines.next() else {
        return;
    };
    let event = match json::parse_object(event_line) {
        Ok(e) => e,
        Err(e) => {
            assert!(matches!(e.errcode(), ErrCode::NotJson | ErrCode::BadJson));
            return;
        }
    };
    // The selection's additions: never a key v12 selects already, and only the two kinds the
    // rules add (a server's grant, a pseudouser's witness).
    if let Ok(adds) = auth::members_auth_additions(&event) {
        let base = auth::auth_event_keys(&event, RoomVersion::V12).unwrap_or_default();
        for key in &adds {
            assert!(!base.contains(key), "{key:?} is v12's already");
            assert!(
                key.0 == "m.server.is_able_to_subscribe" || key.0 == "m.room.member",
                "{key:?}"
            );
        }
    }
    let mut auth: Vec<servership::Object> =
        lines.filter_map(|l| json::parse_object(l).ok()).collect();
    // A marker create on request: the first create among the auth events gets the marker.
    if marker {
        if let Some(c) = auth
            .iter_mut()
            .find(|e| e.get("type").and_then(Value::as_str) == Some("m.room.create"))
        {
            if let Some(Value::Object(content)) = c.get_mut("content") {
                content.insert(
                    MEMBERS_MARKER.into(),
                    Value::from(RoomVersion::SERVERSHIP_MEMBERS_1.id),
                );
            }
        }
    }
    let Ok(version) = RoomVersion::from_id(&version_id) else {
        let e = auth::members::check_members_rules_json(event_line, b"[]", &version_id)
            .expect_err("an unknown room version is an error");
        assert_eq!(e.errcode(), ErrCode::IncompatibleRoomVersion);
        return;
    };
    let refs: Vec<&servership::Object> = auth.iter().collect();
    let d = check_members_rules(&event, &refs, version);

    // The JSON entry point.
    let list = Value::Array(auth.iter().cloned().map(Value::Object).collect());
    let via_json = auth::members::check_members_rules_json(
        &Value::Object(event.clone()).to_canonical(),
        &list.to_canonical(),
        &version_id,
    );
    match via_json {
        Ok(j) => assert_eq!((j.verdict, j.reason), (d.verdict, d.reason)),
        Err(e) => panic!("check_members_rules_json: {}", e.message()),
    }
    // Order of the auth events does not matter.
    let reversed: Vec<&servership::Object> = auth.iter().rev().collect();
    let r = check_members_rules(&event, &reversed, version);
    assert_eq!(
        (r.verdict, r.reason),
        (d.verdict, d.reason),
        "{} / {}",
        r.detail,
        d.detail
    );
    assert_ne!(d.verdict, Verdict::Pending);
    // Details quote hostile values shortened: a log line, never a copy of a 64 KiB event.
    assert!(
        d.detail.len() <= 2048,
        "detail of {} bytes: {:.200}",
        d.detail.len(),
        d.detail
    );
    if d.reason == ReasonCode::NoAdditions {
        assert!(d.is_allowed());
    }

    // Against the whole room version, when the auth events make a state.
    if event.get("type").and_then(Value::as_str) == Some("m.room.create") {
        return;
    }
    let creates: Vec<&servership::Object> = auth
        .iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.room.create"))
        .collect();
    let [create] = creates.as_slice() else {
        return;
    };
    let Ok(declared) = RoomVersion::from_create_event(create) else {
        return;
    };
    if declared.id != version.id {
        return;
    }
    let mut keys = std::collections::BTreeSet::new();
    for e in &auth {
        let key = (
            e.get("type").and_then(Value::as_str),
            e.get("state_key").and_then(Value::as_str),
        );
        if key.0.is_none() || key.1.is_none() || !keys.insert(key) {
            return;
        }
    }
    let full = |create: &servership::Object, version: RoomVersion| {
        let mut state = AuthState::new(create, "$create", version);
        for e in auth
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) != Some("m.room.create"))
        {
            state.insert(e);
        }
        auth::check_event(&event, &state).is_allowed()
    };
    let members = full(create, version);
    if declared.auth.servership_members {
        assert_ne!(d.reason, ReasonCode::NoAdditions);
        if !d.is_allowed() {
            assert!(
                !members,
                "the additions deny ({}), the room version allows",
                d.detail
            );
        }
        if members {
            assert!(d.is_allowed());
        }
        // The same room as plain v12.
        let mut plain = (*create).clone();
        if let Some(Value::Object(content)) = plain.get_mut("content") {
            content.remove(MEMBERS_MARKER);
            content.insert("room_version".into(), Value::from("12"));
        }
        if members && !full(&plain, RoomVersion::V12) {
            let membership = event
                .get("content")
                .and_then(|c| c.get("membership"))
                .and_then(Value::as_str);
            let rule = auth
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) == Some("m.room.join_rules"))
                .and_then(|e| e.get("content")?.get("join_rule")?.as_str());
            assert!(
                event.get("type").and_then(Value::as_str) == Some("m.room.member")
                    && membership == Some("join")
                    && rule == Some("peekable"),
                "allowed beyond plain v12"
            );
        }
    } else {
        assert_eq!(d.reason, ReasonCode::NoAdditions);
    }
}
