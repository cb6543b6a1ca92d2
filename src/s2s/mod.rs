//! Server-to-server rooms ([MSC3348](https://github.com/matrix-org/matrix-spec-proposals/pull/3348),
//! seed `msc3348-server-server-rooms.md`; DESIGN.md §4).
//!
//! - Room type `m.s2s` (unstable `support.feline.s2s`) in the create event: [`is_s2s_create_content`].
//! - Which rooms a server user may be in: [`ServerUserPolicy`] and the single authorization call
//!   [`check_server_user_membership`] for any membership of a server user.
//! - The initial state a server needs to create an s2s room with a peer: [`initial_state`].
//! - The upgrade negotiation: [`negotiation`].

pub mod negotiation;

use crate::decision::{Decision, ReasonCode};
use crate::error::{Error, Result};
use crate::json::{Object, Value};
use crate::pseudouser::{
    auth_rules_allow_join, check_pseudouser_join, effective_join_rule, pseudouser_id,
    pseudouser_server, room_admits_server,
};
use crate::room_state::RoomState;
use crate::room_version::RoomVersion;

/// The stable room type.
pub const ROOM_TYPE: &str = "m.s2s";
/// The unstable room type (seed's "Unstable prefix").
pub const ROOM_TYPE_UNSTABLE: &str = "support.feline.s2s";

/// True if a create event's content has an s2s room type (stable or unstable).
pub fn is_s2s_create_content(content: &Object) -> bool {
    matches!(
        content.get("type").and_then(Value::as_str),
        Some(ROOM_TYPE | ROOM_TYPE_UNSTABLE)
    )
}

/// True if the room's create event (in `state`) makes it an s2s room.
pub fn is_s2s_room(state: &RoomState) -> bool {
    state
        .content("m.room.create", "")
        .is_some_and(is_s2s_create_content)
}

/// Where server users may be members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerUserPolicy {
    /// Seed 3348: a server user outside an s2s room is ill-formed.
    S2sOnly,
    /// Seed 1777: join rule `peekable`, or a user of that server joined or invited.
    Peeking,
    /// Default: allowed if either of the above allows it.
    #[default]
    Either,
}

impl ServerUserPolicy {
    /// Parses `s2s_only`, `peeking` or `either` (as written in configuration).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "s2s_only" => Ok(ServerUserPolicy::S2sOnly),
            "peeking" => Ok(ServerUserPolicy::Peeking),
            "either" => Ok(ServerUserPolicy::Either),
            other => Err(Error::invalid_param(format!(
                "server user policy must be \"s2s_only\", \"peeking\" or \"either\", not {other:?}"
            ))),
        }
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerUserPolicy::S2sOnly => "s2s_only",
            ServerUserPolicy::Peeking => "peeking",
            ServerUserPolicy::Either => "either",
        }
    }
}

