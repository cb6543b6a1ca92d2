//! Room upgrade negotiation for s2s rooms (MSC3348 "Room Upgrade Negotiation"; the flow and every
//! decision are written out in `docs/s2s.md`).
//!
//! Events (each answering event points at what it answers with
//! `"m.relates_to": {"rel_type": "m.reference", "event_id": "$…"}`):
//! - `m.s2s.upgrade.proposal` `{"versions": [{"version": "11", "rating": 10}, …]}` — initiator;
//! - `m.s2s.upgrade.reply` `{"versions": […]}` — responder, when its list differs (possibly
//!   empty: a responder whose floor leaves nothing still answers, and the initiator fails);
//! - `m.s2s.upgrade.accept` `{"version": "11"}` — by the responder straight to the proposal when
//!   the lists are equal, otherwise by the initiator to the reply; `{"method": "…"}` — by the
//!   responder to a vendor opening it supports;
//! - `m.s2s.upgrade.ack` `{}` — the other side acks the accept, then the accepter acks that ack;
//! - `m.s2s.upgrade.fail` `{"error": "no match" | "invalid method" | …}`: ends the negotiation
//!   whatever the error says;
//! - `m.s2s.upgrade` `{"method": "…"}` — a vendor negotiation; an unknown method gets
//!   `fail {"error": "invalid method"}`.
//!
//! **Choice rule** ([`choose_version`]): among versions in both lists, the highest minimum of the
//! two ratings, then the highest sum, then the newest version ([`compare_versions`], a total order:
//! only equal strings tie). It is symmetric, so both sides compute the same answer from the same
//! two lists; the side that receives an `accept` recomputes it and fails with `no match` if it
//! differs.
//!
//! **Policy** ([`NegotiationPolicy`]) shapes the list a side advertises: versions below the
//! *floor* (downgrade protection) are never offered, and in *most-preferred-only* mode only the
//! top-rated versions are offered. Since a choice must be in both lists, a side's policy always
//! holds, and a peer that cannot meet it gets `no match`.
//!
//! **The machine** ([`Negotiation`]) knows both server names. It is fed the room's negotiation
//! events ([`Negotiation::handle`]) and answers with a [`Step`]: a new event to send, an event to
//! deliver again, the outcome, and — to the initiator alone, once — the version to upgrade the
//! room to now. The rules that make it end, and end the same on both sides:
//! - its own events (the echo of what it sent) are ignored, and events from a third server are
//!   refused, so an own `ack` is never taken for the peer's;
//! - the homeserver must report the ID of each event it sends ([`Negotiation::sent`]) before
//!   feeding more events; answers must point at that ID;
//! - an event already handled (a duplicate) changes nothing; a finished side that sent the last
//!   word delivers it again when the peer repeats what it answered;
//! - loss is repaired by [`Negotiation::tick`], called on a timer: an unfinished side delivers its
//!   last event again (the same event, not a new one);
//! - when both sides propose at once, the proposal of the lower server name (bytewise) wins: the
//!   higher side drops its own and answers the lower's, and the lower side ignores the higher's.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::ids::ServerName;
use crate::json::{Object, Value};
use crate::room_state::user_server;

/// `m.s2s.upgrade.proposal`.
pub const PROPOSAL: &str = "m.s2s.upgrade.proposal";
/// `m.s2s.upgrade.reply`.
pub const REPLY: &str = "m.s2s.upgrade.reply";
/// `m.s2s.upgrade.accept`.
pub const ACCEPT: &str = "m.s2s.upgrade.accept";
/// `m.s2s.upgrade.ack`.
pub const ACK: &str = "m.s2s.upgrade.ack";
/// `m.s2s.upgrade.fail`.
pub const FAIL: &str = "m.s2s.upgrade.fail";
/// `m.s2s.upgrade` (vendor method).
pub const VENDOR: &str = "m.s2s.upgrade";
/// The most versions one list may carry.
pub const MAX_VERSIONS: usize = 64;
/// The longest vendor method name, in bytes.
pub const MAX_METHOD_BYTES: usize = 255;
/// How many characters of an unknown `fail` error are kept (for logs).
const MAX_ERROR_CHARS: usize = 200;
/// How many peer events a machine remembers having ignored (the ones that moved it are always
/// remembered; there are at most four).
const MAX_SEEN: usize = 64;
/// After this many calls of [`Negotiation::tick`] in a row with no event from the peer moving the
/// negotiation on, an unfinished side gives up: `Failed(Other("timed out"))`, nothing sent.
pub const GIVE_UP_AFTER_TICKS: u32 = 32;

