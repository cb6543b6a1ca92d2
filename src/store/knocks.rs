//! The knock store: `m.server.knock` EDUs recorded idempotently per (room, server), with first and
//! last seen times, expiring after a receiver-chosen duration (MSC4099 seed: "the knock edu can be
//! treated as idempotent by the receiver, although the effect should probably expire").
//!
//! Lives in the shared servership SQLite file (component `knocks`, table `server_knocks`), next to
//! the other components' tables. A knock whose last sighting is older than the expiry is treated
//! as absent (never returned) and a new knock after that starts afresh; [`KnockStore::purge_expired`]
//! deletes such rows. Times are milliseconds since the Unix epoch, passed in so tests and
//! homeservers control the clock; the `*_now` helpers read the system clock.
//!
//! **Bounded.** Knocks come from the network, so the store bounds what one origin can make it do:
//! - at most [`KnockLimits::max_per_origin`] *new* knocks (a room the origin had no unexpired knock
//!   on) per origin in any [`KnockLimits::window`]; beyond that `record` fails with
//!   `M_LIMIT_EXCEEDED` (and `retry_after_ms`) without writing. Repeats of a recorded knock only
//!   update its row. So one origin holds at most `max_per_origin × expiry / window` rows (with
//!   the defaults, 20 per hour for knocks that expire after a day: 480). The count lives in the
//!   file, so every process sharing it (Synapse workers) shares the cap;
//! - a caller's thread never waits more than about a second: SQLite waits at most
//!   [`BUSY_WAIT`] for another process's lock per attempt, and a busy file is retried
//!   [`BUSY_RETRIES`] times with short pauses (under 0.9 s in all), then the call fails with a
//!   storage error (`M_UNKNOWN`) for the caller to count, instead of the 60 s the other stores
//!   allow;
//! - writes are `synchronous = NORMAL` (WAL): a knock costs no fsync. A knock is a hint that
//!   expires anyway; a power cut may lose the last few, never corrupt the file;
//! - [`KnockStore::purge_expired_at`] deletes in batches of [`PURGE_BATCH`] rows, each its own
//!   short transaction, so a big purge never holds the write lock for long.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::json::{Object, Value};

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

/// How long SQLite waits for another process's lock on the knock store, per attempt.
pub const BUSY_WAIT: Duration = Duration::from_millis(250);
/// How many times a call that found the file busy is tried again (after 20 ms, then 80 ms).
pub const BUSY_RETRIES: usize = 2;
/// Rows deleted per transaction by a purge.
pub const PURGE_BATCH: usize = 1000;

/// What one origin may make the knock store record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnockLimits {
    /// New knocks per origin per window (default 20).
    pub max_per_origin: u32,
    /// The window (default one hour).
    pub window: Duration,
}

impl Default for KnockLimits {
    fn default() -> Self {
        KnockLimits {
            max_per_origin: 20,
            window: Duration::from_secs(3600),
        }
    }
}

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
    limits: KnockLimits,
}

/// Why [`KnockStore::record_at`] may refuse a knock: the origin is over its cap.
enum Recorded {
    Row(KnockRecord),
    OverCap { retry_after_ms: u64 },
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
    /// were last seen. The per-origin cap is [`KnockLimits::default`].
    pub fn open(path: &Path, expire_after: Duration) -> Result<Self> {
        Self::open_with_limits(path, expire_after, KnockLimits::default())
    }

    /// [`KnockStore::open`] with an explicit per-origin cap (`max_per_origin` 0 refuses every new
    /// knock; a zero window is `M_INVALID_PARAM`).
    pub fn open_with_limits(
        path: &Path,
        expire_after: Duration,
        limits: KnockLimits,
    ) -> Result<Self> {
        if limits.window.is_zero() {
            return Err(Error::invalid_param("the knock window must not be zero"));
        }
        let mut conn = open_connection(path)?;
        ensure_schema(&mut conn, "knocks", MIGRATIONS)?;
        conn.busy_timeout(BUSY_WAIT)
            .map_err(|e| storage_error("setting the knock store's busy timeout", &e))?;
        bounded_retry(|| conn.execute_batch("PRAGMA synchronous = NORMAL;"))
            .map_err(|e| storage_error("setting the knock store's synchronous mode", &e))?;
        let expire_after_ms = i64::try_from(expire_after.as_millis()).unwrap_or(i64::MAX);
        Ok(KnockStore {
            conn: Mutex::new(conn),
            expire_after_ms,
            limits,
        })
    }

