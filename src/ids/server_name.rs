//! Server names: `hostname [ ":" port ]`, per the spec's
//! [server name grammar](https://spec.matrix.org/v1.16/appendices/#server-name).
//!
//! The strictness decisions are in the [module docs](super).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{identifier_traits, invalid, quote};
use crate::Result;

/// The longest server name, in bytes: the longest for which the server's pseudouser `@:name` still
/// fits the 255-byte identifier limit (and the longest DNS name in text form).
pub const MAX_SERVER_NAME_BYTES: usize = 253;

/// A validated server name such as `matrix.org`, `1.2.3.4:8448` or `[1234:5678::abcd]:5678`.
///
/// Comparison is case-sensitive: `MATRIX.ORG` and `matrix.org` are different servers, as the spec
/// requires. See the [spec](https://spec.matrix.org/v1.16/appendices/#server-name).
#[derive(Clone)]
pub struct ServerName(pub(super) String);

identifier_traits!(ServerName, 0);

impl ServerName {
    /// Parses and validates a server name. Errors are `M_INVALID_PARAM`.
    pub fn parse(value: &str) -> Result<Self> {
        check(value)
            .map_err(|reason| invalid(value, "server name", format_args!("it {reason}")))?;
        Ok(ServerName(value.to_owned()))
    }

    /// The host as written: a DNS name, an IPv4 address, or an IPv6 address *with* its brackets.
    pub fn host(&self) -> &str {
        split_host_port(&self.0).0
    }

    /// The explicit port, if the name has one.
    pub fn port(&self) -> Option<u16> {
        split_host_port(&self.0).1.and_then(|p| p.parse().ok())
    }

    /// The IP address, when the host is an IP literal rather than a DNS name.
    pub fn ip(&self) -> Option<IpAddr> {
        let host = self.host();
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
        }
        if is_numeric_host(host) {
            return parse_ipv4(host).map(IpAddr::V4);
        }
        None
    }
}

/// Splits a server name (already validated, or at least bracket-balanced) into host and port text.
fn split_host_port(value: &str) -> (&str, Option<&str>) {
    if value.starts_with('[') {
        if let Some(close) = value.find(']') {
            let (host, rest) = value.split_at(close + 1);
            return (host, rest.strip_prefix(':'));
        }
        return (value, None);
    }
    match value.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (value, None),
    }
}

/// Checks a server name. On failure returns the reason as a phrase that follows "server name X"
/// (or "it"): "has an invalid port", "is empty"…, so user ID and room ID errors can reuse it.
pub(crate) fn check(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_SERVER_NAME_BYTES {
        return Err(format!(
            "is {} bytes long, the limit is {MAX_SERVER_NAME_BYTES}",
            value.len()
        ));
    }
    let port = if let Some(after_bracket) = value.strip_prefix('[') {
        let Some(close) = after_bracket.find(']') else {
            return Err("has an IPv6 address without its closing ']'".into());
        };
        let (inner, rest) = after_bracket.split_at(close);
        // The IPv6 grammar allows hex digits, ':' and '.'; std's parser then checks the structure
        // (and refuses zone IDs like `%eth0`, which have no meaning across servers).
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            || inner.parse::<Ipv6Addr>().is_err()
        {
            return Err(format!("has an invalid IPv6 address {}", quote(inner)));
        }
        let rest = rest.strip_prefix(']').unwrap_or(rest);
        if rest.is_empty() {
            None
        } else if let Some(port) = rest.strip_prefix(':') {
            Some(port)
        } else {
            return Err(format!(
                "has unexpected characters {} after the IPv6 address",
                quote(rest)
            ));
        }
    } else {
        let (host, port) = split_host_port(value);
        check_host(host)?;
        port
    };
    if let Some(port) = port {
        check_port(port)?;
    }
    Ok(())
}

/// Checks a DNS name or IPv4 address (no brackets, no port).
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("has an empty host".into());
    }
    if let Some(c) = host
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(format!(
            "contains the character {c:?}, which is not allowed in a host name"
        ));
    }
    if is_numeric_host(host) {
        if parse_ipv4(host).is_none() {
            return Err(format!(
                "has an invalid IPv4 address {} (four numbers from 0 to 255 are needed)",
                quote(host)
            ));
        }
        return Ok(());
    }
    if host.split('.').any(str::is_empty) {
        return Err(
            "has an empty label in its host name (a leading, trailing or double dot)".into(),
        );
    }
    Ok(())
}

/// A host made only of digits and dots is read as an IPv4 address, never as a DNS name.
fn is_numeric_host(host: &str) -> bool {
    host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Parses the spec's `1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT` with each part ≤ 255.
/// Leading zeros are allowed by that grammar (`01.2.3.4`), unlike std's parser.
fn parse_ipv4(host: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = host.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Checks the spec's `port = 1*5DIGIT`, with a value from 1 to 65535.
fn check_port(port: &str) -> Result<(), String> {
    if port.is_empty() {
        return Err("has an empty port".into());
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "has an invalid port {} (a port is 1 to 5 digits)",
            quote(port)
        ));
    }
    match port.parse::<u32>() {
        Ok(1..=65535) => Ok(()),
        _ => Err(format!(
            "has an invalid port {port} (ports go from 1 to 65535)"
        )),
    }
}
