//! The MSC4329 request check, and the create-event and invite-event checks it shares with
//! [`super::check_spec_invite`].

use crate::error::{Error, Result};
use crate::event;
use crate::event::format::{check_pdu_format, invalid, user_id_field, verify_signed};
use crate::ids::RoomId;
use crate::json::{self, Object, Value};
use crate::room_version::{EventIdFormat, RoomIdFormat, RoomVersion};

use super::MAX_INVITE_BODY_BYTES;
use super::state::{self, DroppedEvent};
use crate::signing::KeyRing;

/// What the receiving server learns from an invite that passed every check.
#[derive(Debug, Clone)]
pub struct InviteCheck {
    /// The invite's event ID, computed from the event.
    pub event_id: String,
    /// The room version, from the verified create event.
    pub room_version: RoomVersion,
    /// The room ID (path, invite and create event agree on it).
    pub room_id: String,
    /// The room's creators: the create event's sender, then v12 `additional_creators`.
    pub creators: Vec<String>,
    /// The creators' servers, each once, in the order of [`InviteCheck::creators`].
    pub creator_servers: Vec<String>,
    /// The invite event as received, ready for the receiving server to counter-sign.
    pub event: Object,
    /// The verified `m.room.create` PDU.
    pub create_event: Object,
    /// The new `invite_room_state`: the incoming stripped state minus any `m.room.create`,
    /// with verified events from `state` promoted, and the verified create event last.
    pub invite_room_state: Vec<Value>,
    /// Event IDs of the `state` events promoted into `invite_room_state`.
    pub promoted: Vec<String>,
    /// Everything from `state` and `invite_room_state` that was left out, each with a reason.
    pub dropped: Vec<DroppedEvent>,
    /// Whether signatures and content hashes were verified (keys were given).
    pub signatures_checked: bool,
    /// Proof that the requesting server is in the room: the event ID of the inviter's own
    /// `join`, promoted from `state` (so verified with keys and allowed by the auth rules, and
    /// the inviter's current membership in that history) and named by the invite's
    /// `auth_events`. `None` without keys, or when `state` does not carry such a join.
    pub inviter_membership: Option<String>,
}

impl InviteCheck {
    /// [`InviteCheck::creator_servers`] when [`InviteCheck::inviter_membership`] proves that the
    /// origin is in the room, else nothing. A creator-based policy ("only rooms created by
    /// servers I trust") must read this, never `creator_servers`: a genuine create event is
    /// public, so any server can send one in with an invite to a room it never joined.
    pub fn proven_creator_servers(&self) -> &[String] {
        if self.inviter_membership.is_some() {
            &self.creator_servers
        } else {
            &[]
        }
    }