    /// The per-origin cap.
    pub fn limits(&self) -> KnockLimits {
        self.limits
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
    ///
    /// A *new* knock (no unexpired row for this room and server) beyond the origin's cap fails
    /// with `M_LIMIT_EXCEEDED` (`retry_after_ms`: when the oldest knock counted leaves the
    /// window) and writes nothing. A file that stays busy fails with `M_UNKNOWN` after about a
    /// second at most.
    pub fn record_at(&self, room_id: &str, server: &str, now_ms: i64) -> Result<KnockRecord> {
        let cutoff = self.cutoff(now_ms);
        let window_ms = i64::try_from(self.limits.window.as_millis()).unwrap_or(i64::MAX);
        let window_start = now_ms.saturating_sub(window_ms);
        let cap = i64::from(self.limits.max_per_origin);
        let mut conn = self.conn()?;
        let outcome = bounded_retry(|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let live: bool = tx
                .query_row(
                    "SELECT 1 FROM server_knocks
                     WHERE room_id = ?1 AND server = ?2 AND last_seen_ms >= ?3",
                    params![room_id, server, cutoff],
                    |_| Ok(true),
                )
                .optional()?
                .unwrap_or(false);
            if !live {
                let (count, oldest): (i64, Option<i64>) = tx.query_row(
                    "SELECT COUNT(*), MIN(first_seen_ms) FROM server_knocks
                     WHERE server = ?1 AND first_seen_ms > ?2",
                    params![server, window_start],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if count >= cap {
                    let leaves = oldest
                        .unwrap_or(now_ms)
                        .saturating_add(window_ms)
                        .saturating_sub(now_ms);
                    return Ok(Recorded::OverCap {
                        retry_after_ms: u64::try_from(leaves.max(1)).unwrap_or(1),
                    });
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
                params![room_id, server, now_ms, cutoff],
                row_to_record,
            )?;
            tx.commit()?;
            Ok(Recorded::Row(record))
        })
        .map_err(|e| storage_error("recording a knock", &e))?;
        match outcome {
            Recorded::Row(r) => Ok(r),
            Recorded::OverCap { retry_after_ms } => Err(Error::limit_exceeded(
                format!(
                    "{server} has knocked on {} new rooms in the last {} s, its cap",
                    self.limits.max_per_origin,
                    self.limits.window.as_secs()
                ),
                retry_after_ms,
            )),
        }
    }

    /// [`KnockStore::record_at`] with the system clock.
    pub fn record(&self, room_id: &str, server: &str) -> Result<KnockRecord> {
        self.record_at(room_id, server, now_ms())
    }

    /// The unexpired knock of `server` on `room_id` at `now_ms`.
    pub fn get_at(&self, room_id: &str, server: &str, now_ms: i64) -> Result<Option<KnockRecord>> {
        let conn = self.conn()?;
        bounded_retry(|| {
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
        bounded_retry(|| {
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
        bounded_retry(|| {
            conn.execute(
                "DELETE FROM server_knocks WHERE room_id = ?1 AND server = ?2",
                params![room_id, server],
            )
        })
        .map(|n| n > 0)
        .map_err(|e| storage_error("removing a knock", &e))
    }

    /// Deletes every knock expired at `now_ms`, [`PURGE_BATCH`] rows per transaction (the lock
    /// is released between batches); returns how many. What the homeserver runs on a schedule.
    pub fn purge_expired_at(&self, now_ms: i64) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.purge_expired_batch_at(now_ms, PURGE_BATCH)?;
            total += n;
            if n < PURGE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Deletes at most `max_rows` knocks expired at `now_ms` in one short transaction; returns
    /// how many (fewer than `max_rows` means none is left).
    pub fn purge_expired_batch_at(&self, now_ms: i64, max_rows: usize) -> Result<usize> {
        let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let conn = self.conn()?;
        bounded_retry(|| {
            conn.execute(
                "DELETE FROM server_knocks WHERE rowid IN (
                     SELECT rowid FROM server_knocks WHERE last_seen_ms < ?1 LIMIT ?2)",
                params![self.cutoff(now_ms), limit],
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
        bounded_retry(|| conn.query_row("SELECT COUNT(*) FROM server_knocks", [], |r| r.get(0)))
            .map_err(|e| storage_error("counting knocks", &e))
    }
}
