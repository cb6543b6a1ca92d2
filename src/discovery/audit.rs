//! The post-join audit: ask peers we know from elsewhere whether they have been in the room we
//! just joined, and explain (or fail to explain) every "yes".
//!
//! This is the point of [MSC4358](https://github.com/matrix-org/matrix-spec-proposals/pull/4358)
//! (`docs/protocol.md`, "MSC4358 audit and budgets"): a malicious server can show a new joiner a
//! branch of the room that hides the other members. Those hidden servers still hold their
//! participation tag for the room, so a peer that is *not* visible in our view of the room but
//! *recognises* it is a finding. What our server knows of the room is its membership history:
//! every `m.room.member` event it has, in the order it received them, as
//! `(user_id, membership, sender)` ([`RoomView::from_history`]). A recognising peer that is not
//! visible is classified from that history:
//!
//! - **unexplained**: no user of that server ever joined in our history (invites, knocks, and
//!   kicks or bans without a join explain nothing: a server records its tag when it joins). It
//!   has been in a room we cannot see it in: we may be on a hidden branch;
//! - **removed by another server**: a user of it joined at some point, and a user of it has as
//!   last membership a `leave` (a kick) or `ban` sent by a user of *another* server. The report
//!   names who removed it. Never folded into "explained": removing the other servers' users is
//!   exactly what a server hiding them would do;
//! - **explained**: a user of it joined at some point, and no other server removed it (its users
//!   left, were banned by their own server's admin, re-joined and left, ...). The report keeps
//!   the last membership.
//!
//! The verdict ranks them: `hidden_branch_suspected`, then `removed_by_other_server`, then
//! `inconclusive` (nobody asked, or every asked peer failed), then `consistent`.
//!
//! Peers are chosen with [`Audit::choose`] (weighted by a score such as the number of rooms we
//! share with them, seeded, so that a plan is reproducible but not predictable by a peer) or
//! [`Audit::plan`] (in the caller's order). A peer that was planned but never answered counts as
//! failed ("no answer").

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::discovery::requester::Requester;
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::json::{Object, Value};

/// How a server that is no longer visible in the room was part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Departure {
    /// Its users left (`membership: leave`), or, when another server sent the leave, were kicked.
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

    /// `leave` or `ban`; anything else is `None`.
    pub fn from_membership(membership: &str) -> Option<Departure> {
        match membership {
            "leave" => Some(Departure::Left),
            "ban" => Some(Departure::Banned),
            _ => None,
        }
    }
}

/// The Matrix membership values a history entry may carry; anything else is skipped.
const MEMBERSHIPS: [&str; 5] = ["join", "leave", "ban", "invite", "knock"];

/// A server removed from the room by a user of another server: its users' last membership is a
/// `leave` (kicked) or `ban` sent by someone else's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The removed server.
    pub server: String,
    /// [`Departure::Banned`] if any of its removed users was banned, else [`Departure::Left`]
    /// (kicked).
    pub membership: Departure,
    /// The user IDs that sent the removals, each once, in history order.
    pub removed_by: Vec<String>,
}

/// What our history says about one server (other than whether it is visible).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ServerRecord {
    /// Some user of this server joined at some point.
    ever_joined: bool,
    /// The membership of the latest entry of any of its users.
    last_membership: Option<String>,
    /// Set when some user of it was last removed by another server's user.
    removal: Option<(Departure, Vec<String>)>,
}

/// How a server that recognises the room, and is not visible in it, is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Visible in the room: a recognition is expected.
    Visible,
    /// Was in the room and left on its own terms; the last membership in our history.
    Explained(String),
    /// Was in the room and was removed by another server's user.
    RemovedByOther {
        /// `leave` (kicked) or `ban`.
        membership: Departure,
        /// Who removed it, each once, in history order.
        removed_by: Vec<String>,
    },
    /// Never joined in our history: a recognition means it was in a room we cannot see.
    Unexplained,
}

/// What we can see of a room we just joined: who is in it, and what each server's users did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    room_id: String,
    own_server: String,
    visible: BTreeSet<String>,
    servers: BTreeMap<String, ServerRecord>,
}

/// One entry of a membership history, checked.
struct Entry {
    user: UserId,
    membership: &'static str,
    sender: UserId,
}

fn entry(user: &str, membership: &str, sender: &str) -> Option<Entry> {
    let membership = MEMBERSHIPS.iter().copied().find(|m| *m == membership)?;
    Some(Entry {
        user: UserId::parse(user).ok()?,
        membership,
        sender: UserId::parse(sender).ok()?,
    })
}

