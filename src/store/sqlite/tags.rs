//! The tag store's rows in the SQLite file (component `tags`, tables `participation_tag_meta` and
//! `participation_tags`); the index over them is [`TagStore`](crate::store::TagStore)'s.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::discovery::index::{TagKey, key_of};
use crate::error::Result;
use crate::store::tags::TagRows;

use super::{audits, ensure_schema, open_connection, storage_error, with_retry};

/// The component name in `servership_schema`.
const COMPONENT: &str = "tags";

/// Migrations of this component's tables (see [`ensure_schema`]).
const MIGRATIONS: &[&str] = &["CREATE TABLE participation_tag_meta (
         key TEXT PRIMARY KEY NOT NULL,
         value TEXT NOT NULL
     );
     CREATE TABLE participation_tags (
         id INTEGER PRIMARY KEY,
         room_id TEXT NOT NULL UNIQUE,
         tag BLOB NOT NULL,
         first_joined_ms INTEGER NOT NULL
     );"];

const INSERT: &str = "INSERT INTO participation_tags (room_id, tag, first_joined_ms)
     VALUES (?1, ?2, ?3) ON CONFLICT(room_id) DO NOTHING";

/// One connection to the file, with the `PRAGMA data_version` last seen.
pub(crate) struct SqliteTags {
    conn: Connection,
    data_version: i64,
}

impl SqliteTags {
    pub(crate) fn open(path: &Path) -> Result<SqliteTags> {
        let mut conn = open_connection(path)?;
        ensure_schema(&mut conn, COMPONENT, MIGRATIONS)?;
        // The audit queue lives in the same file and is written by `record_join_and_queue_audit`.
        ensure_schema(&mut conn, audits::COMPONENT, audits::MIGRATIONS)?;
        Ok(SqliteTags {
            conn,
            data_version: 0,
        })
    }

    fn data_version(&self) -> Result<i64> {
        with_retry(|| {
            self.conn
                .query_row("PRAGMA data_version", [], |row| row.get(0))
        })
        .map_err(|e| storage_error("checking for new tags", &e))
    }
}

impl TagRows for SqliteTags {
    fn claim_server_name(&mut self, server_name: &str) -> Result<String> {
        let conn = &mut self.conn;
        with_retry(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO participation_tag_meta (key, value) VALUES ('server_name', ?1)
                 ON CONFLICT(key) DO NOTHING",
                [server_name],
            )?;
            let stored = tx.query_row(
                "SELECT value FROM participation_tag_meta WHERE key = 'server_name'",
                [],
                |row| row.get(0),
            )?;
            tx.commit()?;
            Ok(stored)
        })
        .map_err(|e| storage_error("recording the server name", &e))
    }

    fn insert(
        &mut self,
        room_id: &str,
        tag: &[u8; 32],
        joined_at_ms: i64,
        audit_due_ms: Option<i64>,
    ) -> Result<bool> {
        let conn = &mut self.conn;
        let Some(due) = audit_due_ms else {
            let added =
                with_retry(|| conn.execute(INSERT, params![room_id, tag.as_slice(), joined_at_ms]))
                    .map_err(|e| storage_error("recording a join", &e))?;
            return Ok(added == 1);
        };
        with_retry(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let added = tx.execute(INSERT, params![room_id, tag.as_slice(), joined_at_ms])?;
            if added == 1 {
                tx.execute(audits::ENQUEUE, params![room_id, joined_at_ms, due])?;
            }
            tx.commit()?;
            Ok(added == 1)
        })
        .map_err(|e| storage_error("recording a join and queueing its audit", &e))
    }

    fn insert_many(&mut self, rows: &[(&str, [u8; 32])], joined_at_ms: i64) -> Result<usize> {
        let conn = &mut self.conn;
        with_retry(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut added = 0usize;
            {
                let mut insert = tx.prepare_cached(INSERT)?;
                for (room_id, tag) in rows {
                    added += insert.execute(params![room_id, tag.as_slice(), joined_at_ms])?;
                }
            }
            tx.commit()?;
            Ok(added)
        })
        .map_err(|e| storage_error("backfilling rooms", &e))
    }

    fn may_have_changed(&mut self) -> Result<bool> {
        // Other connections' commits change `data_version`; our own do not, but every write of
        // ours is followed by a forced refresh.
        Ok(self.data_version()? != self.data_version)
    }

    fn rows_after(&mut self, after: i64) -> Result<(i64, Vec<TagKey>)> {
        // Read the version first: a commit landing between the two reads is loaded now and seen
        // again as a change next time, which is harmless.
        let version = self.data_version()?;
        let loaded = with_retry(|| {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, tag FROM participation_tags WHERE id > ?1 ORDER BY id",
            )?;
            let mut rows = stmt.query([after])?;
            let mut high = after;
            let mut tags = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let tag = row.get_ref(1)?.as_blob()?;
                // Only this module writes the table, always 32 bytes; anything else is skipped.
                if let Ok(tag) = <[u8; 32]>::try_from(tag) {
                    tags.push(key_of(&tag));
                }
                high = high.max(id);
            }
            Ok((high, tags))
        })
        .map_err(|e| storage_error("loading new tags", &e))?;
        self.data_version = version;
        Ok(loaded)
    }

    fn rooms(&mut self) -> Result<Vec<(String, i64)>> {
        with_retry(|| {
            let mut stmt = self.conn.prepare_cached(
                "SELECT room_id, first_joined_ms FROM participation_tags ORDER BY id",
            )?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .map_err(|e| storage_error("listing rooms", &e))
    }

    fn first_joined(&mut self, room_id: &str) -> Result<Option<i64>> {
        with_retry(|| {
            self.conn
                .query_row(
                    "SELECT first_joined_ms FROM participation_tags WHERE room_id = ?1",
                    [room_id],
                    |row| row.get(0),
                )
                .optional()
        })
        .map_err(|e| storage_error("reading a room", &e))
    }
}
