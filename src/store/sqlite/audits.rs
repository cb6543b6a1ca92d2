//! The audit queue's rows in the SQLite file (component `audits`, table `pending_audits`).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::store::audits::AuditBackend;

use super::{
    SHORT_BUSY_TIMEOUT, SHORT_RETRY_FOR, ensure_schema, open_connection_with, storage_error,
    with_retry_for,
};

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

/// One connection behind a lock, with busy waits of about a second at most.
pub(crate) struct SqliteAudits {
    conn: Mutex<Connection>,
}

impl SqliteAudits {
    pub(crate) fn open(path: &Path) -> Result<SqliteAudits> {
        let mut conn = open_connection_with(path, SHORT_BUSY_TIMEOUT)?;
        ensure_schema(&mut conn, COMPONENT, MIGRATIONS)?;
        Ok(SqliteAudits {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // The connection holds no state of ours between calls; a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn one<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        room_id: &str,
        doing: &str,
    ) -> Result<Option<T>> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(sql, [room_id], |row| row.get::<_, T>(0))
                .optional()
        })
        .map_err(|e| storage_error(doing, &e))
    }
}

impl AuditBackend for SqliteAudits {
    fn enqueue(&self, room_id: &str, due_ms: i64, now_ms: i64) -> Result<bool> {
        let conn = self.lock();
        let added = with_retry_for(SHORT_RETRY_FOR, || {
            conn.execute(ENQUEUE, params![room_id, now_ms, due_ms])
        })
        .map_err(|e| storage_error("queueing an audit", &e))?;
        Ok(added == 1)
    }

    fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
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

    fn finish(
        &self,
        room_id: &str,
        now_ms: i64,
        verdict: &str,
        report: Option<&str>,
    ) -> Result<bool> {
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

    fn report(&self, room_id: &str) -> Result<Option<String>> {
        self.one::<Option<String>>(
            "SELECT report FROM pending_audits WHERE room_id = ?1 AND state = 'done'",
            room_id,
            "reading an audit report",
        )
        .map(Option::flatten)
    }

    fn attempts(&self, room_id: &str) -> Result<Option<i64>> {
        self.one(
            "SELECT attempts FROM pending_audits WHERE room_id = ?1",
            room_id,
            "reading an audit",
        )
    }

    fn postpone(&self, room_id: &str, due_ms: i64) -> Result<bool> {
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

    fn pending(&self) -> Result<Vec<(String, i64)>> {
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

    fn finished_since(&self, since_ms: i64) -> Result<i64> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT count(*) FROM pending_audits WHERE state = 'done' AND finished_ms >= ?1",
                [since_ms],
                |row| row.get(0),
            )
        })
        .map_err(|e| storage_error("counting finished audits", &e))
    }

    fn state(&self, room_id: &str) -> Result<Option<String>> {
        self.one(
            "SELECT state FROM pending_audits WHERE room_id = ?1",
            room_id,
            "reading an audit",
        )
    }

    fn outcome(&self, room_id: &str) -> Result<Option<(Option<String>, Option<i64>)>> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT verdict, finished_ms FROM pending_audits
                 WHERE room_id = ?1 AND state = 'done'",
                [room_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })
        .map_err(|e| storage_error("reading an audit", &e))
    }
}
