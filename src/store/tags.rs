//! The permanent store of this server's room participation tags (MSC4358, `docs/discovery.md`).
//!
//! A server records its tag for a room the first time it joins (through a local user or its
//! pseudouser) and keeps it for ever: leaving or being banned does not remove it, and there is
//! deliberately no delete call. Each record keeps the room ID and the first-joined time.
//!
//! Guarantees, on both backends:
//! - **Durable**: every write is committed before the call returns, so an acknowledged write
//!   survives `kill -9` of the process right after.
//! - **Shared**: several processes (Synapse workers, on several hosts with PostgreSQL) may open the
//!   same store and write at once; records are idempotent (`ON CONFLICT DO NOTHING`).
//! - **Fresh**: membership questions are answered from the in-memory
//!   [`TagIndex`](crate::discovery::index), one piece of code for every backend. Before
//!   answering, the store asks the backend for the rows after the highest row ID it has seen.
//!   Rows are never deleted and a later commit always gets higher row IDs (SQLite has one writer
//!   at a time; PostgreSQL writers take one advisory lock around the insert and its commit), so
//!   "rows above the high-water mark" is exactly what is new. SQLite first asks `PRAGMA
//!   data_version` and skips the query when no other connection committed.
//! - **Bound to one server name**: tags depend on the name, so the store remembers it and refuses
//!   to open under another.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

#[cfg(doc)]
use crate::discovery::index::key_of;
use crate::discovery::index::{TagIndex, TagKey};
use crate::discovery::{ParticipationTag, TagSet, Tagger};
use crate::error::{Error, Result};
use crate::store::{Location, postgres, sqlite};

/// Longest room ID accepted, in bytes: the Matrix limit for identifiers.
const MAX_ROOM_ID_BYTES: usize = 255;

/// What a backend does for the tag store: it keeps the rows; the index is built here from them.
pub(crate) trait TagRows: Send {
    /// Records `server_name` as the store's owner if it has none; returns the owner.
    fn claim_server_name(&mut self, server_name: &str) -> Result<String>;
    /// Inserts one room unless recorded; `true` if new. With `audit_due_ms`, a new room's audit is
    /// queued in the same transaction.
    fn insert(
        &mut self,
        room_id: &str,
        tag: &[u8; 32],
        joined_at_ms: i64,
        audit_due_ms: Option<i64>,
    ) -> Result<bool>;
    /// Inserts many rooms in one transaction (all or none); how many were new.
    fn insert_many(&mut self, rows: &[(&str, [u8; 32])], joined_at_ms: i64) -> Result<usize>;
    /// Whether another connection may have written since the last [`TagRows::rows_after`]
    /// (`true` when the backend cannot tell cheaply).
    fn may_have_changed(&mut self) -> Result<bool>;
    /// The index keys ([`key_of`]) of the rows whose ID is above `after`, and the highest ID
    /// among them (or `after`).
    fn rows_after(&mut self, after: i64) -> Result<(i64, Vec<TagKey>)>;
    /// Every room with its first-joined time, in the order recorded.
    fn rooms(&mut self) -> Result<Vec<(String, i64)>>;
    /// The first-joined time of one room.
    fn first_joined(&mut self, room_id: &str) -> Result<Option<i64>>;
}

/// A server's permanent set of room participation tags, in SQLite or PostgreSQL.
///
/// `TagStore` is `Send + Sync`: one handle may be shared between threads (calls are serialised by
/// an internal lock), and several handles or processes may share one store.
pub struct TagStore {
    inner: Mutex<Inner>,
    tagger: Tagger,
    location: Location,
}

struct Inner {
    rows: Box<dyn TagRows>,
    index: TagIndex,
    /// Highest row ID loaded into `index`.
    high_water: i64,
}

impl TagStore {
    /// Opens (creating if needed) the tag store at `location` (a path, or a [`Location`]) for
    /// `server_name`.
    ///
    /// Fails if the store was created for another server name: its tags would all be wrong.
    pub fn open(location: impl Into<Location>, server_name: &str) -> Result<TagStore> {
        let location = location.into();
        if server_name.is_empty() || server_name.len() > MAX_ROOM_ID_BYTES {
            return Err(Error::invalid_param(
                "server_name must be between 1 and 255 bytes",
            ));
        }
        if server_name.contains('\0') {
            return Err(Error::invalid_param(
                "server_name must not contain a NUL byte",
            ));
        }
        let mut rows: Box<dyn TagRows> = match &location {
            Location::Sqlite(path) => Box::new(sqlite::tags::SqliteTags::open(path)?),
            Location::Postgres(url) => Box::new(postgres::tags::PgTags::open(url)?),
        };
        let stored = rows.claim_server_name(server_name)?;
        if stored != server_name {
            return Err(Error::invalid_param(format!(
                "the tag store at {location} belongs to server {stored:?}, not {server_name:?}; \
                 participation tags depend on the server name"
            )));
        }
        let mut inner = Inner {
            rows,
            index: TagIndex::default(),
            high_water: 0,
        };
        inner.refresh(true)?;
        Ok(TagStore {
            inner: Mutex::new(inner),
            tagger: Tagger::new(server_name),
            location,
        })
    }

    /// Where the store lives, as given to [`TagStore::open`] (other components, such as
    /// [`StoreBudget`](crate::store::StoreBudget) and [`AuditQueue`](crate::store::AuditQueue),
    /// may open it too).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLite file the store lives in, if it is one.
    pub fn path(&self) -> Option<&Path> {
        self.location.sqlite_path()
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
        let added = inner.rows.insert(room_id, &tag.0, joined_at_ms, None)?;
        inner.refresh(true)?;
        Ok(added)
    }

    /// [`TagStore::record_join`], and, only if the room is new, queues its post-join audit due at
    /// `audit_due_ms` in the [`AuditQueue`](crate::store::AuditQueue) of the same store, in one
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
        let added = inner
            .rows
            .insert(room_id, &tag.0, joined_at_ms, Some(audit_due_ms))?;
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
        let rows: Vec<(&str, [u8; 32])> = room_ids
            .iter()
            .zip(&tags)
            .map(|(room_id, tag)| (room_id.as_ref(), tag.0))
            .collect();
        let mut inner = self.lock();
        let added = inner.rows.insert_many(&rows, now_ms)?;
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
        self.lock().rows.rooms()
    }

    /// When this server first joined `room_id` (ms), if it ever did.
    pub fn first_joined(&self, room_id: &str) -> Result<Option<i64>> {
        if room_id.contains('\0') {
            return Ok(None);
        }
        self.lock().rows.first_joined(room_id)
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
        // A panic while holding the lock cannot leave the index inconsistent with the store in a
        // way that matters (it only ever lags, and is refreshed), so a poisoned lock is reused.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TagSet for TagStore {
    fn recognise(&self, tags: &[ParticipationTag]) -> Result<Vec<bool>> {
        TagStore::recognise(self, tags)
    }

    fn server_name(&self) -> &str {
        TagStore::server_name(self)
    }
}

impl std::fmt::Debug for TagStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagStore")
            .field("server_name", &self.server_name())
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Brings the index up to date with the store. Unless `force`, skips the query when the
    /// backend can tell nothing was written since the last refresh.
    fn refresh(&mut self, force: bool) -> Result<()> {
        if !force && !self.rows.may_have_changed()? {
            return Ok(());
        }
        let (new_high, tags) = self.rows.rows_after(self.high_water)?;
        self.index.extend(tags);
        self.high_water = new_high;
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
