//! Members capabilities from Python: decisions, room state, peeking via server pseudousers
//! (MSC1777), server-to-server rooms and their upgrade negotiation (MSC3348), and subscription
//! authorization of servers (MSC4099).
//!
//! The native names are flat (`servership._native.check_pseudouser_join`); the Pythonic
//! submodules `servership.peeking`, `servership.s2s` and `servership.subscription` re-export
//! them by concept.
//!
//! Every state argument accepts a `RoomState`, a `list` of state event `dict`s, or JSON text of
//! such a list; building from a list is the expensive part, so callers that ask several questions
//! about one room build a `RoomState` once.

use std::sync::Mutex;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

#[allow(unused_imports)]
use super::args::{self, Int, Text};
use pyo3::types::{PyDict, PyList, PyTuple};

use super::convert::{json_input, to_object, to_python, to_value};
use crate::decision::Decision;
use crate::error::Error;
use crate::json::{Object, Value};
use crate::pseudouser::{self, OperatorPolicy, names, tracker};
use crate::room_state::RoomState;
use crate::s2s::{self, ServerUserPolicy, negotiation as neg};
use crate::store::KnockStore;
use crate::subscription::{self, JoinGate, acl::ServerAcl, decision as knock, knock as edu};

// ---------------------------------------------------------------------------------------------
// Decision and RoomState
// ---------------------------------------------------------------------------------------------

/// The outcome of a check: `allowed`, `verdict` (`"allow"`, `"deny"` or `"pending"`), a stable
/// `reason` code and a `detail` sentence. True in a boolean context exactly when allowed.
#[pyclass(frozen, eq, module = "servership", name = "Decision")]
#[derive(PartialEq)]
pub(crate) struct PyDecision {
    inner: Decision,
}

impl From<Decision> for PyDecision {
    fn from(inner: Decision) -> Self {
        PyDecision { inner }
    }
}

#[pymethods]
impl PyDecision {
    /// True only for the verdict `"allow"`.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.is_allowed()
    }

    /// `"allow"`, `"deny"` or `"pending"`.
    #[getter]
    fn verdict(&self) -> &'static str {
        self.inner.verdict.as_str()
    }

    /// The stable snake_case reason code (e.g. `"no_user_of_server"`).
    #[getter]
    fn reason(&self) -> &'static str {
        self.inner.reason.as_str()
    }

    /// A sentence for logs and moderators.
    #[getter]
    fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// `{"allowed", "verdict", "reason", "detail"}` as a `dict`.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.to_json())
    }

    fn __bool__(&self) -> bool {
        self.inner.is_allowed()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Decision(verdict={}, reason={}, detail={})",
            py_repr(py, self.inner.verdict.as_str())?,
            py_repr(py, self.inner.reason.as_str())?,
            py_repr(py, &self.inner.detail)?
        ))
    }
}

/// A read-only view of a room's current state. Later events with the same `(type, state_key)`
/// replace earlier ones. Immutable and safe to share between threads.
#[pyclass(frozen, module = "servership", name = "RoomState")]
pub(crate) struct PyRoomState {
    inner: RoomState,
}

#[pymethods]
impl PyRoomState {
    /// Builds the view from a `list` of state event `dict`s or JSON text of such a list. Each
    /// event needs a string `type` and `state_key`; errors name the index (`state[2].type ...`).
    #[staticmethod]
    fn from_events(py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyRoomState {
            inner: build_state(py, events)?,
        })
    }

    /// The `membership` of `user_id`, or `None`.
    fn membership(&self, user_id: Text) -> Option<String> {
        self.inner.membership(&user_id).map(str::to_owned)
    }

    /// The join rule, or `None`.
    #[getter]
    fn join_rule(&self) -> Option<String> {
        self.inner.join_rule().map(str::to_owned)
    }

    /// The room type from the create event, or `None`.
    #[getter]
    fn room_type(&self) -> Option<String> {
        self.inner.room_type().map(str::to_owned)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("RoomState(events={})", self.inner.len())
    }
}