impl RoomView {
    /// An empty view of `room_id` as seen by `own_server`.
    pub fn new(room_id: &str, own_server: &str) -> RoomView {
        RoomView {
            room_id: room_id.to_owned(),
            own_server: own_server.to_owned(),
            visible: BTreeSet::new(),
            servers: BTreeMap::new(),
        }
    }

    /// The view from the room's membership history: every membership event our server has for
    /// the room (not only the current state), as `(user_id, membership, sender)` in the order it
    /// received them.
    ///
    /// A user's server is the part of its user ID after the first `:` (the server pseudouser
    /// `@:server` counts for `server`). Entries with a user or sender that is not a valid user ID,
    /// or a membership other than `join`, `leave`, `ban`, `invite` and `knock`, are skipped.
    ///
    /// `visible`, when given, is the homeserver's own list of servers with a currently joined user,
    /// and wins over the history; when `None`, a server is visible if one of its users has `join`
    /// as last entry.
    pub fn from_history<U, M, S, V>(
        room_id: &str,
        own_server: &str,
        history: &[(U, M, S)],
        visible: Option<&[V]>,
    ) -> RoomView
    where
        U: AsRef<str>,
        M: AsRef<str>,
        S: AsRef<str>,
        V: AsRef<str>,
    {
        let mut view = RoomView::new(room_id, own_server);
        // Each user's last entry, and the position it came at.
        let mut last: HashMap<String, (usize, Entry)> = HashMap::new();
        for (at, (user, membership, sender)) in history.iter().enumerate() {
            let Some(e) = entry(user.as_ref(), membership.as_ref(), sender.as_ref()) else {
                continue;
            };
            let record = view
                .servers
                .entry(e.user.server_name().as_str().to_owned())
                .or_default();
            record.ever_joined |= e.membership == "join";
            record.last_membership = Some(e.membership.to_owned());
            last.insert(e.user.as_str().to_owned(), (at, e));
        }
        let mut lasts: Vec<&(usize, Entry)> = last.values().collect();
        lasts.sort_by_key(|(at, _)| *at);
        for (_, e) in lasts {
            let server = e.user.server_name().as_str();
            if visible.is_none() && e.membership == "join" {
                view.visible.insert(server.to_owned());
            }
            let Some(how) = Departure::from_membership(e.membership) else {
                continue;
            };
            if e.sender.server_name() == e.user.server_name() {
                continue;
            }
            let Some(record) = view.servers.get_mut(server) else {
                continue;
            };
            let (membership, removed_by) = record.removal.get_or_insert_with(|| (how, Vec::new()));
            *membership = (*membership).max(how);
            if !removed_by.iter().any(|r| r == e.sender.as_str()) {
                removed_by.push(e.sender.as_str().to_owned());
            }
        }
        if let Some(visible) = visible {
            for server in visible {
                view.add_visible(server.as_ref());
            }
        }
        view
    }

    /// A view from current memberships only, `(user_id, membership)` pairs: a `join` makes the
    /// user's server visible, `leave` and `ban` count as having been in the room (a ban outranks
    /// a leave), anything else explains nothing. Kept for callers without the history; prefer
    /// [`RoomView::from_history`], which also sees who removed whom. Malformed user IDs are
    /// skipped.
    pub fn from_memberships<U: AsRef<str>, M: AsRef<str>>(
        room_id: &str,
        own_server: &str,
        memberships: &[(U, M)],
    ) -> RoomView {
        let mut view = RoomView::new(room_id, own_server);
        for (user, membership) in memberships {
            let Ok(user) = UserId::parse(user.as_ref()) else {
                continue;
            };
            let server = user.server_name().as_str();
            match membership.as_ref() {
                "join" => view.add_visible(server),
                other => {
                    if let Some(how) = Departure::from_membership(other) {
                        view.add_departed(server, how);
                    }
                }
            }
        }
        view
    }

    /// Marks `server` as visible (a user of it is joined).
    pub fn add_visible(&mut self, server: &str) {
        self.visible.insert(server.to_owned());
    }

