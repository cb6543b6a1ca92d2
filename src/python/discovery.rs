//! Out-of-room server discovery (MSC4358, `docs/discovery.md`) from Python.
//!
//! `participation_tag(s)` and `TagStore` live in the flat `servership` namespace; the endpoint,
//! the requesting side and the audit are re-exported by the pure-Python submodule
//! `servership.discovery` (`python/servership/discovery.py`), which is where their classes say
//! they live (`module = "servership.discovery"`).
//!
//! Decisions:
//! - Times are optional: `None` means "now" (milliseconds since the Unix epoch), so tests and
//!   replays can pass a clock and servers need not.
//! - Every call that reaches SQLite or hashes a batch runs without holding the interpreter, so
//!   Synapse's threads (`defer_to_thread`) really run in parallel.
//! - A `str` where a sequence of room IDs is expected is a `TypeError`, never a sequence of
//!   one-character room IDs.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::args::{self, Text, at};
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::convert::json_input;
use crate::discovery::{
    self, Audit, AuditReport, Departure, ParticipationTag, PeerAnswer, Requester, Responder,
    ResponderConfig, RoomView, Standing, Tagger,
};
use crate::error::Error;
use crate::store::{AuditQueue, Location, StoreBudget, TagStore};

/// Batches at least this long are tagged without holding the interpreter; shorter ones finish
/// faster than the hand-over costs.
const DETACH_BATCH: usize = 256;

/// Milliseconds since the Unix epoch, from the system clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A time given by the caller, or now.
fn time_or_now(given: Option<i64>) -> i64 {
    given.unwrap_or_else(|| i64::try_from(now_ms()).unwrap_or(i64::MAX))
}

/// Reads a sequence (any iterable but `str`/`bytes`) of `str`, naming the bad element.
fn strings(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a sequence of str, not a single {}",
            obj.get_type().name()?
        )));
    }
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for (i, item) in obj.try_iter()?.enumerate() {
        let item = item?;
        let Ok(text) = item.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "{name}[{i}] must be a str, not {}",
                item.get_type().name()?
            )));
        };
        let text = text
            .to_str()
            .map_err(|_| Error::invalid_param(format!("{name}[{i}] contains a lone surrogate")))?;
        out.push(text.to_owned());
    }
    Ok(out)
}

/// The room participation tag `server_name` keeps for `room_id`, as unpadded standard base64
/// (43 characters): HMAC-SHA256 keyed by the server name exactly as written in Matrix IDs.
#[pyfunction]
fn participation_tag(server_name: Text, room_id: Text) -> String {
    discovery::participation_tag(&server_name, &room_id).to_base64()
}

/// The tags of many rooms under one server name, in order (the HMAC key schedule is done once;
/// large batches run without holding the interpreter).
#[pyfunction]
fn participation_tags(
    py: Python<'_>,
    server_name: Text,
    room_ids: &Bound<'_, PyAny>,
) -> PyResult<Vec<String>> {
    let rooms = strings(room_ids, "room_ids")?;
    let tag = |rooms: &[String]| {
        let tagger = Tagger::new(&server_name);
        rooms.iter().map(|r| tagger.tag(r).to_base64()).collect()
    };
    if rooms.len() >= DETACH_BATCH {
        Ok(py.detach(|| tag(&rooms)))
    } else {
        Ok(tag(&rooms))
    }
}

/// A server's permanent store of room participation tags, in its own SQLite file.
///
/// Durable (every write is committed before the call returns), shared (several processes may
/// open one file and write at once) and fresh (other processes' writes are seen without
/// reopening). Safe to share between threads.
#[pyclass(frozen, module = "servership", name = "TagStore")]
pub(crate) struct PyTagStore {
    store: Arc<TagStore>,
    path: String,
}

