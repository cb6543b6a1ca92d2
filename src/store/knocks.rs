//! The knock store: `m.server.knock` EDUs recorded idempotently per (room, server), with first and
//! last seen times, expiring after a receiver-chosen duration (MSC4099 seed: "the knock edu can be
//! treated as idempotent by the receiver, although the effect should probably expire").
//!
//! Lives in the shared servership store (component `knocks`; table `server_knocks` in SQLite,
//! `servership_server_knocks` in PostgreSQL), next to the other components' tables. A knock whose last sighting is older than the expiry is treated
//! as absent (never returned) and a new knock after that starts afresh; [`KnockStore::purge_expired`]
//! deletes such rows. Times are milliseconds since the Unix epoch, passed in so tests and
//! homeservers control the clock; the `*_now` helpers read the system clock.
//!
//! **Bounded.** Knocks come from the network, so the store bounds what one origin can make it do:
//! - at most [`KnockLimits::max_per_origin`] *new* knocks (a room the origin had no unexpired knock
//!   on) per origin in any [`KnockLimits::window`]; beyond that `record` fails with
//!   `M_LIMIT_EXCEEDED` (and `retry_after_ms`) without writing. Repeats of a recorded knock only
//!   update its row. So one origin holds at most `max_per_origin × expiry / window` rows (with
//!   the defaults, 20 per hour for knocks that expire after a day: 480). The count lives in the
//!   file, so every process sharing it (Synapse workers) shares the cap;
//! - a caller's thread never waits more than about a second: SQLite waits at most
//!   [`BUSY_WAIT`] for another process's lock per attempt, and a busy file is retried
//!   [`BUSY_RETRIES`] times with short pauses (under 0.9 s in all), then the call fails with a
//!   storage error (`M_UNKNOWN`) for the caller to count, instead of the 60 s the other stores
//!   allow;
//! - writes are `synchronous = NORMAL` (WAL): a knock costs no fsync. A knock is a hint that
//!   expires anyway; a power cut may lose the last few, never corrupt the file;
//! - [`KnockStore::purge_expired_at`] deletes in batches of [`PURGE_BATCH`] rows, each its own
//!   short transaction, so a big purge never holds the write lock for long.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::json::{Object, Value};
use crate::store::{Location, postgres, sqlite};

/// How long SQLite waits for another process's lock on the knock store, per attempt.
pub const BUSY_WAIT: Duration = Duration::from_millis(250);
/// How many times a call that found the file busy is tried again (after 20 ms, then 80 ms).
pub const BUSY_RETRIES: usize = 2;
/// Rows deleted per transaction by a purge.
pub const PURGE_BATCH: usize = 1000;

/// What one origin may make the knock store record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnockLimits {
    /// New knocks per origin per window (default 20).
    pub max_per_origin: u32,
    /// The window (default one hour).
    pub window: Duration,
}

impl Default for KnockLimits {
    fn default() -> Self {
        KnockLimits {
            max_per_origin: 20,
            window: Duration::from_secs(3600),
        }
    }
}

/// One recorded knock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockRecord {
    /// The room knocked on.
    pub room_id: String,
    /// The knocking server (the transaction origin).
    pub server: String,
    /// When the knock was first seen (since the last expiry).
    pub first_seen_ms: i64,
    /// When it was last seen.
    pub last_seen_ms: i64,
    /// How many times it was seen (since the last expiry).
    pub times: i64,
}

impl KnockRecord {
    /// `{"room_id", "server", "first_seen_ms", "last_seen_ms", "times"}`.
    pub fn to_json(&self) -> Value {
        let mut o = Object::new();
        o.insert("room_id".into(), Value::from(self.room_id.as_str()));
        o.insert("server".into(), Value::from(self.server.as_str()));
        o.insert("first_seen_ms".into(), Value::Int(self.first_seen_ms));
        o.insert("last_seen_ms".into(), Value::Int(self.last_seen_ms));
        o.insert("times".into(), Value::Int(self.times));
        Value::Object(o)
    }
}

