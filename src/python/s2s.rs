//! Server-to-server rooms and their upgrade negotiation (MSC3348) from Python; re-exported by
//! `servership.s2s`.
//!
//! Every state argument accepts a `RoomState`, a `list` of state event `dict`s, or JSON text of
//! such a list; building from a list is the expensive part, so callers that ask several questions
//! about one room build a `RoomState` once.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::args::{self, Int, Text};
use super::convert::{to_object, to_python};
use super::decision::PyDecision;
use super::room_state::with_state;
use crate::error::Error;
use crate::json::{Object, Value};
use crate::s2s::{self, ServerUserPolicy, negotiation as neg};

/// Whether a room is an s2s room: give its state (`RoomState`, list of events, JSON text) or the
/// create event's content (a `dict`; a whole `m.room.create` event is accepted too).
#[pyfunction]
fn is_s2s_room(state_or_create: &Bound<'_, PyAny>) -> PyResult<bool> {
    if state_or_create.is_instance_of::<PyDict>() {
        let o = to_object(state_or_create, "create")?;
        let content = match (o.get("type").and_then(Value::as_str), o.get("content")) {
            (Some("m.room.create"), Some(Value::Object(c))) => c,
            _ => &o,
        };
        return Ok(s2s::is_s2s_create_content(content));
    }
    with_state(state_or_create, |s| Ok(s2s::is_s2s_room(s)))
}

/// The single authorization call for a server user's membership change, under `policy`
/// (`"s2s_only"`, `"peeking"` or `"either"`).
#[pyfunction]
#[pyo3(
    signature = (state, server_user, membership, policy = args::fixed("either")),
    text_signature = "(state, server_user, membership, policy='either')"
)]
fn check_server_user_membership(
    state: &Bound<'_, PyAny>,
    server_user: Text,
    membership: Text,
    policy: Text,
) -> PyResult<PyDecision> {
    let policy = ServerUserPolicy::parse(&policy)?;
    with_state(state, |s| {
        Ok(s2s::check_server_user_membership(s, &server_user, &membership, policy).into())
    })
}

/// The initial state event templates (`type`, `state_key`, `sender`, `content`), in sending order,
/// for `local` to create an s2s room with `peer` in `room_version`.
#[pyfunction]
#[pyo3(signature = (local, peer, room_version, unstable = false))]
fn initial_state<'py>(
    py: Python<'py>,
    local: Text,
    peer: Text,
    room_version: Text,
    unstable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let events = s2s::initial_state(&local, &peer, &room_version, unstable)?;
    to_python(
        py,
        &Value::Array(events.into_iter().map(Value::Object).collect()),
    )
}

fn offers(versions: &[(Text, Int<i64>)]) -> Vec<neg::VersionOffer> {
    versions
        .iter()
        .map(|(v, Int(r))| neg::VersionOffer::new(v, *r))
        .collect()
}

/// The choice rule over two `(version, rating)` lists: the highest minimum rating, then the
/// highest sum, then the newest version; `None` if no version is in both.
#[pyfunction]
fn negotiation_choose(
    ours: Vec<(Text, Int<i64>)>,
    theirs: Vec<(Text, Int<i64>)>,
) -> Option<String> {
    neg::choose_version(&offers(&ours), &offers(&theirs))
}

/// One side's negotiation policy: supported `versions` as `(version, rating)` pairs (higher rating
/// = more preferred), `most_preferred_only`, an optional `floor` never to go below, and the
/// vendor methods accepted. Immutable.
#[pyclass(frozen, module = "servership", name = "NegotiationPolicy")]
pub(crate) struct PyNegotiationPolicy {
    inner: neg::NegotiationPolicy,
}

#[pymethods]
impl PyNegotiationPolicy {
    #[new]
    #[pyo3(signature = (versions, most_preferred_only = false, floor = None, vendor_methods = Vec::new()))]
    fn new(
        versions: Vec<(Text, Int<i64>)>,
        most_preferred_only: bool,
        floor: Option<Text>,
        vendor_methods: Vec<Text>,
    ) -> PyResult<Self> {
        if versions.len() > neg::MAX_VERSIONS {
            return Err(Error::too_large(format!(
                "versions has more than {} entries",
                neg::MAX_VERSIONS
            ))
            .into());
        }
        let inner = neg::NegotiationPolicy {
            versions: offers(&versions),
            most_preferred_only,
            floor: floor.map(|f| f.to_string()),
            vendor_methods: args::strings(vendor_methods),
        };
        inner.check()?;
        Ok(PyNegotiationPolicy { inner })
    }