    /// The result as a JSON object, for logs and for the C and Python layers.
    pub fn to_json(&self) -> Value {
        let mut o = CommonJson {
            event_id: &self.event_id,
            room_version: self.room_version,
            room_id: &self.room_id,
            creators: &self.creators,
            creator_servers: &self.creator_servers,
            invite_room_state: &self.invite_room_state,
            dropped: &self.dropped,
            signatures_checked: self.signatures_checked,
        }
        .to_object();
        o.insert("event".into(), Value::Object(self.event.clone()));
        o.insert(
            "inviter_membership".into(),
            self.inviter_membership
                .as_deref()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        o.insert(
            "proven_creator_servers".into(),
            Value::Array(
                self.proven_creator_servers()
                    .iter()
                    .map(|s| Value::from(s.as_str()))
                    .collect(),
            ),
        );
        o.insert(
            "promoted".into(),
            Value::Array(
                self.promoted
                    .iter()
                    .map(|s| Value::from(s.as_str()))
                    .collect(),
            ),
        );
        Value::Object(o)
    }
}

/// Checks a `PUT /_matrix/federation/unstable/org.matrix.msc4329/invite/{roomId}` request.
///
/// `path_room_id` is the percent-decoded `{roomId}` path segment, `body` the raw request body,
/// `receiving_server` our own server name and `origin` the server that signed the request
/// (from X-Matrix). With `keys`, the signatures and content hashes of the invite and the create
/// event are verified too, and `state` events that verify and pass the room's authorization rules
/// are promoted into `invite_room_state` (docs/invites.md, "What is promoted"); without, the caller
/// verifies the invite and create event as it does for every PDU, and nothing but the create
/// event is promoted.
pub fn check_invite(
    path_room_id: &str,
    body: &[u8],
    receiving_server: &str,
    origin: &str,
    keys: Option<&KeyRing>,
) -> Result<InviteCheck> {
    check_invite_with(path_room_id, body, receiving_server, origin, keys)
}

/// Same as [`check_invite`]; kept as the name the C and Python layers bind.
pub fn check_invite_with(
    path_room_id: &str,
    body: &[u8],
    receiving_server: &str,
    origin: &str,
    keys: Option<&KeyRing>,
) -> Result<InviteCheck> {
    check_body_size(body)?;
    let path_room = RoomId::parse(path_room_id)
        .map_err(|e| Error::invalid_param(format!("path room ID: {}", e.message())))?;
    // Lenient: room versions 1–5 allow numbers canonical JSON does not; refused below for the
    // versions that do not, once the create event says which version this is.
    let body = json::parse_object_lenient(body)?;

    let event = required_object(&body, "event")?;
    let state = match body.get("state") {
        None => {
            return Err(Error::missing_param(
                "the body must have a \"state\" array holding the m.room.create PDU",
            ));
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "state must be an array, found {}",
                other.type_name()
            )));
        }
    };
    let invite_room_state: &[Value] = match body.get("invite_room_state") {
        None => &[],
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "invite_room_state must be an array, found {}",
                other.type_name()
            )));
        }
    };
    if state.len() > state::MAX_STATE_EVENTS {
        return Err(Error::too_large(format!(
            "state holds {} events; at most {} are accepted",
            state.len(),
            state::MAX_STATE_EVENTS
        )));
    }

    let create_index = find_create(state, "state")?;
    let create = state
        .get(create_index)
        .and_then(Value::as_object)
        .ok_or_else(|| Error::internal("create lost"))?;
    let create_place = format!("state[{create_index}]");

    let room_version = room_version_of_create(create, &create_place)?;
    if room_version.event_id_format == EventIdFormat::Opaque {
        return Err(Error::incompatible_room_version(
            format!(
                "room version {} has no computable event IDs; send this invite to \
                 PUT /_matrix/federation/v2/invite/{{roomId}}/{{eventId}} instead",
                room_version.id
            ),
            room_version.id,
        ));
    }
    refuse_lenient_numbers(&body, room_version, "")?;
    if let Some(claimed) = body.get("room_version") {
        if claimed.as_str() != Some(room_version.id) {
            return Err(Error::invalid_param(format!(
                "room_version {} disagrees with the create event's room version {:?}",
                claimed.to_canonical_string(),
                room_version.id
            )));
        }
    }

    let created = verify_create(create, &create_place, room_version, &path_room, keys)?;
    let event_id = verify_invite_event(
        event,
        room_version,
        &path_room,
        receiving_server,
        origin,
        keys,
    )?;

    let rewritten = state::rewrite(state::Rewrite {
        state,
        create_index,
        create_event_id: &created.event_id,
        create,
        room_version,
        room_id: path_room.as_str(),
        keys,
        invite_room_state,
        inviter: event.get("sender").and_then(Value::as_str).unwrap_or(""),
    });
    // The join must be the one this invite was authorised by, not any join of the inviter.
    let inviter_membership = rewritten.inviter_join.filter(|join| {
        event
            .get("auth_events")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(join.as_str())))
    });

    Ok(InviteCheck {
        event_id,
        room_version,
        room_id: path_room.as_str().to_owned(),
        creators: created.creators,
        creator_servers: created.creator_servers,
        event: event.clone(),
        create_event: create.clone(),
        invite_room_state: rewritten.invite_room_state,
        promoted: rewritten.promoted,
        dropped: rewritten.dropped,
        signatures_checked: keys.is_some(),
        inviter_membership,
    })
}

/// Refuses numbers outside canonical JSON (fractions, exponents, integers outside ±(2^53 − 1))
/// anywhere in `value` unless the room version allows them (1–5), as the strict parser would
/// have: `M_BAD_JSON` naming where.
pub(crate) fn refuse_lenient_numbers(
    value: &Object,
    room_version: RoomVersion,
    root: &str,
) -> Result<()> {
    if !room_version.strict_canonical_json {
        return Ok(());
    }
    refuse_numbers(value, &format!("room version {}", room_version.id), root)
}

/// [`refuse_lenient_numbers`] whatever the room version; `what` names why in the message.
pub(crate) fn refuse_numbers(value: &Object, what: &str, root: &str) -> Result<()> {
    match json::first_number_path_in(value) {
        None => Ok(()),
        Some(path) => Err(Error::bad_json(format!(
            "{}: numbers with a fraction or an exponent, and integers outside ±(2^53 - 1), are \
             not allowed in {what}",
            format!("{root}{path}").trim_start_matches('.')
        ))),
    }
}

