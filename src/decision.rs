//! Decisions with reasons: what every membership, peeking, s2s and knock check returns.
//!
//! A check never answers a bare `bool`. It answers a [`Decision`]: a [`Verdict`] (allow, deny,
//! or pending for a moderator), a stable machine-readable [`ReasonCode`] and a sentence for a
//! person. Homeservers log it, moderators read it, and the C and Python layers receive it as JSON
//! through [`Decision::to_json`].

use crate::json::{Object, Value};

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The action is allowed.
    Allow,
    /// The action is refused.
    Deny,
    /// Nothing is decided yet: a moderator (or a later event) decides.
    Pending,
}

impl Verdict {
    /// `"allow"`, `"deny"` or `"pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Pending => "pending",
        }
    }
}

/// Why a check concluded what it did. The strings from [`ReasonCode::as_str`] are stable: new
/// codes may be added, existing ones are never renamed or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonCode {
    /// `peekable_room`: the join rule is `peekable` (MSC1777). Produced only in rooms with the
    /// members rules ([`crate::auth::members`]); standard versions refuse every join under it.
    PeekableRoom,
    /// `server_has_joined_user`: a user of that server is joined to the room.
    ServerHasJoinedUser,
    /// `server_has_invited_user`: a user of that server is invited to the room.
    ServerHasInvitedUser,
    /// `no_user_of_server`: a pseudouser's join, and no user of that server is joined or invited
    /// (MSC1777).
    NoUserOfServer,
    /// `pseudouser_banned`: the pseudouser itself is banned from the room.
    PseudouserBanned,
    /// `not_a_pseudouser`: the user ID is not a server pseudouser `@:server`.
    NotAPseudouser,
    /// `server_denied_by_operator`: the operator's deny list names that server.
    ServerDeniedByOperator,
    /// `room_denied_by_operator`: the operator's deny list names that room.
    RoomDeniedByOperator,
    /// `leaving_always_allowed`: leaving (or being removed) needs no permission from these rules.
    LeavingAlwaysAllowed,
    /// `s2s_room`: the room's create event has the s2s room type (MSC3348).
    S2sRoom,
    /// `not_s2s_room`: policy `s2s_only` and the room is not an s2s room.
    NotS2sRoom,
    /// `peek_requested`: a local user asked to peek a peekable room the server is not in.
    PeekRequested,
    /// `already_in_room`: the server already takes part in the room (user or pseudouser).
    AlreadyInRoom,
    /// `join_in_progress`: a pseudouser join was already advised and is under way.
    JoinInProgress,
    /// `room_not_peekable`: the room is not peekable, so the pseudouser must not join to peek.
    RoomNotPeekable,
    /// `remote_invite_is_no_reason`: a remote invite alone never makes the pseudouser join.
    RemoteInviteIsNoReason,
    /// `no_local_interest`: no local peeker or member is left, so the pseudouser leaves.
    NoLocalInterest,
    /// `local_interest_remains`: peekers or members remain, so the pseudouser stays.
    LocalInterestRemains,
    /// `nothing_to_do`: the change does not affect what the server should do.
    NothingToDo,
    /// `able_to_subscribe`: the room says the server is able to subscribe (MSC4099).
    AbleToSubscribe,
    /// `not_able_to_subscribe`: the room does not (or no longer) say so.
    NotAbleToSubscribe,
    /// `room_not_gated`: the room is not gated by local configuration.
    RoomNotGated,
    /// `wrong_sender_server`: the sender is not a user of the server named in the state key.
    WrongSenderServer,
    /// `malformed_event`: the event does not have the shape the rule needs.
    MalformedEvent,
    /// `server_acl_denied`: the room's `m.room.server_acl` refuses that server.
    ServerAclDenied,
    /// `server_acl_allowed`: the room's `m.room.server_acl` (or its absence) allows that server.
    ServerAclAllowed,
    /// `ip_literal_denied`: `m.room.server_acl` has `allow_ip_literals: false`.
    IpLiteralDenied,
    /// `policy_ban`: a policy list rule with `m.ban` matches the server.
    PolicyBan,
    /// `research_denied`: the homeserver's own research refused the server.
    ResearchDenied,
    /// `research_accepted`: the homeserver's own research accepted the server.
    ResearchAccepted,
    /// `unknown_room`: the room is unknown (answered exactly like a denial).
    UnknownRoom,
    /// `awaiting_moderator`: the knock is valid and waits for a moderator.
    AwaitingModerator,
    /// `auto_accepted`: the knock passed every check and the room accepts automatically.
    AutoAccepted,
    /// `not_a_local_user`: the peek request does not come from a (non-pseudo) user of this server.
    NotALocalUser,
    /// `not_invited`: the join rule needs an invite (or membership), and the server user itself
    /// is neither invited nor joined: the room's auth rules refuse the join.
    NotInvited,
    /// `unknown_join_rule`: the room version's auth rules do not know the join rule (MSC1777's
    /// `peekable` in any standard version), or it is `private`: they refuse every join.
    UnknownJoinRule,
    /// `unknown_room_version`: the state has no `m.room.create`, or its room version is unknown:
    /// nothing can be allowed.
    UnknownRoomVersion,
    /// `room_not_federated`: the create event has `m.federate` other than `true` and the server is
    /// not the creator's.
    RoomNotFederated,
    /// `pseudouser_joins_directly`: under MSC1777 a pseudouser joins directly; inviting it or
    /// having it knock means nothing.
    PseudouserJoinsDirectly,
    /// `knock_not_allowed`: the join rule (in that room version) does not allow knocking.
    KnockNotAllowed,
    /// `already_invited`: the server user is already invited (a knock is refused).
    AlreadyInvited,
    /// `unknown_membership`: the membership is not `join`, `invite`, `knock`, `leave` or `ban`.
    UnknownMembership,
    /// `auth_allowed`: the event passes the room version's authorization rules.
    AuthAllowed,
    /// `create_event_invalid`: the `m.room.create` event breaks authorization rule 1.
    CreateEventInvalid,
    /// `auth_events_invalid`: the event's `auth_events` are not what the auth events selection
    /// names (duplicates, extras, another room, the create event missing or, in v12, listed).
    AuthEventsInvalid,
    /// `sender_not_joined`: the sender is not joined to the room.
    SenderNotJoined,
    /// `insufficient_power`: the sender's power level is too low for the event.
    InsufficientPower,
    /// `membership_not_allowed`: the membership rules refuse the change.
    MembershipNotAllowed,
    /// `no_additions`: the room has none of the members rules (a standard version without the
    /// marker), so [`crate::auth::members`] adds nothing to the version's own rules.
    NoAdditions,
    /// `not_sent_by_pseudouser`: the event may be sent only by the server pseudouser it concerns.
    NotSentByPseudouser,
}

