//! What discovery needs from a store of tags: which of them this server holds.
//!
//! The responder asks a [`TagSet`], not a database. [`TagStore`](crate::store::TagStore)
//! implements it for both backends (SQLite and PostgreSQL supply rows; the in-memory index that
//! answers is the same code for both), and a homeserver with its own storage can implement it too.

use crate::discovery::ParticipationTag;
use crate::error::Result;

/// A server's set of room participation tags, as the responder reads it.
pub trait TagSet: Send + Sync + std::fmt::Debug {
    /// For each tag, whether this server holds it (has ever joined the room it was computed for).
    /// Answers in request order, one per tag; a storage failure fails the whole batch.
    fn recognise(&self, tags: &[ParticipationTag]) -> Result<Vec<bool>>;

    /// The server name the tags are computed for (the HMAC key).
    fn server_name(&self) -> &str;
}
