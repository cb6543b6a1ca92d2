//! A read-only view of a room's current state, built from JSON events as the homeserver has them.
//!
//! The membership, peeking, s2s and subscription checks all take a [`RoomState`]. It is built
//! from a list of state events ([`RoomState::from_events`]); when two events share
//! `(type, state_key)`, the later one in the list wins, so a homeserver can hand over its resolved
//! current state, or a history in order. The position of each kept event is remembered as its
//! *stream order* (used for room-name heroes, which the spec orders by stream ordering).
//!
//! Only `type`, `state_key`, `sender` and `content` are read. Extra fields are kept untouched.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::json::{Object, Value};

/// The most state events a view accepts: large rooms have ~10^5 members; beyond a million the
/// caller is being fed something hostile.
pub const MAX_STATE_EVENTS: usize = 1_000_000;

/// One state event kept by the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The event as given.
    pub event: Object,
    /// Its position in the list the view was built from (later = larger).
    pub stream_order: usize,
}

impl StateEntry {
    /// The event's `content`, or an empty object if it has none (a redacted event, say).
    pub fn content(&self) -> &Object {
        static EMPTY: Object = Object::new();
        self.event
            .get("content")
            .and_then(Value::as_object)
            .unwrap_or(&EMPTY)
    }

    /// The event's `sender`, if a string.
    pub fn sender(&self) -> Option<&str> {
        self.event.get("sender").and_then(Value::as_str)
    }
}

/// Current room state keyed by `(type, state_key)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomState {
    entries: BTreeMap<(String, String), StateEntry>,
}

impl RoomState {
    /// An empty state (a room the server knows nothing about).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the view from state events. Each must be an object with a string `type` and a string
    /// `state_key`, and `content`, if present, must be an object; anything else is an
    /// `M_BAD_JSON` error naming the index, e.g. `state[2].state_key must be a string`.
    pub fn from_events(events: &[Object]) -> Result<Self> {
        let mut state = RoomState::new();
        if events.len() > MAX_STATE_EVENTS {
            return Err(Error::too_large(format!(
                "state has {} events, more than {MAX_STATE_EVENTS}",
                events.len()
            )));
        }
        for (i, event) in events.iter().enumerate() {
            state
                .insert_at(event.clone(), i)
                .map_err(|e| e.at(&format!("state[{i}]")))?;
        }
        Ok(state)
    }

    /// Parses a JSON array of state events (bytes in, as the C and Python layers hand them over).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let value = crate::json::parse(bytes)?;
        let Value::Array(items) = value else {
            return Err(Error::bad_json(format!(
                "state must be an array, not {}",
                value.type_name()
            )));
        };
        let mut events = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match item {
                Value::Object(o) => events.push(o),
                other => {
                    return Err(Error::bad_json(format!(
                        "state[{i}] must be an object, not {}",
                        other.type_name()
                    )));
                }
            }
        }
        Self::from_events(&events)
    }

    /// Adds (or replaces) one state event as the newest.
    pub fn insert(&mut self, event: Object) -> Result<()> {
        let order = self
            .entries
            .values()
            .map(|e| e.stream_order + 1)
            .max()
            .unwrap_or(0);
        self.insert_at(event, order)
    }

    fn insert_at(&mut self, event: Object, stream_order: usize) -> Result<()> {
        let event_type = match event.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "type must be a string, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::bad_json("type is missing")),
        };
        let state_key = match event.get("state_key") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "state_key must be a string, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::bad_json("state_key is missing: not a state event")),
        };
        if let Some(content) = event.get("content") {
            if !matches!(content, Value::Object(_)) {
                return Err(Error::bad_json(format!(
                    "content must be an object, not {}",
                    content.type_name()
                )));
            }
        }
        if let Some(sender) = event.get("sender") {
            if !matches!(sender, Value::String(_)) {
                return Err(Error::bad_json(format!(
                    "sender must be a string, not {}",
                    sender.type_name()
                )));
            }
        }
        self.entries.insert(
            (event_type, state_key),
            StateEntry {
                event,
                stream_order,
            },
        );
        Ok(())
    }

    /// The entry for `(event_type, state_key)`.
    pub fn get(&self, event_type: &str, state_key: &str) -> Option<&StateEntry> {
        self.entries
            .get(&(event_type.to_owned(), state_key.to_owned()))
    }

    /// The content of `(event_type, state_key)`.
    pub fn content(&self, event_type: &str, state_key: &str) -> Option<&Object> {
        self.get(event_type, state_key).map(StateEntry::content)
    }

    /// Every entry of one event type, with its state key, in state-key order.
    pub fn of_type<'a>(
        &'a self,
        event_type: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a StateEntry)> + 'a {
        self.entries
            .range((event_type.to_owned(), String::new())..)
            .take_while(move |((t, _), _)| t == event_type)
            .map(|((_, k), e)| (k.as_str(), e))
    }

    /// The `membership` of a user (`"join"`, `"invite"`, `"leave"`, `"ban"`, `"knock"`…), if the
    /// user has a member event with a string `membership`.
    pub fn membership(&self, user_id: &str) -> Option<&str> {
        self.content("m.room.member", user_id)?
            .get("membership")?
            .as_str()
    }

    /// Every `(user_id, membership)` with a string membership.
    pub fn memberships(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.of_type("m.room.member").filter_map(|(user, entry)| {
            entry
                .content()
                .get("membership")
                .and_then(Value::as_str)
                .map(|m| (user, m))
        })
    }

    /// The `join_rule` of `m.room.join_rules`, if a string.
    pub fn join_rule(&self) -> Option<&str> {
        self.content("m.room.join_rules", "")?
            .get("join_rule")?
            .as_str()
    }

    /// The create event's `content.type` (the room type), if a string.
    pub fn room_type(&self) -> Option<&str> {
        self.content("m.room.create", "")?.get("type")?.as_str()
    }

    /// Number of events kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no event is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The server name of a user ID (validated with [`crate::ids::UserId`]): everything after the
/// first `:`. `None` if `user_id` is not a valid user ID.
pub(crate) fn user_server(user_id: &str) -> Option<&str> {
    crate::ids::UserId::parse(user_id).ok()?;
    user_id.split_once(':').map(|(_, server)| server)
}

/// True if `name` is a valid server name ([`crate::ids::ServerName`]).
pub(crate) fn is_server_name(name: &str) -> bool {
    crate::ids::ServerName::parse(name).is_ok()
}
