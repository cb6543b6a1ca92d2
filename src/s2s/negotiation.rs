//! Room upgrade negotiation for s2s rooms (MSC3348 "Room Upgrade Negotiation"; DESIGN.md §4).
//!
//! Events (each answering event points at what it answers with
//! `"m.relates_to": {"rel_type": "m.reference", "event_id": "$…"}`):
//! - `m.s2s.upgrade.proposal` `{"versions": [{"version": "11", "rating": 10}, …]}` — initiator;
//! - `m.s2s.upgrade.reply` `{"versions": […]}` — responder, when its list differs;
//! - `m.s2s.upgrade.accept` `{"version": "11"}` — by the responder straight to the proposal when
//!   the lists are equal, otherwise by the initiator to the reply;
//! - `m.s2s.upgrade.ack` `{}` — the other side acks the accept, then the accepter acks that ack;
//! - `m.s2s.upgrade.fail` `{"error": "no match" | "invalid method"}`;
//! - `m.s2s.upgrade` `{"method": "…"}` — a vendor negotiation; an unknown method gets
//!   `fail {"error": "invalid method"}`.
//!
//! **Choice rule** ([`choose_version`]): among versions in both lists, the highest minimum of the
//! two ratings, then the highest sum, then the newest version ([`compare_versions`]). Ratings are
//! integers, higher is more preferred. Both sides compute it from the same two lists, so they agree;
//! the side that receives an `accept` recomputes it and fails with `no match` if it differs.
//!
//! **Policy** ([`NegotiationPolicy`]) shapes the list a side advertises: versions below the
//! *floor* (downgrade protection) are never offered, and in *most-preferred-only* mode only the
//! top-rated versions are offered. Since a choice must be in both lists, a side's policy always
//! holds, and a peer that cannot meet it gets `no match`.
//!
//! The [`Negotiation`] state machine is fed incoming events and returns a [`Step`]: what to send
//! next (a type and content the homeserver wraps in an event) and the outcome so far. After
//! sending, the homeserver reports the event ID with [`Negotiation::sent`], so answers that point
//! elsewhere are refused.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::json::{Object, Value};

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
/// compare numerically (leading zeros ignored, no overflow), an all-digit part is newer than any
/// other part, other parts compare bytewise; when one is a prefix of the other, the longer is
/// newer. So `"9" < "10" < "10.1"` and `"org.example.1" < "11"`.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut pa = a.split('.');
    let mut pb = b.split('.');
    loop {
        match (pa.next(), pb.next()) {
            (None, None) => return Ordering::Equal,
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

/// The choice rule over two lists; `None` if they share no version.
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
    if list.is_empty() {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailError {
    /// `no match`.
    NoMatch,
    /// `invalid method`.
    InvalidMethod,
}

impl FailError {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            FailError::NoMatch => "no match",
            FailError::InvalidMethod => "invalid method",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "no match" => Some(FailError::NoMatch),
            "invalid method" => Some(FailError::InvalidMethod),
            _ => None,
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
    /// Its content.
    pub content: Object,
}

impl Incoming {
    /// Reads `event_id`, `type` and `content` from an event.
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
            content,
        })
    }
}

/// Where a negotiation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Still going.
    InProgress,
    /// Both sides agreed on this room version: upgrade the room to it.
    Agreed(String),
    /// The negotiation failed.
    Failed(FailError),
    /// The peer started a vendor negotiation with a method this side supports; it continues
    /// outside this machine.
    Vendor(String),
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What to send now, if anything.
    pub send: Option<Outgoing>,
    /// The outcome after this step.
    pub outcome: Outcome,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Initiator, proposal sent: expecting a reply, an accept or a fail.
    Proposed,
    /// Responder, reply sent: expecting an accept or a fail.
    Replied,
    /// This side sent an accept: expecting the other side's ack.
    Accepted(String),
    /// This side acked the other's accept: expecting the ack of that ack.
    Acked(String),
    /// Initiator of a vendor negotiation: expecting a fail or the vendor's own events.
    VendorStarted,
    /// Finished.
    Done(Outcome),
}

/// One negotiation, from one side's point of view.
#[derive(Debug, Clone)]
pub struct Negotiation {
    mine: Vec<VersionOffer>,
    theirs: Vec<VersionOffer>,
    phase: Phase,
    last_sent: Option<String>,
}

fn answer(event_type: &str, to: &str, mut content: Object) -> Outgoing {
    content.insert("m.relates_to".into(), reference(to));
    Outgoing {
        event_type: event_type.to_owned(),
        content,
    }
}

impl Negotiation {
    /// Starts a standard negotiation: returns the machine and the proposal to send.
    pub fn initiate(policy: &NegotiationPolicy) -> Result<(Self, Outgoing)> {
        let mine = policy.advertised();
        if mine.is_empty() {
            return Err(Error::invalid_param(
                "the policy leaves no version to propose",
            ));
        }
        let mut content = Object::new();
        content.insert("versions".into(), versions_value(&mine));
        let n = Negotiation {
            mine,
            theirs: Vec::new(),
            phase: Phase::Proposed,
            last_sent: None,
        };
        Ok((
            n,
            Outgoing {
                event_type: PROPOSAL.to_owned(),
                content,
            },
        ))
    }

    /// Starts a vendor negotiation with `method`.
    pub fn initiate_vendor(method: &str) -> (Self, Outgoing) {
        let mut content = Object::new();
        content.insert("method".into(), Value::from(method));
        let n = Negotiation {
            mine: Vec::new(),
            theirs: Vec::new(),
            phase: Phase::VendorStarted,
            last_sent: None,
        };
        (
            n,
            Outgoing {
                event_type: VENDOR.to_owned(),
                content,
            },
        )
    }

