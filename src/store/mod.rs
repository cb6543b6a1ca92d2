//! servership's storage: what the domain modules ask of a store, and how to open one.
//!
//! Every component (tags, knocks, discovery budgets, the audit queue) is one public type here,
//! with the same API and the same guarantees whichever backend holds it:
//! - [`TagStore`]: the permanent participation tags, answered from the in-memory
//!   [`TagIndex`](crate::discovery::index) that both backends feed with rows;
//! - [`KnockStore`], [`StoreBudget`] (a [`Budget`](crate::discovery::Budget)) and
//!   [`AuditQueue`].
//!
//! A [`Location`] picks the backend: a path is [`sqlite`], the embedded default (one file per
//! server, shared by the processes of one host); a PostgreSQL connection string
//! (`postgresql://…`, `postgres://…` or libpq `key=value` pairs) is [`postgres`], for fleets
//! whose processes run on several hosts. Both backends guarantee:
//! - acknowledged writes are committed (durable), records are idempotent (`ON CONFLICT DO
//!   NOTHING`), and every process sees the others' writes;
//! - bounded waits: a busy or unreachable store fails with a storage error (`M_UNKNOWN`, 500)
//!   after a second or a few, never a hang of a homeserver thread;
//! - each component migrates its own tables, versioned in `servership_schema`, safely when
//!   several processes open a new store at once.

mod audits;
mod budgets;
mod knocks;
mod location;
pub(crate) mod postgres;
pub(crate) mod sqlite;
mod tags;

pub use audits::AuditQueue;
pub use budgets::{SqliteBudget, StoreBudget};
pub use knocks::{KnockLimits, KnockRecord, KnockStore};
pub use location::{Location, PostgresUrl};
pub use postgres::{CopyReport, copy_sqlite_to_postgres};

pub(crate) use sqlite::storage_error;
pub use sqlite::{ensure_schema, open_connection, with_retry};
pub use tags::TagStore;