#[pymethods]
impl PyTagStore {
    /// Opens (creating if needed) the store at `path` for `server_name`: an SQLite file path, or
    /// a PostgreSQL connection string (`postgresql://…`, `postgres://…`, `host=… dbname=…`).
    /// Raises `InvalidParamError` if the store belongs to another server name.
    #[new]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = args::location)] path: Location,
        server_name: Text,
    ) -> PyResult<Self> {
        let shown = path.to_string();
        let store = py.detach(|| TagStore::open(path, &server_name))?;
        Ok(PyTagStore {
            store: Arc::new(store),
            path: shown,
        })
    }

    /// Records that this server joined `room_id` at `joined_at_ms` (default: now); `True` if the
    /// room is new. Durable when it returns. With `audit_due_ms`, a new room's post-join audit is
    /// queued (see `AuditQueue`) in the same transaction, due at that time; a room already
    /// recorded is never queued again.
    #[pyo3(signature = (room_id, joined_at_ms=None, *, audit_due_ms=None))]
    fn record_join(
        &self,
        py: Python<'_>,
        room_id: Text,
        #[pyo3(from_py_with = args::opt_int)] joined_at_ms: Option<i64>,
        #[pyo3(from_py_with = args::opt_int)] audit_due_ms: Option<i64>,
    ) -> PyResult<bool> {
        let at = time_or_now(joined_at_ms);
        Ok(py.detach(|| match audit_due_ms {
            Some(due) => self.store.record_join_and_queue_audit(&room_id, at, due),
            None => self.store.record_join(&room_id, at),
        })?)
    }

    /// Records many rooms in one transaction, all first joined at `now_ms` (default: now);
    /// returns how many were new. All or nothing.
    #[pyo3(signature = (room_ids, now_ms=None))]
    fn backfill(
        &self,
        py: Python<'_>,
        room_ids: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
    ) -> PyResult<usize> {
        let rooms = strings(room_ids, "room_ids")?;
        let at = time_or_now(now_ms);
        Ok(py.detach(|| self.store.backfill(&rooms, at))?)
    }

    /// Whether this server has ever joined `room_id`.
    fn contains_room(&self, py: Python<'_>, room_id: Text) -> PyResult<bool> {
        Ok(py.detach(|| self.store.contains_room(&room_id))?)
    }

    /// For each tag (base64, as on the wire), whether this server holds it; raises
    /// `InvalidParamError` naming the first tag that is not 32 bytes of base64.
    fn recognise(&self, py: Python<'_>, tags: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let texts = strings(tags, "tags")?;
        let parsed = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                ParticipationTag::from_base64(t).ok_or_else(|| {
                    Error::invalid_param(format!("tags[{i}] is not 32 bytes of base64"))
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(py.detach(|| self.store.recognise(&parsed))?)
    }

    /// Every recorded room with its first-joined time (ms), in the order they were recorded.
    fn rooms(&self, py: Python<'_>) -> PyResult<Vec<(String, i64)>> {
        Ok(py.detach(|| self.store.rooms())?)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(py.detach(|| self.store.len())?)
    }

    fn __contains__(&self, py: Python<'_>, room_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        // Like a set: anything but a room ID string is simply not in the store.
        let Ok(room_id) = room_id.cast::<PyString>() else {
            return Ok(false);
        };
        let room_id = room_id.to_cow()?;
        Ok(py.detach(|| self.store.contains_room(&room_id))?)
    }

    /// Approximate memory used by the in-memory index, in bytes.
    #[getter]
    fn index_bytes(&self) -> usize {
        self.store.index_bytes()
    }

    /// The server name the store is bound to.
    #[getter]
    fn server_name(&self) -> &str {
        self.store.server_name()
    }

    /// Where the store lives: the file as given when it was opened, or the PostgreSQL database
    /// (`postgresql://user@host:port/db`, never the password).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// `"sqlite"` or `"postgres"`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.store.location().backend()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let rooms = match py.detach(|| self.store.len()) {
            Ok(n) => n.to_string(),
            Err(_) => "?".to_owned(),
        };
        // Python's own quoting of the name, as a `str` repr would show it.
        let name = self
            .store
            .server_name()
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        format!("<TagStore '{name}' {rooms} rooms at {}>", self.path)
    }
}

/// Serves `POST .../discover_common_rooms` from a `TagStore`: request body bytes and the
/// authenticated origin in, response bytes out. Limits per request and budgets per origin as in
/// `docs/discovery.md`; origins are charged under `normalise_origin(origin)`. Safe to share
/// between threads; keeps the store alive.
#[pyclass(frozen, module = "servership.discovery", name = "Responder")]
pub(crate) struct PyResponder {
    responder: Responder,
    shared_budget: bool,
}

