//! The post-join audit: ask peers we know from elsewhere whether they have been in the room we
//! just joined, and explain (or fail to explain) every "yes".
//!
//! This is the point of [MSC4358](https://github.com/matrix-org/matrix-spec-proposals/pull/4358)
//! (DESIGN.md §1): a malicious server can show a new joiner a branch of the room that hides the
//! other members. Those hidden servers still hold their participation tag for the room, so a
//! peer that is *not* visible in our view of the room but *recognises* it is a finding:
//!
//! - **explained**: our view shows that server's users left or were banned, so it was in the
//!   room and its tag is expected;
//! - **unexplained**: our view has no membership from that server at all: it has been in a room
//!   we cannot see it in, so we may be on a hidden branch.
//!
//! Decisions taken here (the seed is silent):
//! - "visible" means the server has a user (or its pseudouser) whose current membership is
//!   `join`; `leave` and `ban` in the membership history explain a recognition; `invite` and
//!   `knock` do not (a server records its tag when it joins, not when invited).
//! - Peers are asked in the order the caller gives them (rank them by value, e.g. shared rooms),
//!   after dropping duplicates, our own server and visible servers, up to `max_peers`.
//! - A peer that was planned but never answered counts as failed ("no answer").

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::discovery::requester::Requester;
use crate::json::{Object, Value};

/// How a server that is no longer visible in the room was part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Departure {
    /// Its users left (`membership: leave`).
    Left,
    /// Its users were banned (`membership: ban`); wins over [`Departure::Left`].
    Banned,
}

impl Departure {
    /// The Matrix membership value: `leave` or `ban`.
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Left => "leave",
            Departure::Banned => "ban",
        }
    }
}

/// What we can see of a room we just joined: who is in it, and who was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    room_id: String,
    own_server: String,
    visible: BTreeSet<String>,
    departed: BTreeMap<String, Departure>,
}

impl RoomView {
    /// An empty view of `room_id` as seen by `own_server`.
    pub fn new(room_id: &str, own_server: &str) -> RoomView {
        RoomView {
            room_id: room_id.to_owned(),
            own_server: own_server.to_owned(),
            visible: BTreeSet::new(),
            departed: BTreeMap::new(),
        }
    }

    /// A view built from membership events: `(user_id, membership)` pairs, for the current state
    /// and, if known, earlier memberships. The server is the part of the user ID after the first
    /// `:` (so `@:server`, a server pseudouser, counts too); malformed user IDs are skipped.
    pub fn from_memberships<U: AsRef<str>, M: AsRef<str>>(
        room_id: &str,
        own_server: &str,
        memberships: &[(U, M)],
    ) -> RoomView {
        let mut view = RoomView::new(room_id, own_server);
        for (user, membership) in memberships {
            let Some((_, server)) = user.as_ref().split_once(':') else {
                continue;
            };
            if !user.as_ref().starts_with('@') || server.is_empty() {
                continue;
            }
            match membership.as_ref() {
                "join" => view.add_visible(server),
                "leave" => view.add_departed(server, Departure::Left),
                "ban" => view.add_departed(server, Departure::Banned),
                _ => {}
            }
        }
        view
    }

    /// Marks `server` as visible (a user of it is joined).
    pub fn add_visible(&mut self, server: &str) {
        self.visible.insert(server.to_owned());
    }

    /// Records that `server`'s users left or were banned (a ban outranks a leave).
    pub fn add_departed(&mut self, server: &str, how: Departure) {
        let entry = self.departed.entry(server.to_owned()).or_insert(how);
        *entry = (*entry).max(how);
    }

    /// The room.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// The server doing the audit.
    pub fn own_server(&self) -> &str {
        &self.own_server
    }

    /// Whether `server` is visible in the room.
    pub fn is_visible(&self, server: &str) -> bool {
        self.visible.contains(server)
    }

    /// How `server` left the room, if our view shows it did.
    pub fn departure(&self, server: &str) -> Option<Departure> {
        self.departed.get(server).copied()
    }
}

/// One peer's answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAnswer {
    /// The peer recognised the room's tag.
    Recognised,
    /// The peer answered without the room's tag.
    NotRecognised,
    /// No usable answer: a timeout, an HTTP error, a malformed response.
    Failed(String),
}