fn build_state(py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<RoomState> {
    if let Some(input) = json_input(events)? {
        let bytes = input.bytes();
        return Ok(py.detach(|| RoomState::from_json(bytes))?);
    }
    if !events.is_instance_of::<PyList>() && !events.is_instance_of::<PyTuple>() {
        return Err(Error::bad_json(format!(
            "state must be a RoomState, a list of events or JSON text, not {}",
            type_name(events)
        ))
        .into());
    }
    let Value::Array(items) = to_value(events, "state")? else {
        return Err(Error::bad_json("state must be a list of events").into());
    };
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(o) => list.push(o),
            other => {
                return Err(Error::bad_json(format!(
                    "state[{i}] must be an object, not {}",
                    other.type_name()
                ))
                .into());
            }
        }
    }
    Ok(py.detach(|| RoomState::from_events(&list))?)
}

/// Python's own `repr` of a string (quotes and escapes as Python writes them).
fn py_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(pyo3::types::PyString::new(py, s).repr()?.to_string())
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Runs `f` on the state given as a `RoomState` (borrowed, no copy) or built from events.
fn with_state<T>(
    state: &Bound<'_, PyAny>,
    f: impl FnOnce(&RoomState) -> PyResult<T>,
) -> PyResult<T> {
    if let Ok(s) = state.cast::<PyRoomState>() {
        return f(&s.get().inner);
    }
    let built = build_state(state.py(), state)?;
    f(&built)
}

// ---------------------------------------------------------------------------------------------
// Peeking (MSC1777)
// ---------------------------------------------------------------------------------------------

/// The MSC1777 rule for a pseudouser `@:server` joining: allowed if the join rule is `peekable`
/// or a user of that server is joined or invited; a banned pseudouser is refused.
#[pyfunction]
fn check_pseudouser_join(state: &Bound<'_, PyAny>, pseudouser: Text) -> PyResult<PyDecision> {
    with_state(state, |s| {
        Ok(pseudouser::check_pseudouser_join(s, &pseudouser).into())
    })
}

/// The room's display name as `own_user` sees it, pseudousers left out.
#[pyfunction]
fn room_display_name(state: &Bound<'_, PyAny>, own_user: Text) -> PyResult<String> {
    with_state(state, |s| {
        Ok(names::room_display_name(s, &own_user).as_str().to_owned())
    })
}

/// Every member with a string membership, pseudousers left out, in user-ID order, as dicts
/// `{"user_id", "membership", "displayname"}` (`displayname` may be `None`).
#[pyfunction]
fn visible_members<'py>(
    py: Python<'py>,
    state: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let members = with_state(state, |s| Ok(names::visible_members(s)))?;
    let list = PyList::empty(py);
    for m in members {
        let d = PyDict::new(py);
        d.set_item("user_id", m.user_id)?;
        d.set_item("membership", m.membership)?;
        d.set_item("displayname", m.displayname)?;
        list.append(d)?;
    }
    Ok(list)
}

/// The operator's deny lists for peeking: server globs (`*`, `?`; port removed before matching)
/// and exact room IDs. Immutable.
#[pyclass(frozen, module = "servership", name = "OperatorPolicy")]
pub(crate) struct PyOperatorPolicy {
    inner: OperatorPolicy,
    servers: Vec<String>,
    rooms: Vec<String>,
}

#[pymethods]
impl PyOperatorPolicy {
    #[new]
    #[pyo3(signature = (denied_servers = Vec::new(), denied_rooms = Vec::new()))]
    fn new(denied_servers: Vec<Text>, denied_rooms: Vec<Text>) -> PyResult<Self> {
        let mut inner = OperatorPolicy::new();
        for (i, g) in denied_servers.iter().enumerate() {
            inner
                .deny_server(g)
                .map_err(|e| e.at(&format!("denied_servers[{i}]")))?;
        }
        for r in &denied_rooms {
            inner.deny_room(r);
        }
        Ok(PyOperatorPolicy {
            inner,
            servers: args::strings(denied_servers),
            rooms: args::strings(denied_rooms),
        })
    }

    /// The denying decision if `server` is on the deny list, else `None`.
    fn server_denied(&self, server: Text) -> Option<PyDecision> {
        self.inner.server_denied(&server).map(Into::into)
    }

    /// The denying decision if `room_id` (or the server in a `!x:server` ID) is denied, else `None`.
    fn room_denied(&self, room_id: Text) -> Option<PyDecision> {
        self.inner.room_denied(&room_id).map(Into::into)
    }

