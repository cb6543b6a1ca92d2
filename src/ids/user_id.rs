//! User IDs, `@localpart:server_name`, per the spec's
//! [user identifier grammar](https://spec.matrix.org/v1.16/appendices/#user-identifiers), and the
//! server pseudouser `@:server` of
//! [MSC1777](https://github.com/matrix-org/matrix-spec-proposals/pull/1777).

use super::server_name::{self, ServerName};
use super::{check_common, identifier_traits, invalid, quote};
use crate::Result;

/// A validated user ID such as `@alice:example.org`.
///
/// The localpart ends at the first `:`; everything after it is the server name, port included.
/// Historical localparts (any code points but `:` and NUL) are accepted because servers must accept
/// them over federation; [`UserId::is_strict`] says whether the localpart follows the current
/// grammar `[a-z0-9._=/+-]+`. The one user ID with an empty localpart is the server pseudouser
/// `@:server` ([`UserId::is_server_pseudouser`]).
#[derive(Clone)]
pub struct UserId {
    full: String,
    server_name: ServerName,
}

identifier_traits!(UserId, full);

impl UserId {
    /// Parses and validates a user ID, including the server pseudouser `@:server`. Errors are
    /// `M_INVALID_PARAM`.
    pub fn parse(value: &str) -> Result<Self> {
        const WHAT: &str = "user ID";
        let rest = check_common(value, '@', WHAT)?;
        let Some((_localpart, server)) = rest.split_once(':') else {
            return Err(invalid(value, WHAT, "it has no ':' before a server name"));
        };
        server_name::check(server).map_err(|reason| {
            invalid(
                value,
                WHAT,
                format_args!("server name {} {reason}", quote(server)),
            )
        })?;
        // The localpart cannot hold ':' (it ends there) or NUL (refused above); every other code
        // point is a valid historical localpart, and the empty one is the server pseudouser.
        Ok(UserId {
            full: value.to_owned(),
            server_name: ServerName(server.to_owned()),
        })
    }

    /// Parses a user ID and refuses the server pseudouser, for places where only a real user may
    /// appear (for example the target of an invite).
    pub fn parse_not_pseudouser(value: &str) -> Result<Self> {
        let id = Self::parse(value)?;
        if id.is_server_pseudouser() {
            return Err(invalid(
                value,
                "user ID here",
                "the server pseudouser (empty localpart) is not allowed",
            ));
        }
        Ok(id)
    }

    /// The localpart: everything between `@` and the first `:`. Empty for the server pseudouser.
    pub fn localpart(&self) -> &str {
        let len = self.full.len() - self.server_name.as_str().len() - 1;
        self.full.get(1..len).unwrap_or_default()
    }

    /// The server name after the first `:`.
    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// Whether the localpart follows the current grammar `[a-z0-9._=/+-]+` (as opposed to being a
    /// historical localpart, or the pseudouser's empty one). Servers must accept non-strict IDs in
    /// events over federation but should not create them.
    pub fn is_strict(&self) -> bool {
        let localpart = self.localpart();
        !localpart.is_empty()
            && localpart.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'=' | b'/' | b'+' | b'-')
            })
    }

    /// Whether this is the server pseudouser `@:server` (MSC1777): the only form with an empty
    /// localpart.
    pub fn is_server_pseudouser(&self) -> bool {
        self.localpart().is_empty()
    }
}

/// Whether `value` is a server pseudouser: exactly `@:` followed by a valid server name. One call,
/// no allocation.
pub fn is_server_pseudouser(value: &str) -> bool {
    value
        .strip_prefix("@:")
        .is_some_and(|server| server_name::check(server).is_ok())
}

/// The server pseudouser `@:server` of `server`. It always fits the 255-byte limit, because server
/// names are at most 253 bytes.
pub fn server_pseudouser(server: &ServerName) -> UserId {
    UserId {
        full: format!("@:{server}"),
        server_name: server.clone(),
    }
}
