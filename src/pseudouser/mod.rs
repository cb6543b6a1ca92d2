//! Server pseudousers and peeking over federation
//! ([MSC1777](https://github.com/matrix-org/matrix-spec-proposals/pull/1777), seed
//! `msc1777-peeking-via-server-pseudousers.md`; DESIGN.md §3).
//!
//! A server takes part in a room as its pseudouser `@:server` (empty localpart), joined with an
//! ordinary `m.room.member` event. This module:
//! - builds and recognises pseudouser IDs ([`pseudouser_id`], [`is_pseudouser`],
//!   [`pseudouser_server`]);
//! - decides whether a pseudouser may join ([`check_pseudouser_join`]): a user of that server
//!   currently joined or invited, *and* the room's own auth rules allow the join (so it never says
//!   "allow" where Synapse's event auth refuses);
//! - applies the operator's deny lists ([`OperatorPolicy`]);
//! - lists members and names rooms without pseudousers ([`names`]);
//! - tracks local peeks and says when to join or leave as the pseudouser ([`tracker`]).
//!
//! Decisions taken where the seed is silent:
//! - A banned pseudouser may not join even in a peekable room (bans keep their meaning).
//! - Leaving (`leave`, `ban`) is never refused by these rules; the room's auth rules still apply.
//! - Only the exact form `@:server` with a valid server name ([`crate::ids`]) is a pseudouser;
//!   `@ :server`, `@:` and `@::x` are not.

pub mod names;
pub mod tracker;

use crate::decision::{Decision, ReasonCode};
use crate::error::Result;
use crate::ids::{self, RoomId, ServerName};
use crate::json::Value;
use crate::room_state::{RoomState, user_server};
use crate::room_version::RoomVersion;
use crate::subscription::glob::Glob;

/// The join rule that lets pseudousers in (MSC1777).
pub const JOIN_RULE_PEEKABLE: &str = "peekable";

/// The pseudouser of `server`: `@:server`. The server name must be valid
/// ([`ServerName`]); the pseudouser then always fits the 255-byte limit.
pub fn pseudouser_id(server: &str) -> Result<String> {
    let server = ServerName::parse(server)?;
    Ok(ids::server_pseudouser(&server).into_string())
}

/// True exactly for `@:server` with a valid server name ([`ids::is_server_pseudouser`]).
pub fn is_pseudouser(user_id: &str) -> bool {
    ids::is_server_pseudouser(user_id)
}

/// The server a pseudouser stands for, or `None` if `user_id` is not a pseudouser.
pub fn pseudouser_server(user_id: &str) -> Option<&str> {
    if ids::is_server_pseudouser(user_id) {
        user_id.strip_prefix("@:")
    } else {
        None
    }
}

/// The server of any valid user ID (ordinary or pseudouser): everything after the first `:`.
pub fn server_of_user(user_id: &str) -> Option<&str> {
    user_server(user_id)
}

/// The join rule the room's auth rules apply: `content.join_rule` of `m.room.join_rules`, or
/// `invite` when the event or the key is missing (as the spec and Synapse read it); `None` when it
/// is present but not a string (no rule the auth rules know).
pub(crate) fn effective_join_rule(state: &RoomState) -> Option<&str> {
    match state.content("m.room.join_rules", "") {
        None => Some("invite"),
        Some(c) => match c.get("join_rule") {
            None => Some("invite"),
            Some(v) => v.as_str(),
        },
    }
}

/// The checks of the room's auth rules that any membership of a user of `server` must pass: the
/// state has an `m.room.create` of a known room version, and `m.federate` is not false unless
/// `server` created the room. `Ok` with the room version, or `Err` with the refusal.
pub(crate) fn room_admits_server(
    state: &RoomState,
    server: &str,
) -> std::result::Result<RoomVersion, Decision> {
    let Some(create) = state.get("m.room.create", "") else {
        return Err(Decision::deny(
            ReasonCode::UnknownRoomVersion,
            "the state has no m.room.create event",
        ));
    };
    let version = match RoomVersion::from_create_event(&create.event) {
        Ok(v) => v,
        Err(e) => {
            return Err(Decision::deny(
                ReasonCode::UnknownRoomVersion,
                format!("the room's auth rules are unknown: {}", e.message()),
            ));
        }
    };
    let creator_server = create.sender().and_then(user_server);
    let federates = matches!(
        create.content().get("m.federate"),
        None | Some(Value::Bool(true))
    );
    if !federates && creator_server != Some(server) {
        return Err(Decision::deny(
            ReasonCode::RoomNotFederated,
            format!(
                "the room has m.federate false and {server} is not the creator's server ({})",
                creator_server.unwrap_or("unknown")
            ),
        ));
    }
    Ok(version)
}

