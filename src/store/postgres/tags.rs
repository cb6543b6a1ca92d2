//! The tag store's rows in PostgreSQL (component `tags`, tables `servership_tag_meta` and
//! `servership_participation_tags`).
//!
//! Row IDs come from a sequence, and every insert takes the tags advisory lock for the rest of its
//! transaction: the lock is released only after the commit is visible, so a row that commits
//! later always has a higher ID than every row already visible, and a reader's "rows above my
//! high-water mark" never skips one (see [`TagStore`](crate::store::TagStore)).

use std::sync::Arc;

use crate::discovery::index::{TagKey, key_of};
use crate::error::Result;
use crate::store::PostgresUrl;
use crate::store::tags::TagRows;

use super::{LOCK_CLASS, LOCK_TAGS, Pool, audits, conn, ensure_schema, pg_error, pool};

/// The component name in `servership_schema`.
pub(crate) const COMPONENT: &str = "tags";

pub(crate) const MIGRATIONS: &[&str] = &["CREATE TABLE servership_tag_meta (
         key TEXT PRIMARY KEY NOT NULL,
         value TEXT NOT NULL
     );
     CREATE TABLE servership_participation_tags (
         id BIGSERIAL PRIMARY KEY,
         room_id TEXT NOT NULL UNIQUE,
         tag BYTEA NOT NULL CHECK (length(tag) = 32),
         first_joined_ms BIGINT NOT NULL
     );"];

pub(crate) const INSERT: &str = "INSERT INTO servership_participation_tags
         (room_id, tag, first_joined_ms) VALUES ($1, $2, $3)
     ON CONFLICT (room_id) DO NOTHING";

/// Rows per statement in a backfill, and per query when loading the index.
const BATCH: usize = 1_000;
const LOAD_BATCH: i64 = 100_000;

/// Takes the tags advisory lock until the transaction ends.
pub(crate) const LOCK: &str = "SELECT pg_advisory_xact_lock($1, $2)";

pub(crate) struct PgTags {
    pool: Arc<Pool>,
}

impl PgTags {
    pub(crate) fn open(url: &PostgresUrl) -> Result<PgTags> {
        let pool = pool(url)?;
        let mut c = conn(&pool, "opening the tag store")?;
        ensure_schema(&mut c, COMPONENT, MIGRATIONS)?;
        // The audit queue is written by `record_join_and_queue_audit` in the tags' transaction.
        ensure_schema(&mut c, audits::COMPONENT, audits::MIGRATIONS)?;
        Ok(PgTags { pool })
    }
}