    /// The `(version, rating)` list this side advertises (floor and mode applied).
    fn advertised(&self) -> Vec<(String, i64)> {
        self.inner
            .advertised()
            .into_iter()
            .map(|v| (v.version, v.rating))
            .collect()
    }

    fn __repr__(&self) -> String {
        let versions: Vec<(&str, i64)> = self
            .inner
            .versions
            .iter()
            .map(|v| (v.version.as_str(), v.rating))
            .collect();
        format!(
            "NegotiationPolicy(versions={versions:?}, most_preferred_only={}, floor={:?}, vendor_methods={:?})",
            if self.inner.most_preferred_only {
                "True"
            } else {
                "False"
            },
            self.inner.floor,
            self.inner.vendor_methods
        )
    }
}

fn outcome_str(o: &neg::Outcome) -> String {
    match o {
        neg::Outcome::InProgress => "in_progress".to_owned(),
        neg::Outcome::Agreed(v) => format!("agreed:{v}"),
        neg::Outcome::Failed(e) => format!("failed:{}", e.as_str()),
        neg::Outcome::Vendor(m) => format!("vendor:{m}"),
    }
}

fn outgoing_value(o: &neg::Outgoing) -> Value {
    let mut ev = Object::new();
    ev.insert("type".into(), Value::from(o.event_type.as_str()));
    ev.insert("content".into(), Value::Object(o.content.clone()));
    Value::Object(ev)
}

/// One negotiation step: `send` is a new event to send now (`{"type", "content"}`; report its ID
/// with `Negotiation.sent`) or `None`; `resend` the ID of an event already sent to deliver to the
/// peer again, or `None`; `upgrade` (initiator only, once) the room version to upgrade to now;
/// `outcome` is `"in_progress"`, `"agreed:<version>"`, `"failed:<error>"` (`"failed:no match"`,
/// `"failed:invalid method"`, or the peer's own error) or `"vendor:<method>"`.
#[pyclass(frozen, module = "servership", name = "Step")]
pub(crate) struct PyStep {
    inner: neg::Step,
}

#[pymethods]
impl PyStep {
    /// `{"type": ..., "content": {...}}` to send, or `None`.
    #[getter]
    fn send<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .send
            .as_ref()
            .map(|o| to_python(py, &outgoing_value(o)))
            .transpose()
    }

    /// The ID of an event this side already sent, to deliver to the peer again, or `None`.
    #[getter]
    fn resend(&self) -> Option<String> {
        self.inner.resend.clone()
    }

    /// To the initiator only, once: the room version to upgrade the room to now, or `None`.
    #[getter]
    fn upgrade(&self) -> Option<String> {
        self.inner.upgrade.clone()
    }

    /// The outcome after this step.
    #[getter]
    fn outcome(&self) -> String {
        outcome_str(&self.inner.outcome)
    }

    /// The agreed room version, or `None`.
    #[getter]
    fn agreed_version(&self) -> Option<String> {
        match &self.inner.outcome {
            neg::Outcome::Agreed(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Step(send={:?}, resend={:?}, upgrade={:?}, outcome={:?})",
            self.inner.send.as_ref().map(|o| o.event_type.as_str()),
            self.inner.resend,
            self.inner.upgrade,
            outcome_str(&self.inner.outcome)
        )
    }
}

/// An s2s room upgrade negotiation from one side's point of view. Safe to share between threads
/// (a lock inside). Feed it the room's negotiation events with `handle` (its own echoes are
/// ignored), report the ID of every event it asks you to send with `sent` (required before the
/// next `handle`), and call `tick` on a timer so lost events are delivered again.
#[pyclass(frozen, module = "servership", name = "Negotiation")]
pub(crate) struct PyNegotiation {
    inner: Mutex<neg::Negotiation>,
}

impl PyNegotiation {
    fn wrap(n: neg::Negotiation) -> Self {
        PyNegotiation {
            inner: Mutex::new(n),
        }
    }

    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, neg::Negotiation>> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| Error::internal("the negotiation's lock is poisoned"))?)
    }
}

fn incoming(event: &Bound<'_, PyAny>) -> PyResult<neg::Incoming> {
    Ok(neg::Incoming::from_event(&to_object(event, "event")?)?)
}

