//! Room state for C: every check takes the room's current state as a JSON array of state events
//! (later events with the same `(type, state_key)` replace earlier ones).

use super::boundary::Failure;
use crate::room_state::RoomState;

/// Parses a state array; errors name the index (`state[2]: ...`), and `argument` when it is not
/// the room's own state.
pub(crate) fn state_from(bytes: &[u8], argument: &str) -> Result<RoomState, Failure> {
    RoomState::from_json(bytes).map_err(|e| {
        Failure::from(if argument == "state" {
            e
        } else {
            e.at(argument)
        })
    })
}