#[pymethods]
impl PyResponder {
    /// A responder answering from `store`; raises `InvalidParamError` for limits that do not fit
    /// together (e.g. `budget_tags` below `max_tags_per_request`). With `shared_budget=True` the
    /// per-origin budgets live in the store's SQLite file, so every process (Synapse worker) that
    /// opens it draws on one budget and a restart does not reset it; otherwise each responder
    /// keeps its own in memory.
    #[new]
    #[pyo3(signature = (
        store,
        *,
        max_tags_per_request=1000,
        budget_tags=10_000,
        budget_window_ms=60_000,
        stable_path=false,
        max_body_bytes=None,
        max_tracked_origins=100_000,
        shared_budget=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        store: &PyTagStore,
        #[pyo3(from_py_with = args::int)] max_tags_per_request: usize,
        #[pyo3(from_py_with = args::int)] budget_tags: u64,
        #[pyo3(from_py_with = args::int)] budget_window_ms: u64,
        stable_path: bool,
        #[pyo3(from_py_with = args::opt_int)] max_body_bytes: Option<usize>,
        #[pyo3(from_py_with = args::int)] max_tracked_origins: usize,
        shared_budget: bool,
    ) -> PyResult<Self> {
        let config = ResponderConfig {
            max_tags_per_request,
            max_body_bytes,
            budget_tags,
            budget_window_ms,
            max_tracked_origins,
            stable_path,
        };
        let store = Arc::clone(&store.store);
        let responder = if shared_budget {
            config.validate()?;
            let budget = py.detach(|| {
                StoreBudget::open(
                    store.location(),
                    config.budget_tags,
                    config.budget_window_ms,
                )
            })?;
            Responder::with_budget(store, config, Arc::new(budget))?
        } else {
            Responder::new(store, config)?
        };
        Ok(PyResponder {
            responder,
            shared_budget,
        })
    }

    /// Answers one request body from `origin` at `now_ms` (default: now) with the canonical JSON
    /// response. Raises `TooLargeError` (413), `BadJsonError` (M_NOT_JSON / M_BAD_JSON),
    /// `InvalidParamError` (M_INVALID_PARAM / M_MISSING_PARAM) or `LimitExceededError` (429, with
    /// `retry_after_ms`); each carries `http_status` and `matrix_error` to answer with.
    #[pyo3(signature = (body, origin, now_ms=None))]
    fn respond<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
        origin: Text,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let Some(input) = json_input(body)? else {
            return Err(PyTypeError::new_err(format!(
                "body must be bytes, not {}",
                body.get_type().name()?
            )));
        };
        let at = now_ms.unwrap_or_else(self::now_ms);
        let bytes = input.bytes();
        let answer = py.detach(|| self.responder.respond(bytes, &origin, at))?;
        Ok(PyBytes::new(py, &answer))
    }

    /// How many tags `origin` (normalised, see `normalise_origin`) may still ask about in its
    /// current window.
    #[pyo3(signature = (origin, now_ms=None))]
    fn remaining_budget(
        &self,
        py: Python<'_>,
        origin: Text,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<u64>,
    ) -> PyResult<u64> {
        let at = now_ms.unwrap_or_else(self::now_ms);
        Ok(py.detach(|| self.responder.remaining_budget(&origin, at))?)
    }

    /// The paths to serve: the unstable one always, the stable one with `stable_path=True`.
    #[getter]
    fn paths(&self) -> Vec<&'static str> {
        self.responder.paths()
    }

    /// Most tags one request may carry.
    #[getter]
    fn max_tags_per_request(&self) -> usize {
        self.responder.config().max_tags_per_request
    }

    /// Whether the budgets live in the store's file (shared by every process) or in memory.
    #[getter]
    fn shared_budget(&self) -> bool {
        self.shared_budget
    }

    fn __repr__(&self) -> String {
        let c = self.responder.config();
        format!(
            "<Responder for {:?}: {} tags a request, {} tags per {} ms per origin{}>",
            self.responder.store().server_name(),
            c.max_tags_per_request,
            c.budget_tags,
            c.budget_window_ms,
            if self.shared_budget { ", shared" } else { "" }
        )
    }
}

/// Questions for one peer about a set of rooms: the tags are computed under the peer's name,
/// duplicates dropped, and split into request bodies of at most `max_tags_per_request` tags.
#[pyclass(frozen, module = "servership.discovery", name = "Requester")]
pub(crate) struct PyRequester {
    requester: Requester,
}

#[pymethods]
impl PyRequester {
    #[new]
    #[pyo3(signature = (target, room_ids, max_tags_per_request=1000))]
    fn new(
        py: Python<'_>,
        target: Text,
        room_ids: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = args::int)] max_tags_per_request: usize,
    ) -> PyResult<Self> {
        let rooms = strings(room_ids, "room_ids")?;
        let requester = if rooms.len() >= DETACH_BATCH {
            py.detach(|| Requester::new(&target, &rooms, max_tags_per_request))
        } else {
            Requester::new(&target, &rooms, max_tags_per_request)
        };
        Ok(PyRequester { requester })
    }

    /// The server being asked.
    #[getter]
    fn target(&self) -> &str {
        self.requester.target()
    }

    /// The request bodies (canonical JSON), one per chunk, in order.
    #[getter]
    fn bodies<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.requester
            .request_bodies()
            .iter()
            .map(|b| PyBytes::new(py, b))
            .collect()
    }

    /// The room IDs the peer recognised in its answer `body` to request `index`, in request
    /// order. Raises `BadJsonError` for a malformed answer (nothing from it is used) and
    /// `InvalidParamError` for an index past the last request.
    fn map_response(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::int)] index: usize,
        body: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<String>> {
        let Some(input) = json_input(body)? else {
            return Err(PyTypeError::new_err(format!(
                "body must be bytes, not {}",
                body.get_type().name()?
            )));
        };
        let bytes = input.bytes();
        Ok(py.detach(|| self.requester.map_response(index, bytes))?)
    }

    fn __len__(&self) -> usize {
        self.requester.chunk_count()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Requester to {:?}: {} request(s)>",
            self.requester.target(),
            self.requester.chunk_count()
        )
    }
}

