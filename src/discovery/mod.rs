//! Out-of-room server discovery:
//! [MSC4358](https://github.com/matrix-org/matrix-spec-proposals/pull/4358), with the decisions in
//! `docs/protocol.md` and the guide in `docs/discovery.md`.
//!
//! A server keeps a permanent *room participation tag* for every room it has joined
//! ([`participation_tag`], stored in [`TagStore`](crate::store::TagStore)). Another server can ask
//! it, through `POST /_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms`, which of a
//! set of tags it holds, without revealing rooms the answering server was never in:
//!
//! - [`tag`]: the tag itself (HMAC-SHA256 keyed by the server name) and a batch [`Tagger`];
//! - [`tag_set`]: what the responder reads, a [`TagSet`] (which tags this server holds);
//! - [`responder`]: the endpoint, with per-request caps;
//! - [`budget`]: per-origin budgets under a normalised origin ([`normalise_origin`]), in memory
//!   ([`MemoryBudget`]) or shared through the store (`store::SqliteBudget`);
//! - [`requester`]: building requests for a peer and reading its answers back into room IDs;
//! - [`audit`]: after joining a room, choosing peers that are not visible in it, asking them, and
//!   classifying each one that recognises it from the room's membership history: explained (it
//!   was in the room and left), removed by another server, or unexplained (hidden branch?).
//!
//! Every entry point is bytes in, bytes out, so the C and Python bindings stay thin.

pub mod audit;
pub mod budget;
pub(crate) mod index;
pub mod requester;
pub mod responder;
pub mod tag;
pub mod tag_set;

pub use audit::{
    Audit, AuditReport, Departure, PeerAnswer, Removal, RoomView, Standing, read_response_for,
    recognised_in, request_body_for,
};
pub use budget::{Budget, MemoryBudget, normalise_origin};
pub use requester::{DEFAULT_MAX_TAGS_PER_REQUEST, Requester};
pub use responder::{Responder, ResponderConfig};
pub use tag::{ParticipationTag, Tagger, participation_tag};
pub use tag_set::TagSet;

/// The endpoint under the MSC's unstable prefix (always served).
pub const UNSTABLE_PATH: &str = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms";

/// The endpoint once the MSC is merged (served only with [`ResponderConfig::stable_path`]).
pub const STABLE_PATH: &str = "/_matrix/federation/v1/discover_common_rooms";
