//! Power levels: reading them from state, and the `m.room.power_levels` rule (rule 11 in v12).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::decision::{Decision, ReasonCode};
use crate::json::{Object, Value};

use super::{AuthState, allow, content_of, create::is_valid_user_id, malformed};

/// A user's power level. Creators of a v12 room (MSC4289) are above every number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Power {
    /// An ordinary level.
    Level(i64),
    /// A privileged creator (room version 12).
    Infinite,
}

impl fmt::Display for Power {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Power::Level(l) => write!(f, "{l}"),
            Power::Infinite => f.write_str("infinite (creator)"),
        }
    }
}

/// The names of the single-number levels, with the default each has when absent.
const NAMED: [(&str, i64); 7] = [
    ("users_default", 0),
    ("events_default", 0),
    ("state_default", 50),
    ("ban", 50),
    ("redact", 50),
    ("kick", 50),
    ("invite", 0),
];

/// A level value: an integer, or before v10 a string holding one (read as Python's `int()` does
/// for ASCII text: surrounding whitespace, a sign, digits with single `_` between them).
pub(crate) fn level_value(v: &Value, integers_only: bool) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::String(s) if !integers_only => python_int(s),
        _ => None,
    }
}

fn python_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\u{0b}');
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..)?),
        Some(b'+') => (false, t.get(1..)?),
        _ => (false, t),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty() || bytes.first() == Some(&b'_') || bytes.last() == Some(&b'_') {
        return None;
    }
    let mut n: i64 = 0;
    let mut previous_underscore = false;
    for &b in bytes {
        if b == b'_' {
            if previous_underscore {
                return None;
            }
            previous_underscore = true;
            continue;
        }
        previous_underscore = false;
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if negative { -n } else { n })
}

fn power_levels<'a>(state: &AuthState<'a>) -> Option<&'a Object> {
    state.get("m.room.power_levels", "").and_then(content_of)
}

fn integers_only(state: &AuthState<'_>) -> bool {
    state.version().auth.integer_power_levels
}

/// A user's current power level.
pub(crate) fn user_level(state: &AuthState<'_>, user_id: &str) -> Result<Power, Decision> {
    if state.version().privileged_creators && state.is_creator(user_id) {
        return Ok(Power::Infinite);
    }
    let Some(pl) = power_levels(state) else {
        return Ok(Power::Level(if state.is_creator(user_id) {
            100
        } else {
            0
        }));
    };
    let explicit = match pl.get("users") {
        None => None,
        Some(Value::Object(users)) => users.get(user_id),
        Some(_) => return Err(malformed("power levels: users is not an object")),
    };
    let value = explicit.or_else(|| pl.get("users_default"));
    match value {
        None => Ok(Power::Level(0)),
        Some(v) => level_value(v, integers_only(state))
            .map(Power::Level)
            .ok_or_else(|| {
                malformed(format!(
                    "power levels: the level of {} is not an integer",
                    crate::decision::shortened(user_id)
                ))
            }),
    }
}

/// A named level (`invite`, `kick`, `ban`, `redact`, …), or `default` when unset.
pub(crate) fn named_level(
    state: &AuthState<'_>,
    name: &str,
    default: i64,
) -> Result<i64, Decision> {
    match power_levels(state).and_then(|pl| pl.get(name)) {
        None => Ok(default),
        Some(v) => level_value(v, integers_only(state))
            .ok_or_else(|| malformed(format!("power levels: {name} is not an integer"))),
    }
}

/// The level an event type needs: `events[type]`, else `state_default` (50) for state events
/// or `events_default` (0) for others. With no power levels event the defaults apply.
pub(crate) fn send_level(
    state: &AuthState<'_>,
    event_type: &str,
    is_state: bool,
) -> Result<i64, Decision> {
    let Some(pl) = power_levels(state) else {
        return Ok(if is_state { 50 } else { 0 });
    };
    let events = match pl.get("events") {
        None => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => return Err(malformed("power levels: events is not an object")),
    };
    if let Some(v) = events.and_then(|e| e.get(event_type)) {
        return level_value(v, integers_only(state)).ok_or_else(|| {
            malformed(format!(
                "power levels: events[{event_type:?}] is not an integer"
            ))
        });
    }
    if is_state {
        named_level(state, "state_default", 50)
    } else {
        named_level(state, "events_default", 0)
    }
}

/// The levels of one map (`users`, `events`, `notifications`) as integers, or why not.
fn level_map(
    content: &Object,
    key: &str,
    integers_only: bool,
) -> Result<BTreeMap<String, i64>, String> {
    match content.get(key) {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                level_value(v, integers_only)
                    .map(|l| (k.clone(), l))
                    .ok_or_else(|| format!("{key}[{k:?}] is not an integer"))
            })
            .collect(),
        Some(_) => Err(format!("{key} is not an object")),
    }
}

