//! Server pseudousers and peeking (MSC1777) from Python; re-exported by `servership.peeking`.
//!
//! Every state argument accepts a `RoomState`, a `list` of state event `dict`s, or JSON text of
//! such a list; building from a list is the expensive part, so callers that ask several questions
//! about one room build a `RoomState` once.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::args::{self, Text};
use super::decision::PyDecision;
use super::room_state::with_state;
use crate::error::Error;
use crate::pseudouser::{self, OperatorPolicy, names, tracker};

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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOperatorPolicy>()?;
    m.add_class::<PyPeekAdvice>()?;
    m.add_class::<PyPeekTracker>()?;
    m.add_function(wrap_pyfunction!(check_pseudouser_join, m)?)?;
    m.add_function(wrap_pyfunction!(room_display_name, m)?)?;
    m.add_function(wrap_pyfunction!(visible_members, m)?)?;
    Ok(())
}