#[pymethods]
impl PyNegotiation {
    /// Starts a negotiation of `own_server` with `peer_server`: returns the machine and the
    /// content of the `m.s2s.upgrade.proposal` event to send.
    #[staticmethod]
    fn initiate<'py>(
        py: Python<'py>,
        policy: &PyNegotiationPolicy,
        own_server: Text,
        peer_server: Text,
    ) -> PyResult<(PyNegotiation, Bound<'py, PyAny>)> {
        let (n, out) = neg::Negotiation::initiate(&policy.inner, &own_server, &peer_server)?;
        Ok((Self::wrap(n), to_python(py, &Value::Object(out.content))?))
    }

    /// Starts a vendor negotiation with `method`: returns the machine and the content of the
    /// `m.s2s.upgrade` event to send (`policy` answers the peer's opening if it wins).
    #[staticmethod]
    fn initiate_vendor<'py>(
        py: Python<'py>,
        policy: &PyNegotiationPolicy,
        method: Text,
        own_server: Text,
        peer_server: Text,
    ) -> PyResult<(PyNegotiation, Bound<'py, PyAny>)> {
        let (n, out) =
            neg::Negotiation::initiate_vendor(&policy.inner, &method, &own_server, &peer_server)?;
        Ok((Self::wrap(n), to_python(py, &Value::Object(out.content))?))
    }

    /// Answers the peer's opening event (`m.s2s.upgrade.proposal` or `m.s2s.upgrade`, a `dict`
    /// with `event_id`, `type`, `sender`, `content`) as `own_server`: returns the machine and the
    /// first step.
    #[staticmethod]
    fn respond(
        policy: &PyNegotiationPolicy,
        own_server: Text,
        incoming_event: &Bound<'_, PyAny>,
    ) -> PyResult<(PyNegotiation, PyStep)> {
        let (n, step) =
            neg::Negotiation::respond(&policy.inner, &own_server, &incoming(incoming_event)?)?;
        Ok((Self::wrap(n), PyStep { inner: step }))
    }

    /// Feeds one event of the room (`dict` with `event_id`, `type`, `sender`, `content`); an
    /// event that does not fit raises and changes nothing.
    fn handle(&self, incoming_event: &Bound<'_, PyAny>) -> PyResult<PyStep> {
        let event = incoming(incoming_event)?;
        let step = self.lock()?.handle(&event)?;
        Ok(PyStep { inner: step })
    }

    /// Records the event ID of the event this side was last asked to send.
    fn sent(&self, event_id: Text) -> PyResult<()> {
        Ok(self.lock()?.sent(&event_id)?)
    }

    /// Called on a timer: says what to deliver again after a loss (see `Step`); gives up after
    /// 32 ticks in a row without progress (outcome `"failed:timed out"`).
    fn tick(&self) -> PyResult<PyStep> {
        let step = self.lock()?.tick();
        Ok(PyStep { inner: step })
    }

    /// The outcome so far (same strings as `Step.outcome`).
    #[getter]
    fn outcome(&self) -> PyResult<String> {
        Ok(outcome_str(&self.lock()?.outcome()))
    }

    /// `"initiator"` (performs the upgrade) or `"responder"` (follows the tombstone).
    #[getter]
    fn role(&self) -> PyResult<&'static str> {
        Ok(match self.lock()?.role() {
            neg::Role::Initiator => "initiator",
            neg::Role::Responder => "responder",
        })
    }

    /// The other side's server name.
    #[getter]
    fn peer_server(&self) -> PyResult<String> {
        Ok(self.lock()?.peer_server().to_owned())
    }

    /// The ID of this side's last event, once reported with `sent`.
    #[getter]
    fn last_sent(&self) -> PyResult<Option<String>> {
        Ok(self.lock()?.last_sent().map(str::to_owned))
    }

    fn __repr__(&self) -> String {
        match self.inner.lock() {
            Ok(n) => format!("Negotiation(outcome={:?})", outcome_str(&n.outcome())),
            Err(_) => "Negotiation(<poisoned>)".to_owned(),
        }
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyNegotiationPolicy>()?;
    m.add_class::<PyNegotiation>()?;
    m.add_class::<PyStep>()?;
    m.add_function(wrap_pyfunction!(is_s2s_room, m)?)?;
    m.add_function(wrap_pyfunction!(check_server_user_membership, m)?)?;
    m.add_function(wrap_pyfunction!(initial_state, m)?)?;
    m.add_function(wrap_pyfunction!(negotiation_choose, m)?)?;
    Ok(())
}
