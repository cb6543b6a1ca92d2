//! Embedded storage: one SQLite file per server, shared by every servership component.
//!
//! Conventions every table in the file follows, so several processes (Synapse workers) can share
//! it safely:
//! - WAL journal with `synchronous = FULL`: a write the caller was told about survives `kill -9`
//!   and power loss (the one exception: discovery budget windows, whose loss is harmless, are
//!   written with `NORMAL`, see [`SqliteBudget`]);
//! - a generous busy timeout plus retry in [`with_retry`]: "database is locked" never reaches a
//!   caller; work done on a homeserver thread's time (budgets, the audit queue) retries for about
//!   a second at most and then fails with `M_UNKNOWN`;
//! - each component migrates its own tables, recorded in `servership_schema` as
//!   `(component, version)`, so later releases can migrate one part without touching the others.
//!
//! The file must be servership's own: never Synapse's database (two SQLite copies live in its
//! process, and they must not share a file).

mod audits;
mod budgets;
mod knocks;
mod sqlite;
mod tags;

pub use audits::AuditQueue;
pub use budgets::SqliteBudget;
pub use knocks::{KnockLimits, KnockRecord, KnockStore};

pub(crate) use sqlite::storage_error;
pub use sqlite::{ensure_schema, open_connection, with_retry};
pub(crate) use tags::TagHashBuilder;
pub use tags::TagStore;