/// The one authorization call for a server user's membership change: `membership` is the new
/// membership of `server_user` in the room whose current state is `state`.
///
/// What it decides, under every policy:
/// - `leave` and `ban` are allowed (getting a server user out is never ill-formed; who may kick
///   or ban is the room's auth rules' business);
/// - a **banned** server user may not join, be invited or knock (`pseudouser_banned`);
/// - any other membership value is refused (`unknown_membership`).
///
/// Then, by policy, for `join`, `invite` and `knock`:
/// - **s2s path** (`s2s_only`, `either`): the room must be an s2s room (`not_s2s_room`) of a
///   known room version (`unknown_room_version`) that federates with the server unless it created
///   the room (`room_not_federated`), and the membership must fit the room's membership state and join rule as the auth rules read them:
///   a join needs an invite or an existing join unless the room is public (`not_invited`; an
///   unknown join rule refuses every join, `unknown_join_rule`); an invite is refused for a
///   server user already joined (`already_in_room`); a knock needs a `knock`/`knock_restricted`
///   join rule the room version knows (`knock_not_allowed`) and a server user neither joined nor
///   invited (`already_in_room`, `already_invited`);
/// - **peeking path** (`peeking`, `either`): a join is [`check_pseudouser_join`] (MSC1777 and
///   the auth rules); an invite or knock of a pseudouser means nothing under MSC1777, which has
///   it join directly (`pseudouser_joins_directly`).
///
/// Under `either` a denial by both paths is reported with the s2s reason first (so
/// `not_s2s_room` shows), and the detail names both rules.
///
/// Left to the room's event auth: who sends the event (a join's sender must be the server user
/// itself, an inviter must be joined with enough power), power levels, `restricted` allow rules
/// and third-party invites, the creator's first join. Call this in addition to event auth, never
/// instead of it.
pub fn check_server_user_membership(
    state: &RoomState,
    server_user: &str,
    membership: &str,
    policy: ServerUserPolicy,
) -> Decision {
    let Some(server) = pseudouser_server(server_user) else {
        return Decision::deny(
            ReasonCode::NotAPseudouser,
            format!("{server_user} is not a server user @:server"),
        );
    };
    if matches!(membership, "leave" | "ban") {
        return Decision::allow(
            ReasonCode::LeavingAlwaysAllowed,
            format!("{membership} of {server_user} is always allowed"),
        );
    }
    if !matches!(membership, "join" | "invite" | "knock") {
        return Decision::deny(
            ReasonCode::UnknownMembership,
            format!("{membership:?} is not a membership (join, invite, knock, leave or ban)"),
        );
    }
    if state.membership(server_user) == Some("ban") {
        return Decision::deny(
            ReasonCode::PseudouserBanned,
            format!("{server_user} is banned from the room, so it may not {membership}"),
        );
    }
    let s2s = || s2s_membership(state, server_user, server, membership);
    let peeking = || {
        if membership == "join" {
            check_pseudouser_join(state, server_user)
        } else {
            Decision::deny(
                ReasonCode::PseudouserJoinsDirectly,
                format!(
                    "{membership} of a pseudouser has no meaning under MSC1777: it joins directly"
                ),
            )
        }
    };
    match policy {
        ServerUserPolicy::S2sOnly => s2s(),
        ServerUserPolicy::Peeking => peeking(),
        ServerUserPolicy::Either => {
            let a = s2s();
            if a.is_allowed() {
                return a;
            }
            let b = peeking();
            if b.is_allowed() {
                return b;
            }
            Decision::deny(
                a.reason,
                format!(
                    "{}: {}; and under MSC1777, {}: {}",
                    a.reason.as_str(),
                    a.detail,
                    b.reason.as_str(),
                    b.detail
                ),
            )
        }
    }
}

/// The s2s path of [`check_server_user_membership`] for `join`, `invite` and `knock`.
fn s2s_membership(
    state: &RoomState,
    server_user: &str,
    server: &str,
    membership: &str,
) -> Decision {
    if !is_s2s_room(state) {
        return Decision::deny(
            ReasonCode::NotS2sRoom,
            "a server user outside an s2s room is ill-formed (MSC3348)",
        );
    }
    let version = match room_admits_server(state, server) {
        Ok(v) => v,
        Err(refusal) => return refusal,
    };
    let own = state.membership(server_user);
    match membership {
        "join" => match auth_rules_allow_join(state, server_user, server) {
            Ok(why) => Decision::allow(
                ReasonCode::S2sRoom,
                format!("the room is a server-to-server room and {why}"),
            ),
            Err(refusal) => refusal,
        },
        "invite" => {
            if own == Some("join") {
                Decision::deny(
                    ReasonCode::AlreadyInRoom,
                    format!("{server_user} is already joined, so it cannot be invited"),
                )
            } else {
                Decision::allow(
                    ReasonCode::S2sRoom,
                    format!("the room is a server-to-server room; {server_user} may be invited"),
                )
            }
        }
        _ => {
            let rule = effective_join_rule(state);
            let knockable = rule.is_some_and(|r| {
                matches!(r, "knock" | "knock_restricted") && version.knows_join_rule(r)
            });
            if !knockable {
                return Decision::deny(
                    ReasonCode::KnockNotAllowed,
                    format!(
                        "the join rule {} does not allow knocking in this room version",
                        rule.unwrap_or("(not a string)")
                    ),
                );
            }
            match own {
                Some("join") => Decision::deny(
                    ReasonCode::AlreadyInRoom,
                    format!("{server_user} is already joined, so it cannot knock"),
                ),
                Some("invite") => Decision::deny(
                    ReasonCode::AlreadyInvited,
                    format!("{server_user} is already invited, so it cannot knock"),
                ),
                _ => Decision::allow(
                    ReasonCode::S2sRoom,
                    format!("the room is a server-to-server room and {server_user} may knock"),
                ),
            }
        }
    }
}

