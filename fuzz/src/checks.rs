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
