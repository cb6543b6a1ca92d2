//! Rewriting `invite_room_state`: remove every `m.room.create`, promote the `state` events that
//! verify, append the verified create event in stripped form.
//!
//! Stripped state is unsigned and untrusted; MSC4329 keeps it that way, except for what the
//! receiving server verified itself ("Servers MUST NOT append/replace other non-create events
//! from state to invite_room_state unless they can fully verify that event's auth_events").
//! A `state` event is promoted only when all of this holds:
//!
//! 1. keys were given, and its signature (and the authorising server's, for a restricted join)
//!    and content hash verify; without keys nothing but the create event is promoted;
//! 2. it is a well-formed PDU of the room version and of this room, a state event, with at most
//!    10 `auth_events` and 20 `prev_events` ([`event::MAX_AUTH_EVENTS`](crate::event::MAX_AUTH_EVENTS));
//! 3. every event its `auth_events` names is the create event or another `state` event that
//!    was itself accepted, recursively down to the create event;
//! 4. its `auth_events` are exactly what the auth events selection picks from *the state built so
//!    far*: `state` is read as a history, in an order where every event comes after its auth
//!    events (request order otherwise), each accepted event becoming the current state of its
//!    `(type, state_key)`. An event must name the current event of each pair the selection
//!    names, and nothing else (no extras, no older copies; in v12 never the create event, before
//!    v12 always);
//! 5. it passes the room version's authorization rules ([`crate::auth`]) against that state: the
//!    sender is joined and allowed by the power levels, memberships follow the membership rules.
//!
//! At most one event per `(type, state_key)` is promoted: a later accepted event replaces the
//! earlier one, which is then reported as superseded. Everything left out is reported with a
//! reason, so a server can log why. The work is linear in the number of events and references.

use std::collections::HashMap;

use crate::auth::{self, AuthState};
use crate::decision::Decision;
use crate::error::Error;
use crate::event::{self, format};
use crate::json::{Object, Value};
use crate::room_version::RoomVersion;
use crate::signing::KeyRing;

/// How many events `state` may hold. The create event plus a handful of auth events is the
/// expected size; the cap keeps hostile requests cheap.
pub(crate) const MAX_STATE_EVENTS: usize = 256;

/// An event that did not make it into the new `invite_room_state`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedEvent {
    /// Where it was in the request, e.g. `state[2]` or `invite_room_state[0]`.
    pub place: String,
    /// Its event ID, when one could be computed.
    pub event_id: Option<String>,
    /// Why it was left out.
    pub reason: String,
}

impl DroppedEvent {
    /// `{"place", "event_id", "reason"}`.
    pub fn to_json(&self) -> Value {
        let mut o = Object::new();
        o.insert("place".into(), self.place.as_str().into());
        o.insert(
            "event_id".into(),
            self.event_id
                .as_deref()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        o.insert("reason".into(), self.reason.as_str().into());
        Value::Object(o)
    }
}

/// The inputs of [`rewrite`].
pub(crate) struct Rewrite<'a> {
    pub state: &'a [Value],
    pub create_index: usize,
    pub create_event_id: &'a str,
    pub create: &'a Object,
    pub room_version: RoomVersion,
    pub room_id: &'a str,
    pub keys: Option<&'a KeyRing>,
    pub invite_room_state: &'a [Value],
    /// The invite's sender, whose own membership is looked for among the promoted events.
    pub inviter: &'a str,
}

/// The new `invite_room_state` and what happened to each input.
pub(crate) struct Rewritten {
    pub invite_room_state: Vec<Value>,
    pub promoted: Vec<String>,
    pub dropped: Vec<DroppedEvent>,
    /// The event ID of the inviter's own `join`, when it was promoted (verified, allowed by the
    /// auth rules, and the current membership of the inviter in the history `state` gave).
    pub inviter_join: Option<String>,
}