    /// Records that `server` was in the room and its users left or were banned on their own
    /// server's terms (a ban outranks a leave): a recognition by it is explained.
    pub fn add_departed(&mut self, server: &str, how: Departure) {
        let record = self.servers.entry(server.to_owned()).or_default();
        record.ever_joined = true;
        let stronger = match record
            .last_membership
            .as_deref()
            .and_then(Departure::from_membership)
        {
            Some(known) => known.max(how),
            None => how,
        };
        record.last_membership = Some(stronger.as_str().to_owned());
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

    /// The visible servers, sorted.
    pub fn visible_servers(&self) -> impl Iterator<Item = &str> {
        self.visible.iter().map(String::as_str)
    }

    /// Whether a user of `server` ever joined the room in our view.
    pub fn ever_joined(&self, server: &str) -> bool {
        self.servers.get(server).is_some_and(|r| r.ever_joined)
    }

    /// The membership of the latest entry of any of `server`'s users, if it has any.
    pub fn last_membership(&self, server: &str) -> Option<&str> {
        self.servers.get(server)?.last_membership.as_deref()
    }

    /// How `server` left the room, if our view shows that it was in it and its last membership is
    /// `leave` or `ban`.
    pub fn departure(&self, server: &str) -> Option<Departure> {
        let record = self.servers.get(server)?;
        if !record.ever_joined {
            return None;
        }
        Departure::from_membership(record.last_membership.as_deref()?)
    }

    /// How a recognition of the room by `server` is classified (see the module notes).
    pub fn standing(&self, server: &str) -> Standing {
        if self.is_visible(server) {
            return Standing::Visible;
        }
        match self.servers.get(server) {
            Some(r) if r.ever_joined => match &r.removal {
                Some((membership, removed_by)) => Standing::RemovedByOther {
                    membership: *membership,
                    removed_by: removed_by.clone(),
                },
                None => {
                    Standing::Explained(r.last_membership.clone().unwrap_or_else(|| "leave".into()))
                }
            },
            _ => Standing::Unexplained,
        }
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

/// The `discover_common_rooms` request body asking `peer` about `room_id` alone: one tag, keyed
/// by the peer's name.
pub fn request_body_for(peer: &str, room_id: &str) -> Vec<u8> {
    // One room is one chunk under any cap, so the first body always exists.
    Requester::new(peer, &[room_id], 1)
        .request_body(0)
        .unwrap_or_default()
}

/// Whether `peer`'s response `body` to [`request_body_for`]`(peer, room_id)` recognises the
/// room. A malformed answer (not JSON, no `recognised_tags` array of tags, or a tag that was not
/// asked) is an `M_BAD_JSON` error naming what is wrong.
pub fn recognised_in(peer: &str, room_id: &str, body: &[u8]) -> Result<bool> {
    Requester::new(peer, &[room_id], 1)
        .map_response(0, body)
        .map(|rooms| !rooms.is_empty())
}

/// [`recognised_in`] as a [`PeerAnswer`]: a malformed answer is [`PeerAnswer::Failed`] with the
/// reason, so a hostile peer cannot stop an audit.
pub fn read_response_for(peer: &str, room_id: &str, body: &[u8]) -> PeerAnswer {
    match recognised_in(peer, room_id, body) {
        Ok(true) => PeerAnswer::Recognised,
        Ok(false) => PeerAnswer::NotRecognised,
        Err(e) => PeerAnswer::Failed(format!("malformed response: {}", e.message())),
    }
}

/// A small seeded generator (splitmix64): the same seed gives the same peers; it is not a
/// cryptographic generator, and needs none (the seed should come from the system's randomness
/// so that peers cannot predict the plan).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias.
    fn below(&mut self, n: u128) -> u128 {
        // 2^128 mod n: values below it would make the low residues more likely.
        let skip = (u128::MAX % n).wrapping_add(1) % n;
        for _ in 0..128 {
            let x = self.next_u128();
            if x >= skip {
                return x % n;
            }
        }
        // Unreachable in practice (each try fails with probability below 1/2).
        self.next_u128() % n
    }
}

/// Weights with removal, for sampling without replacement in `O(log n)` a draw (a Fenwick tree).
struct Weights {
    tree: Vec<u128>,
    total: u128,
}

impl Weights {
    fn new(weights: &[u128]) -> Weights {
        let n = weights.len();
        let mut tree = vec![0u128; n + 1];
        for (i, w) in weights.iter().enumerate() {
            if let Some(slot) = tree.get_mut(i + 1) {
                *slot = slot.saturating_add(*w);
            }
        }
        for i in 1..=n {
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                let v = tree.get(i).copied().unwrap_or(0);
                if let Some(p) = tree.get_mut(parent) {
                    *p = p.saturating_add(v);
                }
            }
        }
        Weights {
            tree,
            total: weights.iter().fold(0u128, |a, w| a.saturating_add(*w)),
        }
    }

    /// The index whose cumulative range `[sum of weights before it, ... + its weight)` holds `r`.
    fn find(&self, mut r: u128) -> usize {
        let n = self.tree.len() - 1;
        let mut pos = 0usize;
        let mut step = if n == 0 { 0 } else { 1usize << n.ilog2() };
        while step > 0 {
            let next = pos + step;
            if next <= n {
                let v = self.tree.get(next).copied().unwrap_or(0);
                if v <= r {
                    pos = next;
                    r -= v;
                }
            }
            step >>= 1;
        }
        pos // 0-based index of the chosen element
    }

    fn remove(&mut self, index: usize, weight: u128) {
        let n = self.tree.len() - 1;
        let mut i = index + 1;
        while i <= n {
            if let Some(slot) = self.tree.get_mut(i) {
                *slot = slot.saturating_sub(weight);
            }
            i += i & i.wrapping_neg();
        }
        self.total = self.total.saturating_sub(weight);
    }
}

/// An audit of one room: the peers to ask, and the report once they answered.
#[derive(Debug, Clone)]
pub struct Audit {
    view: RoomView,
    peers: Vec<String>,
}

impl Audit {
    /// Plans the audit of `view`: up to `max_peers` of `known_peers` (in the given order) that are
    /// neither us nor visible in the room, without duplicates or empty names.
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

