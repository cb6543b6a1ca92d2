//! The permanent store of this server's room participation tags (MSC4358, DESIGN.md §1).
//!
//! A server records its tag for a room the first time it joins (through a local user or its
//! pseudouser) and keeps it for ever: leaving or being banned does not remove it, and there is
//! deliberately no delete call. Each record keeps the room ID and the first-joined time.
//!
//! Guarantees:
//! - **Durable**: every write is committed (WAL, `synchronous = FULL`) before the call returns, so
//!   an acknowledged write survives `kill -9` of the process right after.
//! - **Shared**: several processes (Synapse workers) may open the same file and write at once;
//!   busy files are retried ([`with_retry`]), so callers never see "database is locked".
//! - **Fresh**: membership questions are answered from an in-memory index. Before answering, the
//!   store asks SQLite whether another connection committed since (`PRAGMA data_version`) and, if
//!   so, loads only the rows after the highest row ID it has seen. Rows are never deleted and a
//!   later commit always gets higher row IDs (SQLite has one writer at a time and assigns
//!   `max(rowid) + 1`), so "rows above the high-water mark" is exactly what is new.
//! - **Compact and fast**: the index is a sorted `Vec<[u8; 32]>` cut into buckets by the tags'
//!   leading bits (36 bytes a tag, one or two memory reads a lookup) plus a small hash-set tail
//!   of recent additions that is merged into the sorted part once it grows past 1/32 of it.
//! - **Bound to one server name**: tags depend on the name, so the file remembers it and refuses to
//!   open under another.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::discovery::{ParticipationTag, Tagger};
use crate::error::{Error, Result};
use crate::store::{audits, ensure_schema, open_connection, storage_error, with_retry};

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

/// The smallest tail size that triggers a merge, so small stores do not merge on every write.
const MIN_TAIL_BEFORE_MERGE: usize = 1024;

/// Longest room ID accepted, in bytes: the Matrix limit for identifiers.
const MAX_ROOM_ID_BYTES: usize = 255;

/// A server's permanent set of room participation tags, in its own SQLite file.
///
/// `TagStore` is `Send + Sync`: one handle may be shared between threads (calls are serialised by
/// an internal lock), and several handles or processes may share one file.
pub struct TagStore {
    inner: Mutex<Inner>,
    tagger: Tagger,
    path: PathBuf,
}

struct Inner {
    conn: Connection,
    index: TagIndex,
    /// Highest `participation_tags.id` loaded into `index`.
    high_water: i64,
    /// `PRAGMA data_version` when `index` was last brought up to date.
    data_version: i64,
}

/// The in-memory set of tags.
///
/// Tags are HMAC outputs, so their bytes are uniformly spread. The sorted vector is cut into
/// 2^`bits` buckets by the tag's leading bits, with about one tag per bucket; `starts[b]` is
/// where bucket `b` begins. A lookup reads `starts` and then one or two entries, instead of the
/// twenty dependent cache misses of a binary search over 32 MB. [`TagIndex::contains_all`] does
/// the two reads in two separate passes over the whole batch, so the processor overlaps the
/// misses of many lookups. Memory: 32 bytes a tag plus 4 bytes a bucket.
#[derive(Default)]
struct TagIndex {
    sorted: Vec<[u8; 32]>,
    /// `starts[b]..starts[b + 1]` is bucket `b` of `sorted`; `1 << bits` buckets, plus one end.
    starts: Vec<u32>,
    bits: u32,
    tail: HashSet<[u8; 32], TagHashBuilder>,
}

/// Hashes a tag by its first eight bytes. The tail only ever holds this server's own tags
/// (HMAC outputs nobody else can choose), so their bytes are already a good hash.
#[derive(Default, Clone, Copy)]
pub(crate) struct TagHashBuilder;

/// The hasher behind [`TagHashBuilder`].
#[derive(Default)]
pub(crate) struct TagHasher(u64);

impl std::hash::BuildHasher for TagHashBuilder {
    type Hasher = TagHasher;
    fn build_hasher(&self) -> TagHasher {
        TagHasher(0)
    }
}

impl std::hash::Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length (a usize) then its bytes; keep the first 8 tag bytes.
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_usize(&mut self, _length: usize) {}
}