/// The reason every `state` event gets when no keys were given.
pub(crate) const NO_KEYS: &str = "not verified: no verify keys were given, so its signatures \
     cannot be checked (only the create event is promoted without keys)";

/// One `state` event that passed the checks it can pass on its own.
struct Candidate<'a> {
    index: usize,
    event_id: String,
    pdu: &'a Object,
    /// Candidate indexes of its auth events (the create event left out), or the first ID that
    /// names no candidate.
    deps: Result<Vec<usize>, String>,
}

/// Where a candidate stands.
#[derive(Clone, PartialEq, Eq)]
enum Verdict {
    Pending,
    Accepted,
    Superseded(String),
    Dropped(String),
}

pub(crate) fn rewrite(input: Rewrite<'_>) -> Rewritten {
    let mut dropped = Vec::new();
    let mut candidates: Vec<Candidate<'_>> = Vec::new();

    // 1. Candidates: verified, well-formed PDUs of this room, each event ID once.
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (i, entry) in input.state.iter().enumerate() {
        if i == input.create_index {
            continue;
        }
        let place = format!("state[{i}]");
        let Some(pdu) = entry.as_object() else {
            dropped.push(DroppedEvent {
                place,
                event_id: None,
                reason: "not an object".into(),
            });
            continue;
        };
        match candidate(pdu, &place, &input) {
            Ok(event_id) => {
                if by_id.contains_key(&event_id) {
                    dropped.push(DroppedEvent {
                        place,
                        event_id: Some(event_id),
                        reason: "duplicate event".into(),
                    });
                } else {
                    by_id.insert(event_id.clone(), candidates.len());
                    candidates.push(Candidate {
                        index: i,
                        event_id,
                        pdu,
                        deps: Ok(Vec::new()),
                    });
                }
            }
            Err((event_id, reason)) => dropped.push(DroppedEvent {
                place,
                event_id,
                reason,
            }),
        }
    }
    for c in &mut candidates {
        c.deps = deps(c.pdu, input.create_event_id, &by_id);
    }

    // 2. An order in which every event comes after its auth events.
    let (order, mut verdicts) = order(&candidates);

    // 3. Read `state` as a history in that order.
    let mut built = AuthState::new(input.create, input.create_event_id, input.room_version);
    let mut current: HashMap<(&str, &str), usize> = HashMap::new();
    for n in order {
        let Some(c) = candidates.get(n) else { continue };
        if verdicts.get(n) != Some(&Verdict::Pending) {
            continue;
        }
        let verdict = match judge(c, &candidates, &verdicts, &built, &current, &input) {
            Err(reason) => Verdict::Dropped(reason),
            Ok(()) => {
                if let Some(key) = auth::key_of(c.pdu) {
                    if let Some(previous) = current.insert(key, n) {
                        if let Some(v) = verdicts.get_mut(previous) {
                            *v = Verdict::Superseded(format!(
                                "superseded by {} for ({}, {:?}), later in the history",
                                c.event_id, key.0, key.1
                            ));
                        }
                    }
                    built.insert(c.pdu);
                }
                Verdict::Accepted
            }
        };
        if let Some(v) = verdicts.get_mut(n) {
            *v = verdict;
        }
    }

    // 4. Promote what is current, in request order.
    let mut promoted = Vec::new();
    let mut promoted_stripped = Vec::new();
    let mut inviter_join = None;
    for (c, verdict) in candidates.iter().zip(&verdicts) {
        let place = format!("state[{}]", c.index);
        let reason = match verdict {
            Verdict::Accepted => {
                if is_join_of(c.pdu, input.inviter) {
                    inviter_join = Some(c.event_id.clone());
                }
                promoted.push(c.event_id.clone());
                promoted_stripped.push(stripped(c.pdu));
                continue;
            }
            Verdict::Superseded(r) | Verdict::Dropped(r) => r.clone(),
            Verdict::Pending => "its auth chain could not be resolved".to_owned(),
        };
        dropped.push(DroppedEvent {
            place,
            event_id: Some(c.event_id.clone()),
            reason,
        });
    }
    dropped.sort_by_key(|d| place_order(&d.place));

    // 5. The incoming stripped state, minus creates and minus what verified events replace.
    let replaced: Vec<(String, String)> = promoted_stripped.iter().filter_map(state_pair).collect();
    let mut out = Vec::new();
    for (i, entry) in input.invite_room_state.iter().enumerate() {
        let place = format!("invite_room_state[{i}]");
        match prune(entry) {
            Err(reason) => dropped.push(DroppedEvent {
                place,
                event_id: None,
                reason,
            }),
            Ok(s) => match state_pair(&s) {
                Some((t, _)) if t == "m.room.create" => dropped.push(DroppedEvent {
                    place,
                    event_id: None,
                    reason: "m.room.create is replaced by the verified create event".into(),
                }),
                Some(pair) if replaced.contains(&pair) => dropped.push(DroppedEvent {
                    place,
                    event_id: None,
                    reason: "replaced by a verified event from state".into(),
                }),
                _ => out.push(s),
            },
        }
    }
    out.extend(promoted_stripped);
    out.push(stripped(input.create));
    Rewritten {
        invite_room_state: out,
        promoted,
        dropped,
        inviter_join,
    }
}