/// One entry of a `versions` list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionOffer {
    /// A room version identifier (`[a-z0-9.-]`, 1–32 characters).
    pub version: String,
    /// How much the sender prefers it (higher = more preferred).
    pub rating: i64,
}

impl VersionOffer {
    /// An offer.
    pub fn new(version: &str, rating: i64) -> Self {
        VersionOffer {
            version: version.to_owned(),
            rating,
        }
    }
}

/// Compares room versions by "newness": split at `.`, compare part by part; two all-digit parts
/// compare numerically (no overflow), an all-digit part is newer than any other part, other parts
/// compare bytewise; when one is a prefix of the other, the longer is newer. So
/// `"9" < "10" < "10.1"` and `"org.example.1" < "11"`.
///
/// A total order: versions that are numerically equal but spelled differently (`"01"` and `"1"`)
/// are ordered by their bytes (`"01" < "1"`), so only identical strings compare equal and the
/// choice never depends on list order.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut pa = a.split('.');
    let mut pb = b.split('.');
    loop {
        match (pa.next(), pb.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let dx = !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
                let dy = !y.is_empty() && y.bytes().all(|c| c.is_ascii_digit());
                let ord = match (dx, dy) {
                    (true, true) => {
                        let tx = x.trim_start_matches('0');
                        let ty = y.trim_start_matches('0');
                        tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
                    }
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// The choice rule over two lists; `None` if they share no version. Symmetric:
/// `choose_version(a, b) == choose_version(b, a)`.
pub fn choose_version(mine: &[VersionOffer], theirs: &[VersionOffer]) -> Option<String> {
    mine.iter()
        .filter_map(|m| {
            theirs
                .iter()
                .find(|t| t.version == m.version)
                .map(|t| (m, t))
        })
        .max_by(|(m1, t1), (m2, t2)| {
            let min1 = m1.rating.min(t1.rating);
            let min2 = m2.rating.min(t2.rating);
            let sum1 = i128::from(m1.rating) + i128::from(t1.rating);
            let sum2 = i128::from(m2.rating) + i128::from(t2.rating);
            min1.cmp(&min2)
                .then(sum1.cmp(&sum2))
                .then_with(|| compare_versions(&m1.version, &m2.version))
        })
        .map(|(m, _)| m.version.clone())
}

fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// Parses a `versions` list from an event content: 1–[`MAX_VERSIONS`] objects with a valid
/// `version` string and an integer `rating`, no version twice.
pub fn parse_versions(content: &Object) -> Result<Vec<VersionOffer>> {
    parse_version_list(content, false)
}

/// As [`parse_versions`], for a `reply`: the list may be empty (the responder has nothing to
/// offer, and the initiator then fails with `no match`).
pub fn parse_reply_versions(content: &Object) -> Result<Vec<VersionOffer>> {
    parse_version_list(content, true)
}

fn parse_version_list(content: &Object, allow_empty: bool) -> Result<Vec<VersionOffer>> {
    let list = match content.get("versions") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "content.versions must be an array, not {}",
                other.type_name()
            )));
        }
        None => return Err(Error::missing_param("content.versions is missing")),
    };
    if list.is_empty() && !allow_empty {
        return Err(Error::invalid_param("content.versions must not be empty"));
    }
    if list.len() > MAX_VERSIONS {
        return Err(Error::too_large(format!(
            "content.versions has more than {MAX_VERSIONS} entries"
        )));
    }
    let mut out: Vec<VersionOffer> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let place = format!("content.versions[{i}]");
        let Value::Object(o) = item else {
            return Err(Error::bad_json(format!(
                "{place} must be an object, not {}",
                item.type_name()
            )));
        };
        let version = match o.get("version") {
            Some(Value::String(s)) if valid_version(s) => s.clone(),
            Some(Value::String(s)) => {
                return Err(Error::invalid_param(format!(
                    "{place}.version {s:?} is not a room version"
                )));
            }
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "{place}.version must be a string, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::missing_param(format!("{place}.version is missing"))),
        };
        let rating = match o.get("rating") {
            Some(Value::Int(n)) => *n,
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "{place}.rating must be an integer, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::missing_param(format!("{place}.rating is missing"))),
        };
        if out.iter().any(|v| v.version == version) {
            return Err(Error::invalid_param(format!(
                "{place}.version {version:?} is listed twice"
            )));
        }
        out.push(VersionOffer { version, rating });
    }
    Ok(out)
}

