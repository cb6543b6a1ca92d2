//! The knock store: `m.server.knock` EDUs recorded idempotently per (room, server), with first and
//! last seen times, expiring after a receiver-chosen duration (MSC4099 seed: "the knock edu can be
//! treated as idempotent by the receiver, although the effect should probably expire").
//!
//! Lives in the shared servership SQLite file (component `knocks`, table `server_knocks`), next to
//! the other components' tables. A knock whose last sighting is older than the expiry is treated
//! as absent (never returned) and a new knock after that starts afresh; [`KnockStore::purge_expired`]
//! deletes such rows. Times are milliseconds since the Unix epoch, passed in so tests and
//! homeservers control the clock; the `*_now` helpers read the system clock.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::json::{Object, Value};

use super::{ensure_schema, open_connection, storage_error, with_retry};

const MIGRATIONS: &[&str] = &["CREATE TABLE server_knocks (
         room_id TEXT NOT NULL,
         server TEXT NOT NULL,
         first_seen_ms INTEGER NOT NULL,
         last_seen_ms INTEGER NOT NULL,
         times INTEGER NOT NULL,
         PRIMARY KEY (room_id, server)
     );
     CREATE INDEX server_knocks_last_seen ON server_knocks (last_seen_ms);"];

/// One recorded knock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockRecord {
    /// The room knocked on.
    pub room_id: String,
    /// The knocking server (the transaction origin).
    pub server: String,
    /// When the knock was first seen (since the last expiry).
    pub first_seen_ms: i64,
    /// When it was last seen.
    pub last_seen_ms: i64,
    /// How many times it was seen (since the last expiry).
    pub times: i64,
}

impl KnockRecord {
    /// `{"room_id", "server", "first_seen_ms", "last_seen_ms", "times"}`.
    pub fn to_json(&self) -> Value {
        let mut o = Object::new();
        o.insert("room_id".into(), Value::from(self.room_id.as_str()));
        o.insert("server".into(), Value::from(self.server.as_str()));
        o.insert("first_seen_ms".into(), Value::Int(self.first_seen_ms));
        o.insert("last_seen_ms".into(), Value::Int(self.last_seen_ms));
        o.insert("times".into(), Value::Int(self.times));
        Value::Object(o)
    }
}

/// Knocks in the shared SQLite file. `Sync`: one connection behind a mutex.
#[derive(Debug)]
pub struct KnockStore {
    conn: Mutex<Connection>,
    expire_after_ms: i64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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

impl KnockStore {
    /// Opens (creating if needed) the store at `path`; knocks expire `expire_after` after they
    /// were last seen.
    pub fn open(path: &Path, expire_after: Duration) -> Result<Self> {
        let mut conn = open_connection(path)?;
        ensure_schema(&mut conn, "knocks", MIGRATIONS)?;
        let expire_after_ms = i64::try_from(expire_after.as_millis()).unwrap_or(i64::MAX);
        Ok(KnockStore {
            conn: Mutex::new(conn),
            expire_after_ms,
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::internal("the knock store's lock is poisoned"))
    }

    fn cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.expire_after_ms)
    }

    /// Records a knock seen at `now_ms`: a new row, or the existing one with `last_seen_ms` and
    /// `times` updated. A row that had expired starts afresh (first seen = now, times = 1).
    pub fn record_at(&self, room_id: &str, server: &str, now_ms: i64) -> Result<KnockRecord> {
        let cutoff = self.cutoff(now_ms);
        let conn = self.conn()?;
        with_retry(|| {
            conn.query_row(
                "INSERT INTO server_knocks (room_id, server, first_seen_ms, last_seen_ms, times)
                 VALUES (?1, ?2, ?3, ?3, 1)
                 ON CONFLICT (room_id, server) DO UPDATE SET
                     first_seen_ms = CASE WHEN last_seen_ms < ?4 THEN ?3 ELSE first_seen_ms END,
                     times = CASE WHEN last_seen_ms < ?4 THEN 1 ELSE times + 1 END,
                     last_seen_ms = MAX(last_seen_ms, ?3)
                 RETURNING room_id, server, first_seen_ms, last_seen_ms, times",
                params![room_id, server, now_ms, cutoff],
                row_to_record,
            )
        })
        .map_err(|e| storage_error("recording a knock", &e))
    }

    /// [`KnockStore::record_at`] with the system clock.
    pub fn record(&self, room_id: &str, server: &str) -> Result<KnockRecord> {
        self.record_at(room_id, server, now_ms())
    }

    /// The unexpired knock of `server` on `room_id` at `now_ms`.
    pub fn get_at(&self, room_id: &str, server: &str, now_ms: i64) -> Result<Option<KnockRecord>> {
        let conn = self.conn()?;
        with_retry(|| {
            conn.query_row(
                "SELECT room_id, server, first_seen_ms, last_seen_ms, times FROM server_knocks
                 WHERE room_id = ?1 AND server = ?2 AND last_seen_ms >= ?3",
                params![room_id, server, self.cutoff(now_ms)],
                row_to_record,
            )
            .optional()
        })
        .map_err(|e| storage_error("reading a knock", &e))
    }

    /// Every unexpired knock on `room_id` at `now_ms`, oldest first (what a moderator reviews).
    pub fn for_room_at(&self, room_id: &str, now_ms: i64) -> Result<Vec<KnockRecord>> {
        let conn = self.conn()?;
        with_retry(|| {
            let mut stmt = conn.prepare(
                "SELECT room_id, server, first_seen_ms, last_seen_ms, times FROM server_knocks
                 WHERE room_id = ?1 AND last_seen_ms >= ?2 ORDER BY first_seen_ms, server",
            )?;
            let rows = stmt.query_map(params![room_id, self.cutoff(now_ms)], row_to_record)?;
            rows.collect()
        })
        .map_err(|e| storage_error("listing knocks", &e))
    }

    /// Forgets one knock (e.g. once decided); returns whether it existed.
    pub fn remove(&self, room_id: &str, server: &str) -> Result<bool> {
        let conn = self.conn()?;
        with_retry(|| {
            conn.execute(
                "DELETE FROM server_knocks WHERE room_id = ?1 AND server = ?2",
                params![room_id, server],
            )
        })
        .map(|n| n > 0)
        .map_err(|e| storage_error("removing a knock", &e))
    }

    /// Deletes every knock expired at `now_ms`; returns how many.
    pub fn purge_expired_at(&self, now_ms: i64) -> Result<usize> {
        let conn = self.conn()?;
        with_retry(|| {
            conn.execute(
                "DELETE FROM server_knocks WHERE last_seen_ms < ?1",
                params![self.cutoff(now_ms)],
            )
        })
        .map_err(|e| storage_error("purging expired knocks", &e))
    }

    /// [`KnockStore::purge_expired_at`] with the system clock.
    pub fn purge_expired(&self) -> Result<usize> {
        self.purge_expired_at(now_ms())
    }

    /// Number of rows, expired or not (for tests and metrics).
    pub fn row_count(&self) -> Result<i64> {
        let conn = self.conn()?;
        with_retry(|| conn.query_row("SELECT COUNT(*) FROM server_knocks", [], |r| r.get(0)))
            .map_err(|e| storage_error("counting knocks", &e))
    }
}