/// What a backend does for the knock store; validation and the cap's arithmetic inputs come from
/// [`KnockStore`].
pub(crate) trait KnockBackend: Send + Sync {
    /// Records a knock, or refuses it as over the origin's cap (see [`KnockStore::record_at`]).
    fn record(&self, knock: &KnockWrite<'_>) -> Result<Recorded>;
    fn get(&self, room_id: &str, server: &str, cutoff: i64) -> Result<Option<KnockRecord>>;
    fn for_room(&self, room_id: &str, cutoff: i64) -> Result<Vec<KnockRecord>>;
    fn remove(&self, room_id: &str, server: &str) -> Result<bool>;
    fn purge_batch(&self, cutoff: i64, max_rows: i64) -> Result<usize>;
    fn row_count(&self) -> Result<i64>;
}

/// One knock to record, with the times the cap needs.
pub(crate) struct KnockWrite<'a> {
    pub(crate) room_id: &'a str,
    pub(crate) server: &'a str,
    pub(crate) now_ms: i64,
    /// Rows last seen before this have expired.
    pub(crate) cutoff: i64,
    /// Knocks first seen after this count against the cap.
    pub(crate) window_start: i64,
    pub(crate) window_ms: i64,
    pub(crate) cap: i64,
}

/// Why a backend may refuse a knock: the origin is over its cap.
pub(crate) enum Recorded {
    Row(KnockRecord),
    OverCap { retry_after_ms: u64 },
}

impl Recorded {
    /// The `retry_after_ms` of a refusal: when the oldest knock counted leaves the window.
    pub(crate) fn over_cap(oldest: Option<i64>, knock: &KnockWrite<'_>) -> Recorded {
        let leaves = oldest
            .unwrap_or(knock.now_ms)
            .saturating_add(knock.window_ms)
            .saturating_sub(knock.now_ms);
        Recorded::OverCap {
            retry_after_ms: u64::try_from(leaves.max(1)).unwrap_or(1),
        }
    }
}

/// Knocks in servership's store (SQLite or PostgreSQL). `Sync`: one handle may be shared.
pub struct KnockStore {
    backend: Box<dyn KnockBackend>,
    location: Location,
    expire_after_ms: i64,
    limits: KnockLimits,
}

impl std::fmt::Debug for KnockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnockStore")
            .field("location", &self.location)
            .field("expire_after_ms", &self.expire_after_ms)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Room IDs and server names arrive from the network; PostgreSQL text cannot hold NUL.
fn check_text(value: &str, name: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid_param(format!(
            "{name} must not contain a NUL byte"
        )));
    }
    Ok(())
}

impl KnockStore {
    /// Opens (creating if needed) the store at `location`; knocks expire `expire_after` after they
    /// were last seen. The per-origin cap is [`KnockLimits::default`].
    pub fn open(location: impl Into<Location>, expire_after: Duration) -> Result<Self> {
        Self::open_with_limits(location, expire_after, KnockLimits::default())
    }

    /// [`KnockStore::open`] with an explicit per-origin cap (`max_per_origin` 0 refuses every new
    /// knock; a zero window is `M_INVALID_PARAM`).
    pub fn open_with_limits(
        location: impl Into<Location>,
        expire_after: Duration,
        limits: KnockLimits,
    ) -> Result<Self> {
        let location = location.into();
        if limits.window.is_zero() {
            return Err(Error::invalid_param("the knock window must not be zero"));
        }
        let backend: Box<dyn KnockBackend> = match &location {
            Location::Sqlite(path) => Box::new(sqlite::knocks::SqliteKnocks::open(path)?),
            Location::Postgres(url) => Box::new(postgres::knocks::PgKnocks::open(url)?),
        };
        let expire_after_ms = i64::try_from(expire_after.as_millis()).unwrap_or(i64::MAX);
        Ok(KnockStore {
            backend,
            location,
            expire_after_ms,
            limits,
        })
    }

