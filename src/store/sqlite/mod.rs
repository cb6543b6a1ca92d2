//! The embedded default backend: one SQLite file per server, shared by every servership component.
//!
//! Conventions every table in the file follows, so several processes (Synapse workers on one
//! host) can share it safely:
//! - WAL journal with `synchronous = FULL`: a write the caller was told about survives `kill -9`
//!   and power loss (the exceptions, knocks and discovery budget windows, whose loss is harmless,
//!   are written with `NORMAL`);
//! - a generous busy timeout plus retry in [`with_retry`]: "database is locked" never reaches a
//!   caller; work done on a homeserver thread's time (budgets, knocks, the audit queue) retries
//!   for about a second at most and then fails with `M_UNKNOWN`;
//! - each component migrates its own tables, recorded in `servership_schema` as
//!   `(component, version)`, so later releases can migrate one part without touching the others.
//!
//! The file must be servership's own: never Synapse's database (two SQLite copies live in its
//! process, and they must not share a file).

pub(crate) mod audits;
pub(crate) mod budgets;
pub(crate) mod knocks;
pub(crate) mod tags;

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::{Error, Result};

/// How long one statement waits for another process's lock before SQLite gives up on it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`with_retry`] keeps retrying a transaction that still found the file busy.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// The bound on busy waiting for work done on a request's or a homeserver thread's time (budgets,
/// the audit queue): a thread must never sleep long, so a file busy for longer fails instead.
pub(crate) const SHORT_RETRY_FOR: Duration = Duration::from_secs(1);
/// The per-statement busy timeout of connections used under [`SHORT_RETRY_FOR`].
pub(crate) const SHORT_BUSY_TIMEOUT: Duration = Duration::from_millis(100);

/// Opens (creating if needed) the store file with the shared conventions applied.
pub fn open_connection(path: &Path) -> Result<Connection> {
    open_connection_with(path, BUSY_TIMEOUT)
}

/// [`open_connection`] with another per-statement busy timeout.
pub(crate) fn open_connection_with(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| storage_error(&format!("opening {}", path.display()), &e))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| storage_error("setting busy timeout", &e))?;
    with_retry(|| {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;",
        )
    })
    .map_err(|e| storage_error("setting pragmas", &e))?;
    Ok(conn)
}

/// Brings `component`'s tables up to `migrations.len()`: migration `i` (0-based) takes the
/// component from version `i` to `i + 1`. Each runs in its own immediate transaction, so two
/// processes opening a new file at once migrate it exactly once.
pub fn ensure_schema(conn: &mut Connection, component: &str, migrations: &[&str]) -> Result<()> {
    with_retry(|| {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS servership_schema (
                 component TEXT PRIMARY KEY NOT NULL,
                 version INTEGER NOT NULL
             )",
        )
    })
    .map_err(|e| storage_error("creating servership_schema", &e))?;
    for (i, migration) in migrations.iter().enumerate() {
        let target = i64::try_from(i + 1).unwrap_or(i64::MAX);
        with_retry(|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current: i64 = tx
                .query_row(
                    "SELECT version FROM servership_schema WHERE component = ?1",
                    [component],
                    |row| row.get(0),
                )
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    other => Err(other),
                })?;
            if current < target {
                tx.execute_batch(migration)?;
                tx.execute(
                    "INSERT INTO servership_schema (component, version) VALUES (?1, ?2)
                     ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    rusqlite::params![component, target],
                )?;
            }
            tx.commit()
        })
        .map_err(|e| storage_error(&format!("migrating {component} to version {target}"), &e))?;
    }
    let version: i64 = conn
        .query_row(
            "SELECT version FROM servership_schema WHERE component = ?1",
            [component],
            |row| row.get(0),
        )
        .map_err(|e| storage_error("reading schema version", &e))?;
    if version > i64::try_from(migrations.len()).unwrap_or(i64::MAX) {
        return Err(Error::internal(format!(
            "the store's {component} tables are at version {version}, newer than this release knows ({}); \
             upgrade servership",
            migrations.len()
        )));
    }
    Ok(())
}

/// Runs `f`, retrying while SQLite reports the file busy or locked by another process, for up to
/// a minute. Callers therefore never see "database is locked".
pub fn with_retry<T>(f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    with_retry_for(RETRY_FOR, f)
}

/// [`with_retry`], giving up (with SQLite's busy error) once `limit` has passed.
pub(crate) fn with_retry_for<T>(
    limit: Duration,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && started.elapsed() < limit =>
            {
                std::thread::sleep(pause.min(limit.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// A storage failure as a Matrix error (`M_UNKNOWN`, 500): never the request's fault.
pub(crate) fn storage_error(doing: &str, e: &rusqlite::Error) -> Error {
    Error::internal(format!("storage error while {doing}: {e}"))
}
