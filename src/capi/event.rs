//! Event hashing and IDs for C.
//!
//! TODO(frontdoors): `servership_event_id` waits for `servership::event::event_id_from_json` and
//! `servership::room_version::RoomVersion::from_id`, being written on another branch. Once
//! `git merge main` brings them in, the binding is:
//!
//! ```text
//! pub unsafe extern "C" fn servership_event_id(
//!     json: *const u8, len: usize,
//!     room_version: *const c_char, room_version_len: usize,
//!     out: Option<&mut *mut c_char>, out_len: Option<&mut usize>,
//! ) -> servership_status {
//!     call("servership_event_id", || {
//!         let out = required(out, "out")?;
//!         let input = unsafe { input_bytes(json, len, "json") }?;
//!         let version = unsafe { input_str(room_version, room_version_len, "room_version") }?;
//!         let version = RoomVersion::from_id(version)?;
//!         output_string(out, out_len, event_id_from_json(input, version)?.into_bytes())
//!     })
//! }
//! ```
