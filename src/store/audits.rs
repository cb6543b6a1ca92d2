//! The queue of post-join audits (MSC4358), in the same SQLite file as the tags (component
//! `audits`, table `pending_audits`).
//!
//! One row per room, for ever: a room is audited once, after this server first joins it. A row is
//! `pending` until [`AuditQueue::finish`] marks it `done` with the verdict; it is never deleted, so
//! a room that was audited is not queued again (not after a restart, not by another worker).
//! [`TagStore::record_join_and_queue_audit`](crate::store::TagStore::record_join_and_queue_audit)
//! records a new tag and queues its audit in one transaction, so a crash can never leave a new
//! tag without its audit.
//!
//! Decisions:
//! - Durable like the tag store: every write is committed with `synchronous = FULL` before the
//!   call returns.
//! - Busy waiting is bounded to about a second per call (the caller may be a homeserver's thread
//!   pool); a file busy for longer is `M_UNKNOWN` (500) and the caller tries again later.
//! - [`AuditQueue::due`] returns pending rooms whose time has come, earliest first (ties by room
//!   ID, so the order is stable). Taking a room from the queue does not lock it: workers sharing
//!   the file should let one of them run audits, or accept that two may audit the same room.
//! - [`AuditQueue::finished_since`] counts finished audits from a time on, for a per-hour bound.
//! - Times are milliseconds since the Unix epoch, given by the caller.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

use super::sqlite::{SHORT_BUSY_TIMEOUT, SHORT_RETRY_FOR, open_connection_with, with_retry_for};
use super::tags::check_room_id;
use super::{ensure_schema, storage_error};

/// The component name in `servership_schema`.
pub(crate) const COMPONENT: &str = "audits";

/// Migrations of the queue's table (see [`ensure_schema`]); the tag store runs them too, since it
/// writes the queue in its own transactions.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE pending_audits (
         room_id TEXT PRIMARY KEY NOT NULL,
         enqueued_ms INTEGER NOT NULL,
         due_ms INTEGER NOT NULL,
         attempts INTEGER NOT NULL DEFAULT 0,
         state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
         finished_ms INTEGER,
         verdict TEXT
     );
     CREATE INDEX pending_audits_due ON pending_audits (state, due_ms);
     CREATE INDEX pending_audits_finished ON pending_audits (state, finished_ms);",
    // 2: the report of a done audit, so any process can show it (an admin API, say).
    "ALTER TABLE pending_audits ADD COLUMN report TEXT;",
];

/// The statement that queues one room (nothing if it is already queued or done).
pub(crate) const ENQUEUE: &str = "INSERT INTO pending_audits
         (room_id, enqueued_ms, due_ms, attempts, state) VALUES (?1, ?2, ?3, 0, 'pending')
     ON CONFLICT(room_id) DO NOTHING";

/// Longest verdict text kept, in bytes.
const MAX_VERDICT_BYTES: usize = 255;

/// Longest report kept, in bytes (a report of 1,000 peers is about 100 KiB).
const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;

/// Most rooms one [`AuditQueue::due`] call returns.
const MAX_DUE: usize = 10_000;

/// The audits waiting to run, and those that ran, in servership's SQLite file.
/// `Send + Sync`: one connection behind a lock; several handles or processes may share the file.
#[derive(Debug)]
pub struct AuditQueue {
    conn: Mutex<Connection>,
}

impl AuditQueue {
    /// Opens (creating if needed) the queue in the SQLite file at `path` (the tag store's file).
    pub fn open(path: impl AsRef<Path>) -> Result<AuditQueue> {
        let mut conn = open_connection_with(path.as_ref(), SHORT_BUSY_TIMEOUT)?;
        ensure_schema(&mut conn, COMPONENT, MIGRATIONS)?;
        Ok(AuditQueue {
            conn: Mutex::new(conn),
        })
    }

    /// Queues the audit of `room_id`, due at `due_ms`. `false` if the room is already pending or
    /// was audited: one audit per room.
    pub fn enqueue(&self, room_id: &str, due_ms: i64, now_ms: i64) -> Result<bool> {
        check_room_id(room_id).map_err(|e| e.at("room_id"))?;
        let conn = self.lock();
        let added = with_retry_for(SHORT_RETRY_FOR, || {
            conn.execute(ENQUEUE, params![room_id, now_ms, due_ms])
        })
        .map_err(|e| storage_error("queueing an audit", &e))?;
        Ok(added == 1)
    }