/// What the room's own authorization rules say about `server`'s user `target` joining, on the
/// current state, before any MSC1777 rule: `Err` with the refusal, or `Ok` with why it passes.
/// Conservative: a `restricted` join without an invite needs an authorising user's signature in
/// the event, which the state alone cannot show, so it is refused here.
pub(crate) fn auth_rules_allow_join(
    state: &RoomState,
    target: &str,
    server: &str,
) -> std::result::Result<String, Decision> {
    let version = room_admits_server(state, server)?;
    let own = state.membership(target);
    if own == Some("ban") {
        return Err(Decision::deny(
            ReasonCode::PseudouserBanned,
            format!("{target} is banned from the room"),
        ));
    }
    let Some(rule) = effective_join_rule(state).filter(|r| version.knows_join_rule(r)) else {
        let shown = state
            .content("m.room.join_rules", "")
            .and_then(|c| c.get("join_rule"))
            .map(crate::decision::shown_value)
            .unwrap_or_default();
        return Err(Decision::deny(
            ReasonCode::UnknownJoinRule,
            format!(
                "room version {version}'s auth rules do not know the join rule {shown}: they \
                 refuse every join"
            ),
        ));
    };
    match (rule, own) {
        ("private", _) => Err(Decision::deny(
            ReasonCode::UnknownJoinRule,
            "the join rule is private: the auth rules refuse every join",
        )),
        ("public", _) => Ok("the room is public".to_owned()),
        // Only reached in a version that knows `peekable` (the members rules): it admits joins
        // as `public` does (rule a).
        ("peekable", _) => Ok("the room is peekable, which admits joins as public does".to_owned()),
        (_, Some("join")) => Ok(format!("{target} is already joined")),
        (_, Some("invite")) => Ok(format!("{target} is invited")),
        (rule, _) => Err(Decision::deny(
            ReasonCode::NotInvited,
            format!("the join rule is {rule} and {target} itself is neither invited nor joined"),
        )),
    }
}

/// Whether a pseudouser may join, on the room's current state. Allowed only when both hold:
/// - **MSC1777**: the join rule is `peekable` (only in a room with the members rules,
///   [`crate::auth::members`]), or a (non-pseudo) user of that server is currently joined or
///   invited;
/// - **the room's own auth rules**, as Synapse applies them: not banned; `m.federate` not false
///   unless the server created the room; a join rule the room version knows (`peekable` is known
///   to none of versions 1–12, so Synapse refuses every join, even of members, and so does this);
///   a public room, or the pseudouser *itself* invited or already joined. A user of its server
///   being joined is not enough in an invite-only room: Synapse refuses that join.
///
/// So this never says "allow" where Synapse's event auth refuses the same join on the same state.
pub fn check_pseudouser_join(state: &RoomState, pseudouser: &str) -> Decision {
    let Some(server) = pseudouser_server(pseudouser) else {
        return Decision::deny(
            ReasonCode::NotAPseudouser,
            format!("{pseudouser} is not a server pseudouser @:server"),
        );
    };
    if state.membership(pseudouser) == Some("ban") {
        return Decision::deny(
            ReasonCode::PseudouserBanned,
            format!("{pseudouser} is banned from the room"),
        );
    }
    let auth = match auth_rules_allow_join(state, pseudouser, server) {
        Ok(why) => why,
        Err(refusal) => return refusal,
    };
    // `peekable` got past the auth rules only in a version that defines it (MSC1777).
    if effective_join_rule(state) == Some(JOIN_RULE_PEEKABLE) {
        return Decision::allow(
            ReasonCode::PeekableRoom,
            format!("the join rule is peekable, so {pseudouser} may join"),
        );
    }
    let mut invited: Option<&str> = None;
    for (user, membership) in state.memberships() {
        if is_pseudouser(user) || user_server(user) != Some(server) {
            continue;
        }
        match membership {
            "join" => {
                return Decision::allow(
                    ReasonCode::ServerHasJoinedUser,
                    format!("{user} of {server} is joined, and {auth}"),
                );
            }
            "invite" if invited.is_none() => invited = Some(user),
            _ => {}
        }
    }
    if let Some(user) = invited {
        return Decision::allow(
            ReasonCode::ServerHasInvitedUser,
            format!("{user} of {server} is invited, and {auth}"),
        );
    }
    Decision::deny(
        ReasonCode::NoUserOfServer,
        format!("no user of {server} is joined or invited (MSC1777), although {auth}"),
    )
}

