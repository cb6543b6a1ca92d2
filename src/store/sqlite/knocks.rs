//! The knock store's rows in the SQLite file (component `knocks`, table `server_knocks`), written
//! with `synchronous = NORMAL` and bounded busy waits (see [`KnockStore`](crate::store::KnockStore)).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::error::Result;
use crate::store::knocks::{
    BUSY_RETRIES, BUSY_WAIT, KnockBackend, KnockRecord, KnockWrite, Recorded,
};

use super::{ensure_schema, open_connection, storage_error};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE server_knocks (
         room_id TEXT NOT NULL,
         server TEXT NOT NULL,
         first_seen_ms INTEGER NOT NULL,
         last_seen_ms INTEGER NOT NULL,
         times INTEGER NOT NULL,
         PRIMARY KEY (room_id, server)
     );
     CREATE INDEX server_knocks_last_seen ON server_knocks (last_seen_ms);",
    // The per-origin cap counts an origin's knocks first seen in a window.
    "CREATE INDEX server_knocks_server_first_seen ON server_knocks (server, first_seen_ms);",
];

/// Runs `f`, trying again at most [`BUSY_RETRIES`] times while SQLite reports the file busy or
/// locked, with short pauses: with [`BUSY_WAIT`] per attempt, under 0.9 s in all.
fn bounded_retry<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let pauses = [Duration::from_millis(20), Duration::from_millis(80)];
    let mut attempt = 0;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && attempt < BUSY_RETRIES =>
            {
                std::thread::sleep(pauses.get(attempt).copied().unwrap_or(Duration::ZERO));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<KnockRecord> {
    Ok(KnockRecord {
        room_id: row.get(0)?,
        server: row.get(1)?,
        first_seen_ms: row.get(2)?,
        last_seen_ms: row.get(3)?,
        times: row.get(4)?,
    })
}

/// One connection behind a mutex.
pub(crate) struct SqliteKnocks {
    conn: Mutex<Connection>,
}

impl SqliteKnocks {
    pub(crate) fn open(path: &Path) -> Result<SqliteKnocks> {
        let mut conn = open_connection(path)?;
        ensure_schema(&mut conn, "knocks", MIGRATIONS)?;
        conn.busy_timeout(BUSY_WAIT)
            .map_err(|e| storage_error("setting the knock store's busy timeout", &e))?;
        bounded_retry(|| conn.execute_batch("PRAGMA synchronous = NORMAL;"))
            .map_err(|e| storage_error("setting the knock store's synchronous mode", &e))?;
        Ok(SqliteKnocks {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // The connection holds no state of ours between calls; a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl KnockBackend for SqliteKnocks {
    fn record(&self, k: &KnockWrite<'_>) -> Result<Recorded> {
        let mut conn = self.conn();
        bounded_retry(|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let live: bool = tx
                .query_row(
                    "SELECT 1 FROM server_knocks
                     WHERE room_id = ?1 AND server = ?2 AND last_seen_ms >= ?3",
                    params![k.room_id, k.server, k.cutoff],
                    |_| Ok(true),
                )
                .optional()?
                .unwrap_or(false);
            if !live {
                let (count, oldest): (i64, Option<i64>) = tx.query_row(
                    "SELECT COUNT(*), MIN(first_seen_ms) FROM server_knocks
                     WHERE server = ?1 AND first_seen_ms > ?2",
                    params![k.server, k.window_start],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if count >= k.cap {
                    return Ok(Recorded::over_cap(oldest, k));
                }
            }
            let record = tx.query_row(
                "INSERT INTO server_knocks (room_id, server, first_seen_ms, last_seen_ms, times)
                 VALUES (?1, ?2, ?3, ?3, 1)
                 ON CONFLICT (room_id, server) DO UPDATE SET
                     first_seen_ms = CASE WHEN last_seen_ms < ?4 THEN ?3 ELSE first_seen_ms END,
                     times = CASE WHEN last_seen_ms < ?4 THEN 1 ELSE times + 1 END,
                     last_seen_ms = MAX(last_seen_ms, ?3)
                 RETURNING room_id, server, first_seen_ms, last_seen_ms, times",
                params![k.room_id, k.server, k.now_ms, k.cutoff],
                row_to_record,
            )?;
            tx.commit()?;
            Ok(Recorded::Row(record))
        })
        .map_err(|e| storage_error("recording a knock", &e))
    }

    fn get(&self, room_id: &str, server: &str, cutoff: i64) -> Result<Option<KnockRecord>> {
        let conn = self.conn();
        bounded_retry(|| {
            conn.query_row(
                "SELECT room_id, server, first_seen_ms, last_seen_ms, times FROM server_knocks
                 WHERE room_id = ?1 AND server = ?2 AND last_seen_ms >= ?3",
                params![room_id, server, cutoff],
                row_to_record,
            )
            .optional()
        })
        .map_err(|e| storage_error("reading a knock", &e))
    }

    fn for_room(&self, room_id: &str, cutoff: i64) -> Result<Vec<KnockRecord>> {
        let conn = self.conn();
        bounded_retry(|| {
            let mut stmt = conn.prepare(
                "SELECT room_id, server, first_seen_ms, last_seen_ms, times FROM server_knocks
                 WHERE room_id = ?1 AND last_seen_ms >= ?2 ORDER BY first_seen_ms, server",
            )?;
            let rows = stmt.query_map(params![room_id, cutoff], row_to_record)?;
            rows.collect()
        })
        .map_err(|e| storage_error("listing knocks", &e))
    }

    fn remove(&self, room_id: &str, server: &str) -> Result<bool> {
        let conn = self.conn();
        bounded_retry(|| {
            conn.execute(
                "DELETE FROM server_knocks WHERE room_id = ?1 AND server = ?2",
                params![room_id, server],
            )
        })
        .map(|n| n > 0)
        .map_err(|e| storage_error("removing a knock", &e))
    }

    fn purge_batch(&self, cutoff: i64, max_rows: i64) -> Result<usize> {
        let conn = self.conn();
        bounded_retry(|| {
            conn.execute(
                "DELETE FROM server_knocks WHERE rowid IN (
                     SELECT rowid FROM server_knocks WHERE last_seen_ms < ?1 LIMIT ?2)",
                params![cutoff, max_rows],
            )
        })
        .map_err(|e| storage_error("purging expired knocks", &e))
    }

    fn row_count(&self) -> Result<i64> {
        let conn = self.conn();
        bounded_retry(|| conn.query_row("SELECT COUNT(*) FROM server_knocks", [], |r| r.get(0)))
            .map_err(|e| storage_error("counting knocks", &e))
    }
}