/// An audit of one room: the peers to ask, and the report once they answered.
#[derive(Debug, Clone)]
pub struct Audit {
    view: RoomView,
    peers: Vec<String>,
}

impl Audit {
    /// Plans the audit of `view`: up to `max_peers` of `known_peers` (in the given order) that are
    /// neither us nor visible in the room.
    pub fn plan<S: AsRef<str>>(view: RoomView, known_peers: &[S], max_peers: usize) -> Audit {
        let mut seen = HashSet::new();
        let peers = known_peers
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| !p.is_empty() && *p != view.own_server && !view.is_visible(p))
            .filter(|p| seen.insert(*p))
            .take(max_peers)
            .map(str::to_owned)
            .collect();
        Audit { view, peers }
    }

    /// The peers to ask, in order.
    pub fn peers(&self) -> &[String] {
        &self.peers
    }

    /// The room view being audited.
    pub fn view(&self) -> &RoomView {
        &self.view
    }

    /// The `discover_common_rooms` request body asking `peer` about this room.
    pub fn request_body(&self, peer: &str) -> Vec<u8> {
        // One room is one chunk under any cap, so the first body always exists.
        self.requester(peer).request_body(0).unwrap_or_default()
    }

    /// Reads `peer`'s response body to [`Audit::request_body`]; a malformed answer is
    /// [`PeerAnswer::Failed`] with the reason.
    pub fn read_response(&self, peer: &str, body: &[u8]) -> PeerAnswer {
        match self.requester(peer).map_response(0, body) {
            Ok(rooms) if rooms.is_empty() => PeerAnswer::NotRecognised,
            Ok(_) => PeerAnswer::Recognised,
            Err(e) => PeerAnswer::Failed(format!("malformed response: {}", e.message())),
        }
    }

    fn requester(&self, peer: &str) -> Requester {
        Requester::new(peer, &[self.view.room_id.as_str()], 1)
    }

    /// Combines the answers (from planned peers, and any others asked) into a report. Planned
    /// peers missing from `answers` count as failed; for a peer named twice the first answer counts.
    pub fn report(&self, answers: &[(String, PeerAnswer)]) -> AuditReport {
        let mut report = AuditReport {
            room_id: self.view.room_id.clone(),
            server: self.view.own_server.clone(),
            asked: Vec::new(),
            visible: Vec::new(),
            explained: Vec::new(),
            unexplained: Vec::new(),
            not_recognising: Vec::new(),
            failed: Vec::new(),
        };
        let mut by_peer: BTreeMap<&str, &PeerAnswer> = BTreeMap::new();
        for (peer, answer) in answers {
            by_peer.entry(peer.as_str()).or_insert(answer);
        }
        // Planned peers first, in plan order, then anyone else who answered, in answer order.
        let mut order: Vec<&str> = self.peers.iter().map(String::as_str).collect();
        let mut listed: HashSet<&str> = order.iter().copied().collect();
        for (peer, _) in answers {
            if listed.insert(peer.as_str()) {
                order.push(peer.as_str());
            }
        }
        let no_answer = PeerAnswer::Failed("no answer".to_owned());
        for peer in order {
            let answer = by_peer.get(peer).copied().unwrap_or(&no_answer);
            report.asked.push(peer.to_owned());
            match answer {
                PeerAnswer::Failed(why) => report.failed.push((peer.to_owned(), why.clone())),
                PeerAnswer::NotRecognised => report.not_recognising.push(peer.to_owned()),
                PeerAnswer::Recognised if self.view.is_visible(peer) => {
                    report.visible.push(peer.to_owned())
                }
                PeerAnswer::Recognised => match self.view.departure(peer) {
                    Some(how) => report.explained.push((peer.to_owned(), how)),
                    None => report.unexplained.push(peer.to_owned()),
                },
            }
        }
        report
    }
}

