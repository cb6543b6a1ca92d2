//! `m.room.server_acl` evaluation, per the spec
//! ([Server Access Control Lists](https://spec.matrix.org/v1.16/client-server-api/#server-access-control-lists-acls-for-rooms)):
//!
//! 1. no ACL event: allowed;
//! 2. the server name is an IP literal and `allow_ip_literals` is `false`: denied
//!    (`allow_ip_literals` defaults to `true` when missing or not a boolean);
//! 3. the name matches a `deny` glob: denied;
//! 4. the name matches an `allow` glob: allowed;
//! 5. otherwise denied (a missing `allow` list denies everyone).
//!
//! As the spec (MSC4436) and Synapse's evaluator do: the port is removed before matching, and
//! globs match ASCII-case-insensitively, so `deny: ["evil.example"]` refuses `EVIL.example` and
//! `Evil.Example:8448`. `allow`/`deny` that are not arrays count as empty and entries that are not
//! strings are skipped; every string entry counts, however long (Synapse honours long entries
//! too). A name too long to be a server name ([`subject_too_long`]) is refused.
//!
//! IP literals are recognised as Synapse does, on the name without its port: anything starting
//! with `[` (IPv6) and anything Rust's `Ipv4Addr` parses (dotted quad, no leading zeros).

use crate::decision::{Decision, ReasonCode};
use crate::json::{Object, Value};
use crate::room_state::RoomState;

use super::glob::{Glob, subject_too_long};

/// The server name without its port: `example.org:8448` → `example.org`, `[::1]:80` → `[::1]`.
pub fn strip_port(server: &str) -> &str {
    if server.starts_with('[') {
        return match server.find(']') {
            Some(end) => server.get(..=end).unwrap_or(server),
            None => server,
        };
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => server,
    }
}

/// True for `[IPv6]` and dotted-quad IPv4 hosts (port already removed): a host starting with `[`,
/// or one that parses as an IPv4 address, as Synapse's evaluator decides.
pub fn is_ip_literal(host: &str) -> bool {
    host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// A parsed `m.room.server_acl` content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAcl {
    allow_ip_literals: bool,
    allow: Vec<Glob>,
    deny: Vec<Glob>,
}

impl ServerAcl {
    /// Reads the content leniently, as the spec's defaults say.
    pub fn from_content(content: &Object) -> Self {
        let globs = |key: &str| -> Vec<Glob> {
            content
                .get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|s| Glob::new(s).ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        ServerAcl {
            allow_ip_literals: content
                .get("allow_ip_literals")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            allow: globs("allow"),
            deny: globs("deny"),
        }
    }

    /// The ACL of a room, if it has one.
    pub fn from_state(state: &RoomState) -> Option<Self> {
        state
            .content("m.room.server_acl", "")
            .map(Self::from_content)
    }

    /// Evaluates `server` (port allowed; removed before matching).
    pub fn check(&self, server: &str) -> Decision {
        let host = strip_port(server);
        if subject_too_long(host) {
            return Decision::deny(
                ReasonCode::ServerAclDenied,
                "the name is too long to be a server name, so the ACL refuses it",
            );
        }
        if !self.allow_ip_literals && is_ip_literal(host) {
            return Decision::deny(
                ReasonCode::IpLiteralDenied,
                format!("{host} is an IP literal and the ACL has allow_ip_literals false"),
            );
        }
        if let Some(g) = self.deny.iter().find(|g| g.matches(host)) {
            return Decision::deny(
                ReasonCode::ServerAclDenied,
                format!("{host} matches the ACL deny entry {}", g.shown()),
            );
        }
        if let Some(g) = self.allow.iter().find(|g| g.matches(host)) {
            return Decision::allow(
                ReasonCode::ServerAclAllowed,
                format!("{host} matches the ACL allow entry {}", g.shown()),
            );
        }
        Decision::deny(
            ReasonCode::ServerAclDenied,
            format!("{host} matches no ACL allow entry"),
        )
    }
}

/// The room's ACL verdict for `server`: allowed when the room has no ACL.
pub fn check_server_acl(state: &RoomState, server: &str) -> Decision {
    match ServerAcl::from_state(state) {
        Some(acl) => acl.check(server),
        None => Decision::allow(
            ReasonCode::ServerAclAllowed,
            "the room has no m.room.server_acl",
        ),
    }
}
