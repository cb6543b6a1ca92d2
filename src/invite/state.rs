//! Rewriting `invite_room_state`: remove every `m.room.create`, promote `state` events whose
//! whole auth chain is in `state`, append the verified create event in stripped form.
//!
//! Stripped state is unsigned and untrusted; MSC4329 keeps it that way, except for what the
//! receiving server verified itself. A `state` event is promoted only when every auth event it
//! names is present in `state`, recursively down to the create event, all in the same room (and,
//! with keys, all correctly signed). Everything left out is reported with a reason, so a server
//! can log why.

use std::collections::HashMap;

use crate::error::Error;
use crate::event;
use crate::json::{Object, Value};
use crate::room_version::{RoomIdFormat, RoomVersion};

use crate::event::format::{check_pdu_format, invalid, user_id_field, verify_signed};
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
}

/// The new `invite_room_state` and what happened to each input.
pub(crate) struct Rewritten {
    pub invite_room_state: Vec<Value>,
    pub promoted: Vec<String>,
    pub dropped: Vec<DroppedEvent>,
}

/// Where an event stands while its auth chain is being resolved.
#[derive(Clone)]
enum Chain {
    Unvisited,
    Visiting,
    Complete,
    Broken(String),
}

pub(crate) fn rewrite(input: Rewrite<'_>) -> Rewritten {
    let mut dropped = Vec::new();

    // 1. Candidates: well-formed PDUs of this room, by event ID.
    let mut candidates: Vec<(usize, String, &Object)> = Vec::new();
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
                    candidates.push((i, event_id, pdu));
                }
            }
            Err((event_id, reason)) => dropped.push(DroppedEvent {
                place,
                event_id,
                reason,
            }),
        }
    }

    // 2. Resolve auth chains, iteratively (no recursion on attacker-controlled depth).
    let mut chain = vec![Chain::Unvisited; candidates.len()];
    for start in 0..candidates.len() {
        resolve(start, &candidates, &by_id, &mut chain, &input);
    }

    // 3. Promote complete state events, in request order.
    let mut promoted = Vec::new();
    let mut promoted_stripped = Vec::new();
    for (n, (i, event_id, pdu)) in candidates.iter().enumerate() {
        let place = format!("state[{i}]");
        match &chain[n] {
            Chain::Complete if pdu.get("state_key").is_none() => dropped.push(DroppedEvent {
                place,
                event_id: Some(event_id.clone()),
                reason: "not a state event (no state_key)".into(),
            }),
            Chain::Complete => {
                promoted.push(event_id.clone());
                promoted_stripped.push(stripped(pdu));
            }
            Chain::Broken(reason) => dropped.push(DroppedEvent {
                place,
                event_id: Some(event_id.clone()),
                reason: reason.clone(),
            }),
            Chain::Unvisited | Chain::Visiting => dropped.push(DroppedEvent {
                place,
                event_id: Some(event_id.clone()),
                reason: "auth chain could not be resolved".into(),
            }),
        }
    }

    // 4. The incoming stripped state, minus creates and minus what verified events replace.
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
    }
}

/// Checks one `state` event on its own: format, room, signature. Returns its event ID.
fn candidate(
    pdu: &Object,
    place: &str,
    input: &Rewrite<'_>,
) -> Result<String, (Option<String>, String)> {
    let fail = |e: Error| e.message().to_owned();
    event::check_pdu_size(pdu).map_err(|e| (None, fail(e)))?;
    check_pdu_format(pdu, input.room_version, place).map_err(|e| (None, fail(e)))?;
    let event_id =
        event::event_id(pdu, input.room_version).map_err(|e| (None, fail(invalid(e, place))))?;
    let with_id = |e: Error| (Some(event_id.clone()), fail(e));
    match pdu.get("room_id").and_then(Value::as_str) {
        Some(id) if id == input.room_id => {}
        Some(id) => {
            return Err(with_id(Error::invalid_param(format!(
                "belongs to room {id}, not {}",
                input.room_id
            ))));
        }
        None => return Err(with_id(Error::invalid_param("has no room_id"))),
    }
    if let Some(ring) = input.keys {
        let sender = user_id_field(pdu, "sender", place).map_err(with_id)?;
        verify_signed(
            pdu,
            sender.server_name().as_str(),
            ring,
            input.room_version,
            place,
        )
        .map_err(with_id)?;
    }
    Ok(event_id)
}