fn versions_value(list: &[VersionOffer]) -> Value {
    Value::Array(
        list.iter()
            .map(|v| {
                let mut o = Object::new();
                o.insert("version".into(), Value::from(v.version.as_str()));
                o.insert("rating".into(), Value::Int(v.rating));
                Value::Object(o)
            })
            .collect(),
    )
}

fn reference(event_id: &str) -> Value {
    let mut o = Object::new();
    o.insert("rel_type".into(), Value::from("m.reference"));
    o.insert("event_id".into(), Value::from(event_id));
    Value::Object(o)
}

/// The `m.reference` target of a content, if it has a well-formed one.
pub fn referenced_event(content: &Object) -> Option<&str> {
    let rel = content.get("m.relates_to")?.as_object()?;
    if rel.get("rel_type")?.as_str()? != "m.reference" {
        return None;
    }
    rel.get("event_id")?
        .as_str()
        .filter(|id| id.starts_with('$'))
}

/// Why a negotiation failed (the `error` of `m.s2s.upgrade.fail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailError {
    /// `no match`.
    NoMatch,
    /// `invalid method`.
    InvalidMethod,
    /// Any other error string the peer sent (cut to 200 characters; empty when the peer sent no
    /// string): the negotiation still ends.
    Other(String),
}

impl FailError {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            FailError::NoMatch => "no match",
            FailError::InvalidMethod => "invalid method",
            FailError::Other(s) => s,
        }
    }

    /// Reads the `error` of a `fail` content: the two known strings, or anything else as
    /// [`FailError::Other`] (a missing or non-string `error` is `Other("")`).
    pub fn from_content(content: &Object) -> Self {
        match content.get("error").and_then(Value::as_str) {
            Some("no match") => FailError::NoMatch,
            Some("invalid method") => FailError::InvalidMethod,
            Some(other) => FailError::Other(other.chars().take(MAX_ERROR_CHARS).collect()),
            None => FailError::Other(String::new()),
        }
    }
}

/// An event to send: the homeserver wraps it (room, sender, signatures) and sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The event type.
    pub event_type: String,
    /// The content, with `m.relates_to` when it answers something.
    pub content: Object,
}

/// An incoming negotiation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Its event ID.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its sender (a user ID; its server decides which side sent it).
    pub sender: String,
    /// Its content.
    pub content: Object,
}

impl Incoming {
    /// Reads `event_id`, `type`, `sender` and `content` from an event.
    pub fn from_event(event: &Object) -> Result<Self> {
        let s = |k: &str| match event.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(Error::bad_json(format!(
                "{k} must be a string, not {}",
                other.type_name()
            ))),
            None => Err(Error::missing_param(format!("{k} is missing"))),
        };
        let content = match event.get("content") {
            Some(Value::Object(o)) => o.clone(),
            Some(other) => {
                return Err(Error::bad_json(format!(
                    "content must be an object, not {}",
                    other.type_name()
                )));
            }
            None => return Err(Error::missing_param("content is missing")),
        };
        Ok(Incoming {
            event_id: s("event_id")?,
            event_type: s("type")?,
            sender: s("sender")?,
            content,
        })
    }
}

/// Where a negotiation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still going.
    InProgress,
    /// Both sides agreed on this room version. The initiator upgrades the room (its [`Step`]
    /// says so once, in [`Step::upgrade`]); the responder follows the tombstone.
    Agreed(String),
    /// The negotiation failed.
    Failed(FailError),
    /// Both sides agreed to negotiate with this vendor method; it continues outside this machine.
    Vendor(String),
}

impl Outcome {
    /// True once the negotiation has ended, one way or another.
    pub fn is_finished(&self) -> bool {
        !matches!(self, Outcome::InProgress)
    }
}