/// The operator's deny lists: servers (globs, `*` and `?`, matched against the server name with
/// any port removed and ASCII case ignored, like `m.room.server_acl`) and room IDs (exact).
///
/// They apply in both directions: this server never peeks into a denied room or a room whose ID
/// names a denied server, and refuses pseudouser joins from denied servers in its own rooms.
#[derive(Debug, Clone, Default)]
pub struct OperatorPolicy {
    denied_servers: Vec<Glob>,
    denied_rooms: std::collections::BTreeSet<String>,
}

impl OperatorPolicy {
    /// No deny lists.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a server glob to the deny list (`M_TOO_LARGE` above
    /// [`MAX_PATTERN_BYTES`](crate::subscription::glob::MAX_PATTERN_BYTES)).
    pub fn deny_server(&mut self, glob: &str) -> Result<()> {
        self.denied_servers.push(Glob::new(glob)?);
        Ok(())
    }

    /// Adds a room ID to the deny list.
    pub fn deny_room(&mut self, room_id: &str) {
        self.denied_rooms.insert(room_id.to_owned());
    }

    /// Why `server` is denied, if it is. With a non-empty deny list, a name too long to be a
    /// server name is denied too (no glob can match it).
    pub fn server_denied(&self, server: &str) -> Option<Decision> {
        let host = crate::subscription::acl::strip_port(server);
        if crate::subscription::glob::subject_too_long(host) && !self.denied_servers.is_empty() {
            return Some(Decision::deny(
                ReasonCode::ServerDeniedByOperator,
                "the name is too long to be a server name and the operator denies servers",
            ));
        }
        self.denied_servers
            .iter()
            .find(|g| g.matches(host))
            .map(|g| {
                Decision::deny(
                    ReasonCode::ServerDeniedByOperator,
                    format!(
                        "server {server} matches the operator's deny entry {}",
                        g.shown()
                    ),
                )
            })
    }

    /// Why `room_id` is denied, if it is (the room itself, or the server in a `!x:server` room ID).
    pub fn room_denied(&self, room_id: &str) -> Option<Decision> {
        if self.denied_rooms.contains(room_id) {
            return Some(Decision::deny(
                ReasonCode::RoomDeniedByOperator,
                format!("room {room_id} is on the operator's deny list"),
            ));
        }
        let room = RoomId::parse(room_id).ok()?;
        self.server_denied(room.server_name_str()?)
    }

    /// [`check_pseudouser_join`] for a remote pseudouser joining one of this server's rooms, with
    /// the deny lists applied first.
    pub fn check_remote_pseudouser_join(
        &self,
        room_id: &str,
        state: &RoomState,
        pseudouser: &str,
    ) -> Decision {
        if let Some(server) = pseudouser_server(pseudouser) {
            if let Some(d) = self.server_denied(server) {
                return d;
            }
        }
        if let Some(d) = self.denied_rooms.contains(room_id).then(|| {
            Decision::deny(
                ReasonCode::RoomDeniedByOperator,
                format!("room {room_id} is on the operator's deny list"),
            )
        }) {
            return d;
        }
        check_pseudouser_join(state, pseudouser)
    }
}