/// A membership history as Python gives it: `(user_id, membership, sender)` triples, or the
/// older `(user_id, membership)` pairs of current memberships (all items the same shape).
enum History {
    Triples(Vec<(String, String, String)>),
    Pairs(Vec<(String, String)>),
}

/// The items of a tuple or list element, or `None` for anything else.
fn sequence_items<'py>(item: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyAny>>> {
    if let Ok(t) = item.cast::<PyTuple>() {
        return Some(t.iter().collect());
    }
    if let Ok(l) = item.cast::<PyList>() {
        return Some(l.iter().collect());
    }
    None
}

fn read_history(obj: &Bound<'_, PyAny>) -> PyResult<History> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "history must be a sequence of (user_id, membership, sender) triples, not a single {}",
            obj.get_type().name()?
        )));
    }
    let mut triples = Vec::new();
    let mut pairs = Vec::new();
    for (i, item) in obj.try_iter()?.enumerate() {
        let item = item?;
        let shape = match sequence_items(&item) {
            Some(parts) if parts.len() == 3 || parts.len() == 2 => parts,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "history[{i}] must be a (user_id, membership, sender) triple of str, not {}",
                    item.get_type().name()?
                )));
            }
        };
        if (shape.len() == 3 && !pairs.is_empty()) || (shape.len() == 2 && !triples.is_empty()) {
            return Err(PyTypeError::new_err(format!(
                "history[{i}] has {} items but history[0] has {}: give (user_id, membership, \
                 sender) triples throughout",
                shape.len(),
                5 - shape.len()
            )));
        }
        let mut texts = Vec::with_capacity(3);
        for (j, part) in shape.iter().enumerate() {
            let text: Text = part
                .extract()
                .map_err(|e| at(e, &format!("history[{i}][{j}]")))?;
            texts.push(text.to_string());
        }
        let mut texts = texts.into_iter();
        let (a, b, c) = (texts.next(), texts.next(), texts.next());
        match (a, b, c) {
            (Some(user), Some(membership), Some(sender)) => {
                triples.push((user, membership, sender))
            }
            (Some(user), Some(membership), None) => pairs.push((user, membership)),
            _ => {}
        }
    }
    Ok(if pairs.is_empty() {
        History::Triples(triples)
    } else {
        History::Pairs(pairs)
    })
}

/// What we can see of a room we just joined, from its membership history. Immutable.
///
/// `history` holds every membership event the homeserver has for the room, in the order it
/// received them, as `(user_id, membership, sender)` triples. `visible`, when given, is the
/// homeserver's own list of servers with a currently joined user and wins over the history;
/// otherwise a server is visible when one of its users' last entry is `join`. Entries with an
/// invalid user ID, sender or membership are skipped. (`(user_id, membership)` pairs, the older
/// form without senders, are still read as current memberships: `join` visible, `leave`/`ban`
/// explained; `visible` then adds to the joins.)
#[pyclass(frozen, module = "servership.discovery", name = "RoomView")]
#[derive(Clone)]
pub(crate) struct PyRoomView {
    view: RoomView,
}

#[pymethods]
impl PyRoomView {
    #[new]
    #[pyo3(signature = (room_id, own_server, history=None, *, visible=None))]
    fn new(
        room_id: Text,
        own_server: Text,
        history: Option<&Bound<'_, PyAny>>,
        visible: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let history = match history {
            Some(h) => read_history(h)?,
            None => History::Triples(Vec::new()),
        };
        let visible = visible.map(|v| strings(v, "visible")).transpose()?;
        let view = match history {
            History::Triples(triples) => {
                RoomView::from_history(&room_id, &own_server, &triples, visible.as_deref())
            }
            History::Pairs(pairs) => {
                let mut view = RoomView::from_memberships(&room_id, &own_server, &pairs);
                for server in visible.iter().flatten() {
                    view.add_visible(server);
                }
                view
            }
        };
        Ok(PyRoomView { view })
    }

    /// The room.
    #[getter]
    fn room_id(&self) -> &str {
        self.view.room_id()
    }

    /// The server doing the audit.
    #[getter]
    fn own_server(&self) -> &str {
        self.view.own_server()
    }

    /// The visible servers, sorted.
    #[getter]
    fn visible(&self) -> Vec<String> {
        self.view.visible_servers().map(str::to_owned).collect()
    }