/// `body[key]` as an object: missing is `M_MISSING_PARAM`, another type `M_BAD_JSON`.
pub(crate) fn required_object<'a>(body: &'a Object, key: &str) -> Result<&'a Object> {
    match body.get(key) {
        None => Err(Error::missing_param(format!(
            "the body must have an {key:?} object"
        ))),
        Some(Value::Object(o)) => Ok(o),
        Some(other) => Err(Error::bad_json(format!(
            "{key} must be an object, found {}",
            other.type_name()
        ))),
    }
}

/// Finds the one `m.room.create` entry of `list` (named `place` in errors) and checks its
/// `state_key` is `""`.
pub(crate) fn find_create(list: &[Value], place: &str) -> Result<usize> {
    let mut found = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let Value::Object(o) = entry else {
            return Err(Error::bad_json(format!(
                "{place}[{i}] must be an object, found {}",
                entry.type_name()
            )));
        };
        match o.get("type") {
            Some(Value::String(t)) if t == "m.room.create" => found.push(i),
            Some(Value::String(_)) => {}
            Some(other) => {
                return Err(Error::invalid_param(format!(
                    "{place}[{i}].type must be a string, found {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::invalid_param(format!("{place}[{i}] has no type"))),
        }
    }
    let index = match found.as_slice() {
        [] => {
            return Err(Error::invalid_param(format!(
                "{place} must contain the room's m.room.create event"
            )));
        }
        [one] => *one,
        many => {
            let places: Vec<String> = many.iter().map(|i| format!("{place}[{i}]")).collect();
            return Err(Error::invalid_param(format!(
                "{place} must contain exactly one m.room.create event, found {} ({})",
                many.len(),
                places.join(", ")
            )));
        }
    };
    let create = list.get(index).and_then(Value::as_object);
    match create.and_then(|c| c.get("state_key")) {
        Some(Value::String(s)) if s.is_empty() => Ok(index),
        Some(other) => Err(Error::invalid_param(format!(
            "{place}[{index}].state_key must be \"\", found {}",
            other.to_canonical_string()
        ))),
        None => Err(Error::invalid_param(format!(
            "{place}[{index}].state_key must be \"\", but it is missing"
        ))),
    }
}

/// The room version a create event declares (`content.room_version`, `"1"` when absent).
pub(crate) fn room_version_of_create(create: &Object, place: &str) -> Result<RoomVersion> {
    let id = match create.get("content").and_then(|c| c.get("room_version")) {
        None => "1",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "{place}.content.room_version must be a string, found {}",
                other.type_name()
            )));
        }
    };
    RoomVersion::from_id(id).map_err(|e| e.at(&format!("{place}.content.room_version")))
}

/// What a verified create event tells.
pub(crate) struct CreateFacts {
    pub event_id: String,
    pub creators: Vec<String>,
    pub creator_servers: Vec<String>,
}

/// Checks the create PDU: its format, that it belongs to `room` (v12: by its hash), its creators
/// and, with keys, its signature and content hash.
pub(crate) fn verify_create(
    create: &Object,
    place: &str,
    room_version: RoomVersion,
    room: &RoomId,
    keys: Option<&KeyRing>,
) -> Result<CreateFacts> {
    let as_param = |e: Error| invalid(e, place);
    event::check_pdu_size(create).map_err(|e| e.at(place))?;
    check_pdu_format(create, room_version, place)?;

    let sender = user_id_field(create, "sender", place)?;
    if room_version.room_id_format == RoomIdFormat::CreateEventHash {
        let computed = event::room_id_from_create_event(create).map_err(as_param)?;
        if computed != room.as_str() {
            return Err(Error::invalid_param(format!(
                "{place} is the create event of room {computed}, not of {}",
                room.as_str()
            )));
        }
    } else {
        require_room_id(create, place, room)?;
    }

    let rule_1 = crate::auth::check_create(create, room_version);
    if !rule_1.is_allowed() {
        return Err(Error::invalid_param(format!(
            "{place} is not a valid m.room.create event: {}",
            rule_1.detail
        )));
    }

    let event_id = event::event_id(create, room_version).map_err(as_param)?;
    if let Some(ring) = keys {
        verify_signed(
            create,
            sender.server_name().as_str(),
            ring,
            room_version,
            place,
        )?;
    }

    // Creators: the sender, then v12 `additional_creators` (each once). Rule 1.4 above has
    // checked them with the auth rules' grammar, which is Synapse's; a creator's server is
    // everything after the first `:`, as Synapse reads it.
    let mut creators = vec![sender.as_str().to_owned()];
    if room_version.privileged_creators {
        if let Some(Value::Array(extra)) = create
            .get("content")
            .and_then(|c| c.get("additional_creators"))
        {
            for c in extra.iter().filter_map(Value::as_str) {
                if !creators.iter().any(|known| known == c) {
                    creators.push(c.to_owned());
                }
            }
        }
    }
    let mut creator_servers: Vec<String> = Vec::new();
    for c in &creators {
        let server = crate::auth::server_part(c)
            .ok_or_else(|| Error::invalid_param(format!("{place}: creator {c:?} has no server")))?;
        if !creator_servers.iter().any(|s| s == server) {
            creator_servers.push(server.to_owned());
        }
    }
    Ok(CreateFacts {
        event_id,
        creators,
        creator_servers,
    })
}

