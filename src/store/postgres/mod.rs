//! The backend for fleets: servership's tables in a PostgreSQL database (Synapse's own, or one of
//! its own), shared by processes on several hosts.
//!
//! Conventions every component follows:
//! - tables are named `servership_*`, so they can sit in Synapse's database beside its own;
//! - each component migrates its tables in one transaction under a transaction-level advisory
//!   lock, recorded in `servership_schema` as `(component, version)`: two processes opening a new
//!   database at once migrate it exactly once;
//! - one connection pool per connection string in a process (handles of every component share
//!   it), at most [`MAX_CONNECTIONS`] connections;
//! - bounded waits: connecting gives up after [`CONNECT_TIMEOUT`], waiting for a pooled
//!   connection after [`POOL_WAIT`], a statement after [`STATEMENT_TIMEOUT_MS`], a row or
//!   advisory lock after [`LOCK_TIMEOUT_MS`]; every failure is a storage error (`M_UNKNOWN`, 500),
//!   as on SQLite;
//! - writes are committed before a call returns (PostgreSQL's default `synchronous_commit`),
//!   except knocks and budget windows, which skip the flush as they do on SQLite.
//!
//! Connections are plain TCP or Unix sockets: TLS (`sslmode=require`) is not supported yet.

pub(crate) mod audits;
pub(crate) mod budgets;
mod copy;
pub(crate) mod knocks;
pub(crate) mod tags;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use postgres::{Client, NoTls};
use r2d2_postgres::PostgresConnectionManager;

use crate::error::{Error, Result};
use crate::store::PostgresUrl;

pub use copy::{CopyReport, copy_sqlite_to_postgres};

/// Most connections one process keeps to one database.
pub const MAX_CONNECTIONS: u32 = 8;
/// How long opening a connection may take (unless the connection string sets its own).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a call waits for a free (or new) pooled connection.
pub const POOL_WAIT: Duration = Duration::from_secs(2);
/// The server-side bound on one statement, in milliseconds.
pub const STATEMENT_TIMEOUT_MS: u32 = 5_000;
/// The server-side bound on waiting for a lock, in milliseconds.
pub const LOCK_TIMEOUT_MS: u32 = 2_000;

/// First key of servership's advisory locks (ASCII "SSHP"); the second names what is locked.
pub(crate) const LOCK_CLASS: i32 = 0x5353_4850;
/// Second key: schema migrations.
const LOCK_SCHEMA: i32 = 1;
/// Second key: inserting tags (keeps row IDs in commit order, see `store::tags`).
pub(crate) const LOCK_TAGS: i32 = 2;

pub(crate) type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
pub(crate) type Conn = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Sets each new connection's timeouts.
#[derive(Debug)]
struct Session;

impl r2d2::CustomizeConnection<Client, postgres::Error> for Session {
    fn on_acquire(&self, conn: &mut Client) -> std::result::Result<(), postgres::Error> {
        conn.batch_execute(&format!(
            "SET statement_timeout = {STATEMENT_TIMEOUT_MS};
             SET lock_timeout = {LOCK_TIMEOUT_MS};
             SET idle_in_transaction_session_timeout = 60000;"
        ))
    }
}

/// The pools of this process, by connection string; a pool closes once no handle uses it.
fn pools() -> &'static Mutex<HashMap<String, Weak<Pool>>> {
    static POOLS: OnceLock<Mutex<HashMap<String, Weak<Pool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The pool for `url`, shared with every other handle on it in this process.
