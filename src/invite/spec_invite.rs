//! The same create-event checks for spec invites (`/v1/invite` and `/v2/invite`), where MSC4311
//! (Matrix 1.16) puts the full `m.room.create` PDU into `invite_room_state`.

use crate::error::{Error, Result};
use crate::event::{self, format};
use crate::ids::RoomId;
use crate::json::{self, Object, Value};
use crate::room_version::{EventIdFormat, RoomIdFormat, RoomVersion};

use super::check::{
    CommonJson, check_body_size, find_create, room_version_of_create, verify_create,
    verify_invite_event,
};
use super::state::{DroppedEvent, prune, stripped};
use crate::signing::KeyRing;

/// Which spec endpoint the invite came in on; they carry the same data in different shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecInviteEndpoint {
    /// `PUT /_matrix/federation/v1/invite/{roomId}/{eventId}`: the body is the event, with the
    /// state under `unsigned.invite_room_state`; the room version is 1 or 2.
    V1,
    /// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`: `{room_version, event,
    /// invite_room_state}`.
    V2,
}

/// What a spec invite that passed the checks tells the receiving server.
#[derive(Debug, Clone)]
pub struct SpecInviteCheck {
    /// The invite's event ID: computed (v3+) or the event's own (v1/v2); equal to the path's.
    pub event_id: String,
    /// The room version, from the create event.
    pub room_version: RoomVersion,
    /// The room ID.
    pub room_id: String,
    /// Creators: the create event's sender, then v12 `additional_creators`.
    pub creators: Vec<String>,
    /// The creators' servers, each once.
    pub creator_servers: Vec<String>,
    /// `invite_room_state` for clients: every entry pruned to stripped form, the create event
    /// (verified) last.
    pub invite_room_state: Vec<Value>,
    /// Entries that were left out, with reasons.
    pub dropped: Vec<DroppedEvent>,
    /// Whether signatures and content hashes were verified (keys were given).
    pub signatures_checked: bool,
}

impl SpecInviteCheck {
    /// The result as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(
            CommonJson {
                event_id: &self.event_id,
                room_version: self.room_version,
                room_id: &self.room_id,
                creators: &self.creators,
                creator_servers: &self.creator_servers,
                invite_room_state: &self.invite_room_state,
                dropped: &self.dropped,
                signatures_checked: self.signatures_checked,
            }
            .to_object(),
        )
    }
}