impl TagIndex {
    fn bucket(&self, tag: &[u8; 32]) -> usize {
        if self.bits == 0 {
            return 0;
        }
        let prefix = u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]]);
        (prefix >> (32 - self.bits)) as usize
    }

    /// The part of `sorted` where `tag` would be.
    fn range(&self, tag: &[u8; 32]) -> std::ops::Range<usize> {
        let b = self.bucket(tag);
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&lo), Some(&hi)) => lo as usize..hi as usize,
            _ => 0..self.sorted.len(),
        }
    }

    fn contains(&self, tag: &[u8; 32]) -> bool {
        let range = self.range(tag);
        self.sorted
            .get(range)
            .is_some_and(|bucket| bucket.contains(tag))
            || (!self.tail.is_empty() && self.tail.contains(tag))
    }

    /// [`TagIndex::contains`] for a batch, in two passes (bucket bounds, then entries) so that the
    /// cache misses of different lookups overlap instead of queueing behind each other.
    fn contains_all(&self, tags: &[ParticipationTag]) -> Vec<bool> {
        let ranges: Vec<std::ops::Range<usize>> = tags.iter().map(|t| self.range(&t.0)).collect();
        tags.iter()
            .zip(ranges)
            .map(|(t, range)| {
                self.sorted
                    .get(range)
                    .is_some_and(|bucket| bucket.contains(&t.0))
                    || (!self.tail.is_empty() && self.tail.contains(&t.0))
            })
            .collect()
    }

    fn insert(&mut self, tag: [u8; 32]) {
        if !self.contains(&tag) {
            self.tail.insert(tag);
        }
    }

    fn len(&self) -> usize {
        self.sorted.len() + self.tail.len()
    }

    /// Adds many tags at once: small batches go to the tail, large ones (such as the whole
    /// store at open) are sorted straight into the main vector.
    fn extend(&mut self, tags: Vec<[u8; 32]>) {
        if tags.len() < MIN_TAIL_BEFORE_MERGE {
            for tag in tags {
                self.insert(tag);
            }
            return;
        }
        self.sorted.reserve_exact(tags.len() + self.tail.len());
        self.sorted.extend(self.tail.drain());
        self.sorted.extend(tags);
        self.sorted.sort_unstable();
        self.sorted.dedup();
        self.tail.shrink_to(MIN_TAIL_BEFORE_MERGE);
        self.rebuild_buckets();
    }

    fn merge_if_due(&mut self) {
        if self.tail.len() >= MIN_TAIL_BEFORE_MERGE.max(self.sorted.len() / 32) {
            self.merge();
        }
    }

    fn merge(&mut self) {
        // Tail entries are never in `sorted` (see `insert`), so appending and sorting is a merge.
        self.sorted.reserve_exact(self.tail.len());
        self.sorted.extend(self.tail.drain());
        self.sorted.sort_unstable();
        self.tail.shrink_to(MIN_TAIL_BEFORE_MERGE);
        self.rebuild_buckets();
    }

    /// Recomputes `starts` for the current `sorted`: about one tag a bucket, at most 2^24 buckets.
    fn rebuild_buckets(&mut self) {
        let n = self.sorted.len();
        self.bits = if n < 2 { 0 } else { n.ilog2().min(24) };
        let buckets = 1usize << self.bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..buckets {
            while i < n && self.sorted.get(i).is_some_and(|t| self.bucket(t) < b) {
                i += 1;
            }
            starts.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
        starts.push(u32::try_from(n).unwrap_or(u32::MAX));
        self.starts = starts;
        // More than 4 billion tags would overflow the u32 bounds: fall back to one bucket.
        if n > u32::MAX as usize {
            self.bits = 0;
            self.starts = Vec::new();
        }
    }

    fn bytes(&self) -> usize {
        // hashbrown: one control byte per bucket plus the value, buckets = capacity * 8 / 7.
        let tail_buckets = self.tail.capacity().saturating_mul(8) / 7;
        self.sorted.capacity() * 32 + self.starts.capacity() * 4 + tail_buckets * 33
    }
}