pub(crate) fn pool(url: &PostgresUrl) -> Result<Arc<Pool>> {
    let mut pools = pools().lock().unwrap_or_else(|p| p.into_inner());
    pools.retain(|_, weak| weak.strong_count() > 0);
    if let Some(pool) = pools.get(url.expose()).and_then(Weak::upgrade) {
        return Ok(pool);
    }
    let mut config = url.config()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // A `connect_timeout` longer than the pool's wait (slow links, valgrind) lengthens the wait:
    // otherwise a connection still being made would be given up on after POOL_WAIT.
    let wait = config
        .get_connect_timeout()
        .map_or(POOL_WAIT, |t| (*t).max(POOL_WAIT));
    if config.get_application_name().is_none() {
        config.application_name("servership");
    }
    // A peer that vanished mid-statement is noticed instead of waited for.
    config.keepalives_idle(Duration::from_secs(30));
    let manager = PostgresConnectionManager::new(config, NoTls);
    let pool = r2d2::Pool::builder()
        .max_size(MAX_CONNECTIONS)
        .min_idle(Some(0))
        .idle_timeout(Some(Duration::from_secs(120)))
        .connection_timeout(wait)
        .connection_customizer(Box::new(Session))
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build(manager)
        .map_err(|e| pool_error(url, &e))?;
    let pool = Arc::new(pool);
    pools.insert(url.expose().to_owned(), Arc::downgrade(&pool));
    Ok(pool)
}

/// A connection from `pool`, waiting at most [`POOL_WAIT`] (or the connection string's longer
/// `connect_timeout`).
pub(crate) fn conn(pool: &Pool, doing: &str) -> Result<Conn> {
    pool.get().map_err(|e| {
        Error::internal(format!(
            "storage error while {doing}: no PostgreSQL connection within {} s: {e}",
            pool.connection_timeout().as_secs()
        ))
    })
}

fn pool_error(url: &PostgresUrl, e: &r2d2::Error) -> Error {
    Error::internal(format!("storage error while connecting to {url}: {e}"))
}

/// A PostgreSQL failure as a Matrix error (`M_UNKNOWN`, 500), worded as SQLite's are.
pub(crate) fn pg_error(doing: &str, e: &postgres::Error) -> Error {
    Error::internal(format!("storage error while {doing}: {e}"))
}

/// Brings `component`'s tables up to `migrations.len()` (migration `i` takes it from version `i`
/// to `i + 1`), all in one transaction under the schema advisory lock.
pub(crate) fn ensure_schema(conn: &mut Client, component: &str, migrations: &[&str]) -> Result<()> {
    let doing = format!("migrating the {component} tables");
    let known = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
    let version = (|| -> std::result::Result<i32, postgres::Error> {
        let mut tx = conn.transaction()?;
        // Another process may be migrating: wait for it longer than for an ordinary lock.
        tx.batch_execute("SET LOCAL lock_timeout = 60000; SET LOCAL statement_timeout = 120000;")?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&LOCK_CLASS, &LOCK_SCHEMA],
        )?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS servership_schema (
                 component TEXT PRIMARY KEY NOT NULL,
                 version INTEGER NOT NULL
             )",
        )?;
        let current: i32 = tx
            .query_opt(
                "SELECT version FROM servership_schema WHERE component = $1",
                &[&component],
            )?
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        for (i, migration) in migrations.iter().enumerate() {
            let target = i32::try_from(i + 1).unwrap_or(i32::MAX);
            if current < target {
                tx.batch_execute(migration)?;
            }
        }
        if current < known {
            tx.execute(
                "INSERT INTO servership_schema (component, version) VALUES ($1, $2)
                 ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                &[&component, &known],
            )?;
        }
        tx.commit()?;
        Ok(current.max(known))
    })()
    .map_err(|e| pg_error(&doing, &e))?;
    if version > known {
        return Err(Error::internal(format!(
            "the store's {component} tables are at version {version}, newer than this release knows \
             ({known}); upgrade servership"
        )));
    }
    Ok(())
}

/// Opens the pool for `url` and migrates `component` on one of its connections.
pub(crate) fn open_component(
    url: &PostgresUrl,
    component: &str,
    migrations: &[&str],
) -> Result<Arc<Pool>> {
    let pool = pool(url)?;
    let mut conn = conn(&pool, &format!("opening the {component} tables"))?;
    ensure_schema(&mut conn, component, migrations)?;
    Ok(pool)
}