impl TagRows for PgTags {
    fn claim_server_name(&mut self, server_name: &str) -> Result<String> {
        let doing = "recording the server name";
        let mut c = conn(&self.pool, doing)?;
        (|| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO servership_tag_meta (key, value) VALUES ('server_name', $1)
                 ON CONFLICT (key) DO NOTHING",
                &[&server_name],
            )?;
            let row = tx.query_one(
                "SELECT value FROM servership_tag_meta WHERE key = 'server_name'",
                &[],
            )?;
            let stored: String = row.try_get(0)?;
            tx.commit()?;
            Ok(stored)
        })()
        .map_err(|e| pg_error(doing, &e))
    }

    fn insert(
        &mut self,
        room_id: &str,
        tag: &[u8; 32],
        joined_at_ms: i64,
        audit_due_ms: Option<i64>,
    ) -> Result<bool> {
        let doing = if audit_due_ms.is_some() {
            "recording a join and queueing its audit"
        } else {
            "recording a join"
        };
        let mut c = conn(&self.pool, doing)?;
        (|| {
            let mut tx = c.transaction()?;
            tx.execute(LOCK, &[&LOCK_CLASS, &LOCK_TAGS])?;
            let added = tx.execute(INSERT, &[&room_id, &tag.as_slice(), &joined_at_ms])? == 1;
            if let (true, Some(due)) = (added, audit_due_ms) {
                tx.execute(audits::ENQUEUE, &[&room_id, &joined_at_ms, &due])?;
            }
            tx.commit()?;
            Ok(added)
        })()
        .map_err(|e| pg_error(doing, &e))
    }

    fn insert_many(&mut self, rows: &[(&str, [u8; 32])], joined_at_ms: i64) -> Result<usize> {
        let doing = "backfilling rooms";
        let mut c = conn(&self.pool, doing)?;
        (|| {
            let mut tx = c.transaction()?;
            // A backfill of a large server is one long transaction; each statement is short.
            tx.batch_execute("SET LOCAL statement_timeout = 60000; SET LOCAL lock_timeout = 30000;")?;
            tx.execute(LOCK, &[&LOCK_CLASS, &LOCK_TAGS])?;
            let mut added = 0usize;
            for chunk in rows.chunks(BATCH) {
                let rooms: Vec<&str> = chunk.iter().map(|(r, _)| *r).collect();
                let tags: Vec<&[u8]> = chunk.iter().map(|(_, t)| t.as_slice()).collect();
                let n = tx.execute(
                    "INSERT INTO servership_participation_tags (room_id, tag, first_joined_ms)
                     SELECT r, t, $3 FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS u(r, t, n)
                     ORDER BY n
                     ON CONFLICT (room_id) DO NOTHING",
                    &[&rooms, &tags, &joined_at_ms],
                )?;
                added += usize::try_from(n).unwrap_or(usize::MAX);
            }
            tx.commit()?;
            Ok(added)
        })()
        .map_err(|e| pg_error(doing, &e))
    }

    fn may_have_changed(&mut self) -> Result<bool> {
        // There is no cheap change counter: the catch-up query below is the check (an index
        // range scan that finds nothing, one round trip).
        Ok(true)
    }

    fn rows_after(&mut self, after: i64) -> Result<(i64, Vec<TagKey>)> {
        let doing = "loading new tags";
        let mut c = conn(&self.pool, doing)?;
        let mut high = after;
        let mut tags = Vec::new();
        loop {
            let rows = c
                .query(
                    "SELECT id, tag FROM servership_participation_tags WHERE id > $1
                     ORDER BY id LIMIT $2",
                    &[&high, &LOAD_BATCH],
                )
                .map_err(|e| pg_error(doing, &e))?;
            for row in &rows {
                let id: i64 = row.try_get(0).map_err(|e| pg_error(doing, &e))?;
                let tag: &[u8] = row.try_get(1).map_err(|e| pg_error(doing, &e))?;
                // The CHECK constraint keeps tags at 32 bytes; anything else is skipped.
                if let Ok(tag) = <[u8; 32]>::try_from(tag) {
                    tags.push(key_of(&tag));
                }
                high = high.max(id);
            }
            if i64::try_from(rows.len()).unwrap_or(i64::MAX) < LOAD_BATCH {
                return Ok((high, tags));
            }
        }
    }

    fn rooms(&mut self) -> Result<Vec<(String, i64)>> {
        let doing = "listing rooms";
        let mut c = conn(&self.pool, doing)?;
        let rows = c
            .query(
                "SELECT room_id, first_joined_ms FROM servership_participation_tags ORDER BY id",
                &[],
            )
            .map_err(|e| pg_error(doing, &e))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<std::result::Result<_, postgres::Error>>()
            .map_err(|e| pg_error(doing, &e))
    }

    fn first_joined(&mut self, room_id: &str) -> Result<Option<i64>> {
        let doing = "reading a room";
        let mut c = conn(&self.pool, doing)?;
        c.query_opt(
            "SELECT first_joined_ms FROM servership_participation_tags WHERE room_id = $1",
            &[&room_id],
        )
        .and_then(|row| row.map(|r| r.try_get(0)).transpose())
        .map_err(|e| pg_error(doing, &e))
    }
}