    /// `check_pseudouser_join` for a remote pseudouser joining one of our rooms, deny lists first.
    fn check_remote_pseudouser_join(
        &self,
        room_id: Text,
        state: &Bound<'_, PyAny>,
        pseudouser: Text,
    ) -> PyResult<PyDecision> {
        with_state(state, |s| {
            Ok(self
                .inner
                .check_remote_pseudouser_join(&room_id, s, &pseudouser)
                .into())
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "OperatorPolicy(denied_servers={:?}, denied_rooms={:?})",
            self.servers, self.rooms
        )
    }
}

/// What the peek tracker advises: `action` (`"join"`, `"leave"`, `"nothing"` or `"refuse"`,
/// joins and leaves being as this server's pseudouser) and the `decision` explaining it.
#[pyclass(frozen, module = "servership", name = "PeekAdvice")]
pub(crate) struct PyPeekAdvice {
    inner: tracker::PeekAdvice,
}

fn action_str(a: tracker::PeekAction) -> &'static str {
    match a {
        tracker::PeekAction::JoinAsPseudouser => "join",
        tracker::PeekAction::LeaveAsPseudouser => "leave",
        tracker::PeekAction::Nothing => "nothing",
        tracker::PeekAction::Refuse => "refuse",
    }
}

#[pymethods]
impl PyPeekAdvice {
    /// `"join"`, `"leave"`, `"nothing"` or `"refuse"`.
    #[getter]
    fn action(&self) -> &'static str {
        action_str(self.inner.action)
    }

    /// Why.
    #[getter]
    fn decision(&self) -> PyDecision {
        self.inner.decision.clone().into()
    }

    fn __repr__(&self) -> String {
        format!(
            "PeekAdvice(action={:?}, reason={:?})",
            action_str(self.inner.action),
            self.inner.decision.reason.as_str()
        )
    }
}

/// Per-server peek bookkeeping: says when to join or leave rooms as `@:local_server`. Safe to
/// share between threads (a lock inside); performs no I/O.
#[pyclass(frozen, module = "servership", name = "PeekTracker")]
pub(crate) struct PyPeekTracker {
    inner: Mutex<tracker::PeekTracker>,
    local_server: String,
}

impl PyPeekTracker {
    fn with<T>(&self, f: impl FnOnce(&mut tracker::PeekTracker) -> T) -> PyResult<T> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| Error::internal("the peek tracker's lock is poisoned"))?;
        Ok(f(&mut guard))
    }
}

fn advice(inner: tracker::PeekAdvice) -> PyPeekAdvice {
    PyPeekAdvice { inner }
}

#[pymethods]
impl PyPeekTracker {
    #[new]
    #[pyo3(signature = (local_server, policy = None))]
    fn new(local_server: Text, policy: Option<&PyOperatorPolicy>) -> PyResult<Self> {
        let policy = policy.map(|p| p.inner.clone()).unwrap_or_default();
        Ok(PyPeekTracker {
            inner: Mutex::new(tracker::PeekTracker::new(&local_server, policy)?),
            local_server: local_server.to_owned(),
        })
    }

    /// A local user asks to peek `room_id`; `peekable` is whether its join rule is `peekable`.
    fn request_peek(&self, room_id: Text, user_id: Text, peekable: bool) -> PyResult<PyPeekAdvice> {
        self.with(|t| advice(t.request_peek(&room_id, &user_id, peekable)))
    }

    /// A local user stops peeking.
    fn end_peek(&self, room_id: Text, user_id: Text) -> PyResult<PyPeekAdvice> {
        self.with(|t| advice(t.end_peek(&room_id, &user_id)))
    }

    /// A member event took effect in `room_id`.
    fn membership_changed(
        &self,
        room_id: Text,
        user_id: Text,
        membership: Text,
    ) -> PyResult<PyPeekAdvice> {
        self.with(|t| advice(t.membership_changed(&room_id, &user_id, &membership)))
    }

    /// An invite for a local user arrived over federation (never advises a join).
    fn remote_invite(&self, room_id: Text, invitee: Text) -> PyResult<PyPeekAdvice> {
        self.with(|t| advice(t.remote_invite(&room_id, &invitee)))
    }

    /// The advised pseudouser join failed.
    fn join_failed(&self, room_id: Text) -> PyResult<PyPeekAdvice> {
        self.with(|t| advice(t.join_failed(&room_id)))
    }