impl TagStore {
    /// Opens (creating if needed) the tag store at `path` for `server_name`.
    ///
    /// Fails if the file was created for another server name: its tags would all be wrong.
    pub fn open(path: impl AsRef<Path>, server_name: &str) -> Result<TagStore> {
        if server_name.is_empty() || server_name.len() > MAX_ROOM_ID_BYTES {
            return Err(Error::invalid_param(
                "server_name must be between 1 and 255 bytes",
            ));
        }
        let mut conn = open_connection(path.as_ref())?;
        ensure_schema(&mut conn, COMPONENT, MIGRATIONS)?;
        // The audit queue lives in the same file and is written by `record_join_and_queue_audit`.
        ensure_schema(&mut conn, audits::COMPONENT, audits::MIGRATIONS)?;
        let stored: String = with_retry(|| {
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
        .map_err(|e| storage_error("recording the server name", &e))?;
        if stored != server_name {
            return Err(Error::invalid_param(format!(
                "the tag store at {} belongs to server {stored:?}, not {server_name:?}; \
                 participation tags depend on the server name",
                path.as_ref().display()
            )));
        }
        let mut inner = Inner {
            conn,
            index: TagIndex::default(),
            high_water: 0,
            data_version: 0,
        };
        inner.refresh(true)?;
        Ok(TagStore {
            inner: Mutex::new(inner),
            tagger: Tagger::new(server_name),
            path: path.as_ref().to_path_buf(),
        })
    }

    /// The file the store lives in, as given to [`TagStore::open`] (other components, such as
    /// [`SqliteBudget`](crate::store::SqliteBudget) and [`AuditQueue`](crate::store::AuditQueue),
    /// may open it too).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The server name this store is bound to.
    pub fn server_name(&self) -> &str {
        self.tagger.server_name()
    }

    /// The tagger for this store's server name.
    pub fn tagger(&self) -> &Tagger {
        &self.tagger
    }

    /// Records that this server joined `room_id` at `joined_at_ms` (milliseconds since the epoch).
    /// Returns `true` if the room is new; a room already recorded keeps its first-joined time.
    /// The write is durable when this returns.
    pub fn record_join(&self, room_id: &str, joined_at_ms: i64) -> Result<bool> {
        check_room_id(room_id).map_err(|e| e.at("room_id"))?;
        let tag = self.tagger.tag(room_id);
        let mut inner = self.lock();
        let added = with_retry(|| {
            inner.conn.execute(
                "INSERT INTO participation_tags (room_id, tag, first_joined_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(room_id) DO NOTHING",
                params![room_id, tag.0.as_slice(), joined_at_ms],
            )
        })
        .map_err(|e| storage_error("recording a join", &e))?;
        // Our own commit does not change our `data_version`; load the new rows explicitly.
        inner.refresh(true)?;
        Ok(added == 1)
    }

    /// [`TagStore::record_join`], and, only if the room is new, queues its post-join audit due at
    /// `audit_due_ms` in the [`AuditQueue`](crate::store::AuditQueue) of the same file, in one
    /// transaction: a crash can never leave a new tag without its audit, and a room already
    /// recorded is never queued again. Returns `true` if the room is new.
    pub fn record_join_and_queue_audit(
        &self,
        room_id: &str,
        joined_at_ms: i64,
        audit_due_ms: i64,
    ) -> Result<bool> {
        check_room_id(room_id).map_err(|e| e.at("room_id"))?;
        let tag = self.tagger.tag(room_id);
        let mut inner = self.lock();
        let added = with_retry(|| {
            let tx = inner
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let added = tx.execute(
                "INSERT INTO participation_tags (room_id, tag, first_joined_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(room_id) DO NOTHING",
                params![room_id, tag.0.as_slice(), joined_at_ms],
            )?;
            if added == 1 {
                tx.execute(
                    audits::ENQUEUE,
                    params![room_id, joined_at_ms, audit_due_ms],
                )?;
            }
            tx.commit()?;
            Ok(added == 1)
        })
        .map_err(|e| storage_error("recording a join and queueing its audit", &e))?;
        inner.refresh(true)?;
        Ok(added)
    }

    /// Records many rooms at once (e.g. every room the homeserver is in when the store is first
    /// installed), in one transaction, all with first-joined time `now_ms`. Returns how many were
    /// new. Either all are recorded or, on error, none.
    pub fn backfill<S: AsRef<str>>(&self, room_ids: &[S], now_ms: i64) -> Result<usize> {
        for (i, room_id) in room_ids.iter().enumerate() {
            check_room_id(room_id.as_ref()).map_err(|e| e.at(&format!("room_ids[{i}]")))?;
        }
        let tags = self.tagger.tag_all(room_ids);
        let mut inner = self.lock();
        let added = with_retry(|| {
            let tx = inner
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut added = 0usize;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO participation_tags (room_id, tag, first_joined_ms)
                     VALUES (?1, ?2, ?3) ON CONFLICT(room_id) DO NOTHING",
                )?;
                for (room_id, tag) in room_ids.iter().zip(&tags) {
                    added += insert.execute(params![room_id.as_ref(), tag.0.as_slice(), now_ms])?;
                }
            }
            tx.commit()?;
            Ok(added)
        })
        .map_err(|e| storage_error("backfilling rooms", &e))?;
        inner.refresh(true)?;
        Ok(added)
    }