/// The `m.room.power_levels` rule, for a sender already known to be joined and allowed to send
/// the event type.
pub(crate) fn check_power_levels(
    event: &Object,
    sender: &str,
    sender_level: Power,
    state: &AuthState<'_>,
) -> Decision {
    let version = state.version();
    let ints = version.auth.integer_power_levels;
    let Some(new) = content_of(event) else {
        return malformed("power levels: content is not an object");
    };
    // 11.1 / 11.2: the shape. Every level must read as a number in every version (Synapse
    // reads them with int()); v10+ only accepts integers.
    for (name, _) in NAMED {
        if let Some(v) = new.get(name) {
            if level_value(v, ints).is_none() {
                return malformed(format!("power levels: {name} is not an integer"));
            }
        }
    }
    let mut maps = Vec::new();
    for key in ["users", "events", "notifications"] {
        match level_map(new, key, ints) {
            Ok(m) => maps.push(m),
            Err(why) => return malformed(format!("power levels: {why}")),
        }
    }
    let (new_users, new_events, new_notifications) = match maps.as_slice() {
        [u, e, n] => (u, e, n),
        _ => return malformed("power levels: internal"),
    };
    if let Some(bad) = new_users.keys().find(|u| !is_valid_user_id(u)) {
        return malformed(format!("power levels: users key {bad:?} is not a user ID"));
    }
    // 11.3 (v12): creators are not listed.
    if version.privileged_creators {
        if let Some(creator) = new_users.keys().find(|u| state.is_creator(u)) {
            return Decision::deny(
                ReasonCode::InsufficientPower,
                format!("power levels: the creator {creator} must not appear in users"),
            );
        }
    }
    // 11.4: the first power levels event is allowed.
    let Some(old) = power_levels(state) else {
        return allow("the room's first power levels event");
    };
    let mut old_maps = Vec::new();
    for key in ["users", "events", "notifications"] {
        // The current event was accepted, so its maps read; a broken one refuses the change.
        match level_map(old, key, ints) {
            Ok(m) => old_maps.push(m),
            Err(why) => return malformed(format!("current power levels: {why}")),
        }
    }
    let (old_users, old_events, old_notifications) = match old_maps.as_slice() {
        [u, e, n] => (u, e, n),
        _ => return malformed("power levels: internal"),
    };
    let too_high = |what: String, level: i64| {
        Decision::deny(
            ReasonCode::InsufficientPower,
            format!("power levels: {what} is {level}, above the sender's level {sender_level}"),
        )
    };
    // 11.5: the named levels.
    for (name, _) in NAMED {
        let before = old.get(name).and_then(|v| level_value(v, ints));
        let after = new.get(name).and_then(|v| level_value(v, ints));
        if before == after {
            continue;
        }
        for (when, level) in [("the current", before), ("the new", after)] {
            if let Some(l) = level {
                if Power::Level(l) > sender_level {
                    return too_high(format!("{when} {name}"), l);
                }
            }
        }
    }
    // 11.6 / 11.7: events, and from v6 notifications.
    let mut event_maps = vec![("events", old_events, new_events)];
    if version.auth.notifications_power_levels {
        event_maps.push(("notifications", old_notifications, new_notifications));
    }
    for (key, before, after) in event_maps {
        for (name, old_level, new_level) in changes(before, after) {
            if let Some(l) = old_level {
                if Power::Level(l) > sender_level {
                    return too_high(format!("the current {key}[{name:?}]"), l);
                }
            }
            if let Some(l) = new_level {
                if Power::Level(l) > sender_level {
                    return too_high(format!("the new {key}[{name:?}]"), l);
                }
            }
        }
    }
    // 11.8 / 11.9: users.
    for (user, old_level, new_level) in changes(old_users, new_users) {
        if let Some(l) = old_level {
            if user != sender && Power::Level(l) >= sender_level {
                return Decision::deny(
                    ReasonCode::InsufficientPower,
                    format!(
                        "power levels: {user} has level {l}, not below the sender's level {sender_level}"
                    ),
                );
            }
        }
        if let Some(l) = new_level {
            if Power::Level(l) > sender_level {
                return too_high(format!("the new level of {user}"), l);
            }
        }
    }
    allow("the power levels change is within the sender's power")
}

/// Entries added, changed or removed between two maps: `(name, old, new)`.
fn changes<'m>(
    before: &'m BTreeMap<String, i64>,
    after: &'m BTreeMap<String, i64>,
) -> Vec<(&'m str, Option<i64>, Option<i64>)> {
    let names: BTreeSet<&str> = before
        .keys()
        .chain(after.keys())
        .map(String::as_str)
        .collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (before.get(name).copied(), after.get(name).copied());
            (old != new).then_some((name, old, new))
        })
        .collect()
}
