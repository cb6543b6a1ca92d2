//! Discovery budget windows in PostgreSQL (component `budgets`, table
//! `servership_discovery_budgets`). A charge locks the origin's row (`FOR UPDATE`), so charges
//! from every process are serialised per origin; windows are not flushed to disk before the
//! answer (`synchronous_commit = off`), as on SQLite.

use std::sync::Arc;

use crate::error::Result;
use crate::store::PostgresUrl;
use crate::store::budgets::{BudgetBackend, Decide, PURGE_PER_CHARGE, Refusal, from_sql, to_sql};

use super::{Pool, conn, open_component, pg_error};

const COMPONENT: &str = "budgets";

const MIGRATIONS: &[&str] = &["CREATE TABLE servership_discovery_budgets (
         origin TEXT PRIMARY KEY NOT NULL,
         window_start_ms BIGINT NOT NULL,
         used BIGINT NOT NULL
     );
     CREATE INDEX servership_discovery_budgets_window
         ON servership_discovery_budgets (window_start_ms);"];

pub(crate) struct PgBudgets {
    pool: Arc<Pool>,
}

impl PgBudgets {
    pub(crate) fn open(url: &PostgresUrl) -> Result<PgBudgets> {
        Ok(PgBudgets {
            pool: open_component(url, COMPONENT, MIGRATIONS)?,
        })
    }
}

impl BudgetBackend for PgBudgets {
    fn charge(
        &self,
        origin: &str,
        ended_before: Option<u64>,
        decide: &mut Decide<'_>,
    ) -> Result<std::result::Result<(), Refusal>> {
        let doing = "charging a discovery budget";
        let mut c = conn(&self.pool, doing)?;
        (|| {
            let mut tx = c.transaction()?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
            // Make sure the row exists, so `FOR UPDATE` has something to lock even for an origin
            // that two processes see for the first time at once.
            tx.execute(
                "INSERT INTO servership_discovery_budgets (origin, window_start_ms, used)
                 VALUES ($1, 0, 0) ON CONFLICT (origin) DO NOTHING",
                &[&origin],
            )?;
            let row = tx.query_one(
                "SELECT window_start_ms, used FROM servership_discovery_budgets
                 WHERE origin = $1 FOR UPDATE",
                &[&origin],
            )?;
            let (start, used): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            // A row made just now (start 0, nothing used) is no window at all.
            let current = (start != 0 || used != 0).then(|| (from_sql(start), from_sql(used)));
            let (start, used) = match decide(current) {
                Ok(write) => write,
                // Nothing kept: dropping the transaction rolls it back.
                Err(refusal) => return Ok(Err(refusal)),
            };
            tx.execute(
                "UPDATE servership_discovery_budgets SET window_start_ms = $2, used = $3
                 WHERE origin = $1",
                &[&origin, &to_sql(start), &to_sql(used)],
            )?;
            if let Some(ended_before) = ended_before {
                // Rows another charge holds are skipped, never waited for.
                tx.execute(
                    "DELETE FROM servership_discovery_budgets WHERE origin IN (
                         SELECT origin FROM servership_discovery_budgets
                         WHERE window_start_ms <= $1 AND origin <> $2
                         LIMIT $3 FOR UPDATE SKIP LOCKED)",
                    &[&to_sql(ended_before), &origin, &PURGE_PER_CHARGE],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })()
        .map_err(|e| pg_error(doing, &e))
    }

    fn window(&self, origin: &str) -> Result<Option<(u64, u64)>> {
        let doing = "reading a discovery budget";
        let mut c = conn(&self.pool, doing)?;
        let row = c
            .query_opt(
                "SELECT window_start_ms, used FROM servership_discovery_budgets WHERE origin = $1",
                &[&origin],
            )
            .map_err(|e| pg_error(doing, &e))?;
        row.map(|r| Ok((from_sql(r.try_get(0)?), from_sql(r.try_get(1)?))))
            .transpose()
            .map_err(|e: postgres::Error| pg_error(doing, &e))
    }

    fn stored_origins(&self) -> Result<u64> {
        let doing = "counting budget windows";
        let mut c = conn(&self.pool, doing)?;
        c.query_one("SELECT count(*) FROM servership_discovery_budgets", &[])
            .and_then(|row| row.try_get::<_, i64>(0))
            .map(from_sql)
            .map_err(|e| pg_error(doing, &e))
    }
}
