//! Discovery budgets shared by every process on one store (component `budgets`; table
//! `discovery_budgets` in SQLite, `servership_discovery_budgets` in PostgreSQL).
//!
//! A [`MemoryBudget`](crate::discovery::MemoryBudget) lives in one process: Synapse with *n*
//! workers answering `discover_common_rooms` would give every origin *n* budgets, and a restart a
//! fresh one. [`StoreBudget`] keeps each origin's fixed window as one row, read and updated in
//! one transaction per charge (SQLite `BEGIN IMMEDIATE`, PostgreSQL a row lock), so every handle
//! and process on the store draws on one budget and a restart continues the window it was in.
//!
//! Decisions:
//! - The key is [`normalise_origin`] of the origin, as for every budget.
//! - Budget writes skip the disk flush (SQLite `synchronous = NORMAL`, PostgreSQL
//!   `synchronous_commit = off`): losing the last budget window to a power cut is harmless (an
//!   origin gets at most one window more), and it spares a flush per request. Tags stay durable.
//! - Waits are bounded (about a second on SQLite, the pool and statement timeouts on
//!   PostgreSQL): the caller may be Synapse's thread pool, which must never sleep long. A store
//!   busy or unreachable for longer is `M_UNKNOWN` (500): the request is refused, never silently
//!   allowed.
//! - Rows whose window has ended are deleted a few at a time (at most [`PURGE_PER_CHARGE`] per
//!   charge, through an index), so the table holds about one row per origin seen in the last
//!   window and no charge does unbounded work.

use crate::discovery::budget::{Budget, normalise_origin, over_budget, window_open};
use crate::error::{Error, Result};
use crate::store::{Location, postgres, sqlite};

/// Most expired rows one charge deletes. A charge adds at most one row, so this keeps up.
pub(crate) const PURGE_PER_CHARGE: i64 = 8;

/// Chooses what a charge writes from the origin's current window (`(start, used)` if it has a
/// row), or refuses it.
pub(crate) type Decide<'a> =
    dyn FnMut(Option<(u64, u64)>) -> std::result::Result<(u64, u64), Refusal> + 'a;

/// What a backend does for the budget: read and write one origin's window atomically.
pub(crate) trait BudgetBackend: Send + Sync {
    /// In one transaction: reads `origin`'s window, lets `decide` choose what to write from it
    /// (`(start, used)` if the row exists), writes that, and purges ended windows. `decide`
    /// returning `Err` writes nothing.
    fn charge(
        &self,
        origin: &str,
        ended_before: Option<u64>,
        decide: &mut Decide<'_>,
    ) -> Result<std::result::Result<(), Refusal>>;
    /// `origin`'s window, if it has a row.
    fn window(&self, origin: &str) -> Result<Option<(u64, u64)>>;
    /// How many origins have a row.
    fn stored_origins(&self) -> Result<u64>;
}

/// A charge that does not fit: how much of the window is used, and when it began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    used: u64,
    start_ms: u64,
}

/// Store integers are signed; times and counts beyond `i64::MAX` are stored as `i64::MAX`.
pub(crate) fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Per-origin budgets in servership's store, shared by every handle and process on it.
/// `Send + Sync`.
pub struct StoreBudget {
    backend: Box<dyn BudgetBackend>,
    location: Location,
    budget_tags: u64,
    window_ms: u64,
}

/// The name this type had when SQLite was the only backend.
pub type SqliteBudget = StoreBudget;

impl std::fmt::Debug for StoreBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBudget")
            .field("location", &self.location)
            .field("budget_tags", &self.budget_tags)
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

/// The key an origin is stored under: normalised, and with NUL (which PostgreSQL text cannot
/// hold, and no server name contains) replaced, so both backends key it alike.
fn key(origin: &str) -> String {
    normalise_origin(origin).replace('\0', "\u{fffd}")
}

impl StoreBudget {
    /// Opens (creating if needed) the budgets in the store at `location` (usually the tag
    /// store's): `budget_tags` tags per `window_ms` (at least 1) per origin.
    pub fn open(
        location: impl Into<Location>,
        budget_tags: u64,
        window_ms: u64,
    ) -> Result<StoreBudget> {
        let location = location.into();
        if window_ms == 0 {
            return Err(Error::invalid_param("budget_window_ms must be at least 1"));
        }
        let backend: Box<dyn BudgetBackend> = match &location {
            Location::Sqlite(path) => Box::new(sqlite::budgets::SqliteBudgets::open(path)?),
            Location::Postgres(url) => Box::new(postgres::budgets::PgBudgets::open(url)?),
        };
        Ok(StoreBudget {
            backend,
            location,
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

    /// Where the budgets live.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// How many origins have a row (windows not yet purged), for inspection and tests.
    pub fn stored_origins(&self) -> Result<u64> {
        self.backend.stored_origins()
    }
}

impl Budget for StoreBudget {
    fn charge(&self, origin: &str, tags: u64, now_ms: u64) -> Result<()> {
        let origin = key(origin);
        let (budget, window) = (self.budget_tags, self.window_ms);
        let mut decide = |row: Option<(u64, u64)>| {
            let (start, used) = match row {
                Some((start, used)) if window_open(start, now_ms, window) => (start, used),
                _ => (now_ms, 0),
            };
            if used.saturating_add(tags) > budget {
                return Err(Refusal {
                    used,
                    start_ms: start,
                });
            }
            Ok((start, used.saturating_add(tags)))
        };
        // Windows that ended (started a whole window ago or more) can never be charged again.
        match self
            .backend
            .charge(&origin, now_ms.checked_sub(window), &mut decide)?
        {
            Ok(()) => Ok(()),
            Err(Refusal { used, start_ms }) => Err(over_budget(
                &origin, used, budget, tags, start_ms, now_ms, window,
            )),
        }
    }

    fn remaining(&self, origin: &str, now_ms: u64) -> Result<u64> {
        let origin = key(origin);
        Ok(match self.backend.window(&origin)? {
            Some((start, used)) if window_open(start, now_ms, self.window_ms) => {
                self.budget_tags.saturating_sub(used)
            }
            _ => self.budget_tags,
        })
    }
}