    /// Whether `server` has a joined user in the room.
    fn is_visible(&self, server: Text) -> bool {
        self.view.is_visible(&server)
    }

    /// `"leave"` or `"ban"` if our view shows that `server` was in the room and its users' last
    /// membership is that, else `None`.
    fn departure(&self, server: Text) -> Option<&'static str> {
        self.view.departure(&server).map(Departure::as_str)
    }

    /// The membership of the latest entry of any of `server`'s users, or `None`.
    fn last_membership(&self, server: Text) -> Option<String> {
        self.view.last_membership(&server).map(str::to_owned)
    }

    /// How a recognition of the room by `server` would be classified: `"visible"`,
    /// `"explained"`, `"removed_by_other"` or `"unexplained"`.
    fn standing(&self, server: Text) -> &'static str {
        match self.view.standing(&server) {
            Standing::Visible => "visible",
            Standing::Explained(_) => "explained",
            Standing::RemovedByOther { .. } => "removed_by_other",
            Standing::Unexplained => "unexplained",
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<RoomView of {} by {}: {} visible server(s)>",
            self.view.room_id(),
            self.view.own_server(),
            self.view.visible_servers().count()
        )
    }
}

/// One peer's answer to an audit question: recognised, not recognised, or failed (with why).
#[pyclass(frozen, eq, module = "servership.discovery", name = "PeerAnswer")]
#[derive(Clone, PartialEq)]
pub(crate) struct PyPeerAnswer {
    answer: PeerAnswer,
}

#[pymethods]
impl PyPeerAnswer {
    /// The peer recognised the room's tag.
    #[staticmethod]
    fn recognised() -> Self {
        PyPeerAnswer {
            answer: PeerAnswer::Recognised,
        }
    }

    /// The peer answered without the room's tag.
    #[staticmethod]
    fn not_recognised() -> Self {
        PyPeerAnswer {
            answer: PeerAnswer::NotRecognised,
        }
    }

    /// No usable answer (timeout, HTTP error, malformed body), with the reason.
    #[staticmethod]
    fn failed(reason: Text) -> Self {
        PyPeerAnswer {
            answer: PeerAnswer::Failed(reason.to_owned()),
        }
    }

    /// `"recognised"`, `"not_recognised"` or `"failed"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.answer {
            PeerAnswer::Recognised => "recognised",
            PeerAnswer::NotRecognised => "not_recognised",
            PeerAnswer::Failed(_) => "failed",
        }
    }

    /// Why a failed answer failed; `None` otherwise.
    #[getter]
    fn reason(&self) -> Option<&str> {
        match &self.answer {
            PeerAnswer::Failed(why) => Some(why),
            _ => None,
        }
    }

    /// Whether the peer recognised the room.
    #[getter]
    fn is_recognised(&self) -> bool {
        self.answer == PeerAnswer::Recognised
    }

    fn __repr__(&self) -> String {
        match &self.answer {
            PeerAnswer::Failed(why) => format!("PeerAnswer.failed({why:?})"),
            _ => format!("PeerAnswer.{}()", self.kind()),
        }
    }
}

/// Reads `{server: score}` or `(server, score)` pairs, naming the bad element.
fn scored_candidates(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(String, u64)>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "candidates must be (server, score) pairs or a dict, not a single {}",
            obj.get_type().name()?
        )));
    }
    let items = match obj.cast::<PyDict>() {
        Ok(dict) => dict.items().into_any(),
        Err(_) => obj.clone(),
    };
    let mut out = Vec::new();
    for (i, item) in items.try_iter()?.enumerate() {
        let item = item?;
        let Some([server, score]) = sequence_items(&item).and_then(|p| <[_; 2]>::try_from(p).ok())
        else {
            return Err(PyTypeError::new_err(format!(
                "candidates[{i}] must be a (server, score) pair, not {}",
                item.get_type().name()?
            )));
        };
        let server: Text = server
            .extract()
            .map_err(|e| at(e, &format!("candidates[{i}][0]")))?;
        let score: u64 = args::int(&score).map_err(|e| at(e, &format!("candidates[{i}][1]")))?;
        out.push((server.to_string(), score));
    }
    Ok(out)
}

/// The `discover_common_rooms` request body asking `peer` about `room_id` alone (the tag keyed
/// by the peer's name): one call, no `Audit` or `Requester` needed.
#[pyfunction]
fn audit_request_body<'py>(py: Python<'py>, peer: Text, room_id: Text) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &discovery::request_body_for(&peer, &room_id))
}