    /// The local users peeking `room_id`.
    fn peekers(&self, room_id: Text) -> PyResult<Vec<String>> {
        self.with(|t| t.peekers(&room_id))
    }

    /// Whether the pseudouser is joined to `room_id`.
    fn pseudouser_joined(&self, room_id: Text) -> PyResult<bool> {
        self.with(|t| t.pseudouser_joined(&room_id))
    }

    fn __repr__(&self) -> String {
        format!("PeekTracker(local_server={:?})", self.local_server)
    }
}

// ---------------------------------------------------------------------------------------------
// s2s rooms (MSC3348)
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Subscription (MSC4099)
// ---------------------------------------------------------------------------------------------

/// Validates an `m.server.knock` EDU (or just its content) given as a `dict` or JSON text;
/// returns the room ID.
#[pyfunction]
fn parse_knock_edu(py: Python<'_>, edu: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Some(input) = json_input(edu)? {
        let bytes = input.bytes();
        return Ok(py.detach(|| edu::parse_knock(bytes))?.room_id);
    }
    let value = to_value(edu, "edu")?;
    Ok(edu::parse_knock_value(&value)?.room_id)
}

/// The content `{"is_able_to_subscribe": able}` of `m.server.is_able_to_subscribe`.
#[pyfunction]
fn able_to_subscribe_content(py: Python<'_>, able: bool) -> PyResult<Bound<'_, PyAny>> {
    to_python(
        py,
        &Value::Object(subscription::able_to_subscribe_content(able)),
    )
}

/// Whether the room currently says `server` is able to subscribe.
#[pyfunction]
fn is_able_to_subscribe(state: &Bound<'_, PyAny>, server: Text) -> PyResult<bool> {
    with_state(state, |s| {
        Ok(subscription::is_able_to_subscribe(s, &server))
    })
}

/// Checks an `m.server.subscription` event against the current state.
#[pyfunction]
fn check_subscription_event(
    state: &Bound<'_, PyAny>,
    event: &Bound<'_, PyAny>,
) -> PyResult<PyDecision> {
    let event = to_object(event, "event")?;
    with_state(state, |s| {
        Ok(subscription::check_subscription_event(s, &event).into())
    })
}

/// Local configuration of which rooms are gated (a join from a server needs
/// `m.server.is_able_to_subscribe`). Safe to share between threads (a lock inside).
#[pyclass(frozen, module = "servership", name = "JoinGate")]
pub(crate) struct PyJoinGate {
    inner: Mutex<JoinGate>,
}

impl PyJoinGate {
    fn with<T>(&self, f: impl FnOnce(&mut JoinGate) -> T) -> PyResult<T> {
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| Error::internal("the join gate's lock is poisoned"))?;
        Ok(f(&mut guard))
    }
}

#[pymethods]
impl PyJoinGate {
    #[new]
    #[pyo3(signature = (gated = Vec::new()))]
    fn new(gated: Vec<Text>) -> Self {
        let mut gate = JoinGate::new();
        for r in &gated {
            gate.gate(r);
        }
        PyJoinGate {
            inner: Mutex::new(gate),
        }
    }

    /// Gates `room_id`.
    fn gate(&self, room_id: Text) -> PyResult<()> {
        self.with(|g| g.gate(&room_id))
    }

    /// Un-gates `room_id`.
    fn ungate(&self, room_id: Text) -> PyResult<()> {
        self.with(|g| g.ungate(&room_id))
    }

    /// Whether `room_id` is gated.
    fn is_gated(&self, room_id: Text) -> PyResult<bool> {
        self.with(|g| g.is_gated(&room_id))
    }

    /// Whether a join from `server` into `room` may proceed.
    fn check_join(
        &self,
        room: Text,
        state: &Bound<'_, PyAny>,
        server: Text,
    ) -> PyResult<PyDecision> {
        let gated = self.with(|g| g.is_gated(&room))?;
        with_state(state, |s| Ok(gated_join(&room, s, &server, gated).into()))
    }

    fn __repr__(&self) -> String {
        match self.inner.lock() {
            Ok(_) => "JoinGate()".to_owned(),
            Err(_) => "JoinGate(<poisoned>)".to_owned(),
        }
    }
}

