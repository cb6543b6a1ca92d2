//! Asking a peer which of our rooms it has been in: building `discover_common_rooms` requests and
//! reading the answers back into room IDs.
//!
//! [MSC4358](https://github.com/matrix-org/matrix-spec-proposals/pull/4358) and DESIGN.md §1. The
//! tags are computed with the *peer's* server name as key, so only a server that has been in a room
//! (and stored its own tag) can recognise it, and the peer learns nothing about rooms it was never
//! in. Room IDs are de-duplicated and split into chunks of at most the peer's per-request cap
//! (1000 unless the peer documents otherwise); each chunk is one request.
//!
//! Answers are hostile input: a response must be a JSON object whose `recognised_tags` is an array
//! of base64 strings, each one of the tags that chunk asked about. Anything else is an
//! `M_BAD_JSON` error naming the offending element, and nothing from that response is used.

use std::collections::{HashMap, HashSet};

use crate::discovery::responder::{REQUEST_FIELD, RESPONSE_FIELD};
use crate::discovery::{ParticipationTag, Tagger};
use crate::error::{Error, Result};
use crate::json::{self, Object, Value};

/// The per-request cap peers apply unless they say otherwise.
pub const DEFAULT_MAX_TAGS_PER_REQUEST: usize = 1000;

/// The questions for one peer about a set of rooms, split into request-sized chunks.
#[derive(Debug, Clone)]
pub struct Requester {
    target: String,
    chunks: Vec<Chunk>,
}

#[derive(Debug, Clone)]
struct Chunk {
    /// (room ID, its tag under the target's name), in request order.
    rooms: Vec<(String, ParticipationTag)>,
    by_tag: HashMap<ParticipationTag, usize>,
}

impl Requester {
    /// Questions for `target_server` about `room_ids` (duplicates asked once), at most
    /// `max_tags_per_request` tags a request (0 is read as 1).
    pub fn new<S: AsRef<str>>(
        target_server: &str,
        room_ids: &[S],
        max_tags_per_request: usize,
    ) -> Requester {
        let tagger = Tagger::new(target_server);
        let cap = max_tags_per_request.max(1);
        let mut seen = HashSet::new();
        let unique: Vec<&str> = room_ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|r| seen.insert(*r))
            .collect();
        let chunks = unique
            .chunks(cap)
            .map(|rooms| {
                let rooms: Vec<(String, ParticipationTag)> = rooms
                    .iter()
                    .map(|r| ((*r).to_owned(), tagger.tag(r)))
                    .collect();
                let by_tag = rooms
                    .iter()
                    .enumerate()
                    .map(|(i, (_, t))| (*t, i))
                    .collect();
                Chunk { rooms, by_tag }
            })
            .collect();
        Requester {
            target: target_server.to_owned(),
            chunks,
        }
    }

    /// The server being asked.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How many requests the questions take.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The body of request `chunk` (canonical JSON), or `None` past the last chunk.
    pub fn request_body(&self, chunk: usize) -> Option<Vec<u8>> {
        let chunk = self.chunks.get(chunk)?;
        let tags = chunk
            .rooms
            .iter()
            .map(|(_, t)| Value::String(t.to_base64()))
            .collect();
        let mut o = Object::new();
        o.insert(REQUEST_FIELD.into(), Value::Array(tags));
        Some(Value::Object(o).to_canonical())
    }

    /// Every request body, in chunk order.
    pub fn request_bodies(&self) -> Vec<Vec<u8>> {
        (0..self.chunks.len())
            .filter_map(|i| self.request_body(i))
            .collect()
    }

    /// The room IDs the peer recognised in its answer to request `chunk`, in request order.
    pub fn map_response(&self, chunk: usize, body: &[u8]) -> Result<Vec<String>> {
        let Some(asked) = self.chunks.get(chunk) else {
            return Err(Error::invalid_param(format!(
                "chunk {chunk} does not exist; there are {}",
                self.chunks.len()
            )));
        };
        let value = json::parse(body)?;
        let Value::Object(object) = value else {
            return Err(Error::bad_json(format!(
                "the response must be an object, not {}",
                value.type_name()
            )));
        };
        let tags = match object.get(RESPONSE_FIELD) {
            Some(Value::Array(tags)) => tags,
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "{RESPONSE_FIELD} must be an array, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::bad_json(format!("{RESPONSE_FIELD} is missing"))),
        };
        let mut hit = vec![false; asked.rooms.len()];
        for (i, v) in tags.iter().enumerate() {
            let Some(text) = v.as_str() else {
                return Err(Error::bad_json(format!(
                    "{RESPONSE_FIELD}[{i}] must be a string, not {}",
                    v.type_name()
                )));
            };
            let Some(tag) = ParticipationTag::from_base64(text) else {
                return Err(Error::bad_json(format!(
                    "{RESPONSE_FIELD}[{i}] is not 32 bytes of base64"
                )));
            };
            let Some(&at) = asked.by_tag.get(&tag) else {
                return Err(Error::bad_json(format!(
                    "{RESPONSE_FIELD}[{i}] names tag {text} that was not asked"
                )));
            };
            if let Some(h) = hit.get_mut(at) {
                *h = true;
            }
        }
        Ok(asked
            .rooms
            .iter()
            .zip(hit)
            .filter(|(_, h)| *h)
            .map(|((room, _), _)| room.clone())
            .collect())
    }
}
