//! Invites from Python: the MSC4329 request check, the MSC4311 spec-invite check, the sending
//! side's request builder, and the key ring the checks verify signatures with.

use std::sync::RwLock;

use pyo3::prelude::*;

#[allow(unused_imports)]
use super::args::{self, Int, Text};
use pyo3::types::{PyAny, PyBytes, PyDict, PyList};

use super::convert::{json_input, to_object, to_object_lenient, to_python, to_value_lenient};
use super::signing::PyVerifyKey;
use crate::error::Error;
use crate::invite::{
    self, DroppedEvent, InviteCheck, KeyRing, SpecInviteCheck, SpecInviteEndpoint,
};
use crate::json::{Object, Value};

/// Verify keys by server name, for the invite checks. Filled by the homeserver from its own key
/// store; servership never fetches keys. Safe to share between threads (adding takes a lock).
#[pyclass(frozen, module = "servership", name = "KeyRing")]
pub(crate) struct PyKeyRing {
    ring: RwLock<KeyRing>,
}

impl PyKeyRing {
    fn snapshot(&self) -> PyResult<KeyRing> {
        Ok(self
            .ring
            .read()
            .map_err(|_| Error::internal("the key ring lock is poisoned"))?
            .clone())
    }
}

#[pymethods]
impl PyKeyRing {
    /// An empty key ring.
    #[new]
    fn new() -> Self {
        PyKeyRing {
            ring: RwLock::new(KeyRing::new()),
        }
    }

    /// Reads keys grouped by server, shaped like key server responses' `verify_keys`:
    /// `{"server": {"ed25519:1": {"key": "<base64>"}}}` (a bare base64 string is accepted in place
    /// of the `{"key": …}` object). Takes JSON text (`bytes`/`str`) or a `dict`.
    #[staticmethod]
    fn from_json(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let ring = if let Some(input) = json_input(data)? {
            let bytes = input.bytes();
            py.detach(|| KeyRing::from_json(bytes))?
        } else {
            let object = to_object(data, "data")?;
            KeyRing::from_json(&Value::Object(object).to_canonical())?
        };
        Ok(PyKeyRing {
            ring: RwLock::new(ring),
        })
    }

    /// Adds `key` for `server_name`.
    fn add(&self, server_name: Text, key: &PyVerifyKey) -> PyResult<()> {
        crate::ids::ServerName::parse(&server_name).map_err(|e| e.at("server_name"))?;
        self.ring
            .write()
            .map_err(|_| Error::internal("the key ring lock is poisoned"))?
            .add(&server_name, key.verify_key().clone());
        Ok(())
    }

    /// Adds the key `key_id` of `server_name`, its public half in standard base64.
    fn add_base64(&self, server_name: Text, key_id: Text, public_key: Text) -> PyResult<()> {
        crate::ids::ServerName::parse(&server_name).map_err(|e| e.at("server_name"))?;
        let key = crate::signing::VerifyKey::from_base64(&key_id, &public_key)?;
        self.ring
            .write()
            .map_err(|_| Error::internal("the key ring lock is poisoned"))?
            .add(&server_name, key);
        Ok(())
    }

    /// The keys known for `server_name`.
    fn keys_for(&self, server_name: Text) -> PyResult<Vec<PyVerifyKey>> {
        Ok(self
            .snapshot()?
            .keys_for(&server_name)
            .iter()
            .cloned()
            .map(PyVerifyKey::from_key)
            .collect())
    }

    fn __repr__(&self) -> String {
        match self.ring.read() {
            Ok(ring) if ring.is_empty() => "KeyRing(empty)".to_owned(),
            Ok(_) => "KeyRing(...)".to_owned(),
            Err(_) => "KeyRing(poisoned)".to_owned(),
        }
    }
}

/// A state event that did not make it into the new `invite_room_state`, and why.
#[pyclass(frozen, eq, module = "servership", name = "DroppedEvent")]
#[derive(PartialEq)]
pub(crate) struct PyDroppedEvent {
    dropped: DroppedEvent,
}

#[pymethods]
impl PyDroppedEvent {
    /// Where it was in the request, e.g. `state[2]`.
    #[getter]
    fn place(&self) -> &str {
        &self.dropped.place
    }