impl ReasonCode {
    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::PeekableRoom => "peekable_room",
            ReasonCode::ServerHasJoinedUser => "server_has_joined_user",
            ReasonCode::ServerHasInvitedUser => "server_has_invited_user",
            ReasonCode::NoUserOfServer => "no_user_of_server",
            ReasonCode::PseudouserBanned => "pseudouser_banned",
            ReasonCode::NotAPseudouser => "not_a_pseudouser",
            ReasonCode::ServerDeniedByOperator => "server_denied_by_operator",
            ReasonCode::RoomDeniedByOperator => "room_denied_by_operator",
            ReasonCode::LeavingAlwaysAllowed => "leaving_always_allowed",
            ReasonCode::S2sRoom => "s2s_room",
            ReasonCode::NotS2sRoom => "not_s2s_room",
            ReasonCode::PeekRequested => "peek_requested",
            ReasonCode::AlreadyInRoom => "already_in_room",
            ReasonCode::JoinInProgress => "join_in_progress",
            ReasonCode::RoomNotPeekable => "room_not_peekable",
            ReasonCode::RemoteInviteIsNoReason => "remote_invite_is_no_reason",
            ReasonCode::NoLocalInterest => "no_local_interest",
            ReasonCode::LocalInterestRemains => "local_interest_remains",
            ReasonCode::NothingToDo => "nothing_to_do",
            ReasonCode::AbleToSubscribe => "able_to_subscribe",
            ReasonCode::NotAbleToSubscribe => "not_able_to_subscribe",
            ReasonCode::RoomNotGated => "room_not_gated",
            ReasonCode::WrongSenderServer => "wrong_sender_server",
            ReasonCode::MalformedEvent => "malformed_event",
            ReasonCode::ServerAclDenied => "server_acl_denied",
            ReasonCode::ServerAclAllowed => "server_acl_allowed",
            ReasonCode::IpLiteralDenied => "ip_literal_denied",
            ReasonCode::PolicyBan => "policy_ban",
            ReasonCode::ResearchDenied => "research_denied",
            ReasonCode::ResearchAccepted => "research_accepted",
            ReasonCode::UnknownRoom => "unknown_room",
            ReasonCode::AwaitingModerator => "awaiting_moderator",
            ReasonCode::AutoAccepted => "auto_accepted",
            ReasonCode::NotALocalUser => "not_a_local_user",
            ReasonCode::NotInvited => "not_invited",
            ReasonCode::UnknownJoinRule => "unknown_join_rule",
            ReasonCode::UnknownRoomVersion => "unknown_room_version",
            ReasonCode::RoomNotFederated => "room_not_federated",
            ReasonCode::PseudouserJoinsDirectly => "pseudouser_joins_directly",
            ReasonCode::KnockNotAllowed => "knock_not_allowed",
            ReasonCode::AlreadyInvited => "already_invited",
            ReasonCode::UnknownMembership => "unknown_membership",
            ReasonCode::AuthAllowed => "auth_allowed",
            ReasonCode::CreateEventInvalid => "create_event_invalid",
            ReasonCode::AuthEventsInvalid => "auth_events_invalid",
            ReasonCode::SenderNotJoined => "sender_not_joined",
            ReasonCode::InsufficientPower => "insufficient_power",
            ReasonCode::MembershipNotAllowed => "membership_not_allowed",
            ReasonCode::NoAdditions => "no_additions",
            ReasonCode::NotSentByPseudouser => "not_sent_by_pseudouser",
        }
    }
}

