//! Discovery budget windows in the SQLite file (component `budgets`, table `discovery_budgets`),
//! on their own connection with `synchronous = NORMAL`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::Result;
use crate::store::budgets::{BudgetBackend, Decide, PURGE_PER_CHARGE, Refusal, from_sql, to_sql};

use super::{
    SHORT_BUSY_TIMEOUT, SHORT_RETRY_FOR, ensure_schema, open_connection_with, storage_error,
    with_retry_for,
};

/// The component name in `servership_schema`.
const COMPONENT: &str = "budgets";

const MIGRATIONS: &[&str] = &["CREATE TABLE discovery_budgets (
         origin TEXT PRIMARY KEY NOT NULL,
         window_start_ms INTEGER NOT NULL,
         used INTEGER NOT NULL
     );
     CREATE INDEX discovery_budgets_window ON discovery_budgets (window_start_ms);"];

/// One connection behind a lock.
pub(crate) struct SqliteBudgets {
    conn: Mutex<Connection>,
}

impl SqliteBudgets {
    pub(crate) fn open(path: &Path) -> Result<SqliteBudgets> {
        let mut conn = open_connection_with(path, SHORT_BUSY_TIMEOUT)?;
        ensure_schema(&mut conn, COMPONENT, MIGRATIONS)?;
        // Per connection in WAL mode; see `store::budgets` for why NORMAL is enough here.
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(|e| storage_error("setting budget pragmas", &e))?;
        Ok(SqliteBudgets {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // The connection holds no state of ours between calls; a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BudgetBackend for SqliteBudgets {
    fn charge(
        &self,
        origin: &str,
        ended_before: Option<u64>,
        decide: &mut Decide<'_>,
    ) -> crate::error::Result<Result<(), Refusal>> {
        let mut conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT window_start_ms, used FROM discovery_budgets WHERE origin = ?1",
                    [origin],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let (start, used) = match decide(row.map(|(s, u)| (from_sql(s), from_sql(u)))) {
                Ok(write) => write,
                // Nothing written: dropping the transaction rolls it back.
                Err(refusal) => return Ok(Err(refusal)),
            };
            tx.execute(
                "INSERT INTO discovery_budgets (origin, window_start_ms, used) VALUES (?1, ?2, ?3)
                 ON CONFLICT(origin) DO UPDATE SET window_start_ms = excluded.window_start_ms,
                                                   used = excluded.used",
                params![origin, to_sql(start), to_sql(used)],
            )?;
            // The index on window_start_ms finds ended windows without a scan.
            if let Some(ended_before) = ended_before {
                tx.execute(
                    "DELETE FROM discovery_budgets WHERE origin IN (
                         SELECT origin FROM discovery_budgets WHERE window_start_ms <= ?1 LIMIT ?2)",
                    params![to_sql(ended_before), PURGE_PER_CHARGE],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
        .map_err(|e| storage_error("charging a discovery budget", &e))
    }

    fn window(&self, origin: &str) -> crate::error::Result<Option<(u64, u64)>> {
        let conn = self.lock();
        let row: Option<(i64, i64)> = with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row(
                "SELECT window_start_ms, used FROM discovery_budgets WHERE origin = ?1",
                [origin],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })
        .map_err(|e| storage_error("reading a discovery budget", &e))?;
        Ok(row.map(|(s, u)| (from_sql(s), from_sql(u))))
    }

    fn stored_origins(&self) -> crate::error::Result<u64> {
        let conn = self.lock();
        with_retry_for(SHORT_RETRY_FOR, || {
            conn.query_row("SELECT count(*) FROM discovery_budgets", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map(from_sql)
        .map_err(|e| storage_error("counting budget windows", &e))
    }
}