/// The result of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// A new event to send now; report its ID with [`Negotiation::sent`].
    pub send: Option<Outgoing>,
    /// The ID of an event this side already sent, to deliver to the peer again (the same event:
    /// do not create a new one).
    pub resend: Option<String>,
    /// To the initiator only, once, when both sides have agreed: upgrade the room to this
    /// version now.
    pub upgrade: Option<String>,
    /// The outcome after this step.
    pub outcome: Outcome,
}

impl Step {
    fn quiet(outcome: Outcome) -> Self {
        Step {
            send: None,
            resend: None,
            upgrade: None,
            outcome,
        }
    }
}

/// One side's policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NegotiationPolicy {
    /// The versions this side supports, with ratings.
    pub versions: Vec<VersionOffer>,
    /// Offer only the top-rated versions ("highest security mode").
    pub most_preferred_only: bool,
    /// Never offer versions older than this (downgrade protection).
    pub floor: Option<String>,
    /// Vendor methods this side accepts.
    pub vendor_methods: Vec<String>,
}

impl NegotiationPolicy {
    /// The list this side advertises: floor applied, then most-preferred-only.
    pub fn advertised(&self) -> Vec<VersionOffer> {
        let mut list: Vec<VersionOffer> = self
            .versions
            .iter()
            .filter(|v| {
                self.floor
                    .as_deref()
                    .is_none_or(|f| compare_versions(&v.version, f) != Ordering::Less)
            })
            .cloned()
            .collect();
        if self.most_preferred_only {
            if let Some(top) = list.iter().map(|v| v.rating).max() {
                list.retain(|v| v.rating == top);
            }
        }
        list
    }

    /// Checks that a peer could parse what this policy makes a side send: at most
    /// [`MAX_VERSIONS`] versions, each a room version (`[a-z0-9.-]`, 1–32 characters) listed
    /// once, a floor that is a room version, vendor methods of 1–255 bytes.
    pub fn check(&self) -> Result<()> {
        if self.versions.len() > MAX_VERSIONS {
            return Err(Error::too_large(format!(
                "versions has more than {MAX_VERSIONS} entries"
            )));
        }
        for (i, v) in self.versions.iter().enumerate() {
            if !valid_version(&v.version) {
                return Err(Error::invalid_param(format!(
                    "versions[{i}] {:?} is not a room version",
                    v.version
                )));
            }
            if self.versions[..i].iter().any(|w| w.version == v.version) {
                return Err(Error::invalid_param(format!(
                    "versions[{i}] {:?} is listed twice",
                    v.version
                )));
            }
        }
        if let Some(f) = self.floor.as_deref() {
            if !valid_version(f) {
                return Err(Error::invalid_param(format!(
                    "floor {f:?} is not a room version"
                )));
            }
        }
        for m in &self.vendor_methods {
            check_method(m)?;
        }
        Ok(())
    }
}

