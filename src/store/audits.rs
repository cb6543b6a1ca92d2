//! The queue of post-join audits (MSC4358), in the same store as the tags (component `audits`;
//! table `pending_audits` in SQLite, `servership_pending_audits` in PostgreSQL).
//!
//! One row per room, for ever: a room is audited once, after this server first joins it. A row is
//! `pending` until [`AuditQueue::finish`] marks it `done` with the verdict; it is never deleted, so
//! a room that was audited is not queued again (not after a restart, not by another worker).
//! [`TagStore::record_join_and_queue_audit`](crate::store::TagStore::record_join_and_queue_audit)
//! records a new tag and queues its audit in one transaction, so a crash can never leave a new
//! tag without its audit.
//!
//! Decisions:
//! - Durable like the tag store: every write is committed (SQLite `synchronous = FULL`,
//!   PostgreSQL's default commit) before the call returns.
//! - Waiting is bounded to about a second per call on SQLite, a few seconds on PostgreSQL (pool
//!   wait, statement and lock timeouts; the caller may be a homeserver's thread pool); a store
//!   busy or unreachable for longer is `M_UNKNOWN` (500) and the caller tries again later.
//! - [`AuditQueue::due`] returns pending rooms whose time has come, earliest first (ties by room
//!   ID, so the order is stable). Taking a room from the queue does not lock it: workers sharing
//!   the file should let one of them run audits, or accept that two may audit the same room.
//! - [`AuditQueue::finished_since`] counts finished audits from a time on, for a per-hour bound.
//! - Times are milliseconds since the Unix epoch, given by the caller.

use crate::error::{Error, Result};
use crate::store::tags::check_room_id;
use crate::store::{Location, postgres, sqlite};

/// Longest verdict text kept, in bytes.
const MAX_VERDICT_BYTES: usize = 255;

/// Longest report kept, in bytes (a report of 1,000 peers is about 100 KiB).
const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;

/// Most rooms one [`AuditQueue::due`] call returns.
pub(crate) const MAX_DUE: usize = 10_000;

/// What a backend does for the queue; [`AuditQueue`] validates the arguments first.
pub(crate) trait AuditBackend: Send + Sync {
    fn enqueue(&self, room_id: &str, due_ms: i64, now_ms: i64) -> Result<bool>;
    fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<String>>;
    fn finish(
        &self,
        room_id: &str,
        now_ms: i64,
        verdict: &str,
        report: Option<&str>,
    ) -> Result<bool>;
    fn report(&self, room_id: &str) -> Result<Option<String>>;
    fn attempts(&self, room_id: &str) -> Result<Option<i64>>;
    fn postpone(&self, room_id: &str, due_ms: i64) -> Result<bool>;
    fn pending(&self) -> Result<Vec<(String, i64)>>;
    fn finished_since(&self, since_ms: i64) -> Result<i64>;
    fn state(&self, room_id: &str) -> Result<Option<String>>;
    fn outcome(&self, room_id: &str) -> Result<Option<(Option<String>, Option<i64>)>>;
}

/// The audits waiting to run, and those that ran, in servership's store (SQLite or PostgreSQL).
/// `Send + Sync`; several handles or processes may share the store.
pub struct AuditQueue {
    backend: Box<dyn AuditBackend>,
    location: Location,
}

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditQueue")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// Lookups by a room ID that cannot have been stored answer "absent" without a query.
fn storable(room_id: &str) -> bool {
    !room_id.contains('\0')
}

impl AuditQueue {
    /// Opens (creating if needed) the queue at `location` (the tag store's file or database).
    pub fn open(location: impl Into<Location>) -> Result<AuditQueue> {
        let location = location.into();
        let backend: Box<dyn AuditBackend> = match &location {
            Location::Sqlite(path) => Box::new(sqlite::audits::SqliteAudits::open(path)?),
            Location::Postgres(url) => Box::new(postgres::audits::PgAudits::open(url)?),
        };
        Ok(AuditQueue { backend, location })
    }