fn gated_join(room: &str, state: &RoomState, server: &str, gated: bool) -> Decision {
    let mut gate = JoinGate::new();
    if gated {
        gate.gate(room);
    }
    gate.check_join(room, state, server)
}

/// Whether a join from `server_name` may proceed in a room with this current state, the room
/// being `gated` or not (a convenience over `JoinGate` for callers that keep the configuration).
#[pyfunction]
fn join_allowed(
    state_events: &Bound<'_, PyAny>,
    server_name: Text,
    gated: bool,
) -> PyResult<PyDecision> {
    with_state(state_events, |s| {
        Ok(gated_join("", s, &server_name, gated).into())
    })
}

/// A parsed `m.room.server_acl` content (the spec's lenient defaults). Immutable.
#[pyclass(frozen, module = "servership", name = "ServerAcl")]
pub(crate) struct PyServerAcl {
    inner: ServerAcl,
}

#[pymethods]
impl PyServerAcl {
    #[new]
    fn new(content: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyServerAcl {
            inner: ServerAcl::from_content(&to_object(content, "content")?),
        })
    }

    /// The ACL of a room, or `None` if it has none.
    #[staticmethod]
    fn from_state(state: &Bound<'_, PyAny>) -> PyResult<Option<PyServerAcl>> {
        with_state(state, |s| {
            Ok(ServerAcl::from_state(s).map(|inner| PyServerAcl { inner }))
        })
    }

    /// Evaluates `server` (port removed before matching).
    fn check(&self, server: Text) -> PyDecision {
        self.inner.check(&server).into()
    }

    fn __repr__(&self) -> String {
        "ServerAcl(...)".to_owned()
    }
}

/// The outcome of `decide_knock`: the `decision` (for local logs and moderators only) and the
/// `outward_event` template to send when a knock is newly accepted (`None` otherwise, so denied
/// and unknown rooms look alike from outside).
#[pyclass(frozen, module = "servership", name = "KnockDecision")]
pub(crate) struct PyKnockDecision {
    inner: knock::KnockDecision,
}

#[pymethods]
impl PyKnockDecision {
    /// Verdict and reason.
    #[getter]
    fn decision(&self) -> PyDecision {
        self.inner.decision.clone().into()
    }

    /// `{"type", "state_key", "content"}` of `m.server.is_able_to_subscribe`, or `None`.
    #[getter]
    fn outward_event<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .outward_event()
            .map(|o| to_python(py, &Value::Object(o)))
            .transpose()
    }

    /// `{"decision": {...}, "outward_event": {...} | None}`.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.to_json())
    }

    fn __repr__(&self) -> String {
        format!(
            "KnockDecision(verdict={:?}, reason={:?}, outward_event={})",
            self.inner.decision.verdict.as_str(),
            self.inner.decision.reason.as_str(),
            if self.inner.outward_event().is_some() {
                "{...}"
            } else {
                "None"
            }
        )
    }
}

/// Calls a Python research callback; the first error it raises (or a bad return value) is kept
/// and re-raised after the decision, instead of crossing the Rust trait.
struct PyResearch<'a, 'py> {
    callback: &'a Bound<'py, PyAny>,
    error: std::cell::RefCell<Option<PyErr>>,
}

impl PyResearch<'_, '_> {
    fn answer(&self, room_id: &str, server: &str) -> PyResult<knock::Research> {
        let result = self.callback.call1((room_id, server))?;
        if result.is_none() {
            return Ok(knock::Research::NoOpinion);
        }
        let (verdict, reason): (String, Option<String>) =
            if let Ok(t) = result.extract::<(String, String)>() {
                (t.0, Some(t.1))
            } else if let Ok(s) = result.extract::<String>() {
                (s, None)
            } else {
                return Err(PyTypeError::new_err(format!(
                    "the research callback must return \"accept\", \"deny\", None or \
                     (verdict, reason), not {}",
                    type_name(&result)
                )));
            };
        match verdict.as_str() {
            "accept" => Ok(knock::Research::Accept(reason.unwrap_or_else(|| {
                format!("research accepted {server} for {room_id}")
            }))),
            "deny" => Ok(knock::Research::Deny(reason.unwrap_or_else(|| {
                format!("research denied {server} for {room_id}")
            }))),
            other => Err(PyValueError::new_err(format!(
                "the research callback must return \"accept\", \"deny\" or None, not {other:?}"
            ))),
        }
    }
}