    /// Answers a peer's `m.s2s.upgrade.proposal` or vendor `m.s2s.upgrade` event.
    pub fn respond(policy: &NegotiationPolicy, opening: &Incoming) -> Result<(Self, Step)> {
        let mut n = Negotiation {
            mine: policy.advertised(),
            theirs: Vec::new(),
            phase: Phase::Proposed,
            last_sent: None,
        };
        match opening.event_type.as_str() {
            VENDOR => {
                let method = match opening.content.get("method") {
                    Some(Value::String(m)) => m.clone(),
                    Some(other) => {
                        return Err(Error::bad_json(format!(
                            "content.method must be a string, not {}",
                            other.type_name()
                        )));
                    }
                    None => return Err(Error::missing_param("content.method is missing")),
                };
                let step = if policy.vendor_methods.contains(&method) {
                    n.finish(None, Outcome::Vendor(method))
                } else {
                    n.fail(&opening.event_id, FailError::InvalidMethod)
                };
                Ok((n, step))
            }
            PROPOSAL => {
                n.theirs = parse_versions(&opening.content)?;
                let mut a = n.mine.clone();
                let mut b = n.theirs.clone();
                a.sort();
                b.sort();
                let step = if a == b {
                    match choose_version(&n.mine, &n.theirs) {
                        Some(v) => n.accept(&opening.event_id, v),
                        None => n.fail(&opening.event_id, FailError::NoMatch),
                    }
                } else {
                    let mut content = Object::new();
                    content.insert("versions".into(), versions_value(&n.mine));
                    n.phase = Phase::Replied;
                    Step {
                        send: Some(answer(REPLY, &opening.event_id, content)),
                        outcome: Outcome::InProgress,
                    }
                };
                Ok((n, step))
            }
            other => Err(Error::invalid_param(format!(
                "a negotiation opens with {PROPOSAL} or {VENDOR}, not {other}"
            ))),
        }
    }

    /// Records the event ID the homeserver gave to the event this machine last asked to send.
    pub fn sent(&mut self, event_id: &str) {
        self.last_sent = Some(event_id.to_owned());
    }

    /// The outcome so far.
    pub fn outcome(&self) -> Outcome {
        match &self.phase {
            Phase::Done(o) => o.clone(),
            _ => Outcome::InProgress,
        }
    }

    fn finish(&mut self, send: Option<Outgoing>, outcome: Outcome) -> Step {
        self.phase = Phase::Done(outcome.clone());
        Step { send, outcome }
    }

    fn fail(&mut self, to: &str, error: FailError) -> Step {
        let mut content = Object::new();
        content.insert("error".into(), Value::from(error.as_str()));
        self.finish(Some(answer(FAIL, to, content)), Outcome::Failed(error))
    }

    fn accept(&mut self, to: &str, version: String) -> Step {
        let mut content = Object::new();
        content.insert("version".into(), Value::from(version.as_str()));
        self.phase = Phase::Accepted(version);
        Step {
            send: Some(answer(ACCEPT, to, content)),
            outcome: Outcome::InProgress,
        }
    }

    fn ack(to: &str) -> Outgoing {
        answer(ACK, to, Object::new())
    }

    /// Feeds one incoming event. An event that does not fit (wrong type for the phase, malformed
    /// content, pointing at something other than this side's last event) is an error and changes
    /// nothing; a `fail` from the peer ends the negotiation.
    pub fn handle(&mut self, event: &Incoming) -> Result<Step> {
        if let Phase::Done(_) = self.phase {
            return Err(Error::invalid_param("the negotiation is already finished"));
        }
        if let Some(expected) = &self.last_sent {
            match referenced_event(&event.content) {
                Some(id) if id == expected => {}
                Some(id) => {
                    return Err(Error::invalid_param(format!(
                        "{} answers {id}, not {expected}",
                        event.event_type
                    )));
                }
                None => {
                    return Err(Error::invalid_param(format!(
                        "{} must carry an m.reference relation",
                        event.event_type
                    )));
                }
            }
        }
        if event.event_type == FAIL {
            let error = match event.content.get("error") {
                Some(Value::String(s)) => FailError::parse(s).ok_or_else(|| {
                    Error::invalid_param(format!(
                        "content.error must be \"no match\" or \"invalid method\", not {s:?}"
                    ))
                })?,
                Some(other) => {
                    return Err(Error::bad_json(format!(
                        "content.error must be a string, not {}",
                        other.type_name()
                    )));
                }
                None => return Err(Error::missing_param("content.error is missing")),
            };
            return Ok(self.finish(None, Outcome::Failed(error)));
        }
        let id = event.event_id.as_str();
        match (self.phase.clone(), event.event_type.as_str()) {
            (Phase::Proposed, REPLY) => {
                self.theirs = parse_versions(&event.content)?;
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
            (Phase::Accepted(v), ACK) => Ok(self.finish(Some(Self::ack(id)), Outcome::Agreed(v))),
            (Phase::Acked(v), ACK) => Ok(self.finish(None, Outcome::Agreed(v))),
            (phase, t) => Err(Error::invalid_param(format!(
                "unexpected {t} in phase {phase:?}"
            ))),
        }
    }

    fn confirm(&mut self, to: &str, version: String) -> Step {
        if choose_version(&self.mine, &self.theirs).as_deref() == Some(version.as_str()) {
            self.phase = Phase::Acked(version);
            Step {
                send: Some(Self::ack(to)),
                outcome: Outcome::InProgress,
            }
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
