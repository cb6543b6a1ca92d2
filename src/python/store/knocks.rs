//! The knock store from Python: `servership.KnockStore` (MSC4099 knocks in servership's SQLite
//! file).

use pyo3::prelude::*;

use crate::json::Value;
use crate::python::args;
use crate::python::args::Text;
use crate::python::convert::to_python;
use crate::store::KnockStore;

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
        #[pyo3(from_py_with = args::location)] path: crate::store::Location,
        #[pyo3(from_py_with = args::int)] expire_after_ms: u64,
        #[pyo3(from_py_with = args::int)] max_per_origin: u32,
        #[pyo3(from_py_with = args::int)] origin_window_ms: u64,
    ) -> PyResult<Self> {
        let expire = std::time::Duration::from_millis(expire_after_ms);
        let limits = crate::store::KnockLimits {
            max_per_origin,
            window: std::time::Duration::from_millis(origin_window_ms),
        };
        let shown = path.to_string();
        let inner = py.detach(|| KnockStore::open_with_limits(path, expire, limits))?;
        Ok(PyKnockStore { inner, path: shown })
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

    /// `"sqlite"` or `"postgres"`.
    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.location().backend()
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
    m.add_class::<PyKnockStore>()?;
    Ok(())
}