    /// Chooses up to `max_peers` peers of `candidates` at random, each `(server, score)` with a
    /// chance proportional to `score + 1` (a score such as the number of rooms we share with the
    /// server: peers we share much with are likelier to have been in the room, and every peer
    /// keeps a chance). Sampling is without replacement; us, visible servers, empty names and
    /// repeated servers (the first one counts) are dropped first.
    ///
    /// The draw is seeded: the same `seed` gives the same peers in the same order, different seeds
    /// vary them. Pass a fresh random seed per audit so that no peer can predict whether it will
    /// be asked.
    pub fn choose<S: AsRef<str>>(
        view: RoomView,
        candidates: &[(S, u64)],
        max_peers: usize,
        seed: u64,
    ) -> Audit {
        let mut seen = HashSet::new();
        let eligible: Vec<(&str, u128)> = candidates
            .iter()
            .map(|(s, score)| (s.as_ref(), u128::from(*score) + 1))
            .filter(|(p, _)| !p.is_empty() && *p != view.own_server && !view.is_visible(p))
            .filter(|(p, _)| seen.insert(*p))
            .collect();
        let weights: Vec<u128> = eligible.iter().map(|(_, w)| *w).collect();
        let mut tree = Weights::new(&weights);
        let mut rng = SplitMix64(seed);
        let mut peers = Vec::with_capacity(max_peers.min(eligible.len()));
        while peers.len() < max_peers && tree.total > 0 {
            let at = tree.find(rng.below(tree.total));
            let Some(&(peer, weight)) = eligible.get(at) else {
                break;
            };
            tree.remove(at, weight);
            peers.push(peer.to_owned());
        }
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
        request_body_for(peer, &self.view.room_id)
    }

    /// Reads `peer`'s response body to [`Audit::request_body`]; a malformed answer is
    /// [`PeerAnswer::Failed`] with the reason.
    pub fn read_response(&self, peer: &str, body: &[u8]) -> PeerAnswer {
        read_response_for(peer, &self.view.room_id, body)
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
            removed: Vec::new(),
            unexplained: Vec::new(),
            not_recognising: Vec::new(),
            failed: Vec::new(),
        };
        let mut by_peer: HashMap<&str, &PeerAnswer> = HashMap::new();
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
                PeerAnswer::Recognised => match self.view.standing(peer) {
                    Standing::Visible => report.visible.push(peer.to_owned()),
                    Standing::Explained(last) => report.explained.push((peer.to_owned(), last)),
                    Standing::RemovedByOther {
                        membership,
                        removed_by,
                    } => report.removed.push(Removal {
                        server: peer.to_owned(),
                        membership,
                        removed_by,
                    }),
                    Standing::Unexplained => report.unexplained.push(peer.to_owned()),
                },
            }
        }
        report
    }
}

/// The verdicts, from the most serious.
pub const VERDICTS: [&str; 4] = [
    "hidden_branch_suspected",
    "removed_by_other_server",
    "inconclusive",
    "consistent",
];

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
    /// Peers not visible that recognise the room and were in it in our history, left on their own
    /// terms, with the last membership of their users (`leave`, `ban`, `invite`, ...).
    pub explained: Vec<(String, String)>,
    /// Peers not visible that recognise the room and were removed by another server's user.
    pub removed: Vec<Removal>,
    /// Peers not visible that recognise the room and never joined it in our history.
    pub unexplained: Vec<String>,
    /// Peers that answered without recognising the room.
    pub not_recognising: Vec<String>,
    /// Peers without a usable answer, with the reason.
    pub failed: Vec<(String, String)>,
}