/// What an audit found, for machines ([`AuditReport::to_json`]) and people
/// ([`AuditReport::to_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// The audited room.
    pub room_id: String,
    /// The server that ran the audit.
    pub server: String,
    /// Every peer in the report, in order.
    pub asked: Vec<String>,
    /// Peers visible in the room that recognise it (consistent; only present if asked).
    pub visible: Vec<String>,
    /// Peers not visible that recognise the room, with how our view shows them leaving.
    pub explained: Vec<(String, Departure)>,
    /// Peers not visible that recognise the room with no membership in our view at all.
    pub unexplained: Vec<String>,
    /// Peers that answered without recognising the room.
    pub not_recognising: Vec<String>,
    /// Peers without a usable answer, with the reason.
    pub failed: Vec<(String, String)>,
}

impl AuditReport {
    /// True when some server recognises the room with no membership in our view: we may have
    /// been shown a branch of the room that hides its other members.
    pub fn hidden_branch_suspected(&self) -> bool {
        !self.unexplained.is_empty()
    }

    /// One word for the outcome: `hidden_branch_suspected`, `inconclusive` (nobody gave a usable
    /// answer) or `consistent`.
    pub fn verdict(&self) -> &'static str {
        if self.hidden_branch_suspected() {
            "hidden_branch_suspected"
        } else if self.failed.len() == self.asked.len() {
            "inconclusive"
        } else {
            "consistent"
        }
    }

    /// The report as a JSON value (see `docs/discovery.md` for the shape).
    pub fn to_value(&self) -> Value {
        let strings =
            |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        let mut o = Object::new();
        o.insert("room_id".into(), Value::from(self.room_id.as_str()));
        o.insert("server".into(), Value::from(self.server.as_str()));
        o.insert("verdict".into(), Value::from(self.verdict()));
        o.insert("asked".into(), strings(&self.asked));
        o.insert("visible".into(), strings(&self.visible));
        o.insert(
            "explained".into(),
            Value::Array(
                self.explained
                    .iter()
                    .map(|(server, how)| {
                        let mut e = Object::new();
                        e.insert("server".into(), Value::from(server.as_str()));
                        e.insert("membership".into(), Value::from(how.as_str()));
                        Value::Object(e)
                    })
                    .collect(),
            ),
        );
        o.insert("unexplained".into(), strings(&self.unexplained));
        o.insert("not_recognising".into(), strings(&self.not_recognising));
        o.insert(
            "failed".into(),
            Value::Array(
                self.failed
                    .iter()
                    .map(|(server, why)| {
                        let mut e = Object::new();
                        e.insert("server".into(), Value::from(server.as_str()));
                        e.insert("error".into(), Value::from(why.as_str()));
                        Value::Object(e)
                    })
                    .collect(),
            ),
        );
        Value::Object(o)
    }

    /// The report as canonical JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_value().to_canonical()
    }

    /// A short rendering for people (a few lines, no trailing newline).
    pub fn to_text(&self) -> String {
        let mut lines = vec![format!(
            "Audit of {} by {}: asked {} peer(s) not visible in the room.",
            self.room_id,
            self.server,
            self.asked.len()
        )];
        if self.hidden_branch_suspected() {
            lines.push(format!(
                "  HIDDEN BRANCH SUSPECTED: {} server(s) recognise the room but have no membership in our view:",
                self.unexplained.len()
            ));
            lines.push(format!("    {}", self.unexplained.join(", ")));
        } else {
            lines.push(format!("  Verdict: {}.", self.verdict()));
        }
        if !self.explained.is_empty() {
            let list: Vec<String> = self
                .explained
                .iter()
                .map(|(s, how)| format!("{s} ({})", how.as_str()))
                .collect();
            lines.push(format!(
                "  Explained (were in the room): {}",
                list.join(", ")
            ));
        }
        if !self.visible.is_empty() {
            lines.push(format!(
                "  Visible and recognising: {}",
                self.visible.join(", ")
            ));
        }
        if !self.not_recognising.is_empty() {
            lines.push(format!(
                "  Not recognising: {}",
                self.not_recognising.join(", ")
            ));
        }
        if !self.failed.is_empty() {
            let list: Vec<String> = self
                .failed
                .iter()
                .map(|(s, why)| format!("{s} ({why})"))
                .collect();
            lines.push(format!("  No answer: {}", list.join(", ")));
        }
        lines.join("\n")
    }
}
