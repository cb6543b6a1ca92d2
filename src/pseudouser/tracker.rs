//! The peek tracker: from local peek requests, peek ends and membership changes, it says when
//! this server should join a room as its pseudouser and when it should leave (DESIGN.md §3).
//!
//! Rules:
//! - **Join** when a local user asks to peek a room that is `peekable` and the server is not in
//!   it (no local member joined, pseudouser not joined nor already joining), unless the
//!   operator's deny lists name the room or its server.
//! - **Leave** when the pseudouser is in (or joining) and no local peeker and no local joined
//!   member is left.
//! - **Never join because of a remote invite alone** (the lure in the seed's security section):
//!   [`PeekTracker::remote_invite`] and local `invite` memberships never advise a join.
//!
//! The tracker keeps no I/O: the homeserver performs the join or leave it is told to, and reports
//! the resulting membership of `@:local_server` back through [`PeekTracker::membership_changed`]
//! (or [`PeekTracker::join_failed`]). It is in memory; a restarted server rebuilds it from its
//! peeks and memberships.

use std::collections::{BTreeMap, BTreeSet};

use crate::decision::{Decision, ReasonCode};
use crate::error::Result;
use crate::json::{Object, Value};
use crate::room_state::user_server;

use super::{OperatorPolicy, is_pseudouser, pseudouser_id};

/// What the homeserver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeekAction {
    /// Join the room as `@:local_server`.
    JoinAsPseudouser,
    /// Leave the room as `@:local_server`.
    LeaveAsPseudouser,
    /// Nothing to do.
    Nothing,
    /// Refuse the peek request (not peekable, or denied by the operator).
    Refuse,
}

impl PeekAction {
    /// `join_as_pseudouser`, `leave_as_pseudouser`, `nothing` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeekAction::JoinAsPseudouser => "join_as_pseudouser",
            PeekAction::LeaveAsPseudouser => "leave_as_pseudouser",
            PeekAction::Nothing => "nothing",
            PeekAction::Refuse => "refuse",
        }
    }
}

/// An action with the decision that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekAdvice {
    /// What to do.
    pub action: PeekAction,
    /// Why (allow for join/leave/nothing, deny for refuse).
    pub decision: Decision,
}

impl PeekAdvice {
    fn new(action: PeekAction, decision: Decision) -> Self {
        PeekAdvice { action, decision }
    }

