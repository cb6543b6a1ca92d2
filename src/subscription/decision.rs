//! Deciding a knock: accept, deny, or leave pending for a moderator (DESIGN.md §5).
//!
//! Order of checks for a knock from `server` on `room_id`:
//! 1. unknown room (the homeserver has no state for it): deny, `unknown_room`;
//! 2. the room's `m.room.server_acl` refuses the server: deny;
//! 3. a policy-list rule (`m.policy.rule.server`, also the older `m.room.rule.server` and
//!    `org.matrix.mjolnir.rule.server` types) with `recommendation: m.ban` whose `entity` glob
//!    matches the server name (port removed, ASCII case ignored, as for ACLs): deny, `policy_ban`;
//! 4. the room already says the server is able to subscribe: allow, nothing to send;
//! 5. the homeserver's own [`KnockResearch`] hook: accept or deny if it has an opinion;
//! 6. otherwise [`KnockMode::AutoAccept`] accepts and [`KnockMode::Moderator`] leaves it pending.
//!
//! **Nothing reveals whether a room exists.** A knock is an EDU: the transaction that carried it
//! is answered the same way whatever the outcome, and the knocking server only ever learns of an
//! acceptance through the `m.server.is_able_to_subscribe` state event the room sends.
//! [`KnockDecision::outward_event`] is therefore the *only* thing a homeserver may act on towards
//! the knocker: `None` for an unknown room, a denial, a pending knock or a knock already
//! accepted, alike. The [`Decision`] inside is for local logs and moderators only.

use crate::decision::{Decision, ReasonCode, Verdict};
use crate::json::{Object, Value};
use crate::room_state::RoomState;

use super::acl::{ServerAcl, strip_port};
use super::glob::{Glob, subject_too_long};
use super::{ABLE_TO_SUBSCRIBE, able_to_subscribe_content, is_able_to_subscribe};

/// State event types that carry server policy rules.
pub const SERVER_RULE_TYPES: [&str; 3] = [
    "m.policy.rule.server",
    "m.room.rule.server",
    "org.matrix.mjolnir.rule.server",
];

/// One server rule from a policy list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRule {
    /// The `entity` glob.
    pub entity: Glob,
    /// `recommendation` (`m.ban` is the one the spec defines).
    pub recommendation: String,
    /// `reason`, if a string.
    pub reason: Option<String>,
}

/// The server rules of one or more policy rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyList {
    rules: Vec<ServerRule>,
}

impl PolicyList {
    /// No rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Collects the server rules from a policy room's state. Rules without a string `entity` and
    /// `recommendation` (a redacted or removed rule, say) are skipped; an entity of any length
    /// an event can carry counts.
    pub fn from_state(state: &RoomState) -> Self {
        let mut list = PolicyList::new();
        for t in SERVER_RULE_TYPES {
            for (_, entry) in state.of_type(t) {
                list.add_content(entry.content());
            }
        }
        list
    }

