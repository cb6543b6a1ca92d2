//! The audit queue's rows in PostgreSQL (component `audits`, table `servership_pending_audits`).

use std::sync::Arc;

use postgres::types::ToSql;

use crate::error::Result;
use crate::store::PostgresUrl;
use crate::store::audits::AuditBackend;

use super::{Pool, conn, open_component, pg_error};

/// The component name in `servership_schema`.
pub(crate) const COMPONENT: &str = "audits";

/// Migrations (the tag store runs them too: it writes the queue in its own transactions). One
/// step where SQLite has two: PostgreSQL had no earlier release.
pub(crate) const MIGRATIONS: &[&str] = &["CREATE TABLE servership_pending_audits (
         room_id TEXT PRIMARY KEY NOT NULL,
         enqueued_ms BIGINT NOT NULL,
         due_ms BIGINT NOT NULL,
         attempts BIGINT NOT NULL DEFAULT 0,
         state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
         finished_ms BIGINT,
         verdict TEXT,
         report TEXT
     );
     CREATE INDEX servership_pending_audits_due ON servership_pending_audits (state, due_ms);
     CREATE INDEX servership_pending_audits_finished
         ON servership_pending_audits (state, finished_ms);"];

/// The statement that queues one room (nothing if it is already queued or done).
pub(crate) const ENQUEUE: &str = "INSERT INTO servership_pending_audits
         (room_id, enqueued_ms, due_ms, attempts, state) VALUES ($1, $2, $3, 0, 'pending')
     ON CONFLICT (room_id) DO NOTHING";

pub(crate) struct PgAudits {
    pool: Arc<Pool>,
}

impl PgAudits {
    pub(crate) fn open(url: &PostgresUrl) -> Result<PgAudits> {
        Ok(PgAudits {
            pool: open_component(url, COMPONENT, MIGRATIONS)?,
        })
    }

    fn execute(&self, doing: &str, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let mut c = conn(&self.pool, doing)?;
        c.execute(sql, params).map_err(|e| pg_error(doing, &e))
    }

    fn query(
        &self,
        doing: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        let mut c = conn(&self.pool, doing)?;
        c.query(sql, params).map_err(|e| pg_error(doing, &e))
    }

    /// The first column of the first row, if any.
    fn one<T: for<'a> postgres::types::FromSql<'a>>(
        &self,
        doing: &str,
        sql: &str,
        room_id: &str,
    ) -> Result<Option<T>> {
        let rows = self.query(doing, sql, &[&room_id])?;
        rows.first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(|e| pg_error(doing, &e))
    }
}

impl AuditBackend for PgAudits {
    fn enqueue(&self, room_id: &str, due_ms: i64, now_ms: i64) -> Result<bool> {
        Ok(self.execute("queueing an audit", ENQUEUE, &[&room_id, &now_ms, &due_ms])? == 1)
    }

    fn due(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        let doing = "listing due audits";
        let rows = self.query(
            doing,
            "SELECT room_id FROM servership_pending_audits
             WHERE state = 'pending' AND due_ms <= $1 ORDER BY due_ms, room_id LIMIT $2",
            &[&now_ms, &limit],
        )?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| pg_error(doing, &e))
    }

    fn finish(
        &self,
        room_id: &str,
        now_ms: i64,
        verdict: &str,
        report: Option<&str>,
    ) -> Result<bool> {
        Ok(self.execute(
            "finishing an audit",
            "UPDATE servership_pending_audits SET state = 'done', finished_ms = $2, verdict = $3,
                 report = $4
             WHERE room_id = $1 AND state = 'pending'",
            &[&room_id, &now_ms, &verdict, &report],
        )? == 1)
    }

    fn report(&self, room_id: &str) -> Result<Option<String>> {
        self.one::<Option<String>>(
            "reading an audit report",
            "SELECT report FROM servership_pending_audits WHERE room_id = $1 AND state = 'done'",
            room_id,
        )
        .map(Option::flatten)
    }

    fn attempts(&self, room_id: &str) -> Result<Option<i64>> {
        self.one(
            "reading an audit",
            "SELECT attempts FROM servership_pending_audits WHERE room_id = $1",
            room_id,
        )
    }

    fn postpone(&self, room_id: &str, due_ms: i64) -> Result<bool> {
        Ok(self.execute(
            "postponing an audit",
            "UPDATE servership_pending_audits SET due_ms = $2, attempts = attempts + 1
             WHERE room_id = $1 AND state = 'pending'",
            &[&room_id, &due_ms],
        )? == 1)
    }

    fn pending(&self) -> Result<Vec<(String, i64)>> {
        let doing = "listing pending audits";
        let rows = self.query(
            doing,
            "SELECT room_id, due_ms FROM servership_pending_audits WHERE state = 'pending'
             ORDER BY due_ms, room_id",
            &[],
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<std::result::Result<_, postgres::Error>>()
            .map_err(|e| pg_error(doing, &e))
    }

    fn finished_since(&self, since_ms: i64) -> Result<i64> {
        let doing = "counting finished audits";
        let rows = self.query(
            doing,
            "SELECT count(*) FROM servership_pending_audits
             WHERE state = 'done' AND finished_ms >= $1",
            &[&since_ms],
        )?;
        rows.first()
            .map(|r| r.try_get(0))
            .transpose()
            .map(Option::unwrap_or_default)
            .map_err(|e| pg_error(doing, &e))
    }

    fn state(&self, room_id: &str) -> Result<Option<String>> {
        self.one(
            "reading an audit",
            "SELECT state FROM servership_pending_audits WHERE room_id = $1",
            room_id,
        )
    }

    fn outcome(&self, room_id: &str) -> Result<Option<(Option<String>, Option<i64>)>> {
        let doing = "reading an audit";
        let rows = self.query(
            doing,
            "SELECT verdict, finished_ms FROM servership_pending_audits
             WHERE room_id = $1 AND state = 'done'",
            &[&room_id],
        )?;
        rows.first()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
            .map_err(|e: postgres::Error| pg_error(doing, &e))
    }
}