/// Checks a spec invite whose `invite_room_state` carries the full create PDU (MSC4311): the
/// create event belongs to the room in the path (v12: by its hash), the invite is for a user of
/// ours from a user of the origin, and the path's event ID is the event's.
///
/// Spec servers SHOULD reject failures in room version 12 and MAY only warn in 1–11; that choice
/// is the caller's (the Synapse module's `invites.mode: warn | reject`).
pub fn check_spec_invite(
    endpoint: SpecInviteEndpoint,
    path_room_id: &str,
    path_event_id: &str,
    body: &[u8],
    receiving_server: &str,
    origin: &str,
    keys: Option<&KeyRing>,
) -> Result<SpecInviteCheck> {
    check_body_size(body)?;
    let room = RoomId::parse(path_room_id)
        .map_err(|e| Error::invalid_param(format!("path room ID: {}", e.message())))?;
    let body = json::parse_object_lenient(body)?;
    let (event, state_place, claimed_version): (&Object, &str, Option<&Value>) = match endpoint {
        SpecInviteEndpoint::V1 => (&body, "event.unsigned.invite_room_state", None),
        SpecInviteEndpoint::V2 => (
            super::check::required_object(&body, "event")?,
            "invite_room_state",
            Some(
                body.get("room_version")
                    .ok_or_else(|| Error::missing_param("room_version is required"))?,
            ),
        ),
    };
    let list = match endpoint {
        SpecInviteEndpoint::V1 => event
            .get("unsigned")
            .and_then(|u| u.get("invite_room_state")),
        SpecInviteEndpoint::V2 => body.get("invite_room_state"),
    };
    let list: &[Value] = match list {
        None => {
            return Err(Error::invalid_param(format!(
                "{state_place} must contain the m.room.create PDU"
            )));
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "{state_place} must be an array, found {}",
                other.type_name()
            )));
        }
    };

    let create_index = find_create(list, state_place)?;
    let place = format!("{state_place}[{create_index}]");
    let create = list
        .get(create_index)
        .and_then(Value::as_object)
        .ok_or_else(|| Error::internal("create lost"))?;
    if !is_full_pdu(create) {
        return Err(Error::invalid_param(format!(
            "{place} is stripped state; the full m.room.create PDU is required (MSC4311)"
        )));
    }
    let room_version = room_version_of_create(create, &place)?;
    match (endpoint, claimed_version) {
        (SpecInviteEndpoint::V1, _) if !(room_version.event_id_format == EventIdFormat::Opaque) => {
            return Err(Error::invalid_param(format!(
                "the v1 invite endpoint is for room versions 1 and 2, but {place} says {}",
                room_version.id
            )));
        }
        (_, Some(v)) if v.as_str() != Some(room_version.id) => {
            return Err(Error::invalid_param(format!(
                "room_version {} disagrees with the create event's room version {:?}",
                v.to_canonical_string(),
                room_version.id
            )));
        }
        _ => {}
    }

    super::check::refuse_lenient_numbers(&body, room_version, "")?;
    let created = verify_create(create, &place, room_version, &room, keys)?;
    let event_id = verify_invite_event(event, room_version, &room, receiving_server, origin, keys)?;
    if event_id != path_event_id {
        return Err(Error::invalid_param(format!(
            "the path names event {path_event_id}, but the event's ID is {event_id}"
        )));
    }

    let mut invite_room_state = Vec::new();
    let mut dropped = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        if i == create_index {
            continue;
        }
        let entry_place = format!("{state_place}[{i}]");
        // Anything that is more than stripped state is a PDU, and is checked as one (spec: "not
        // formatted according to the room's version", "fails a signature check", "does not
        // reside in the same room"). Removing a PDU member (say `hashes`) does not turn it into
        // stripped state: it makes it a malformed PDU.
        if let Some(o) = entry.as_object().filter(|o| claims_to_be_a_pdu(o)) {
            check_state_pdu(o, &entry_place, room_version, &room, keys)?;
        }
        match prune(entry) {
            Ok(s) => invite_room_state.push(s),
            Err(reason) => dropped.push(DroppedEvent {
                place: entry_place,
                event_id: None,
                reason,
            }),
        }
    }
    invite_room_state.push(stripped(create));

    Ok(SpecInviteCheck {
        event_id,
        room_version,
        room_id: room.as_str().to_owned(),
        creators: created.creators,
        creator_servers: created.creator_servers,
        invite_room_state,
        dropped,
        signatures_checked: keys.is_some(),
    })
}

/// A full PDU, as opposed to stripped state, has `auth_events`, `prev_events`, `signatures` and
/// `hashes` (how receivers tell the two apart).
fn is_full_pdu(o: &Object) -> bool {
    ["auth_events", "prev_events", "signatures", "hashes"]
        .iter()
        .all(|k| o.contains_key(*k))
}

/// The members only a PDU has. Stripped state has `type`, `state_key`, `sender` and `content`
/// alone; an entry with any of these claims to be a PDU and must be a well-formed one.
const PDU_ONLY_MEMBERS: [&str; 8] = [
    "auth_events",
    "prev_events",
    "hashes",
    "signatures",
    "depth",
    "origin_server_ts",
    "room_id",
    "event_id",
];

fn claims_to_be_a_pdu(o: &Object) -> bool {
    PDU_ONLY_MEMBERS.iter().any(|k| o.contains_key(*k))
}

/// One PDU of `invite_room_state` besides the create event: size, the format of the room
/// version (types, `depth` an integer, v12 not naming the create event), this room, and with keys
/// its sender's signature and its content hash.
fn check_state_pdu(
    pdu: &Object,
    place: &str,
    room_version: RoomVersion,
    room: &RoomId,
    keys: Option<&KeyRing>,
) -> Result<()> {
    if room_version.room_id_format == RoomIdFormat::CreateEventHash
        && pdu.get("type").and_then(Value::as_str) == Some("m.room.create")
    {
        return Err(Error::invalid_param(format!(
            "{place} is a second m.room.create event"
        )));
    }
    match pdu.get("room_id").and_then(Value::as_str) {
        Some(id) if id == room.as_str() => {}
        _ => {
            return Err(Error::invalid_param(format!(
                "{place} does not belong to room {}",
                room.as_str()
            )));
        }
    }
    event::check_pdu_size(pdu).map_err(|e| e.at(place))?;
    format::check_pdu_format(pdu, room_version, place)?;
    event::event_id(pdu, room_version).map_err(|e| format::invalid(e, place))?;
    if let Some(ring) = keys {
        let sender = format::user_id_field(pdu, "sender", place)?;
        format::verify_signed(
            pdu,
            sender.server_name().as_str(),
            ring,
            room_version,
            place,
        )?;
    }
    Ok(())
}
