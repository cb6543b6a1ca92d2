//! # servership
//!
//! Matrix homeservers treating *servers* as room participants. servership implements five
//! federation proposals on top of the Matrix primitives they need:
//!
//! - out-of-room server discovery with room participation tags (MSC4358): [`discovery`];
//! - inviting with authorization (MSC4329): [`invite`];
//! - server pseudousers and peeking (MSC1777): [`pseudouser`];
//! - server-to-server rooms with upgrade negotiation (MSC3348): [`s2s`];
//! - subscription-based server authorization with knocks (MSC4099): [`subscription`].
//!
//! The foundations are canonical JSON ([`json`]), room versions ([`room_version`]), redaction
//! ([`redaction`]), hashes and IDs ([`event`]), signatures ([`signing`], [`x_matrix`]) and
//! identifiers ([`ids`]). Every failure is an [`Error`] carrying a Matrix `errcode`.
//!
//! The same library is loaded by C servers through `include/servership.h` and by Python (and
//! Synapse) as `import servership`.

pub mod auth;
pub mod b64;
pub mod decision;
pub mod discovery;
pub mod error;
pub mod event;
pub mod ids;
pub mod invite;
pub mod json;
pub mod pseudouser;
pub mod redaction;
pub mod room_state;
pub mod room_version;
pub mod s2s;
pub mod signing;
pub mod store;
pub mod subscription;
pub mod x_matrix;

#[doc(hidden)]
pub mod capi;

#[cfg(feature = "python")]
mod python;

pub use error::{ErrCode, Error, Result};
pub use json::{Object, Value};
