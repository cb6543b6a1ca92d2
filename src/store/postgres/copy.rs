//! Moving a server from the SQLite store to PostgreSQL: [`copy_sqlite_to_postgres`] copies tags
//! (with their first-joined times, in their recorded order), the audit queue and unexpired knocks.
//! Budget windows are not copied: they last one window and start afresh harmlessly.
//!
//! Idempotent: every row is inserted with `ON CONFLICT DO NOTHING`, so a second run (or a run
//! after the new store already recorded rooms) copies only what is missing. The SQLite file is
//! opened read-only and never changed.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::discovery::Tagger;
use crate::error::{Error, Result};
use crate::store::{KnockStore, Location, PostgresUrl, TagStore, storage_error};

use super::{LOCK_CLASS, LOCK_TAGS, conn, pg_error, pool, tags};

/// Rows read and written per batch.
const BATCH: usize = 1_000;

/// What [`copy_sqlite_to_postgres`] found and copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Tags in the SQLite file.
    pub tags_read: u64,
    /// Tags that were not yet in PostgreSQL.
    pub tags_copied: u64,
    /// Audit queue rows in the SQLite file.
    pub audits_read: u64,
    /// Audit rows copied.
    pub audits_copied: u64,
    /// Knock rows in the SQLite file.
    pub knocks_read: u64,
    /// Knock rows copied.
    pub knocks_copied: u64,
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(|e| storage_error("reading the SQLite schema", &e))
}

/// Copies the SQLite store at `from` into the PostgreSQL database at `to` (creating servership's
/// tables there if needed). Fails before writing anything if the file does not exist, has no
/// server name, or PostgreSQL already belongs to another server name.
pub fn copy_sqlite_to_postgres(from: &Path, to: &PostgresUrl) -> Result<CopyReport> {
    if !from.is_file() {
        return Err(Error::invalid_param(format!(
            "{} is not an SQLite store file",
            from.display()
        )));
    }
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| storage_error(&format!("opening {}", from.display()), &e))?;
    src.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| storage_error("setting busy timeout", &e))?;
    let mut report = CopyReport::default();
    let pg = pool(to)?;
    if has_table(&src, "participation_tag_meta")? {
        let server_name: String = src
            .query_row(
                "SELECT value FROM participation_tag_meta WHERE key = 'server_name'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| storage_error("reading the SQLite store's server name", &e))?;
        // Creates the tables (tags and audits) and refuses a database of another server.
        drop(TagStore::open(
            Location::Postgres(to.clone()),
            &server_name,
        )?);
        copy_tags(&src, &pg, &Tagger::new(&server_name), &mut report)?;
    }
    if has_table(&src, "pending_audits")? {
        drop(crate::store::AuditQueue::open(Location::Postgres(
            to.clone(),
        ))?);
        copy_audits(&src, &pg, &mut report)?;
    }
    if has_table(&src, "server_knocks")? {
        drop(KnockStore::open(
            Location::Postgres(to.clone()),
            std::time::Duration::ZERO,
        )?);
        copy_knocks(&src, &pg, &mut report)?;
    }
    Ok(report)
}