/// One event template of the initial state: the homeserver fills in `room_id` (v1–11),
/// `auth_events`, `prev_events`, `depth`, `origin_server_ts`, hashes and signatures.
fn template(event_type: &str, state_key: &str, sender: &str, content: Object) -> Object {
    let mut o = Object::new();
    o.insert("type".into(), Value::from(event_type));
    o.insert("state_key".into(), Value::from(state_key));
    o.insert("sender".into(), Value::from(sender));
    o.insert("content".into(), Value::Object(content));
    o
}

/// The initial state, in sending order, for `local_server` to create an s2s room with
/// `peer_server`: create (room type, room version; in v12+ the peer's pseudouser as an
/// `additional_creators` entry), the local pseudouser's join, power levels (both pseudousers at
/// 100 before v12, where creators have power by the create event), join rules `invite`, history
/// visibility `shared`, guest access `forbidden`, and the invite of the peer's pseudouser.
///
/// `unstable` selects `support.feline.s2s` for rooms created before the proposal lands.
pub fn initial_state(
    local_server: &str,
    peer_server: &str,
    room_version: &str,
    unstable: bool,
) -> Result<Vec<Object>> {
    let me = pseudouser_id(local_server)?;
    let peer = pseudouser_id(peer_server)?;
    if me == peer {
        return Err(Error::invalid_param(
            "an s2s room needs two different servers",
        ));
    }
    // v12+ (MSC4289): creators hold power through the create event, not power levels, and the
    // room ID is the create event's hash; unknown versions are refused rather than guessed at.
    let version = RoomVersion::from_id(room_version)?;
    let v12 = version.privileged_creators;
    let mut create = Object::new();
    create.insert(
        "type".into(),
        Value::from(if unstable {
            ROOM_TYPE_UNSTABLE
        } else {
            ROOM_TYPE
        }),
    );
    create.insert("room_version".into(), Value::from(room_version));
    if v12 {
        create.insert(
            "additional_creators".into(),
            Value::Array(vec![Value::from(peer.as_str())]),
        );
    }
    let mut join = Object::new();
    join.insert("membership".into(), Value::from("join"));
    let mut users = Object::new();
    if !v12 {
        users.insert(me.clone(), Value::Int(100));
        users.insert(peer.clone(), Value::Int(100));
    }
    let mut power = Object::new();
    power.insert("users".into(), Value::Object(users));
    power.insert("users_default".into(), Value::Int(0));
    power.insert("events_default".into(), Value::Int(0));
    power.insert("state_default".into(), Value::Int(100));
    for key in ["ban", "kick", "redact", "invite"] {
        power.insert(key.into(), Value::Int(100));
    }
    let simple = |k: &str, v: &str| {
        let mut o = Object::new();
        o.insert(k.into(), Value::from(v));
        o
    };
    let mut invite = Object::new();
    invite.insert("membership".into(), Value::from("invite"));
    Ok(vec![
        template("m.room.create", "", &me, create),
        template("m.room.member", &me, &me, join),
        template("m.room.power_levels", "", &me, power),
        template("m.room.join_rules", "", &me, simple("join_rule", "invite")),
        template(
            "m.room.history_visibility",
            "",
            &me,
            simple("history_visibility", "shared"),
        ),
        template(
            "m.room.guest_access",
            "",
            &me,
            simple("guest_access", "forbidden"),
        ),
        template("m.room.member", &peer, &me, invite),
    ])
}