    /// Its event ID, when one could be computed.
    #[getter]
    fn event_id(&self) -> Option<&str> {
        self.dropped.event_id.as_deref()
    }

    /// Why it was left out.
    #[getter]
    fn reason(&self) -> &str {
        &self.dropped.reason
    }

    fn __repr__(&self) -> String {
        format!(
            "DroppedEvent(place={:?}, event_id={:?}, reason={:?})",
            self.dropped.place, self.dropped.event_id, self.dropped.reason
        )
    }
}

fn dropped(list: &[DroppedEvent]) -> Vec<PyDroppedEvent> {
    list.iter()
        .cloned()
        .map(|dropped| PyDroppedEvent { dropped })
        .collect()
}

fn list_of_values<'py>(py: Python<'py>, values: &[Value]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for v in values {
        list.append(to_python(py, v)?)?;
    }
    Ok(list)
}

fn dict<'py>(py: Python<'py>, object: &Object) -> PyResult<Bound<'py, PyDict>> {
    Ok(to_python(py, &Value::Object(object.clone()))?.cast_into::<PyDict>()?)
}

/// What the receiving server learns from an MSC4329 invite that passed every check. Immutable;
/// the `dict`/`list` attributes are fresh copies on each access.
#[pyclass(frozen, module = "servership", name = "InviteCheck")]
pub(crate) struct PyInviteCheck {
    check: InviteCheck,
}