fn copy_tags(
    src: &Connection,
    pg: &super::Pool,
    tagger: &Tagger,
    report: &mut CopyReport,
) -> Result<()> {
    let rows: Vec<(String, i64)> = (|| -> rusqlite::Result<_> {
        let mut stmt =
            src.prepare("SELECT room_id, first_joined_ms FROM participation_tags ORDER BY id")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    })()
    .map_err(|e| storage_error("reading tags from SQLite", &e))?;
    report.tags_read = rows.len() as u64;
    let doing = "copying tags";
    let mut c = conn(pg, doing)?;
    (|| {
        let mut tx = c.transaction()?;
        tx.batch_execute("SET LOCAL statement_timeout = 60000; SET LOCAL lock_timeout = 30000;")?;
        tx.execute(tags::LOCK, &[&LOCK_CLASS, &LOCK_TAGS])?;
        for chunk in rows.chunks(BATCH) {
            let rooms: Vec<&str> = chunk.iter().map(|(r, _)| r.as_str()).collect();
            // Recomputed, not copied: a tag is a function of the room and the server name.
            let tags: Vec<Vec<u8>> = tagger
                .tag_all(&rooms)
                .into_iter()
                .map(|t| t.0.to_vec())
                .collect();
            let times: Vec<i64> = chunk.iter().map(|(_, t)| *t).collect();
            let n = tx.execute(
                "INSERT INTO servership_participation_tags (room_id, tag, first_joined_ms)
                 SELECT r, t, j FROM unnest($1::text[], $2::bytea[], $3::bigint[])
                     WITH ORDINALITY AS u(r, t, j, n)
                 ORDER BY n
                 ON CONFLICT (room_id) DO NOTHING",
                &[&rooms, &tags, &times],
            )?;
            report.tags_copied += n;
        }
        tx.commit()
    })()
    .map_err(|e| pg_error(doing, &e))
}

type AuditRow = (
    String,
    i64,
    i64,
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn copy_audits(src: &Connection, pg: &super::Pool, report: &mut CopyReport) -> Result<()> {
    let has_report = src
        .prepare("SELECT report FROM pending_audits LIMIT 0")
        .is_ok();
    let sql = format!(
        "SELECT room_id, enqueued_ms, due_ms, attempts, state, finished_ms, verdict, {} \
         FROM pending_audits ORDER BY room_id",
        if has_report { "report" } else { "NULL" }
    );
    let rows: Vec<AuditRow> = (|| -> rusqlite::Result<_> {
        let mut stmt = src.prepare(&sql)?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })?;
        rows.collect()
    })()
    .map_err(|e| storage_error("reading the audit queue from SQLite", &e))?;
    report.audits_read = rows.len() as u64;
    let doing = "copying the audit queue";
    let mut c = conn(pg, doing)?;
    (|| {
        let mut tx = c.transaction()?;
        let insert = tx.prepare(
            "INSERT INTO servership_pending_audits
                 (room_id, enqueued_ms, due_ms, attempts, state, finished_ms, verdict, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (room_id) DO NOTHING",
        )?;
        for (room, enq, due, attempts, state, fin, verdict, rep) in &rows {
            report.audits_copied += tx.execute(
                &insert,
                &[room, enq, due, attempts, state, fin, verdict, rep],
            )?;
        }
        tx.commit()
    })()
    .map_err(|e| pg_error(doing, &e))?;
    Ok(())
}

fn copy_knocks(src: &Connection, pg: &super::Pool, report: &mut CopyReport) -> Result<()> {
    let rows: Vec<(String, String, i64, i64, i64)> = (|| -> rusqlite::Result<_> {
        let mut stmt = src.prepare(
            "SELECT room_id, server, first_seen_ms, last_seen_ms, times FROM server_knocks
             ORDER BY room_id, server",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?;
        rows.collect()
    })()
    .map_err(|e| storage_error("reading knocks from SQLite", &e))?;
    report.knocks_read = rows.len() as u64;
    let doing = "copying knocks";
    let mut c = conn(pg, doing)?;
    (|| {
        let mut tx = c.transaction()?;
        let insert = tx.prepare(
            "INSERT INTO servership_server_knocks
                 (room_id, server, first_seen_ms, last_seen_ms, times)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room_id, server) DO NOTHING",
        )?;
        for (room, server, first, last, times) in &rows {
            // PostgreSQL text cannot hold NUL; such a row is no real knock.
            if room.contains('\0') || server.contains('\0') {
                continue;
            }
            report.knocks_copied += tx.execute(&insert, &[room, server, first, last, times])?;
        }
        tx.commit()
    })()
    .map_err(|e| pg_error(doing, &e))
}