/// Reads `peer`'s answer `body` to `audit_request_body(peer, room_id)`: `PeerAnswer.recognised()`,
/// `.not_recognised()`, or `.failed(reason)` for a malformed answer (never an exception: a hostile
/// peer cannot stop an audit).
#[pyfunction]
fn audit_read_response(
    py: Python<'_>,
    peer: Text,
    room_id: Text,
    body: &Bound<'_, PyAny>,
) -> PyResult<PyPeerAnswer> {
    let Some(input) = json_input(body)? else {
        return Err(PyTypeError::new_err(format!(
            "body must be bytes, not {}",
            body.get_type().name()?
        )));
    };
    let bytes = input.bytes();
    Ok(PyPeerAnswer {
        answer: py.detach(|| discovery::read_response_for(&peer, &room_id, bytes)),
    })
}

/// The budget key of an origin: the host lowercased, a trailing dot and the default port `:8448`
/// removed, IPv6 literals written canonically (`Asker.Example.:8448` -> `asker.example`).
#[pyfunction]
fn normalise_origin(origin: Text) -> String {
    discovery::normalise_origin(&origin)
}

/// An audit of one room (see `docs/discovery.md`): plan it, send `request_body(peer)` to each of
/// `peers`, read each answer with `read_response`, then `report(answers)`.
#[pyclass(frozen, module = "servership.discovery", name = "Audit")]
pub(crate) struct PyAudit {
    audit: Audit,
}

#[pymethods]
impl PyAudit {
    /// Plans the audit of `view`: up to `max_peers` of `known_peers` (in the order given, so rank
    /// them) that are neither us nor visible in the room, without duplicates.
    #[staticmethod]
    fn plan(
        view: &PyRoomView,
        known_peers: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = args::int)] max_peers: usize,
    ) -> PyResult<Self> {
        let peers = strings(known_peers, "known_peers")?;
        Ok(PyAudit {
            audit: Audit::plan(view.view.clone(), &peers, max_peers),
        })
    }

    /// Chooses up to `max_peers` of `candidates` at random, without replacement, each with a
    /// chance proportional to its score + 1 (a score such as the number of rooms shared with that
    /// server); us, visible servers, empty names and repeats are dropped first. `candidates` is a
    /// `{server: score}` mapping or an iterable of `(server, score)` pairs. The same `seed` gives
    /// the same peers in the same order: pass a fresh random one per audit (e.g.
    /// `secrets.randbits(64)`) so that no peer can predict whether it will be asked.
    #[staticmethod]
    fn choose(
        view: &PyRoomView,
        candidates: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = args::int)] max_peers: usize,
        #[pyo3(from_py_with = args::int)] seed: u64,
    ) -> PyResult<Self> {
        let scored = scored_candidates(candidates)?;
        Ok(PyAudit {
            audit: Audit::choose(view.view.clone(), &scored, max_peers, seed),
        })
    }

    /// The peers to ask, in order.
    #[getter]
    fn peers(&self) -> Vec<String> {
        self.audit.peers().to_vec()
    }

    /// The room view being audited.
    #[getter]
    fn view(&self) -> PyRoomView {
        PyRoomView {
            view: self.audit.view().clone(),
        }
    }

    /// The `discover_common_rooms` request body asking `peer` about this room.
    fn request_body<'py>(&self, py: Python<'py>, peer: Text) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.audit.request_body(&peer))
    }

    /// Reads `peer`'s response body; a malformed answer is `PeerAnswer.failed(reason)`, never an
    /// exception (a hostile peer cannot stop the audit).
    fn read_response(&self, peer: Text, body: &Bound<'_, PyAny>) -> PyResult<PyPeerAnswer> {
        let Some(input) = json_input(body)? else {
            return Err(PyTypeError::new_err(format!(
                "body must be bytes, not {}",
                body.get_type().name()?
            )));
        };
        Ok(PyPeerAnswer {
            answer: self.audit.read_response(&peer, input.bytes()),
        })
    }

    /// The report from `answers`: a `dict` `{peer: PeerAnswer}` or an iterable of
    /// `(peer, PeerAnswer)` pairs. Planned peers without an answer count as failed.
    fn report(&self, answers: &Bound<'_, PyAny>) -> PyResult<PyAuditReport> {
        let items = match answers.cast::<PyDict>() {
            Ok(dict) => dict.items().into_any(),
            Err(_) => answers.clone(),
        };
        let mut pairs = Vec::new();
        for (i, item) in items.try_iter()?.enumerate() {
            let item = item?;
            let (peer, answer): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                item.extract().map_err(|_| {
                    PyTypeError::new_err(format!("answers[{i}] must be a (peer, PeerAnswer) pair"))
                })?;
            let peer: Text = peer
                .extract()
                .map_err(|e| at(e, &format!("answers[{i}][0]")))?;
            let peer = peer.to_string();
            let answer = answer.cast::<PyPeerAnswer>().map_err(|_| {
                PyTypeError::new_err(format!("answers[{i}] must hold a PeerAnswer"))
            })?;
            pairs.push((peer, answer.get().answer.clone()));
        }
        Ok(PyAuditReport {
            report: self.audit.report(&pairs),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<Audit of {}: {} peer(s) to ask>",
            self.audit.view().room_id(),
            self.audit.peers().len()
        )
    }
}