/// Checks the invite PDU itself: format, room, that it invites a user of ours and comes from a
/// user of the origin, and (with keys) its signature and hash. Returns its computed event ID.
pub(crate) fn verify_invite_event(
    event: &Object,
    room_version: RoomVersion,
    room: &RoomId,
    receiving_server: &str,
    origin: &str,
    keys: Option<&KeyRing>,
) -> Result<String> {
    let place = "event";
    event::check_pdu_size(event).map_err(|e| e.at(place))?;
    check_pdu_format(event, room_version, place)?;
    require_room_id(event, place, room)?;
    if event.get("type").and_then(Value::as_str) != Some("m.room.member") {
        return Err(Error::invalid_param(format!(
            "event.type must be \"m.room.member\", found {}",
            event
                .get("type")
                .map(Value::to_canonical_string)
                .unwrap_or_else(|| "nothing".into())
        )));
    }
    match event.get("content").and_then(|c| c.get("membership")) {
        Some(Value::String(m)) if m == "invite" => {}
        other => {
            return Err(Error::invalid_param(format!(
                "event.content.membership must be \"invite\", found {}",
                other
                    .map(Value::to_canonical_string)
                    .unwrap_or_else(|| "nothing".into())
            )));
        }
    }
    let target = user_id_field(event, "state_key", place)?;
    if target.server_name().as_str() != receiving_server {
        return Err(Error::invalid_param(format!(
            "event.state_key {:?} is not a user of this server ({receiving_server})",
            target.as_str()
        )));
    }
    let sender = user_id_field(event, "sender", place)?;
    if sender.server_name().as_str() != origin {
        return Err(Error::invalid_param(format!(
            "event.sender {:?} is not a user of the requesting server ({origin})",
            sender.as_str()
        )));
    }
    if let Some(ring) = keys {
        verify_signed(event, origin, ring, room_version, place)?;
    }
    event::event_id(event, room_version).map_err(|e| invalid(e, place))
}

/// Checks that a PDU's `room_id` names `room`.
pub(crate) fn require_room_id(pdu: &Object, place: &str, room: &RoomId) -> Result<()> {
    match pdu.get("room_id") {
        Some(Value::String(id)) if id == room.as_str() => Ok(()),
        Some(Value::String(id)) => Err(Error::invalid_param(format!(
            "{place}.room_id is {id:?}, but the invite is for {:?}",
            room.as_str()
        ))),
        Some(other) => Err(Error::invalid_param(format!(
            "{place}.room_id must be a string, found {}",
            other.type_name()
        ))),
        None => Err(Error::invalid_param(format!(
            "{place}.room_id is required in this room version"
        ))),
    }
}

/// Refuses bodies over [`MAX_INVITE_BODY_BYTES`] before parsing them.
pub(crate) fn check_body_size(body: &[u8]) -> Result<()> {
    if body.len() > MAX_INVITE_BODY_BYTES {
        return Err(Error::too_large(format!(
            "the invite body is {} bytes; at most {MAX_INVITE_BODY_BYTES} are accepted",
            body.len()
        )));
    }
    Ok(())
}

/// The members both kinds of invite result share, as JSON.
pub(crate) struct CommonJson<'a> {
    pub event_id: &'a str,
    pub room_version: RoomVersion,
    pub room_id: &'a str,
    pub creators: &'a [String],
    pub creator_servers: &'a [String],
    pub invite_room_state: &'a [Value],
    pub dropped: &'a [DroppedEvent],
    pub signatures_checked: bool,
}

impl CommonJson<'_> {
    pub(crate) fn to_object(&self) -> Object {
        let strings =
            |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        let mut o = Object::new();
        o.insert("event_id".into(), self.event_id.into());
        o.insert("room_version".into(), self.room_version.id.into());
        o.insert("room_id".into(), self.room_id.into());
        o.insert("creators".into(), strings(self.creators));
        o.insert("creator_servers".into(), strings(self.creator_servers));
        o.insert(
            "invite_room_state".into(),
            Value::Array(self.invite_room_state.to_vec()),
        );
        o.insert(
            "dropped".into(),
            Value::Array(self.dropped.iter().map(DroppedEvent::to_json).collect()),
        );
        o.insert("signatures_checked".into(), self.signatures_checked.into());
        o
    }
}
