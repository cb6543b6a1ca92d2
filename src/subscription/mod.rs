//! Subscription-based authorization of servers (the MSC4099 draft as in the seed
//! `msc4099-server-subscription-authorization.md`; DESIGN.md §5).
//!
//! - [`knock`]: the `m.server.knock` EDU, parsed and validated.
//! - `m.server.is_able_to_subscribe` (state key: server name, `{"is_able_to_subscribe": bool}`):
//!   [`able_to_subscribe_content`], [`parse_able_to_subscribe`], [`is_able_to_subscribe`].
//! - `m.server.subscription` (state key: server name): [`check_subscription_event`] — only that
//!   server's users may send it, and only while the server is able to subscribe.
//! - [`JoinGate`]: gating is opt-in per room by local configuration; in a gated room a join from a
//!   server is allowed only while that server is able to subscribe.
//! - [`decision`]: whether to accept a knock (server ACL, policy lists, the homeserver's own
//!   research, a moderator), answering denied and unknown rooms identically.
//! - [`glob`] and [`acl`]: the glob matcher and `m.room.server_acl` evaluation.
//!
//! Decisions where the seed is silent: `is_able_to_subscribe` must be a boolean (anything else is
//! malformed and counts as not able); a missing event means not able; the server named in a state
//! key is compared exactly (case-sensitive, port included), as user IDs carry it.

pub mod acl;
pub mod decision;
pub mod glob;
pub mod knock;

use std::collections::BTreeSet;

use crate::decision::{Decision, ReasonCode};
use crate::error::{Error, Result};
use crate::json::{Object, Value};
use crate::room_state::{RoomState, is_server_name, user_server};

/// The state event type that grants the capability.
pub const ABLE_TO_SUBSCRIBE: &str = "m.server.is_able_to_subscribe";
/// The state event type that uses it.
pub const SUBSCRIPTION: &str = "m.server.subscription";

/// The content `{"is_able_to_subscribe": able}` (state key: the server name).
pub fn able_to_subscribe_content(able: bool) -> Object {
    let mut o = Object::new();
    o.insert("is_able_to_subscribe".into(), Value::Bool(able));
    o
}

/// Reads an `m.server.is_able_to_subscribe` content: the field must be present and a boolean.
pub fn parse_able_to_subscribe(content: &Object) -> Result<bool> {
    match content.get("is_able_to_subscribe") {
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::bad_json(format!(
            "content.is_able_to_subscribe must be a boolean, not {}",
            other.type_name()
        ))),
        None => Err(Error::missing_param(
            "content.is_able_to_subscribe is missing",
        )),
    }
}

/// Whether the room currently says `server` is able to subscribe (a malformed event says no).
pub fn is_able_to_subscribe(state: &RoomState, server: &str) -> bool {
    state
        .content(ABLE_TO_SUBSCRIBE, server)
        .is_some_and(|c| parse_able_to_subscribe(c) == Ok(true))
}

/// Checks an `m.server.subscription` event against the current state: the state key names a
/// server, the sender is a user of that server, and the room says that server is able to
/// subscribe.
pub fn check_subscription_event(state: &RoomState, event: &Object) -> Decision {
    if event.get("type").and_then(Value::as_str) != Some(SUBSCRIPTION) {
        return Decision::deny(
            ReasonCode::MalformedEvent,
            format!("type must be {SUBSCRIPTION}"),
        );
    }
    let Some(server) = event.get("state_key").and_then(Value::as_str) else {
        return Decision::deny(
            ReasonCode::MalformedEvent,
            "state_key must be a string (a server name)",
        );
    };
    if !is_server_name(server) {
        return Decision::deny(
            ReasonCode::MalformedEvent,
            format!(
                "state_key {} is not a server name",
                crate::decision::shown_value(&Value::from(server))
            ),
        );
    }
    let Some(sender) = event.get("sender").and_then(Value::as_str) else {
        return Decision::deny(
            ReasonCode::MalformedEvent,
            "sender must be a string (a user ID)",
        );
    };
    if user_server(sender) != Some(server) {
        return Decision::deny(
            ReasonCode::WrongSenderServer,
            format!(
                "{} is not a user of {server}, the server in the state key",
                crate::decision::shortened(sender)
            ),
        );
    }
    if !is_able_to_subscribe(state, server) {
        return Decision::deny(
            ReasonCode::NotAbleToSubscribe,
            format!("the room does not say {server} is able to subscribe"),
        );
    }
    Decision::allow(
        ReasonCode::AbleToSubscribe,
        format!("{server} is able to subscribe and {sender} is its user"),
    )
}

/// Local configuration: which rooms are gated.
#[derive(Debug, Clone, Default)]
pub struct JoinGate {
    gated: BTreeSet<String>,
}

impl JoinGate {
    /// No room gated.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gates `room_id`.
    pub fn gate(&mut self, room_id: &str) {
        self.gated.insert(room_id.to_owned());
    }

    /// Un-gates `room_id`.
    pub fn ungate(&mut self, room_id: &str) {
        self.gated.remove(room_id);
    }

    /// True if `room_id` is gated.
    pub fn is_gated(&self, room_id: &str) -> bool {
        self.gated.contains(room_id)
    }

    /// Whether a join from `server` into `room_id` may proceed (e.g. answering `make_join` or
    /// accepting `send_join`): always in an ungated room; in a gated room only while the room
    /// says the server is able to subscribe.
    pub fn check_join(&self, room_id: &str, state: &RoomState, server: &str) -> Decision {
        if !self.is_gated(room_id) {
            return Decision::allow(ReasonCode::RoomNotGated, format!("{room_id} is not gated"));
        }
        if is_able_to_subscribe(state, server) {
            Decision::allow(
                ReasonCode::AbleToSubscribe,
                format!("{server} is able to subscribe to {room_id}"),
            )
        } else {
            Decision::deny(
                ReasonCode::NotAbleToSubscribe,
                format!("{room_id} is gated and {server} is not able to subscribe"),
            )
        }
    }
}