/// What an audit found. `verdict` is the first that applies of `"hidden_branch_suspected"`
/// (some server recognises the room but never joined it in our view), `"removed_by_other_server"`
/// (some server recognising it was kicked or banned by another server's user), `"inconclusive"`
/// (nobody was asked, or nobody answered usably) and `"consistent"`.
#[pyclass(frozen, module = "servership.discovery", name = "AuditReport")]
pub(crate) struct PyAuditReport {
    report: AuditReport,
}

#[pymethods]
impl PyAuditReport {
    /// The audited room.
    #[getter]
    fn room_id(&self) -> &str {
        &self.report.room_id
    }

    /// The server that ran the audit.
    #[getter]
    fn server(&self) -> &str {
        &self.report.server
    }

    /// Every peer in the report, in order.
    #[getter]
    fn asked(&self) -> Vec<String> {
        self.report.asked.clone()
    }

    /// Peers visible in the room that recognise it.
    #[getter]
    fn visible(&self) -> Vec<String> {
        self.report.visible.clone()
    }

    /// Peers not visible that recognise the room and were in it, left on their own terms, each
    /// with the last membership of its users (`"leave"`, `"ban"`, `"invite"`...).
    #[getter]
    fn explained(&self) -> Vec<(String, String)> {
        self.report.explained.clone()
    }

    /// Peers not visible that recognise the room and were removed by another server's user:
    /// `(server, "leave" | "ban", removed_by)`, `removed_by` the senders of the kicks or bans.
    #[getter]
    fn removed(&self) -> Vec<(String, &'static str, Vec<String>)> {
        self.report
            .removed
            .iter()
            .map(|r| {
                (
                    r.server.clone(),
                    r.membership.as_str(),
                    r.removed_by.clone(),
                )
            })
            .collect()
    }

    /// Peers that recognise the room but never joined it in our view.
    #[getter]
    fn unexplained(&self) -> Vec<String> {
        self.report.unexplained.clone()
    }

    /// Peers that answered without recognising the room.
    #[getter]
    fn not_recognising(&self) -> Vec<String> {
        self.report.not_recognising.clone()
    }

    /// Peers without a usable answer, each with the reason.
    #[getter]
    fn failed(&self) -> Vec<(String, String)> {
        self.report.failed.clone()
    }

    /// `"hidden_branch_suspected"`, `"removed_by_other_server"`, `"inconclusive"` or
    /// `"consistent"`.
    #[getter]
    fn verdict(&self) -> &'static str {
        self.report.verdict()
    }

    /// True when some server recognises the room but never joined it in our view.
    #[getter]
    fn hidden_branch_suspected(&self) -> bool {
        self.report.hidden_branch_suspected()
    }

    /// The report as canonical JSON (shape in `docs/discovery.md`).
    fn to_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.report.to_json())
    }

    /// A few lines for people (no trailing newline).
    fn to_text(&self) -> String {
        self.report.to_text()
    }

    fn __repr__(&self) -> String {
        format!(
            "<AuditReport of {} by {}: {}, {} asked, {} unexplained, {} removed>",
            self.report.room_id,
            self.report.server,
            self.report.verdict(),
            self.report.asked.len(),
            self.report.unexplained.len(),
            self.report.removed.len()
        )
    }
}

/// The queue of post-join audits in servership's SQLite file (the tag store's): one audit per
/// room, for ever. Durable like the tag store; a file busy for more than about a second raises
/// `StorageError` instead of blocking the thread. Every call runs without holding the
/// interpreter. Safe to share between threads; several processes may share the file.
#[pyclass(frozen, module = "servership", name = "AuditQueue")]
pub(crate) struct PyAuditQueue {
    queue: AuditQueue,
    path: String,
}

