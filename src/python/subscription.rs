//! Subscription authorization of servers (MSC4099) from Python: knock EDUs, subscription state,
//! gated joins, server ACLs and knock decisions; re-exported by `servership.subscription`. The
//! knock store is in `store/knocks.rs`.
//!
//! Every state argument accepts a `RoomState`, a `list` of state event `dict`s, or JSON text of
//! such a list; building from a list is the expensive part, so callers that ask several questions
//! about one room build a `RoomState` once.

use std::sync::Mutex;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::args::{self, Text};
use super::convert::{json_input, to_object, to_python, to_value};
use super::decision::PyDecision;
use super::room_state::{type_name, with_state};
use crate::decision::Decision;
use crate::error::Error;
use crate::json::Value;
use crate::room_state::RoomState;
use crate::subscription::{self, JoinGate, acl::ServerAcl, decision as knock, knock as edu};

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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJoinGate>()?;
    m.add_class::<PyServerAcl>()?;
    m.add_class::<PyKnockDecision>()?;
    m.add_function(wrap_pyfunction!(parse_knock_edu, m)?)?;
    m.add_function(wrap_pyfunction!(able_to_subscribe_content, m)?)?;
    m.add_function(wrap_pyfunction!(is_able_to_subscribe, m)?)?;
    m.add_function(wrap_pyfunction!(check_subscription_event, m)?)?;
    m.add_function(wrap_pyfunction!(join_allowed, m)?)?;
    m.add_function(wrap_pyfunction!(decide_knock, m)?)?;
    Ok(())
}
