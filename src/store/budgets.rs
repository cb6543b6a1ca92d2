//! Discovery budgets shared by every process on one SQLite file (component `budgets`, table
//! `discovery_budgets`).
//!
//! A [`MemoryBudget`](crate::discovery::MemoryBudget) lives in one process: Synapse with *n*
//! workers answering `discover_common_rooms` would give every origin *n* budgets, and a restart a
//! fresh one. [`SqliteBudget`] keeps each origin's fixed window as one row, read and updated in
//! one `BEGIN IMMEDIATE` transaction per charge, so every handle and process on the file draws on
//! one budget and a restart continues the window it was in.
//!
//! Decisions:
//! - The key is [`normalise_origin`] of the origin, as for every budget.
//! - Budget writes use `synchronous = NORMAL` on their own connection: losing the last budget
//!   window to a power cut is harmless (an origin gets at most one window more), and it spares a
//!   disk flush per request. The tag store's writes stay `FULL`.
//! - Busy waiting is bounded to about a second per call ([`SHORT_RETRY_FOR`]): the caller may be
//!   Synapse's thread pool, which must never sleep long. A file busy for longer is `M_UNKNOWN`
//!   (500): the request is refused, never silently allowed.
//! - Rows whose window has ended are deleted a few at a time (at most [`PURGE_PER_CHARGE`] per
//!   charge, through an index), so the table holds about one row per origin seen in the last
//!   window and no charge does unbounded work.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::discovery::budget::{Budget, normalise_origin, over_budget, window_open};
use crate::error::{Error, Result};

use super::sqlite::{SHORT_BUSY_TIMEOUT, SHORT_RETRY_FOR, open_connection_with, with_retry_for};
use super::{ensure_schema, storage_error};

/// The component name in `servership_schema`.
const COMPONENT: &str = "budgets";

const MIGRATIONS: &[&str] = &["CREATE TABLE discovery_budgets (
         origin TEXT PRIMARY KEY NOT NULL,
         window_start_ms INTEGER NOT NULL,
         used INTEGER NOT NULL
     );
     CREATE INDEX discovery_budgets_window ON discovery_budgets (window_start_ms);"];

/// Most expired rows one charge deletes. A charge adds at most one row, so this keeps up.
const PURGE_PER_CHARGE: i64 = 8;

/// Per-origin budgets in servership's SQLite file, shared by every handle and process on it.
/// `Send + Sync`: one connection behind a lock.
#[derive(Debug)]
pub struct SqliteBudget {
    conn: Mutex<Connection>,
    budget_tags: u64,
    window_ms: u64,
}

/// SQLite integers are signed; times and counts beyond `i64::MAX` are stored as `i64::MAX`.
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteBudget {
    /// Opens (creating if needed) the budgets in the SQLite file at `path` (usually the tag store's
    /// file): `budget_tags` tags per `window_ms` (at least 1) per origin.
    pub fn open(path: impl AsRef<Path>, budget_tags: u64, window_ms: u64) -> Result<SqliteBudget> {
        if window_ms == 0 {
            return Err(Error::invalid_param("budget_window_ms must be at least 1"));
        }
        let mut conn = open_connection_with(path.as_ref(), SHORT_BUSY_TIMEOUT)?;
        ensure_schema(&mut conn, COMPONENT, MIGRATIONS)?;
        // Per connection in WAL mode; see the module notes for why NORMAL is enough here.
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(|e| storage_error("setting budget pragmas", &e))?;
        Ok(SqliteBudget {
            conn: Mutex::new(conn),
            budget_tags,
            window_ms,
        })
    }

    /// Tags per window per origin.
    pub fn budget_tags(&self) -> u64 {
        self.budget_tags
    }

    /// The window in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// How many origins have a row (windows not yet purged), for inspection and tests.
    pub fn stored_origins(&self) -> Result<u64> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row("SELECT count(*) FROM discovery_budgets", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map(from_sql)
        .map_err(|e| storage_error("counting budget windows", &e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // The connection holds no state of ours between calls; a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one charge transaction decided.
enum Outcome {
    Charged,
    Refused { used: u64, start_ms: u64 },
}

impl Budget for SqliteBudget {
    fn charge(&self, origin: &str, tags: u64, now_ms: u64) -> Result<()> {
        let origin = normalise_origin(origin);
        let (budget, window) = (self.budget_tags, self.window_ms);
        let mut conn = self.lock();
        let outcome = with_retry_for(SHORT_RETRY_FOR, || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT window_start_ms, used FROM discovery_budgets WHERE origin = ?1",
                    [&origin],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let (start, used) = match row {
                Some((start, used)) if window_open(from_sql(start), now_ms, window) => {
                    (from_sql(start), from_sql(used))
                }
                _ => (now_ms, 0),
            };
            if used.saturating_add(tags) > budget {
                // Nothing written: dropping the transaction rolls it back.
                return Ok(Outcome::Refused {
                    used,
                    start_ms: start,
                });
            }
            tx.execute(
                "INSERT INTO discovery_budgets (origin, window_start_ms, used) VALUES (?1, ?2, ?3)
                 ON CONFLICT(origin) DO UPDATE SET window_start_ms = excluded.window_start_ms,
                                                   used = excluded.used",
                params![&origin, to_sql(start), to_sql(used.saturating_add(tags))],
            )?;
            // Windows that ended (started a whole window ago or more) can never be charged
            // again; the index on window_start_ms finds them without a scan.
            if let Some(ended_before) = now_ms.checked_sub(window) {
                tx.execute(
                    "DELETE FROM discovery_budgets WHERE origin IN (
                         SELECT origin FROM discovery_budgets WHERE window_start_ms <= ?1 LIMIT ?2)",
                    params![to_sql(ended_before), PURGE_PER_CHARGE],
                )?;
            }
            tx.commit()?;
            Ok(Outcome::Charged)
        })
        .map_err(|e| storage_error("charging a discovery budget", &e))?;
        match outcome {
            Outcome::Charged => Ok(()),
            Outcome::Refused { used, start_ms } => Err(over_budget(
                &origin, used, budget, tags, start_ms, now_ms, window,
            )),
        }
    }

    fn remaining(&self, origin: &str, now_ms: u64) -> Result<u64> {
        let origin = normalise_origin(origin);
        let conn = self.lock();
        let row: Option<(i64, i64)> = with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT window_start_ms, used FROM discovery_budgets WHERE origin = ?1",
                [&origin],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })
        .map_err(|e| storage_error("reading a discovery budget", &e))?;
        Ok(match row {
            Some((start, used)) if window_open(from_sql(start), now_ms, self.window_ms) => {
                self.budget_tags.saturating_sub(from_sql(used))
            }
            _ => self.budget_tags,
        })
    }
}