/// Whether `pdu` is `user`'s own `join`: sent by the user, about the user.
fn is_join_of(pdu: &Object, user: &str) -> bool {
    pdu.get("type").and_then(Value::as_str) == Some("m.room.member")
        && pdu.get("state_key").and_then(Value::as_str) == Some(user)
        && pdu.get("sender").and_then(Value::as_str) == Some(user)
        && pdu
            .get("content")
            .and_then(|c| c.get("membership"))
            .and_then(Value::as_str)
            == Some("join")
}

/// `state[7]` sorts as 7, anything else after.
fn place_order(place: &str) -> usize {
    place
        .strip_prefix("state[")
        .and_then(|p| p.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Checks one `state` event on its own: keys, size, format, room, signatures, state event.
/// Returns its event ID.
fn candidate(
    pdu: &Object,
    place: &str,
    input: &Rewrite<'_>,
) -> Result<String, (Option<String>, String)> {
    let fail = |e: Error| e.message().to_owned();
    event::check_pdu_size(pdu).map_err(|e| (None, fail(e)))?;
    format::check_pdu_format(pdu, input.room_version, place).map_err(|e| (None, fail(e)))?;
    format::check_reference_counts(pdu, place).map_err(|e| (None, fail(e)))?;
    let event_id = event::event_id(pdu, input.room_version)
        .map_err(|e| (None, fail(format::invalid(e, place))))?;
    let with_id = |reason: String| (Some(event_id.clone()), reason);
    match pdu.get("room_id").and_then(Value::as_str) {
        Some(id) if id == input.room_id => {}
        Some(id) => {
            return Err(with_id(format!(
                "belongs to room {id}, not {}",
                input.room_id
            )));
        }
        None => return Err(with_id("has no room_id".into())),
    }
    if pdu.get("state_key").is_none() {
        return Err(with_id("not a state event (no state_key)".into()));
    }
    let Some(ring) = input.keys else {
        return Err(with_id(NO_KEYS.into()));
    };
    let sender = format::user_id_field(pdu, "sender", place).map_err(|e| with_id(fail(e)))?;
    format::verify_signed(
        pdu,
        sender.server_name().as_str(),
        ring,
        input.room_version,
        place,
    )
    .map_err(|e| with_id(fail(e)))?;
    // Rule 6.2: a restricted join is signed by the authorising user's server too.
    if input.room_version.auth.restricted_join_rule
        && pdu.get("type").and_then(Value::as_str) == Some("m.room.member")
    {
        if let Some(authoriser) = pdu
            .get("content")
            .and_then(|c| c.get("join_authorised_via_users_server"))
        {
            let Some(server) = authoriser.as_str().and_then(auth::server_part) else {
                return Err(with_id(
                    "content.join_authorised_via_users_server is not a user ID".into(),
                ));
            };
            format::verify_signed(pdu, server, ring, input.room_version, place)
                .map_err(|e| with_id(fail(e)))?;
        }
    }
    Ok(event_id)
}

/// The candidates an event's `auth_events` name, without the create event.
fn deps(
    pdu: &Object,
    create_event_id: &str,
    by_id: &HashMap<String, usize>,
) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for id in auth_ids(pdu) {
        if id == create_event_id {
            continue;
        }
        match by_id.get(id) {
            Some(&n) => out.push(n),
            None => return Err(format!("auth event {id} is not in state")),
        }
    }
    Ok(out)
}

/// A depth-first order (iterative: no recursion on attacker-controlled depth) in which every
/// candidate comes after the candidates it names, starting from each in request order. Cycles
/// are dropped.
fn order(candidates: &[Candidate<'_>]) -> (Vec<usize>, Vec<Verdict>) {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; candidates.len()];
    let mut verdicts = vec![Verdict::Pending; candidates.len()];
    let mut out = Vec::with_capacity(candidates.len());
    for start in 0..candidates.len() {
        if marks.get(start) != Some(&Mark::New) {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        if let Some(m) = marks.get_mut(start) {
            *m = Mark::Open;
        }
        while let Some(&(node, next)) = stack.last() {
            let deps: &[usize] = match candidates.get(node).map(|c| &c.deps) {
                Some(Ok(d)) => d,
                _ => &[],
            };
            let Some(&dep) = deps.get(next) else {
                stack.pop();
                if let Some(m) = marks.get_mut(node) {
                    *m = Mark::Done;
                }
                out.push(node);
                continue;
            };
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            match marks.get(dep) {
                Some(Mark::New) => {
                    if let Some(m) = marks.get_mut(dep) {
                        *m = Mark::Open;
                    }
                    stack.push((dep, 0));
                }
                Some(Mark::Open) => {
                    let id = candidates
                        .get(dep)
                        .map(|c| c.event_id.as_str())
                        .unwrap_or("?");
                    if let Some(v) = verdicts.get_mut(node) {
                        *v = Verdict::Dropped(format!("its auth chain loops through {id}"));
                    }
                }
                _ => {}
            }
        }
    }
    (out, verdicts)
}

/// Whether candidate `c` is accepted into the state built so far.
fn judge(
    c: &Candidate<'_>,
    candidates: &[Candidate<'_>],
    verdicts: &[Verdict],
    built: &AuthState<'_>,
    current: &HashMap<(&str, &str), usize>,
    input: &Rewrite<'_>,
) -> Result<(), String> {
    let deps = c.deps.as_ref().map_err(Clone::clone)?;
    // 3. Every auth event was itself accepted.
    let mut listed: Vec<(&str, &Object)> = Vec::with_capacity(deps.len() + 1);
    for id in auth_ids(c.pdu) {
        if id == input.create_event_id {
            listed.push((id, input.create));
        }
    }
    for &d in deps {
        let Some(dep) = candidates.get(d) else {
            return Err("internal: unknown auth event".into());
        };
        match verdicts.get(d) {
            Some(Verdict::Accepted) => listed.push((dep.event_id.as_str(), dep.pdu)),
            Some(Verdict::Superseded(_)) => {
                return Err(format!(
                    "auth event {} is no longer the current state of its (type, state_key)",
                    dep.event_id
                ));
            }
            _ => return Err(format!("auth event {} was not accepted", dep.event_id)),
        }
    }
    // Rules 2 and 3: the listed events, against the selection.
    let decision =
        auth::check_auth_events(c.pdu, input.room_version, input.create_event_id, &listed);
    refused(decision)?;
    // 4. Exactly the current events of the selected pairs, nothing older, nothing missing.
    let keys = auth::auth_event_keys(c.pdu, input.room_version).map_err(|d| d.detail)?;
    for (t, k) in &keys {
        if t == "m.room.create" {
            continue;
        }
        let Some(&cur) = current.get(&(t.as_str(), k.as_str())) else {
            continue;
        };
        if !deps.contains(&cur) {
            let id = candidates
                .get(cur)
                .map(|c| c.event_id.as_str())
                .unwrap_or("?");
            return Err(format!(
                "auth_events leaves out {id}, the current ({t}, {k:?}) of the state built so far"
            ));
        }
    }
    for &d in deps {
        let is_current = candidates
            .get(d)
            .and_then(|dep| auth::key_of(dep.pdu))
            .and_then(|key| current.get(&key))
            == Some(&d);
        if !is_current {
            let id = candidates
                .get(d)
                .map(|c| c.event_id.as_str())
                .unwrap_or("?");
            return Err(format!(
                "auth event {id} is not the current state of its (type, state_key)"
            ));
        }
    }
    // 5. The authorization rules against the state built so far.
    refused(auth::check_event(c.pdu, built))
}

fn refused(decision: Decision) -> Result<(), String> {
    if decision.is_allowed() {
        Ok(())
    } else {
        Err(format!(
            "refused by the authorization rules ({}): {}",
            decision.reason.as_str(),
            decision.detail
        ))
    }
}

fn auth_ids(pdu: &Object) -> impl Iterator<Item = &str> {
    pdu.get("auth_events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The stripped form clients see: `type`, `state_key`, `sender`, `content`.
pub(crate) fn stripped(pdu: &Object) -> Value {
    let mut o = Object::new();
    for key in ["type", "state_key", "sender", "content"] {
        if let Some(v) = pdu.get(key) {
            o.insert(key.into(), v.clone());
        }
    }
    Value::Object(o)
}

/// An incoming `invite_room_state` entry reduced to the stripped form, if it has one.
pub(crate) fn prune(entry: &Value) -> Result<Value, String> {
    let Some(o) = entry.as_object() else {
        return Err(format!("not an object but {}", entry.type_name()));
    };
    for (key, ok) in [
        ("type", o.get("type").and_then(Value::as_str).is_some()),
        (
            "state_key",
            o.get("state_key").and_then(Value::as_str).is_some(),
        ),
        (
            "sender",
            o.get("sender")
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with('@')),
        ),
        (
            "content",
            o.get("content").and_then(Value::as_object).is_some(),
        ),
    ] {
        if !ok {
            return Err(format!(
                "not stripped state: {key} is missing or of the wrong type"
            ));
        }
    }
    Ok(stripped(o))
}

fn state_pair(v: &Value) -> Option<(String, String)> {
    Some((
        v.get("type")?.as_str()?.to_owned(),
        v.get("state_key")?.as_str()?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn candidate(n: usize, deps: Vec<usize>) -> Candidate<'static> {
        static EMPTY: Object = Object::new();
        Candidate {
            index: n,
            event_id: format!("$e{n}"),
            pdu: &EMPTY,
            deps: Ok(deps),
        }
    }

    /// Cycles cannot be signed consistently in v3+ (IDs are hashes), so only a unit test reaches
    /// them: the order still ends, and every event of the loop that closes it is dropped.
    #[test]
    fn order_puts_auth_events_first_and_drops_cycles() {
        let cs = vec![
            candidate(0, vec![2]),
            candidate(1, vec![]),
            candidate(2, vec![1]),
            candidate(3, vec![4]),
            candidate(4, vec![3]),
        ];
        let (order, verdicts) = order(&cs);
        assert_eq!(order, vec![1, 2, 0, 4, 3]);
        assert!(matches!(&verdicts[4], Verdict::Dropped(r) if r.contains("loops through $e3")));
        assert!(verdicts[..4].iter().all(|v| *v == Verdict::Pending));
    }
}