    /// Adds one rule from an event content; returns whether it was usable.
    pub fn add_content(&mut self, content: &Object) -> bool {
        let (Some(entity), Some(recommendation)) = (
            content.get("entity").and_then(Value::as_str),
            content.get("recommendation").and_then(Value::as_str),
        ) else {
            return false;
        };
        let Ok(entity) = Glob::new(entity) else {
            return false;
        };
        self.rules.push(ServerRule {
            entity,
            recommendation: recommendation.to_owned(),
            reason: content
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
        true
    }

    /// Appends another list's rules.
    pub fn extend(&mut self, other: PolicyList) {
        self.rules.extend(other.rules);
    }

    /// The first ban rule matching `server` (port removed, ASCII case ignored). A name too long
    /// to be a server name ([`subject_too_long`]) matches no glob, so it gets the first ban
    /// rule, if there is one: a list that bans anything refuses it.
    pub fn ban_for(&self, server: &str) -> Option<&ServerRule> {
        let host = strip_port(server);
        let too_long = subject_too_long(host);
        self.rules
            .iter()
            .filter(|r| r.recommendation == "m.ban" || r.recommendation == "org.matrix.mjolnir.ban")
            .find(|r| too_long || r.entity.matches(host))
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True if there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The answer of the homeserver's own research on a knocking server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Research {
    /// Accept, with a reason for the log.
    Accept(String),
    /// Deny, with a reason for the log.
    Deny(String),
    /// No opinion: fall through to the room's mode.
    NoOpinion,
}

/// A hook for the homeserver's own research (reputation services, Draupnir, allow lists…).
pub trait KnockResearch {
    /// Researches `server` knocking on `room_id`.
    fn research(&self, room_id: &str, server: &str) -> Research;
}

impl<F: Fn(&str, &str) -> Research> KnockResearch for F {
    fn research(&self, room_id: &str, server: &str) -> Research {
        self(room_id, server)
    }
}

/// What happens to knocks that pass every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KnockMode {
    /// Accept automatically.
    AutoAccept,
    /// Leave them pending for a moderator (default: accepting servers is a moderation act).
    #[default]
    Moderator,
}

/// The outcome of [`decide_knock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockDecision {
    /// Verdict and reason, for local logs and moderators only.
    pub decision: Decision,
    accept_server: Option<String>,
}

impl KnockDecision {
    /// The only outward effect allowed: the `m.server.is_able_to_subscribe` state event template
    /// (`type`, `state_key`, `content`) to send into the room when a knock is newly accepted;
    /// `None` in every other case, so unknown and denied rooms look the same from outside.
    pub fn outward_event(&self) -> Option<Object> {
        let server = self.accept_server.as_ref()?;
        let mut o = Object::new();
        o.insert("type".into(), Value::from(ABLE_TO_SUBSCRIBE));
        o.insert("state_key".into(), Value::from(server.as_str()));
        o.insert(
            "content".into(),
            Value::Object(able_to_subscribe_content(true)),
        );
        Some(o)
    }

    /// `{"decision": {...}, "outward_event": {...} | null}`.
    pub fn to_json(&self) -> Value {
        let mut o = Object::new();
        o.insert("decision".into(), self.decision.to_json());
        o.insert(
            "outward_event".into(),
            self.outward_event()
                .map(Value::Object)
                .unwrap_or(Value::Null),
        );
        Value::Object(o)
    }
}

/// Decides a knock from `server` on `room_id`. `state` is `None` when the homeserver does not
/// know the room (or does not want to admit it does: pass `None` for rooms it hides).
pub fn decide_knock(
    room_id: &str,
    server: &str,
    state: Option<&RoomState>,
    policies: &PolicyList,
    research: Option<&dyn KnockResearch>,
    mode: KnockMode,
) -> KnockDecision {
    let quiet = |decision: Decision| KnockDecision {
        decision,
        accept_server: None,
    };
    let Some(state) = state else {
        return quiet(Decision::deny(
            ReasonCode::UnknownRoom,
            format!("{room_id} is unknown"),
        ));
    };
    if let Some(acl) = ServerAcl::from_state(state) {
        let d = acl.check(server);
        if d.verdict == Verdict::Deny {
            return quiet(d);
        }
    }
    if let Some(rule) = policies.ban_for(server) {
        let why = rule
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        return quiet(Decision::deny(
            ReasonCode::PolicyBan,
            format!(
                "{server} matches the policy rule entity {}{why}",
                rule.entity.shown()
            ),
        ));
    }
    if is_able_to_subscribe(state, server) {
        return quiet(Decision::allow(
            ReasonCode::AbleToSubscribe,
            format!("{server} is already able to subscribe"),
        ));
    }
    let accepted = |decision: Decision| KnockDecision {
        decision,
        accept_server: Some(server.to_owned()),
    };
    match research.map(|r| r.research(room_id, server)) {
        Some(Research::Deny(why)) => return quiet(Decision::deny(ReasonCode::ResearchDenied, why)),
        Some(Research::Accept(why)) => {
            return accepted(Decision::allow(ReasonCode::ResearchAccepted, why));
        }
        Some(Research::NoOpinion) | None => {}
    }
    match mode {
        KnockMode::AutoAccept => accepted(Decision::allow(
            ReasonCode::AutoAccepted,
            format!("{server} passed every check"),
        )),
        KnockMode::Moderator => quiet(Decision::pending(
            ReasonCode::AwaitingModerator,
            format!("{server} passed every check and waits for a moderator of {room_id}"),
        )),
    }
}