    /// Up to `limit` pending rooms due at `now_ms` (due time not after it), earliest first.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit.min(MAX_DUE)).unwrap_or(0);
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            let mut stmt = conn.prepare_cached(
                "SELECT room_id FROM pending_audits WHERE state = 'pending' AND due_ms <= ?1
                 ORDER BY due_ms, room_id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit], |row| row.get(0))?;
            rows.collect()
        })
        .map_err(|e| storage_error("listing due audits", &e))
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
        let conn = self.lock();
        let changed = with_retry_for(SHORT_RETRY_FOR, || {
            conn.execute(
                "UPDATE pending_audits SET state = 'done', finished_ms = ?2, verdict = ?3,
                     report = ?4
                 WHERE room_id = ?1 AND state = 'pending'",
                params![room_id, now_ms, verdict, report],
            )
        })
        .map_err(|e| storage_error("finishing an audit", &e))?;
        Ok(changed == 1)
    }

    /// The report kept with a done audit, if any.
    pub fn report(&self, room_id: &str) -> Result<Option<String>> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT report FROM pending_audits WHERE room_id = ?1 AND state = 'done'",
                [room_id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
        })
        .map(Option::flatten)
        .map_err(|e| storage_error("reading an audit report", &e))
    }

    /// How many times the audit of `room_id` was postponed (0 if never queued).
    pub fn attempts(&self, room_id: &str) -> Result<u32> {
        let conn = self.lock();
        let n: Option<i64> = with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT attempts FROM pending_audits WHERE room_id = ?1",
                [room_id],
                |row| row.get(0),
            )
            .optional()
        })
        .map_err(|e| storage_error("reading an audit", &e))?;
        Ok(n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
    }

    /// Moves the pending audit of `room_id` to `due_ms` and counts one more attempt (after a
    /// failed or skipped run). `false` if the room is not pending.
    pub fn postpone(&self, room_id: &str, due_ms: i64) -> Result<bool> {
        check_room_id(room_id).map_err(|e| e.at("room_id"))?;
        let conn = self.lock();
        let changed = with_retry_for(SHORT_RETRY_FOR, || {
            conn.execute(
                "UPDATE pending_audits SET due_ms = ?2, attempts = attempts + 1
                 WHERE room_id = ?1 AND state = 'pending'",
                params![room_id, due_ms],
            )
        })
        .map_err(|e| storage_error("postponing an audit", &e))?;
        Ok(changed == 1)
    }

    /// Every pending room with its due time, earliest first.
    pub fn pending(&self) -> Result<Vec<(String, i64)>> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            let mut stmt = conn.prepare_cached(
                "SELECT room_id, due_ms FROM pending_audits WHERE state = 'pending'
                 ORDER BY due_ms, room_id",
            )?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .map_err(|e| storage_error("listing pending audits", &e))
    }

    /// How many audits finished at `since_ms` or later.
    pub fn finished_since(&self, since_ms: i64) -> Result<u64> {
        let conn = self.lock();
        let n: i64 = with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT count(*) FROM pending_audits WHERE state = 'done' AND finished_ms >= ?1",
                [since_ms],
                |row| row.get(0),
            )
        })
        .map_err(|e| storage_error("counting finished audits", &e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// `"pending"`, `"done"`, or `None` if the room was never queued.
    pub fn state(&self, room_id: &str) -> Result<Option<&'static str>> {
        let conn = self.lock();
        let state: Option<String> = with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT state FROM pending_audits WHERE room_id = ?1",
                [room_id],
                |row| row.get(0),
            )
            .optional()
        })
        .map_err(|e| storage_error("reading an audit", &e))?;
        Ok(match state.as_deref() {
            Some("pending") => Some("pending"),
            Some("done") => Some("done"),
            // The CHECK constraint allows nothing else.
            _ => None,
        })
    }

    /// The verdict and finishing time of a done audit.
    pub fn outcome(&self, room_id: &str) -> Result<Option<(String, i64)>> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT verdict, finished_ms FROM pending_audits
                 WHERE room_id = ?1 AND state = 'done'",
                [room_id],
                |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                    ))
                },
            )
            .optional()
        })
        .map(|row| match row {
            Some((Some(verdict), Some(at))) => Some((verdict, at)),
            _ => None,
        })
        .map_err(|e| storage_error("reading an audit", &e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // The connection holds no state of ours between calls; a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