    /// Whether this server holds `tag`, i.e. has ever joined the room it was computed for.
    pub fn contains_tag(&self, tag: &ParticipationTag) -> Result<bool> {
        let mut inner = self.lock();
        inner.refresh(false)?;
        Ok(inner.index.contains(&tag.0))
    }

    /// For each tag, whether this server holds it (one freshness check for the whole batch).
    pub fn recognise(&self, tags: &[ParticipationTag]) -> Result<Vec<bool>> {
        let mut inner = self.lock();
        inner.refresh(false)?;
        Ok(inner.index.contains_all(tags))
    }

    /// Whether this server has ever joined `room_id`.
    pub fn contains_room(&self, room_id: &str) -> Result<bool> {
        self.contains_tag(&self.tagger.tag(room_id))
    }

    /// Every recorded room with its first-joined time (ms), in the order they were recorded.
    pub fn rooms(&self) -> Result<Vec<(String, i64)>> {
        let inner = self.lock();
        with_retry(|| {
            let mut stmt = inner.conn.prepare_cached(
                "SELECT room_id, first_joined_ms FROM participation_tags ORDER BY id",
            )?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .map_err(|e| storage_error("listing rooms", &e))
    }

    /// When this server first joined `room_id` (ms), if it ever did.
    pub fn first_joined(&self, room_id: &str) -> Result<Option<i64>> {
        let inner = self.lock();
        with_retry(|| {
            inner
                .conn
                .query_row(
                    "SELECT first_joined_ms FROM participation_tags WHERE room_id = ?1",
                    [room_id],
                    |row| row.get(0),
                )
                .optional()
        })
        .map_err(|e| storage_error("reading a room", &e))
    }

    /// How many tags the store holds (including other processes' latest commits).
    pub fn len(&self) -> Result<usize> {
        let mut inner = self.lock();
        inner.refresh(false)?;
        Ok(inner.index.len())
    }

    /// Whether the store holds no tag at all.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Approximate memory used by the in-memory index, in bytes.
    pub fn index_bytes(&self) -> usize {
        self.lock().index.bytes()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the index inconsistent with the file in a
        // way that matters (it only ever lags, and is refreshed), so a poisoned lock is reused.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for TagStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagStore")
            .field("server_name", &self.server_name())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Brings the index up to date with the file. Unless `force`, skips the query when no other
    /// connection has committed since the last refresh.
    fn refresh(&mut self, force: bool) -> Result<()> {
        let version: i64 = with_retry(|| {
            self.conn
                .query_row("PRAGMA data_version", [], |row| row.get(0))
        })
        .map_err(|e| storage_error("checking for new tags", &e))?;
        if !force && version == self.data_version {
            return Ok(());
        }
        let high_water = self.high_water;
        let (new_high, tags) = with_retry(|| {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, tag FROM participation_tags WHERE id > ?1 ORDER BY id",
            )?;
            let mut rows = stmt.query([high_water])?;
            let mut high = high_water;
            let mut tags = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let tag = row.get_ref(1)?.as_blob()?;
                // Only this module writes the table, always 32 bytes; anything else is skipped.
                if let Ok(tag) = <[u8; 32]>::try_from(tag) {
                    tags.push(tag);
                }
                high = high.max(id);
            }
            Ok((high, tags))
        })
        .map_err(|e| storage_error("loading new tags", &e))?;
        self.index.extend(tags);
        self.high_water = new_high;
        self.data_version = version;
        self.index.merge_if_due();
        Ok(())
    }
}

/// The minimal checks a room ID needs before it is stored for ever: the full grammar belongs to
/// the `ids` module, but an empty, oversized or control-character ID is certainly a caller bug.
pub(crate) fn check_room_id(room_id: &str) -> Result<()> {
    if !room_id.starts_with('!') {
        return Err(Error::invalid_param("a room ID must start with '!'"));
    }
    if room_id.len() > MAX_ROOM_ID_BYTES {
        return Err(Error::invalid_param(format!(
            "a room ID is at most {MAX_ROOM_ID_BYTES} bytes, this one is {}",
            room_id.len()
        )));
    }
    if room_id.chars().any(char::is_control) {
        return Err(Error::invalid_param(
            "a room ID must not contain control characters",
        ));
    }
    Ok(())
}