impl knock::KnockResearch for PyResearch<'_, '_> {
    fn research(&self, room_id: &str, server: &str) -> knock::Research {
        match self.answer(room_id, server) {
            Ok(r) => r,
            Err(e) => {
                self.error.replace(Some(e));
                knock::Research::NoOpinion
            }
        }
    }
}

/// Decides a knock from `server` on `room_id`. `state` is the room's state, or `None` for an
/// unknown (or hidden) room; `policy_state` the state of the policy room(s) whose server rules
/// apply, or `None`; `research` an optional callable `(room_id, server)` returning `"accept"`,
/// `"deny"`, `None` or `(verdict, reason)` (an exception it raises propagates unchanged); `mode`
/// is `"moderator"` (pending, the default) or `"auto_accept"`.
#[pyfunction]
#[pyo3(
    signature = (room_id, server, state = None, policy_state = None, research = None, mode = args::fixed("moderator")),
    text_signature = "(room_id, server, state=None, policy_state=None, research=None, mode='moderator')"
)]
fn decide_knock(
    room_id: Text,
    server: Text,
    state: Option<&Bound<'_, PyAny>>,
    policy_state: Option<&Bound<'_, PyAny>>,
    research: Option<&Bound<'_, PyAny>>,
    mode: Text,
) -> PyResult<PyKnockDecision> {
    let mode = parse_mode(&mode)?;
    if let Some(r) = research {
        if !r.is_callable() {
            return Err(PyTypeError::new_err("research must be callable or None"));
        }
    }
    let policies = match policy_state {
        Some(p) => with_state(p, |s| Ok(knock::PolicyList::from_state(s)))?,
        None => knock::PolicyList::new(),
    };
    let hook = research.map(|callback| PyResearch {
        callback,
        error: std::cell::RefCell::new(None),
    });
    let run = |s: Option<&RoomState>| -> PyResult<knock::KnockDecision> {
        let research = hook.as_ref().map(|h| h as &dyn knock::KnockResearch);
        let d = knock::decide_knock(&room_id, &server, s, &policies, research, mode);
        if let Some(err) = hook.as_ref().and_then(|h| h.error.take()) {
            return Err(err);
        }
        Ok(d)
    };
    let inner = match state {
        Some(st) if !st.is_none() => with_state(st, |s| run(Some(s)))?,
        _ => run(None)?,
    };
    Ok(PyKnockDecision { inner })
}

pub(crate) fn parse_mode(mode: &str) -> crate::Result<knock::KnockMode> {
    match mode {
        "moderator" => Ok(knock::KnockMode::Moderator),
        "auto_accept" => Ok(knock::KnockMode::AutoAccept),
        other => Err(Error::invalid_param(format!(
            "mode must be \"moderator\" or \"auto_accept\", not {other:?}"
        ))),
    }
}

/// Recorded `m.server.knock` EDUs in servership's own SQLite file, idempotent per (room, server),
/// expiring `expire_after_ms` after last seen; at most `max_per_origin` new knocks per origin per
/// `origin_window_ms`, and never more than about a second of waiting per call. Safe to share
/// between threads; the SQLite work runs without holding the interpreter (in Synapse, still call
/// it through `defer_to_thread`).
/// Records are `dict`s `{"room_id", "server", "first_seen_ms", "last_seen_ms", "times"}`; times
/// default to the system clock.
#[pyclass(frozen, module = "servership", name = "KnockStore")]
pub(crate) struct PyKnockStore {
    inner: KnockStore,
    path: String,
}