    /// Where the queue lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Queues the audit of `room_id`, due at `due_ms`. `false` if the room is already pending or
    /// was audited: one audit per room.
    pub fn enqueue(&self, room_id: &str, due_ms: i64, now_ms: i64) -> Result<bool> {
        check_room_id(room_id).map_err(|e| e.at("room_id"))?;
        self.backend.enqueue(room_id, due_ms, now_ms)
    }

    /// Up to `limit` pending rooms due at `now_ms` (due time not after it), earliest first.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit.min(MAX_DUE)).unwrap_or(0);
        self.backend.due(now_ms, limit)
    }

    /// Marks the audit of `room_id` done at `now_ms` with `verdict` (e.g. the report's verdict,
    /// or `failed`). `false` if the room was not pending (never queued, or already done).
    pub fn finish(&self, room_id: &str, now_ms: i64, verdict: &str) -> Result<bool> {
        self.finish_with_report(room_id, now_ms, verdict, None)
    }

    /// [`AuditQueue::finish`], keeping the report (JSON text, at most 4 MiB) for
    /// [`AuditQueue::report`].
    pub fn finish_with_report(
        &self,
        room_id: &str,
        now_ms: i64,
        verdict: &str,
        report: Option<&str>,
    ) -> Result<bool> {
        check_room_id(room_id).map_err(|e| e.at("room_id"))?;
        check_verdict(verdict)?;
        if report.is_some_and(|r| r.len() > MAX_REPORT_BYTES) {
            return Err(Error::too_large(format!(
                "an audit report is at most {MAX_REPORT_BYTES} bytes"
            )));
        }
        if report.is_some_and(|r| r.contains('\0')) {
            return Err(Error::invalid_param(
                "an audit report must not contain a NUL byte",
            ));
        }
        self.backend.finish(room_id, now_ms, verdict, report)
    }

    /// The report kept with a done audit, if any.
    pub fn report(&self, room_id: &str) -> Result<Option<String>> {
        if !storable(room_id) {
            return Ok(None);
        }
        self.backend.report(room_id)
    }

    /// How many times the audit of `room_id` was postponed (0 if never queued).
    pub fn attempts(&self, room_id: &str) -> Result<u32> {
        if !storable(room_id) {
            return Ok(0);
        }
        let n = self.backend.attempts(room_id)?;
        Ok(n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
    }

    /// Moves the pending audit of `room_id` to `due_ms` and counts one more attempt (after a
    /// failed or skipped run). `false` if the room is not pending.
    pub fn postpone(&self, room_id: &str, due_ms: i64) -> Result<bool> {
        check_room_id(room_id).map_err(|e| e.at("room_id"))?;
        self.backend.postpone(room_id, due_ms)
    }

    /// Every pending room with its due time, earliest first.
    pub fn pending(&self) -> Result<Vec<(String, i64)>> {
        self.backend.pending()
    }

    /// How many audits finished at `since_ms` or later.
    pub fn finished_since(&self, since_ms: i64) -> Result<u64> {
        Ok(u64::try_from(self.backend.finished_since(since_ms)?).unwrap_or(0))
    }

    /// `"pending"`, `"done"`, or `None` if the room was never queued.
    pub fn state(&self, room_id: &str) -> Result<Option<&'static str>> {
        if !storable(room_id) {
            return Ok(None);
        }
        Ok(match self.backend.state(room_id)?.as_deref() {
            Some("pending") => Some("pending"),
            Some("done") => Some("done"),
            // The CHECK constraint allows nothing else.
            _ => None,
        })
    }

    /// The verdict and finishing time of a done audit.
    pub fn outcome(&self, room_id: &str) -> Result<Option<(String, i64)>> {
        if !storable(room_id) {
            return Ok(None);
        }
        Ok(match self.backend.outcome(room_id)? {
            Some((Some(verdict), Some(at))) => Some((verdict, at)),
            _ => None,
        })
    }
}

fn check_verdict(verdict: &str) -> Result<()> {
    if verdict.is_empty() || verdict.len() > MAX_VERDICT_BYTES {
        return Err(Error::invalid_param(format!(
            "verdict must be between 1 and {MAX_VERDICT_BYTES} bytes"
        )));
    }
    if verdict.chars().any(char::is_control) {
        return Err(Error::invalid_param(
            "verdict must not contain control characters",
        ));
    }
    Ok(())
}
