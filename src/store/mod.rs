//! Embedded storage: one SQLite file per server, shared by every servership component.
//!
//! Conventions every table in the file follows, so several processes (Synapse workers) can share
//! it safely:
//! - WAL journal with `synchronous = FULL`: a write the caller was told about survives `kill -9`
//!   and power loss;
//! - a generous busy timeout plus retry in [`with_retry`]: "database is locked" never reaches a caller;
//! - each component migrates its own tables, recorded in `servership_schema` as
//!   `(component, version)`, so later releases can migrate one part without touching the others.
//!
//! The file must be servership's own: never Synapse's database (two SQLite copies live in its
//! process, and they must not share a file).

mod knocks;
mod sqlite;
mod tags;

pub use knocks::{KnockLimits, KnockRecord, KnockStore};

pub(crate) use sqlite::storage_error;
pub use sqlite::{ensure_schema, open_connection, with_retry};
pub(crate) use tags::TagHashBuilder;
pub use tags::TagStore;
