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
use crate::pseudouser::{check_pseudouser_join, pseudouser_id, pseudouser_server};
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
/// `leave` and `ban` are always allowed by these rules (getting a server user out is never
/// ill-formed). `join`, `invite` and `knock` (and anything else) are judged by the policy.
pub fn check_server_user_membership(
    state: &RoomState,
    server_user: &str,
    membership: &str,
    policy: ServerUserPolicy,
) -> Decision {
    if pseudouser_server(server_user).is_none() {
        return Decision::deny(
            ReasonCode::NotAPseudouser,
            format!("{server_user} is not a server user @:server"),
        );
    }
    if matches!(membership, "leave" | "ban") {
        return Decision::allow(
            ReasonCode::LeavingAlwaysAllowed,
            format!("{membership} of {server_user} is always allowed"),
        );
    }
    let s2s = || {
        if is_s2s_room(state) {
            Decision::allow(ReasonCode::S2sRoom, "the room is a server-to-server room")
        } else {
            Decision::deny(
                ReasonCode::NotS2sRoom,
                "a server user outside an s2s room is ill-formed (MSC3348)",
            )
        }
    };
    let peeking = || {
        if membership == "join" {
            check_pseudouser_join(state, server_user)
        } else {
            // Invites and knocks of a pseudouser have no meaning under MSC1777: it joins directly.
            Decision::deny(
                ReasonCode::NoUserOfServer,
                format!("{membership} of a pseudouser has no meaning under MSC1777"),
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
            Decision::deny(b.reason, format!("{}; and {}", a.detail, b.detail))
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