#[pymethods]
impl PyAuditQueue {
    /// Opens (creating if needed) the queue in the store at `path`: an SQLite file path, or a
    /// PostgreSQL connection string (as for `TagStore`).
    #[new]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = args::location)] path: Location,
    ) -> PyResult<Self> {
        let shown = path.to_string();
        let queue = py.detach(|| AuditQueue::open(path))?;
        Ok(PyAuditQueue { queue, path: shown })
    }

    /// Queues the audit of `room_id`, due at `due_ms`; `False` if the room is already pending or
    /// was audited (one audit per room).
    #[pyo3(signature = (room_id, due_ms, now_ms=None))]
    fn enqueue(
        &self,
        py: Python<'_>,
        room_id: Text,
        #[pyo3(from_py_with = args::int)] due_ms: i64,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
    ) -> PyResult<bool> {
        let now = time_or_now(now_ms);
        Ok(py.detach(|| self.queue.enqueue(&room_id, due_ms, now))?)
    }

    /// Up to `limit` pending rooms due at `now_ms` (default: now), earliest first.
    #[pyo3(signature = (now_ms=None, limit=100))]
    fn due(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
        #[pyo3(from_py_with = args::int)] limit: usize,
    ) -> PyResult<Vec<String>> {
        let now = time_or_now(now_ms);
        Ok(py.detach(|| self.queue.due(now, limit))?)
    }

    /// Marks the audit of `room_id` done with `verdict` (e.g. the report's verdict) at `now_ms`
    /// (default: now), keeping `report_json` if given; `False` if it was not pending.
    #[pyo3(signature = (room_id, verdict, now_ms=None, *, report_json=None))]
    fn finish(
        &self,
        py: Python<'_>,
        room_id: Text,
        verdict: Text,
        #[pyo3(from_py_with = args::opt_int)] now_ms: Option<i64>,
        report_json: Option<Text>,
    ) -> PyResult<bool> {
        let now = time_or_now(now_ms);
        let report = report_json.as_deref().map(str::to_owned);
        Ok(py.detach(|| {
            self.queue
                .finish_with_report(&room_id, now, &verdict, report.as_deref())
        })?)
    }

    /// The report (JSON text) kept with the done audit of `room_id`, else `None`.
    fn report(&self, py: Python<'_>, room_id: Text) -> PyResult<Option<String>> {
        Ok(py.detach(|| self.queue.report(&room_id))?)
    }

    /// How many times the audit of `room_id` was postponed (0 if never queued).
    fn attempts(&self, py: Python<'_>, room_id: Text) -> PyResult<u32> {
        Ok(py.detach(|| self.queue.attempts(&room_id))?)
    }

    /// Moves the pending audit of `room_id` to `due_ms`, counting one more attempt; `False` if it
    /// is not pending.
    fn postpone(
        &self,
        py: Python<'_>,
        room_id: Text,
        #[pyo3(from_py_with = args::int)] due_ms: i64,
    ) -> PyResult<bool> {
        Ok(py.detach(|| self.queue.postpone(&room_id, due_ms))?)
    }

    /// Every pending room with its due time (ms), earliest first.
    fn pending(&self, py: Python<'_>) -> PyResult<Vec<(String, i64)>> {
        Ok(py.detach(|| self.queue.pending())?)
    }

    /// How many audits finished at `since_ms` or later (for a per-hour bound).
    fn finished_since(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::int)] since_ms: i64,
    ) -> PyResult<u64> {
        Ok(py.detach(|| self.queue.finished_since(since_ms))?)
    }

    /// `"pending"`, `"done"`, or `None` if the room was never queued.
    fn state(&self, py: Python<'_>, room_id: Text) -> PyResult<Option<&'static str>> {
        Ok(py.detach(|| self.queue.state(&room_id))?)
    }

    /// `(verdict, finished_ms)` of a done audit, else `None`.
    fn outcome(&self, py: Python<'_>, room_id: Text) -> PyResult<Option<(String, i64)>> {
        Ok(py.detach(|| self.queue.outcome(&room_id))?)
    }

    /// Where the queue lives: the file as given, or the PostgreSQL database (never the password).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// `"sqlite"` or `"postgres"`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.queue.location().backend()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let pending = match py.detach(|| self.queue.pending()) {
            Ok(p) => p.len().to_string(),
            Err(_) => "?".to_owned(),
        };
        format!("<AuditQueue {pending} pending at {}>", self.path)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(participation_tag, m)?)?;
    m.add_function(wrap_pyfunction!(participation_tags, m)?)?;
    m.add_class::<PyTagStore>()?;
    m.add_class::<PyResponder>()?;
    m.add_class::<PyRequester>()?;
    m.add_class::<PyRoomView>()?;
    m.add_class::<PyPeerAnswer>()?;
    m.add_class::<PyAudit>()?;
    m.add_class::<PyAuditReport>()?;
    m.add_class::<PyAuditQueue>()?;
    m.add_function(wrap_pyfunction!(audit_request_body, m)?)?;
    m.add_function(wrap_pyfunction!(audit_read_response, m)?)?;
    m.add_function(wrap_pyfunction!(normalise_origin, m)?)?;
    m.add("DISCOVER_COMMON_ROOMS_PATH", discovery::UNSTABLE_PATH)?;
    m.add("DISCOVER_COMMON_ROOMS_STABLE_PATH", discovery::STABLE_PATH)?;
    Ok(())
}