/// How many characters of a value taken from room state or an event (a join rule, a policy
/// reason, a state key) a detail quotes: such values may be 64 KiB of hostile text, and a detail
/// is a log line (as [`crate::subscription::glob::Glob::shown`] does for patterns).
pub(crate) const SHOWN_CHARS: usize = 100;

/// `text` cut to its first [`SHOWN_CHARS`] characters, with `…` when cut.
pub(crate) fn shortened(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A JSON value for a detail: a string quoted (Rust escaping), anything else as canonical JSON,
/// either cut to [`SHOWN_CHARS`] characters.
pub(crate) fn shown_value(value: &Value) -> String {
    match value {
        Value::String(s) => match s.char_indices().nth(SHOWN_CHARS) {
            Some((cut, _)) => format!("{:?}…", &s[..cut]),
            None => format!("{s:?}"),
        },
        other => shortened(&other.to_canonical_string()),
    }
}

/// The outcome of a check: verdict, stable reason and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow, deny or pending.
    pub verdict: Verdict,
    /// The machine-readable reason.
    pub reason: ReasonCode,
    /// A sentence for logs and moderators (names the user, server or rule involved).
    pub detail: String,
}

impl Decision {
    /// An allowing decision.
    pub fn allow(reason: ReasonCode, detail: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::Allow,
            reason,
            detail: detail.into(),
        }
    }

    /// A denying decision.
    pub fn deny(reason: ReasonCode, detail: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::Deny,
            reason,
            detail: detail.into(),
        }
    }

    /// A decision left to a moderator.
    pub fn pending(reason: ReasonCode, detail: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::Pending,
            reason,
            detail: detail.into(),
        }
    }

    /// True only for [`Verdict::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// `{"allowed": bool, "verdict": "allow"|"deny"|"pending", "reason": code, "detail": text}`.
    pub fn to_json(&self) -> Value {
        let mut o = Object::new();
        o.insert("allowed".into(), Value::Bool(self.is_allowed()));
        o.insert("verdict".into(), Value::from(self.verdict.as_str()));
        o.insert("reason".into(), Value::from(self.reason.as_str()));
        o.insert("detail".into(), Value::from(self.detail.as_str()));
        Value::Object(o)
    }
}
