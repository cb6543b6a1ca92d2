//! Inviting with authorization (MSC4329), and the same create-event checks for spec invites
//! (MSC4311).
//!
//! Today a server receiving an invite cannot trust what it is told about the room: stripped state
//! is unsigned. MSC4329 sends the room's full `m.room.create` PDU in a new `state` array next to
//! the invite, so the receiver can verify it and learn, for certain, which server(s) created the
//! room. [`check_invite`] takes the raw request and answers either with everything the receiving
//! server needs next ([`InviteCheck`]) or with the exact Matrix error to send back.
//!
//! The rules, each with its own error (all `400` unless noted):
//!
//! | rule | errcode |
//! |---|---|
//! | body larger than [`MAX_INVITE_BODY_BYTES`], or a PDU larger than 65536 bytes | `413 M_TOO_LARGE` |
//! | body not JSON / not canonical-JSON-clean | `M_NOT_JSON` / `M_BAD_JSON` |
//! | `event` or `state` missing | `M_MISSING_PARAM` |
//! | a member of the wrong type | `M_BAD_JSON` |
//! | not exactly one `m.room.create` in `state`, or its `state_key` is not `""` | `M_INVALID_PARAM` |
//! | the create event breaks auth rule 1 ([`crate::auth::check_create`]) | `M_INVALID_PARAM` |
//! | v12: a PDU names the create event in `auth_events` | `M_INVALID_PARAM` |
//! | v6+: a number outside canonical JSON (v1–5 allow them, as Synapse does) | `M_BAD_JSON` |
//! | unknown room version | `M_INCOMPATIBLE_ROOM_VERSION` |
//! | room version 1 or 2 (use the v2 endpoint) | `M_INCOMPATIBLE_ROOM_VERSION` |
//! | room IDs of path, invite and create disagree (v12: computed from the create event) | `M_INVALID_PARAM` |
//! | the invite is not an `m.room.member` invite for a user of ours sent by a user of the origin | `M_INVALID_PARAM` |
//! | with keys: a signature or content hash does not verify | `M_INVALID_PARAM` |
//!
//! The event ID in the result is always computed from the event, never taken from the request.
//!
//! Promotion of the other `state` events into `invite_room_state` needs keys: each one must
//! verify and pass the room version's authorization rules ([`crate::auth`]) against the state
//! built so far; see `docs/invites.md`, "What is promoted".

mod build;
mod check;
mod spec_invite;
mod state;

pub use crate::signing::KeyRing;
pub use build::{InviteRequestParts, build_invite_request};
pub use check::{InviteCheck, check_invite, check_invite_with};
pub use spec_invite::{SpecInviteCheck, SpecInviteEndpoint, check_spec_invite};
pub use state::DroppedEvent;

/// The unstable path prefix of MSC4329 (`PUT …/{roomId}`), under the proposal's number.
pub const PATH_UNSTABLE_PREFIX: &str = "/_matrix/federation/unstable/org.matrix.msc4329/invite/";
/// The seed's placeholder path prefix (`msc0000`), served as an alias of [`PATH_UNSTABLE_PREFIX`].
pub const PATH_UNSTABLE_ALIAS_PREFIX: &str =
    "/_matrix/federation/unstable/org.matrix.msc0000/invite/";
/// The stable `v3` path prefix. Off by default in servers: another server family already uses
/// `v3/invite` for a different body, so a homeserver should only route it when told to.
pub const PATH_V3_PREFIX: &str = "/_matrix/federation/v3/invite/";

/// The largest request body [`check_invite`] reads (1 MiB). Sixteen full PDUs fit; more is abuse.
pub const MAX_INVITE_BODY_BYTES: usize = 1 << 20;