fn now_or(now_ms: Option<i64>) -> i64 {
    now_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

#[pymethods]
impl PyKnockStore {
    #[new]
    #[pyo3(signature = (path, expire_after_ms, max_per_origin = 20, origin_window_ms = 3_600_000))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        #[pyo3(from_py_with = args::int)] expire_after_ms: u64,
        #[pyo3(from_py_with = args::int)] max_per_origin: u32,
        #[pyo3(from_py_with = args::int)] origin_window_ms: u64,
    ) -> PyResult<Self> {
        let expire = std::time::Duration::from_millis(expire_after_ms);
        let limits = crate::store::KnockLimits {
            max_per_origin,
            window: std::time::Duration::from_millis(origin_window_ms),
        };
        let inner = py.detach(|| KnockStore::open_with_limits(&path, expire, limits))?;
        Ok(PyKnockStore {
            inner,
            path: path.display().to_string(),
        })
    }

    /// Records a knock of `server` on `room_id` at `now_ms`; returns the record. A new knock
    /// beyond the origin's cap (`max_per_origin` per `origin_window_ms`) raises
    /// `LimitExceededError` and writes nothing; a file that stays busy raises `StorageError`
    /// after about a second at most.
    #[pyo3(signature = (room_id, server, now_ms = None))]
    fn record<'py>(
        &self,
        py: Python<'py>,
        room_id: Text,
        server: Text,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = now_or(now_ms);
        let r = py.detach(|| self.inner.record_at(&room_id, &server, now))?;
        to_python(py, &r.to_json())
    }

    /// The unexpired knock of `server` on `room_id`, or `None`.
    #[pyo3(signature = (room_id, server, now_ms = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        room_id: Text,
        server: Text,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let now = now_or(now_ms);
        let r = py.detach(|| self.inner.get_at(&room_id, &server, now))?;
        r.map(|r| to_python(py, &r.to_json())).transpose()
    }

    /// Every unexpired knock on `room_id`, oldest first.
    #[pyo3(signature = (room_id, now_ms = None))]
    fn for_room<'py>(
        &self,
        py: Python<'py>,
        room_id: Text,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let now = now_or(now_ms);
        let rows = py.detach(|| self.inner.for_room_at(&room_id, now))?;
        to_python(
            py,
            &Value::Array(rows.iter().map(|r| r.to_json()).collect()),
        )
    }

    /// Forgets one knock; returns whether it existed.
    fn remove(&self, py: Python<'_>, room_id: Text, server: Text) -> PyResult<bool> {
        Ok(py.detach(|| self.inner.remove(&room_id, &server))?)
    }

    /// Deletes every knock expired at `now_ms`; returns how many.
    #[pyo3(signature = (now_ms = None))]
    fn purge_expired(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
    ) -> PyResult<usize> {
        let now = now_or(now_ms);
        Ok(py.detach(|| self.inner.purge_expired_at(now))?)
    }

    /// Number of stored rows (expired ones not yet purged included).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let n = py.detach(|| self.inner.row_count())?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn __repr__(&self) -> String {
        let l = self.inner.limits();
        format!(
            "KnockStore(path={:?}, max_per_origin={}, origin_window_ms={})",
            self.path,
            l.max_per_origin,
            l.window.as_millis()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDecision>()?;
    m.add_class::<PyRoomState>()?;
    m.add_class::<PyOperatorPolicy>()?;
    m.add_class::<PyPeekAdvice>()?;
    m.add_class::<PyPeekTracker>()?;
    m.add_class::<PyNegotiationPolicy>()?;
    m.add_class::<PyNegotiation>()?;
    m.add_class::<PyStep>()?;
    m.add_class::<PyJoinGate>()?;
    m.add_class::<PyServerAcl>()?;
    m.add_class::<PyKnockDecision>()?;
    m.add_class::<PyKnockStore>()?;
    m.add_function(wrap_pyfunction!(check_pseudouser_join, m)?)?;
    m.add_function(wrap_pyfunction!(room_display_name, m)?)?;
    m.add_function(wrap_pyfunction!(visible_members, m)?)?;
    m.add_function(wrap_pyfunction!(is_s2s_room, m)?)?;
    m.add_function(wrap_pyfunction!(check_server_user_membership, m)?)?;
    m.add_function(wrap_pyfunction!(initial_state, m)?)?;
    m.add_function(wrap_pyfunction!(negotiation_choose, m)?)?;
    m.add_function(wrap_pyfunction!(parse_knock_edu, m)?)?;
    m.add_function(wrap_pyfunction!(able_to_subscribe_content, m)?)?;
    m.add_function(wrap_pyfunction!(is_able_to_subscribe, m)?)?;
    m.add_function(wrap_pyfunction!(check_subscription_event, m)?)?;
    m.add_function(wrap_pyfunction!(join_allowed, m)?)?;
    m.add_function(wrap_pyfunction!(decide_knock, m)?)?;
    Ok(())
}