/// Resolves the auth chain of candidate `start` with an explicit stack.
fn resolve(
    start: usize,
    candidates: &[(usize, String, &Object)],
    by_id: &HashMap<String, usize>,
    chain: &mut [Chain],
    input: &Rewrite<'_>,
) {
    if !matches!(chain.get(start), Some(Chain::Unvisited)) {
        return;
    }
    // Each frame: (candidate, index of the next auth event to look at).
    let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
    if let Some(c) = chain.get_mut(start) {
        *c = Chain::Visiting;
    }
    while let Some(&(node, next)) = stack.last() {
        let auth = auth_ids(candidates.get(node).map(|c| c.2));
        if let Some(reason) = (next == 0).then(|| direct_problem(&auth, input)).flatten() {
            finish(&mut stack, chain, Chain::Broken(reason));
            continue;
        }
        let Some(id) = auth.get(next) else {
            finish(&mut stack, chain, Chain::Complete);
            continue;
        };
        if let Some(top) = stack.last_mut() {
            top.1 += 1;
        }
        if id == input.create_event_id {
            continue;
        }
        let Some(&dep) = by_id.get(id.as_str()) else {
            finish(
                &mut stack,
                chain,
                Chain::Broken(format!("auth event {id} is not in state")),
            );
            continue;
        };
        match chain.get(dep).cloned() {
            Some(Chain::Complete) => {}
            Some(Chain::Broken(_)) => {
                finish(
                    &mut stack,
                    chain,
                    Chain::Broken(format!("auth event {id} was itself dropped")),
                );
            }
            Some(Chain::Visiting) => {
                finish(
                    &mut stack,
                    chain,
                    Chain::Broken(format!("auth chain loops through {id}")),
                );
            }
            Some(Chain::Unvisited) => {
                if let Some(c) = chain.get_mut(dep) {
                    *c = Chain::Visiting;
                }
                stack.push((dep, 0));
            }
            None => finish(
                &mut stack,
                chain,
                Chain::Broken("internal: unknown auth event".into()),
            ),
        }
    }
}

/// Pops the top frame with its verdict. A broken event breaks everything waiting on it.
fn finish(stack: &mut Vec<(usize, usize)>, chain: &mut [Chain], verdict: Chain) {
    let Some((node, _)) = stack.pop() else { return };
    let broken = matches!(verdict, Chain::Broken(_));
    if let Some(c) = chain.get_mut(node) {
        *c = verdict;
    }
    if broken {
        while let Some((waiting, _)) = stack.pop() {
            if let Some(c) = chain.get_mut(waiting) {
                *c = Chain::Broken("its auth chain is incomplete".into());
            }
        }
    }
}

/// Rules on an event's own `auth_events` list, before following it.
fn direct_problem(auth: &[String], input: &Rewrite<'_>) -> Option<String> {
    let names_create = auth.iter().any(|id| id == input.create_event_id);
    if input.room_version.room_id_format == RoomIdFormat::CreateEventHash {
        // v12: the create event is implied and MUST NOT be listed.
        names_create.then(|| {
            "lists the m.room.create event in auth_events, which this room version forbids".into()
        })
    } else {
        (!names_create)
            .then(|| "auth_events does not include the room's m.room.create event".into())
    }
}

fn auth_ids(pdu: Option<&Object>) -> Vec<String> {
    pdu.and_then(|p| p.get("auth_events"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
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
