//! The knock store's rows in PostgreSQL (component `knocks`, table `servership_server_knocks`).
//! A knock is a hint that expires: writes skip the flush (`synchronous_commit = off`), as SQLite's
//! use `synchronous = NORMAL`.

use std::sync::Arc;

use crate::error::Result;
use crate::store::PostgresUrl;
use crate::store::knocks::{KnockBackend, KnockRecord, KnockWrite, Recorded};

use super::{Pool, conn, open_component, pg_error};

const COMPONENT: &str = "knocks";

const MIGRATIONS: &[&str] = &["CREATE TABLE servership_server_knocks (
         room_id TEXT NOT NULL,
         server TEXT NOT NULL,
         first_seen_ms BIGINT NOT NULL,
         last_seen_ms BIGINT NOT NULL,
         times BIGINT NOT NULL,
         PRIMARY KEY (room_id, server)
     );
     CREATE INDEX servership_server_knocks_last_seen ON servership_server_knocks (last_seen_ms);
     CREATE INDEX servership_server_knocks_server_first_seen
         ON servership_server_knocks (server, first_seen_ms);"];

const COLUMNS: &str = "room_id, server, first_seen_ms, last_seen_ms, times";

fn to_record(row: &postgres::Row) -> std::result::Result<KnockRecord, postgres::Error> {
    Ok(KnockRecord {
        room_id: row.try_get(0)?,
        server: row.try_get(1)?,
        first_seen_ms: row.try_get(2)?,
        last_seen_ms: row.try_get(3)?,
        times: row.try_get(4)?,
    })
}

pub(crate) struct PgKnocks {
    pool: Arc<Pool>,
}

impl PgKnocks {
    pub(crate) fn open(url: &PostgresUrl) -> Result<PgKnocks> {
        Ok(PgKnocks {
            pool: open_component(url, COMPONENT, MIGRATIONS)?,
        })
    }
}

impl KnockBackend for PgKnocks {
    fn record(&self, k: &KnockWrite<'_>) -> Result<Recorded> {
        let doing = "recording a knock";
        let mut c = conn(&self.pool, doing)?;
        (|| {
            let mut tx = c.transaction()?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
            // One origin's knocks are counted and written one transaction at a time, so two
            // processes cannot both pass the cap's check.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('servership_knocks:' || $1, 0))",
                &[&k.server],
            )?;
            let live = tx
                .query_opt(
                    "SELECT 1 FROM servership_server_knocks
                     WHERE room_id = $1 AND server = $2 AND last_seen_ms >= $3",
                    &[&k.room_id, &k.server, &k.cutoff],
                )?
                .is_some();
            if !live {
                let row = tx.query_one(
                    "SELECT count(*), min(first_seen_ms) FROM servership_server_knocks
                     WHERE server = $1 AND first_seen_ms > $2",
                    &[&k.server, &k.window_start],
                )?;
                let count: i64 = row.try_get(0)?;
                let oldest: Option<i64> = row.try_get(1)?;
                if count >= k.cap {
                    return Ok(Recorded::over_cap(oldest, k));
                }
            }
            let row = tx.query_one(
                &format!(
                    "INSERT INTO servership_server_knocks AS k ({COLUMNS})
                     VALUES ($1, $2, $3, $3, 1)
                     ON CONFLICT (room_id, server) DO UPDATE SET
                         first_seen_ms = CASE WHEN k.last_seen_ms < $4 THEN $3
                                              ELSE k.first_seen_ms END,
                         times = CASE WHEN k.last_seen_ms < $4 THEN 1 ELSE k.times + 1 END,
                         last_seen_ms = GREATEST(k.last_seen_ms, $3)
                     RETURNING {COLUMNS}"
                ),
                &[&k.room_id, &k.server, &k.now_ms, &k.cutoff],
            )?;
            let record = to_record(&row)?;
            tx.commit()?;
            Ok(Recorded::Row(record))
        })()
        .map_err(|e| pg_error(doing, &e))
    }

    fn get(&self, room_id: &str, server: &str, cutoff: i64) -> Result<Option<KnockRecord>> {
        let doing = "reading a knock";
        let mut c = conn(&self.pool, doing)?;
        c.query_opt(
            &format!(
                "SELECT {COLUMNS} FROM servership_server_knocks
                 WHERE room_id = $1 AND server = $2 AND last_seen_ms >= $3"
            ),
            &[&room_id, &server, &cutoff],
        )
        .and_then(|row| row.as_ref().map(to_record).transpose())
        .map_err(|e| pg_error(doing, &e))
    }

    fn for_room(&self, room_id: &str, cutoff: i64) -> Result<Vec<KnockRecord>> {
        let doing = "listing knocks";
        let mut c = conn(&self.pool, doing)?;
        c.query(
            &format!(
                "SELECT {COLUMNS} FROM servership_server_knocks
                 WHERE room_id = $1 AND last_seen_ms >= $2 ORDER BY first_seen_ms, server"
            ),
            &[&room_id, &cutoff],
        )
        .and_then(|rows| rows.iter().map(to_record).collect())
        .map_err(|e| pg_error(doing, &e))
    }

    fn remove(&self, room_id: &str, server: &str) -> Result<bool> {
        let doing = "removing a knock";
        let mut c = conn(&self.pool, doing)?;
        c.execute(
            "DELETE FROM servership_server_knocks WHERE room_id = $1 AND server = $2",
            &[&room_id, &server],
        )
        .map(|n| n > 0)
        .map_err(|e| pg_error(doing, &e))
    }

    fn purge_batch(&self, cutoff: i64, max_rows: i64) -> Result<usize> {
        let doing = "purging expired knocks";
        let mut c = conn(&self.pool, doing)?;
        c.execute(
            "DELETE FROM servership_server_knocks WHERE (room_id, server) IN (
                 SELECT room_id, server FROM servership_server_knocks
                 WHERE last_seen_ms < $1 LIMIT $2)",
            &[&cutoff, &max_rows],
        )
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .map_err(|e| pg_error(doing, &e))
    }

    fn row_count(&self) -> Result<i64> {
        let doing = "counting knocks";
        let mut c = conn(&self.pool, doing)?;
        c.query_one("SELECT count(*) FROM servership_server_knocks", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| pg_error(doing, &e))
    }
}