impl AuditReport {
    /// True when some server recognises the room but never joined it in our view: we may have
    /// been shown a branch of the room that hides its other members.
    pub fn hidden_branch_suspected(&self) -> bool {
        !self.unexplained.is_empty()
    }

    /// One word for the outcome, the first that applies: `hidden_branch_suspected` (some peer is
    /// unexplained), `removed_by_other_server` (some peer was removed by another server's user),
    /// `inconclusive` (nobody was asked, or no asked peer gave a usable answer), `consistent`.
    pub fn verdict(&self) -> &'static str {
        if self.hidden_branch_suspected() {
            "hidden_branch_suspected"
        } else if !self.removed.is_empty() {
            "removed_by_other_server"
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
        let pairs = |v: &[(String, String)], second: &str| {
            Value::Array(
                v.iter()
                    .map(|(server, x)| {
                        let mut e = Object::new();
                        e.insert("server".into(), Value::from(server.as_str()));
                        e.insert(second.into(), Value::from(x.as_str()));
                        Value::Object(e)
                    })
                    .collect(),
            )
        };
        let mut o = Object::new();
        o.insert("room_id".into(), Value::from(self.room_id.as_str()));
        o.insert("server".into(), Value::from(self.server.as_str()));
        o.insert("verdict".into(), Value::from(self.verdict()));
        o.insert("asked".into(), strings(&self.asked));
        o.insert("visible".into(), strings(&self.visible));
        o.insert("explained".into(), pairs(&self.explained, "membership"));
        o.insert(
            "removed".into(),
            Value::Array(
                self.removed
                    .iter()
                    .map(|r| {
                        let mut e = Object::new();
                        e.insert("server".into(), Value::from(r.server.as_str()));
                        e.insert("membership".into(), Value::from(r.membership.as_str()));
                        e.insert("removed_by".into(), strings(&r.removed_by));
                        Value::Object(e)
                    })
                    .collect(),
            ),
        );
        o.insert("unexplained".into(), strings(&self.unexplained));
        o.insert("not_recognising".into(), strings(&self.not_recognising));
        o.insert("failed".into(), pairs(&self.failed, "error"));
        Value::Object(o)
    }

    /// The report as canonical JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        self.to_value().to_canonical()
    }

    /// A short rendering for people (a few lines, no trailing newline).
    pub fn to_text(&self) -> String {
        let mut lines = vec![format!(
            "Audit of {} by {}: asked {} peer(s). Verdict: {}.",
            self.room_id,
            self.server,
            self.asked.len(),
            self.verdict()
        )];
        if self.hidden_branch_suspected() {
            lines.push(format!(
                "  HIDDEN BRANCH SUSPECTED: {} server(s) recognise the room but never joined it in our view: {}",
                self.unexplained.len(),
                self.unexplained.join(", ")
            ));
        }
        if !self.removed.is_empty() {
            let list: Vec<String> = self
                .removed
                .iter()
                .map(|r| {
                    let how = match r.membership {
                        Departure::Left => "kicked",
                        Departure::Banned => "banned",
                    };
                    format!("{} ({how} by {})", r.server, r.removed_by.join(", "))
                })
                .collect();
            lines.push(format!("  REMOVED BY ANOTHER SERVER: {}", list.join("; ")));
        }
        if !self.explained.is_empty() {
            let list: Vec<String> = self
                .explained
                .iter()
                .map(|(s, how)| format!("{s} ({how})"))
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

/// Parses an answer kind as the C API and reports spell it: `recognised`, `not_recognised`, or
/// `failed` with a reason.
pub fn peer_answer(kind: &str, error: Option<&str>) -> Result<PeerAnswer> {
    match kind {
        "recognised" => Ok(PeerAnswer::Recognised),
        "not_recognised" => Ok(PeerAnswer::NotRecognised),
        "failed" => Ok(PeerAnswer::Failed(
            error
                .filter(|e| !e.is_empty())
                .unwrap_or("failed")
                .to_owned(),
        )),
        other => Err(Error::invalid_param(format!(
            "answer must be \"recognised\", \"not_recognised\" or \"failed\", not {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}