#[pymethods]
impl PyInviteCheck {
    /// The invite's event ID, computed from the event.
    #[getter]
    fn event_id(&self) -> &str {
        &self.check.event_id
    }
    /// The room version, from the verified create event.
    #[getter]
    fn room_version(&self) -> &str {
        self.check.room_version.id
    }
    /// The room ID.
    #[getter]
    fn room_id(&self) -> &str {
        &self.check.room_id
    }
    /// The room's creators (the create event's sender, then v12 `additional_creators`).
    #[getter]
    fn creators(&self) -> Vec<String> {
        self.check.creators.clone()
    }
    /// The creators' servers, each once.
    #[getter]
    fn creator_servers(&self) -> Vec<String> {
        self.check.creator_servers.clone()
    }
    /// The invite event as received, ready to counter-sign.
    #[getter]
    fn event<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dict(py, &self.check.event)
    }
    /// The verified `m.room.create` PDU.
    #[getter]
    fn create_event<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dict(py, &self.check.create_event)
    }
    /// The new `invite_room_state` to store for the invitee (the verified create event last).
    #[getter]
    fn invite_room_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of_values(py, &self.check.invite_room_state)
    }
    /// Event IDs of the `state` events promoted into `invite_room_state`.
    #[getter]
    fn promoted(&self) -> Vec<String> {
        self.check.promoted.clone()
    }
    /// What was left out of `state` and `invite_room_state`, with reasons.
    #[getter]
    fn dropped(&self) -> Vec<PyDroppedEvent> {
        dropped(&self.check.dropped)
    }
    /// Whether signatures and content hashes were verified (a key ring was given).
    #[getter]
    fn signatures_checked(&self) -> bool {
        self.check.signatures_checked
    }
    /// The event ID of the inviter's own verified `join` that the invite names in
    /// `auth_events`: the proof that the origin is in the room. `None` without one.
    #[getter]
    fn inviter_membership(&self) -> Option<String> {
        self.check.inviter_membership.clone()
    }
    /// `creator_servers` when `inviter_membership` proves the origin is in the room, else
    /// empty: what a creator-based policy must read.
    #[getter]
    fn proven_creator_servers(&self) -> Vec<String> {
        self.check.proven_creator_servers().to_vec()
    }
    /// The whole result as canonical JSON.
    fn to_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.check.to_json().to_canonical())
    }

    fn __repr__(&self) -> String {
        format!(
            "InviteCheck(event_id={:?}, room_id={:?}, room_version={:?}, creator_servers={:?}, \
             invite_room_state=<{} events>, promoted={}, dropped={}, signatures_checked={})",
            self.check.event_id,
            self.check.room_id,
            self.check.room_version.id,
            self.check.creator_servers,
            self.check.invite_room_state.len(),
            self.check.promoted.len(),
            self.check.dropped.len(),
            if self.check.signatures_checked {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// What a spec (`/v1` or `/v2`) invite that passed the MSC4311 checks tells the receiving server.
#[pyclass(frozen, module = "servership", name = "SpecInviteCheck")]
pub(crate) struct PySpecInviteCheck {
    check: SpecInviteCheck,
}

#[pymethods]
impl PySpecInviteCheck {
    /// The invite's event ID (equal to the path's).
    #[getter]
    fn event_id(&self) -> &str {
        &self.check.event_id
    }
    /// The room version, from the create event.
    #[getter]
    fn room_version(&self) -> &str {
        self.check.room_version.id
    }
    /// The room ID.
    #[getter]
    fn room_id(&self) -> &str {
        &self.check.room_id
    }
    /// The room's creators.
    #[getter]
    fn creators(&self) -> Vec<String> {
        self.check.creators.clone()
    }
    /// The creators' servers, each once.
    #[getter]
    fn creator_servers(&self) -> Vec<String> {
        self.check.creator_servers.clone()
    }
    /// `invite_room_state` for clients: pruned to stripped form, the create event last.
    #[getter]
    fn invite_room_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        list_of_values(py, &self.check.invite_room_state)
    }
    /// What was left out, with reasons.
    #[getter]
    fn dropped(&self) -> Vec<PyDroppedEvent> {
        dropped(&self.check.dropped)
    }
    /// Whether signatures and content hashes were verified.
    #[getter]
    fn signatures_checked(&self) -> bool {
        self.check.signatures_checked
    }
    /// The whole result as canonical JSON.
    fn to_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.check.to_json().to_canonical())
    }

    fn __repr__(&self) -> String {
        format!(
            "SpecInviteCheck(event_id={:?}, room_id={:?}, room_version={:?}, \
             creator_servers={:?}, invite_room_state=<{} events>, dropped={}, \
             signatures_checked={})",
            self.check.event_id,
            self.check.room_id,
            self.check.room_version.id,
            self.check.creator_servers,
            self.check.invite_room_state.len(),
            self.check.dropped.len(),
            if self.check.signatures_checked {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// The request body as bytes: JSON text as given, or a `dict` encoded canonically.
fn body_bytes(body: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Some(input) = json_input(body)? {
        return Ok(input.bytes().to_vec());
    }
    if !body.is_instance_of::<PyDict>() {
        return Err(Error::bad_json(format!(
            "body must be JSON text (bytes or str) or a dict, not {}",
            body.get_type().name()?
        ))
        .into());
    }
    // Lenient: a room of version 1-5 may carry floats; the check refuses them in later versions.
    Ok(to_value_lenient(body, "body")?.to_canonical())
}

/// Checks an MSC4329 invite request (`PUT …/org.matrix.msc4329/invite/{roomId}` or the `v3`
/// path). `path_room_id` is the percent-decoded path segment, `body` the request body (`bytes`,
/// `str` or `dict`), `origin` the X-Matrix origin. With `keys`, signatures and content hashes are
/// verified too. Raises a `ServershipError` whose `matrix_error`/`http_status` is the answer to
/// send back.
#[pyfunction]
#[pyo3(signature = (path_room_id, body, receiving_server, origin, keys = None))]
fn check_invite(
    py: Python<'_>,
    path_room_id: Text,
    body: &Bound<'_, PyAny>,
    receiving_server: Text,
    origin: Text,
    keys: Option<&PyKeyRing>,
) -> PyResult<PyInviteCheck> {
    let body = body_bytes(body)?;
    let keys = keys.map(PyKeyRing::snapshot).transpose()?;
    let check = py.detach(|| {
        invite::check_invite(
            &path_room_id,
            &body,
            &receiving_server,
            &origin,
            keys.as_ref(),
        )
    })?;
    Ok(PyInviteCheck { check })
}

/// Checks a spec invite whose `invite_room_state` carries the full `m.room.create` PDU
/// (MSC4311). `endpoint` is `1` (`/v1/invite`, the body is the event) or `2` (`/v2/invite`,
/// `{room_version, event, invite_room_state}`); `path_event_id` the percent-decoded path segment.
#[pyfunction]
#[pyo3(signature = (endpoint, path_room_id, path_event_id, body, receiving_server, origin, keys = None))]
#[allow(clippy::too_many_arguments)]
fn check_spec_invite(
    py: Python<'_>,
    #[pyo3(from_py_with = args::int)] endpoint: i64,
    path_room_id: Text,
    path_event_id: Text,
    body: &Bound<'_, PyAny>,
    receiving_server: Text,
    origin: Text,
    keys: Option<&PyKeyRing>,
) -> PyResult<PySpecInviteCheck> {
    let endpoint = match endpoint {
        1 => SpecInviteEndpoint::V1,
        2 => SpecInviteEndpoint::V2,
        other => {
            return Err(Error::invalid_param(format!(
                "endpoint must be 1 (v1/invite) or 2 (v2/invite), not {other}"
            ))
            .into());
        }
    };
    let body = body_bytes(body)?;
    let keys = keys.map(PyKeyRing::snapshot).transpose()?;
    let check = py.detach(|| {
        invite::check_spec_invite(
            endpoint,
            &path_room_id,
            &path_event_id,
            &body,
            &receiving_server,
            &origin,
            keys.as_ref(),
        )
    })?;
    Ok(PySpecInviteCheck { check })
}

/// Builds the MSC4329 request for the sending side: returns `(path, body)` to `PUT`. `invite` is
/// the signed invite event, `create` the room's create PDU, `extra_state` further full PDUs for
/// `state`, `invite_room_state` the stripped state (any `m.room.create` in it is left out).
#[pyfunction]
#[pyo3(signature = (invite, create, extra_state = Vec::new(), invite_room_state = Vec::new()))]
fn build_invite_request<'py>(
    py: Python<'py>,
    invite: &Bound<'py, PyAny>,
    create: &Bound<'py, PyAny>,
    extra_state: Vec<Bound<'py, PyAny>>,
    invite_room_state: Vec<Bound<'py, PyAny>>,
) -> PyResult<(String, Bound<'py, PyBytes>)> {
    // Lenient: Synapse's events of rooms of version 1-5 may hold floats and large integers; the
    // builder refuses them for later versions.
    let invite = to_object_lenient(invite, "invite")?;
    let create = to_object_lenient(create, "create")?;
    let extra = extra_state
        .iter()
        .enumerate()
        .map(|(i, e)| to_object_lenient(e, &format!("extra_state[{i}]")))
        .collect::<PyResult<Vec<Object>>>()?;
    let stripped = invite_room_state
        .iter()
        .enumerate()
        .map(|(i, e)| to_value_lenient(e, &format!("invite_room_state[{i}]")))
        .collect::<PyResult<Vec<Value>>>()?;
    let parts = py.detach(|| invite::build_invite_request(&invite, &create, &extra, &stripped))?;
    Ok((parts.path, PyBytes::new(py, &parts.body)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("INVITE_PATH_UNSTABLE_PREFIX", invite::PATH_UNSTABLE_PREFIX)?;
    m.add(
        "INVITE_PATH_UNSTABLE_ALIAS_PREFIX",
        invite::PATH_UNSTABLE_ALIAS_PREFIX,
    )?;
    m.add("INVITE_PATH_V3_PREFIX", invite::PATH_V3_PREFIX)?;
    m.add("MAX_INVITE_BODY_BYTES", invite::MAX_INVITE_BODY_BYTES)?;
    m.add("SPEC_INVITE_V1", 1)?;
    m.add("SPEC_INVITE_V2", 2)?;
    m.add_class::<PyKeyRing>()?;
    m.add_class::<PyDroppedEvent>()?;
    m.add_class::<PyInviteCheck>()?;
    m.add_class::<PySpecInviteCheck>()?;
    m.add_function(wrap_pyfunction!(check_invite, m)?)?;
    m.add_function(wrap_pyfunction!(check_spec_invite, m)?)?;
    m.add_function(wrap_pyfunction!(build_invite_request, m)?)?;
    Ok(())
}