    /// `{"action": ..., "decision": {...}}`.
    pub fn to_json(&self) -> Value {
        let mut o = Object::new();
        o.insert("action".into(), Value::from(self.action.as_str()));
        o.insert("decision".into(), self.decision.to_json());
        Value::Object(o)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Presence {
    #[default]
    Out,
    Joining,
    In,
}

#[derive(Debug, Clone, Default)]
struct RoomPeeks {
    peekers: BTreeSet<String>,
    local_members: BTreeSet<String>,
    pseudouser: Presence,
}

impl RoomPeeks {
    fn idle(&self) -> bool {
        self.peekers.is_empty() && self.local_members.is_empty() && self.pseudouser == Presence::Out
    }
}

/// Per-server peek bookkeeping across rooms.
#[derive(Debug, Clone)]
pub struct PeekTracker {
    local_server: String,
    pseudouser: String,
    policy: OperatorPolicy,
    rooms: BTreeMap<String, RoomPeeks>,
}

impl PeekTracker {
    /// A tracker for `local_server` with the operator's deny lists.
    pub fn new(local_server: &str, policy: OperatorPolicy) -> Result<Self> {
        Ok(PeekTracker {
            local_server: local_server.to_owned(),
            pseudouser: pseudouser_id(local_server)?,
            policy,
            rooms: BTreeMap::new(),
        })
    }

    fn is_local_user(&self, user_id: &str) -> bool {
        user_server(user_id) == Some(self.local_server.as_str()) && !is_pseudouser(user_id)
    }

    /// A local user asks to peek `room_id`; `peekable` says whether the room's join rule is
    /// `peekable` (from the state the homeserver knows, e.g. the room directory or stripped state).
    pub fn request_peek(&mut self, room_id: &str, user_id: &str, peekable: bool) -> PeekAdvice {
        if !self.is_local_user(user_id) {
            return PeekAdvice::new(
                PeekAction::Refuse,
                Decision::deny(
                    ReasonCode::NotALocalUser,
                    format!(
                        "{user_id} is not a local user of {} (only they may ask to peek)",
                        self.local_server
                    ),
                ),
            );
        }
        if let Some(d) = self.policy.room_denied(room_id) {
            return PeekAdvice::new(PeekAction::Refuse, d);
        }
        let room = self.rooms.entry(room_id.to_owned()).or_default();
        if !room.local_members.is_empty() || room.pseudouser == Presence::In {
            room.peekers.insert(user_id.to_owned());
            return PeekAdvice::new(
                PeekAction::Nothing,
                Decision::allow(
                    ReasonCode::AlreadyInRoom,
                    format!("{} already takes part in {room_id}", self.local_server),
                ),
            );
        }
        if room.pseudouser == Presence::Joining {
            room.peekers.insert(user_id.to_owned());
            return PeekAdvice::new(
                PeekAction::Nothing,
                Decision::allow(
                    ReasonCode::JoinInProgress,
                    format!("the pseudouser is already joining {room_id}"),
                ),
            );
        }
        if !peekable {
            if room.idle() {
                self.rooms.remove(room_id);
            }
            return PeekAdvice::new(
                PeekAction::Refuse,
                Decision::deny(
                    ReasonCode::RoomNotPeekable,
                    format!(
                        "{room_id} is not peekable and {} is not in it",
                        self.local_server
                    ),
                ),
            );
        }
        room.peekers.insert(user_id.to_owned());
        room.pseudouser = Presence::Joining;
        PeekAdvice::new(
            PeekAction::JoinAsPseudouser,
            Decision::allow(
                ReasonCode::PeekRequested,
                format!(
                    "{user_id} asked to peek {room_id}; join as {}",
                    self.pseudouser
                ),
            ),
        )
    }

    /// A local user stops peeking (closed the preview, logged out, joined for real…).
    pub fn end_peek(&mut self, room_id: &str, user_id: &str) -> PeekAdvice {
        if let Some(room) = self.rooms.get_mut(room_id) {
            room.peekers.remove(user_id);
        }
        self.maybe_leave(room_id)
    }

    /// A member event in `room_id` took effect. Local users' `join` counts as local interest; the
    /// local pseudouser's own membership updates whether the server is in. Remote users and
    /// invites change nothing (an invite never makes the pseudouser join).
    pub fn membership_changed(
        &mut self,
        room_id: &str,
        user_id: &str,
        membership: &str,
    ) -> PeekAdvice {
        if user_id == self.pseudouser {
            let room = self.rooms.entry(room_id.to_owned()).or_default();
            match membership {
                "join" => {
                    room.pseudouser = Presence::In;
                    return self.maybe_leave(room_id);
                }
                "leave" | "ban" => room.pseudouser = Presence::Out,
                _ => {}
            }
            if self.rooms.get(room_id).is_some_and(RoomPeeks::idle) {
                self.rooms.remove(room_id);
            }
            return nothing(
                ReasonCode::NothingToDo,
                format!("{} is now {membership:?} in {room_id}", self.pseudouser),
            );
        }
        if !self.is_local_user(user_id) {
            return nothing(
                ReasonCode::NothingToDo,
                format!("{user_id} is not a local user"),
            );
        }
        if membership == "invite" {
            return nothing(
                ReasonCode::RemoteInviteIsNoReason,
                format!(
                    "an invite for {user_id} never makes {} join",
                    self.pseudouser
                ),
            );
        }
        let room = self.rooms.entry(room_id.to_owned()).or_default();
        if membership == "join" {
            room.local_members.insert(user_id.to_owned());
            return nothing(
                ReasonCode::NothingToDo,
                format!("{user_id} joined {room_id}"),
            );
        }
        room.local_members.remove(user_id);
        self.maybe_leave(room_id)
    }

    /// An invite for a local user arrived over federation. It is recorded nowhere and never advises
    /// a join: joining as the pseudouser because of it is the lure the seed warns about.
    pub fn remote_invite(&mut self, room_id: &str, invitee: &str) -> PeekAdvice {
        nothing(
            ReasonCode::RemoteInviteIsNoReason,
            format!(
                "the invite of {invitee} to {room_id} alone never makes {} join",
                self.pseudouser
            ),
        )
    }

    /// The advised pseudouser join failed; the next peek request may try again.
    pub fn join_failed(&mut self, room_id: &str) -> PeekAdvice {
        if let Some(room) = self.rooms.get_mut(room_id) {
            if room.pseudouser == Presence::Joining {
                room.pseudouser = Presence::Out;
            }
            room.peekers.clear();
            if room.idle() {
                self.rooms.remove(room_id);
            }
        }
        nothing(
            ReasonCode::NothingToDo,
            format!("joining {room_id} failed; its peekers were dropped"),
        )
    }

    /// The local users peeking `room_id`.
    pub fn peekers(&self, room_id: &str) -> Vec<String> {
        self.rooms
            .get(room_id)
            .map(|r| r.peekers.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// True if the pseudouser is joined to `room_id` (as reported by `membership_changed`).
    pub fn pseudouser_joined(&self, room_id: &str) -> bool {
        self.rooms
            .get(room_id)
            .is_some_and(|r| r.pseudouser == Presence::In)
    }

    fn maybe_leave(&mut self, room_id: &str) -> PeekAdvice {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return nothing(
                ReasonCode::NothingToDo,
                format!("nothing is tracked for {room_id}"),
            );
        };
        if room.pseudouser == Presence::Out {
            if room.idle() {
                self.rooms.remove(room_id);
            }
            return nothing(
                ReasonCode::NothingToDo,
                format!("the pseudouser is not in {room_id}"),
            );
        }
        if room.peekers.is_empty() && room.local_members.is_empty() {
            // Stay marked as in until the homeserver reports the leave.
            return PeekAdvice::new(
                PeekAction::LeaveAsPseudouser,
                Decision::allow(
                    ReasonCode::NoLocalInterest,
                    format!("no local peeker or member is left in {room_id}"),
                ),
            );
        }
        nothing(
            ReasonCode::LocalInterestRemains,
            format!(
                "{} peeker(s) and {} local member(s) remain in {room_id}",
                room.peekers.len(),
                room.local_members.len()
            ),
        )
    }
}

fn nothing(reason: ReasonCode, detail: String) -> PeekAdvice {
    PeekAdvice::new(PeekAction::Nothing, Decision::allow(reason, detail))
}