    /// Where the store lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The per-origin cap.
    pub fn limits(&self) -> KnockLimits {
        self.limits
    }

    fn cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.expire_after_ms)
    }

    /// Records a knock seen at `now_ms`: a new row, or the existing one with `last_seen_ms` and
    /// `times` updated. A row that had expired starts afresh (first seen = now, times = 1).
    ///
    /// A *new* knock (no unexpired row for this room and server) beyond the origin's cap fails
    /// with `M_LIMIT_EXCEEDED` (`retry_after_ms`: when the oldest knock counted leaves the
    /// window) and writes nothing. A store that stays busy or unreachable fails with `M_UNKNOWN`
    /// after about a second (SQLite) or two (PostgreSQL) at most.
    pub fn record_at(&self, room_id: &str, server: &str, now_ms: i64) -> Result<KnockRecord> {
        check_text(room_id, "room_id")?;
        check_text(server, "server")?;
        let window_ms = i64::try_from(self.limits.window.as_millis()).unwrap_or(i64::MAX);
        let knock = KnockWrite {
            room_id,
            server,
            now_ms,
            cutoff: self.cutoff(now_ms),
            window_start: now_ms.saturating_sub(window_ms),
            window_ms,
            cap: i64::from(self.limits.max_per_origin),
        };
        match self.backend.record(&knock)? {
            Recorded::Row(r) => Ok(r),
            Recorded::OverCap { retry_after_ms } => Err(Error::limit_exceeded(
                format!(
                    "{server} has knocked on {} new rooms in the last {} s, its cap",
                    self.limits.max_per_origin,
                    self.limits.window.as_secs()
                ),
                retry_after_ms,
            )),
        }
    }

    /// [`KnockStore::record_at`] with the system clock.
    pub fn record(&self, room_id: &str, server: &str) -> Result<KnockRecord> {
        self.record_at(room_id, server, now_ms())
    }

    /// The unexpired knock of `server` on `room_id` at `now_ms`.
    pub fn get_at(&self, room_id: &str, server: &str, now_ms: i64) -> Result<Option<KnockRecord>> {
        if room_id.contains('\0') || server.contains('\0') {
            return Ok(None);
        }
        self.backend.get(room_id, server, self.cutoff(now_ms))
    }

    /// Every unexpired knock on `room_id` at `now_ms`, oldest first (what a moderator reviews).
    pub fn for_room_at(&self, room_id: &str, now_ms: i64) -> Result<Vec<KnockRecord>> {
        if room_id.contains('\0') {
            return Ok(Vec::new());
        }
        self.backend.for_room(room_id, self.cutoff(now_ms))
    }

    /// Forgets one knock (e.g. once decided); returns whether it existed.
    pub fn remove(&self, room_id: &str, server: &str) -> Result<bool> {
        if room_id.contains('\0') || server.contains('\0') {
            return Ok(false);
        }
        self.backend.remove(room_id, server)
    }

    /// Deletes every knock expired at `now_ms`, [`PURGE_BATCH`] rows per transaction (the lock
    /// is released between batches); returns how many. What the homeserver runs on a schedule.
    pub fn purge_expired_at(&self, now_ms: i64) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.purge_expired_batch_at(now_ms, PURGE_BATCH)?;
            total += n;
            if n < PURGE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Deletes at most `max_rows` knocks expired at `now_ms` in one short transaction; returns
    /// how many (fewer than `max_rows` means none is left).
    pub fn purge_expired_batch_at(&self, now_ms: i64, max_rows: usize) -> Result<usize> {
        let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
        self.backend.purge_batch(self.cutoff(now_ms), limit)
    }

    /// [`KnockStore::purge_expired_at`] with the system clock.
    pub fn purge_expired(&self) -> Result<usize> {
        self.purge_expired_at(now_ms())
    }

    /// Number of rows, expired or not (for tests and metrics).
    pub fn row_count(&self) -> Result<i64> {
        self.backend.row_count()
    }
}