fn check_method(method: &str) -> Result<()> {
    if method.is_empty() || method.len() > MAX_METHOD_BYTES {
        return Err(Error::invalid_param(format!(
            "a vendor method must have 1 to {MAX_METHOD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Which side this machine plays. The side whose opening was answered is the initiator, even
/// when both proposed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the opening that is being answered; performs the upgrade.
    Initiator,
    /// Answered the peer's opening; follows the tombstone.
    Responder,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Initiator, proposal sent: expecting a reply, an accept or a fail.
    Proposed,
    /// Initiator of a vendor negotiation: expecting an accept of the method or a fail.
    VendorStarted(String),
    /// Responder, reply sent: expecting an accept or a fail.
    Replied,
    /// This side sent an accept: expecting the other side's ack.
    Accepted(String),
    /// This side acked the other's accept: expecting the ack of that ack.
    Acked(String),
    /// Finished. `last_word` is true when this side's last event ended it (a `fail`, the second
    /// `ack`, an accept of a vendor method): that event is delivered again if the peer repeats
    /// what it answered.
    Done { outcome: Outcome, last_word: bool },
}

/// One negotiation, from one side's point of view.
#[derive(Debug, Clone)]
pub struct Negotiation {
    policy: NegotiationPolicy,
    mine: Vec<VersionOffer>,
    theirs: Vec<VersionOffer>,
    own_server: String,
    peer_server: String,
    role: Role,
    phase: Phase,
    /// The last event this side asked to send, and its ID once reported.
    last_out: Outgoing,
    last_out_id: Option<String>,
    /// The peer event that `last_out` answers, if it answers one.
    answered: Option<String>,
    /// Peer events already handled.
    seen: Vec<String>,
    /// Ticks since the peer last moved the negotiation on.
    idle_ticks: u32,
}

fn answer(event_type: &str, to: &str, mut content: Object) -> Outgoing {
    content.insert("m.relates_to".into(), reference(to));
    Outgoing {
        event_type: event_type.to_owned(),
        content,
    }
}

fn server_name(name: &str, what: &str) -> Result<String> {
    ServerName::parse(name)
        .map_err(|e| Error::invalid_param(format!("{what}: {}", e.message())))?;
    Ok(name.to_owned())
}

fn method_of(content: &Object) -> Result<String> {
    match content.get("method") {
        Some(Value::String(m)) => {
            check_method(m)?;
            Ok(m.clone())
        }
        Some(other) => Err(Error::bad_json(format!(
            "content.method must be a string, not {}",
            other.type_name()
        ))),
        None => Err(Error::missing_param("content.method is missing")),
    }
}

fn same_list(a: &[VersionOffer], b: &[VersionOffer]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

impl Negotiation {
    fn new(
        policy: &NegotiationPolicy,
        own: String,
        peer: String,
        role: Role,
        first: Outgoing,
    ) -> Self {
        Negotiation {
            policy: policy.clone(),
            mine: policy.advertised(),
            theirs: Vec::new(),
            own_server: own,
            peer_server: peer,
            role,
            phase: Phase::Proposed,
            last_out: first,
            last_out_id: None,
            answered: None,
            seen: Vec::new(),
            idle_ticks: 0,
        }
    }

    fn names(own_server: &str, peer_server: &str) -> Result<(String, String)> {
        let own = server_name(own_server, "own_server")?;
        let peer = server_name(peer_server, "peer_server")?;
        if own == peer {
            return Err(Error::invalid_param(
                "a negotiation needs two different servers",
            ));
        }
        Ok((own, peer))
    }

    /// Starts a standard negotiation of `own_server` with `peer_server`: returns the machine and
    /// the proposal to send. Fails if the policy is malformed ([`NegotiationPolicy::check`]) or
    /// leaves no version to propose.
    pub fn initiate(
        policy: &NegotiationPolicy,
        own_server: &str,
        peer_server: &str,
    ) -> Result<(Self, Outgoing)> {
        policy.check()?;
        let (own, peer) = Self::names(own_server, peer_server)?;
        let mine = policy.advertised();
        if mine.is_empty() {
            return Err(Error::invalid_param(
                "the policy leaves no version to propose",
            ));
        }
        let mut content = Object::new();
        content.insert("versions".into(), versions_value(&mine));
        let out = Outgoing {
            event_type: PROPOSAL.to_owned(),
            content,
        };
        let n = Self::new(policy, own, peer, Role::Initiator, out.clone());
        Ok((n, out))
    }

    /// Starts a vendor negotiation with `method`. `policy` is used only if the peer's own opening
    /// wins (both opened at once and the peer's name is lower).
    pub fn initiate_vendor(
        policy: &NegotiationPolicy,
        method: &str,
        own_server: &str,
        peer_server: &str,
    ) -> Result<(Self, Outgoing)> {
        policy.check()?;
        check_method(method)?;
        let (own, peer) = Self::names(own_server, peer_server)?;
        let mut content = Object::new();
        content.insert("method".into(), Value::from(method));
        let out = Outgoing {
            event_type: VENDOR.to_owned(),
            content,
        };
        let mut n = Self::new(policy, own, peer, Role::Initiator, out.clone());
        n.phase = Phase::VendorStarted(method.to_owned());
        Ok((n, out))
    }

    /// Answers a peer's opening (`m.s2s.upgrade.proposal` or vendor `m.s2s.upgrade`): the peer is
    /// the server of the opening's sender.
    pub fn respond(
        policy: &NegotiationPolicy,
        own_server: &str,
        opening: &Incoming,
    ) -> Result<(Self, Step)> {
        policy.check()?;
        let Some(peer) = user_server(&opening.sender) else {
            return Err(Error::invalid_param(format!(
                "sender {:?} is not a user ID",
                opening.sender
            )));
        };
        let (own, peer) = Self::names(own_server, peer)?;
        if !matches!(opening.event_type.as_str(), PROPOSAL | VENDOR) {
            return Err(Error::invalid_param(format!(
                "a negotiation opens with {PROPOSAL} or {VENDOR}, not {}",
                opening.event_type
            )));
        }
        let placeholder = Outgoing {
            event_type: String::new(),
            content: Object::new(),
        };
        let mut n = Self::new(policy, own, peer, Role::Responder, placeholder);
        let step = n.answer_opening(opening)?;
        Ok((n, step))
    }

    /// Answers an opening as the responder (a fresh machine, or an initiator whose own opening
    /// lost to the peer's).
    fn answer_opening(&mut self, opening: &Incoming) -> Result<Step> {
        let to = opening.event_id.as_str();
        let step = match opening.event_type.as_str() {
            VENDOR => {
                let method = method_of(&opening.content)?;
                if self.policy.vendor_methods.contains(&method) {
                    let mut content = Object::new();
                    content.insert("method".into(), Value::from(method.as_str()));
                    self.role = Role::Responder;
                    self.finish_with(to, answer(ACCEPT, to, content), Outcome::Vendor(method))
                } else {
                    self.role = Role::Responder;
                    self.fail(to, FailError::InvalidMethod)
                }
            }
            _ => {
                let theirs = parse_versions(&opening.content)?;
                self.role = Role::Responder;
                self.theirs = theirs;
                if same_list(&self.mine, &self.theirs) {
                    match choose_version(&self.mine, &self.theirs) {
                        Some(v) => self.accept(to, v),
                        None => self.fail(to, FailError::NoMatch),
                    }
                } else {
                    let mut content = Object::new();
                    content.insert("versions".into(), versions_value(&self.mine));
                    self.phase = Phase::Replied;
                    self.send(to, answer(REPLY, to, content))
                }
            }
        };
        self.remember(to);
        Ok(step)
    }

    /// Records the ID the homeserver gave to the event this machine last asked to send. Required
    /// before [`Negotiation::handle`] takes more events: answers must point at it.
    pub fn sent(&mut self, event_id: &str) -> Result<()> {
        if !event_id.starts_with('$') || event_id.len() > 255 {
            return Err(Error::invalid_param(format!(
                "{event_id:?} is not an event ID"
            )));
        }
        match &self.last_out_id {
            None => {
                self.last_out_id = Some(event_id.to_owned());
                Ok(())
            }
            Some(id) if id == event_id => Ok(()),
            Some(id) => Err(Error::invalid_param(format!(
                "the {} already has the event ID {id}; nothing else is waiting for one",
                self.last_out.event_type
            ))),
        }
    }

    /// The outcome so far.
    pub fn outcome(&self) -> Outcome {
        match &self.phase {
            Phase::Done { outcome, .. } => outcome.clone(),
            _ => Outcome::InProgress,
        }
    }

    /// This side's role (an initiator whose proposal lost to a simultaneous one from a lower
    /// server name becomes the responder).
    pub fn role(&self) -> Role {
        self.role
    }

    /// The peer's server name.
    pub fn peer_server(&self) -> &str {
        &self.peer_server
    }

    /// The ID of this side's last event, once reported with [`Negotiation::sent`].
    pub fn last_sent(&self) -> Option<&str> {
        self.last_out_id.as_deref()
    }

    /// Called on a timer, to repair loss: an unfinished side delivers its last event again
    /// (`resend`), or sends it if its ID was never reported (`send`, then [`Negotiation::sent`]).
    /// A finished side does nothing: it answers repeats instead. After
    /// [`GIVE_UP_AFTER_TICKS`] ticks in a row without progress, an unfinished side gives up
    /// (`Failed(Other("timed out"))`, nothing sent: the peer gives up on its own).
    pub fn tick(&mut self) -> Step {
        let outcome = self.outcome();
        if outcome.is_finished() {
            return Step::quiet(outcome);
        }
        self.idle_ticks = self.idle_ticks.saturating_add(1);
        if self.idle_ticks > GIVE_UP_AFTER_TICKS {
            return self.finish_quietly(Outcome::Failed(FailError::Other("timed out".into())));
        }
        let mut step = Step::quiet(outcome);
        match &self.last_out_id {
            Some(id) => step.resend = Some(id.clone()),
            None => step.send = Some(self.last_out.clone()),
        }
        step
    }

    fn remember(&mut self, event_id: &str) {
        if !self.seen.iter().any(|s| s == event_id) {
            self.seen.push(event_id.to_owned());
        }
    }

    fn send(&mut self, to: &str, out: Outgoing) -> Step {
        self.last_out = out.clone();
        self.last_out_id = None;
        self.answered = Some(to.to_owned());
        let mut step = Step::quiet(self.outcome());
        step.send = Some(out);
        step
    }

    fn finish_with(&mut self, to: &str, out: Outgoing, outcome: Outcome) -> Step {
        self.phase = Phase::Done {
            outcome: outcome.clone(),
            last_word: true,
        };
        let mut step = self.send(to, out);
        step.outcome = outcome;
        step
    }

    fn finish_quietly(&mut self, outcome: Outcome) -> Step {
        self.phase = Phase::Done {
            outcome: outcome.clone(),
            last_word: false,
        };
        Step::quiet(outcome)
    }

    fn fail(&mut self, to: &str, error: FailError) -> Step {
        let mut content = Object::new();
        content.insert("error".into(), Value::from(error.as_str()));
        self.finish_with(to, answer(FAIL, to, content), Outcome::Failed(error))
    }

    fn accept(&mut self, to: &str, version: String) -> Step {
        let mut content = Object::new();
        content.insert("version".into(), Value::from(version.as_str()));
        self.phase = Phase::Accepted(version);
        self.send(to, answer(ACCEPT, to, content))
    }

    fn agreed(&self, step: &mut Step, version: &str) {
        if self.role == Role::Initiator {
            step.upgrade = Some(version.to_owned());
        }
    }

    /// Feeds one event of the room. What happens:
    /// - the machine's own events (sender on `own_server`) are ignored;
    /// - an event sent by a third server, a malformed one, one that does not fit the phase or
    ///   does not point at this side's last event is an error and changes nothing;
    /// - an event already handled changes nothing; if this side finished by answering it, the
    ///   step says to deliver that answer again;
    /// - a `fail` from the peer ends the negotiation, whatever its error says;
    /// - an opening from the peer while this side's own opening is unanswered: the lower server
    ///   name's opening wins.
    ///
    /// Fails (`M_INVALID_PARAM`) when the ID of this side's last event was never reported.
    pub fn handle(&mut self, event: &Incoming) -> Result<Step> {
        let Some(sender_server) = user_server(&event.sender) else {
            return Err(Error::invalid_param(format!(
                "sender {:?} is not a user ID",
                event.sender
            )));
        };
        if sender_server == self.own_server {
            return Ok(Step::quiet(self.outcome()));
        }
        if sender_server != self.peer_server {
            return Err(Error::forbidden(format!(
                "{} is from {sender_server}, not from {}, the other side of this negotiation",
                event.event_type, self.peer_server
            )));
        }
        let Some(my_last) = self.last_out_id.clone() else {
            return Err(Error::invalid_param(format!(
                "report the event ID of the {} with sent() before handling more events",
                self.last_out.event_type
            )));
        };
        if self.seen.contains(&event.event_id) {
            let mut step = Step::quiet(self.outcome());
            if matches!(
                self.phase,
                Phase::Done {
                    last_word: true,
                    ..
                }
            ) && self.answered.as_deref() == Some(event.event_id.as_str())
            {
                step.resend = Some(my_last);
            }
            return Ok(step);
        }
        if matches!(event.event_type.as_str(), PROPOSAL | VENDOR) {
            return self.handle_opening(event);
        }
        if let Phase::Done { .. } = self.phase {
            return Err(Error::invalid_param(format!(
                "the negotiation is finished; {} {} is not part of it",
                event.event_type, event.event_id
            )));
        }
        match referenced_event(&event.content) {
            Some(id) if id == my_last => {}
            Some(id) => {
                return Err(Error::invalid_param(format!(
                    "{} answers {id}, not {my_last}",
                    event.event_type
                )));
            }
            None => {
                return Err(Error::invalid_param(format!(
                    "{} must carry an m.reference relation to {my_last}",
                    event.event_type
                )));
            }
        }
        let step = self.advance(event)?;
        self.remember(&event.event_id);
        self.idle_ticks = 0;
        Ok(step)
    }

    fn handle_opening(&mut self, event: &Incoming) -> Result<Step> {
        let finished = self.outcome().is_finished();
        let my_opening_waits = matches!(self.phase, Phase::Proposed | Phase::VendorStarted(_))
            && self.role == Role::Initiator;
        let i_win = self.own_server.as_bytes() < self.peer_server.as_bytes();
        if self.role == Role::Initiator && i_win && !finished {
            // Both opened at once and ours wins: the peer answers ours and drops its own.
            if self.seen.len() < MAX_SEEN {
                self.remember(&event.event_id);
            }
            return Ok(Step::quiet(self.outcome()));
        }
        if my_opening_waits {
            // Both opened at once and the peer's name is lower: drop ours, answer theirs.
            self.idle_ticks = 0;
            return self.answer_opening(event);
        }
        Err(Error::invalid_param(format!(
            "{} {} opens a new negotiation while this one {}",
            event.event_type,
            event.event_id,
            if finished {
                "is finished (answer it with a new responder)"
            } else {
                "is under way"
            }
        )))
    }

    fn advance(&mut self, event: &Incoming) -> Result<Step> {
        let id = event.event_id.as_str();
        if event.event_type == FAIL {
            return Ok(
                self.finish_quietly(Outcome::Failed(FailError::from_content(&event.content)))
            );
        }
        match (self.phase.clone(), event.event_type.as_str()) {
            (Phase::Proposed, REPLY) => {
                self.theirs = parse_reply_versions(&event.content)?;
                Ok(match choose_version(&self.mine, &self.theirs) {
                    Some(v) => self.accept(id, v),
                    None => self.fail(id, FailError::NoMatch),
                })
            }
            (Phase::Proposed, ACCEPT) => {
                // The responder found the lists equal: the choice is over our own list twice.
                let v = accepted_version(&event.content)?;
                self.theirs = self.mine.clone();
                Ok(self.confirm(id, v))
            }
            (Phase::Replied, ACCEPT) => {
                let v = accepted_version(&event.content)?;
                Ok(self.confirm(id, v))
            }
            (Phase::VendorStarted(mine), ACCEPT) => {
                let method = method_of(&event.content)?;
                Ok(if method == mine {
                    self.finish_quietly(Outcome::Vendor(method))
                } else {
                    self.fail(id, FailError::InvalidMethod)
                })
            }
            (Phase::Accepted(v), ACK) => {
                let ack = answer(ACK, id, Object::new());
                let mut step = self.finish_with(id, ack, Outcome::Agreed(v.clone()));
                self.agreed(&mut step, &v);
                Ok(step)
            }
            (Phase::Acked(v), ACK) => {
                let mut step = self.finish_quietly(Outcome::Agreed(v.clone()));
                self.agreed(&mut step, &v);
                Ok(step)
            }
            (phase, t) => Err(Error::invalid_param(format!(
                "unexpected {t} in phase {phase:?}"
            ))),
        }
    }

    fn confirm(&mut self, to: &str, version: String) -> Step {
        if choose_version(&self.mine, &self.theirs).as_deref() == Some(version.as_str()) {
            self.phase = Phase::Acked(version);
            self.send(to, answer(ACK, to, Object::new()))
        } else {
            self.fail(to, FailError::NoMatch)
        }
    }
}

fn accepted_version(content: &Object) -> Result<String> {
    match content.get("version") {
        Some(Value::String(s)) if valid_version(s) => Ok(s.clone()),
        Some(Value::String(s)) => Err(Error::invalid_param(format!(
            "content.version {s:?} is not a room version"
        ))),
        Some(other) => Err(Error::bad_json(format!(
            "content.version must be a string, not {}",
            other.type_name()
        ))),
        None => Err(Error::missing_param("content.version is missing")),
    }
}
