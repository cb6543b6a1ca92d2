//! Member lists and room display names that leave pseudousers out (MSC1777: "clients must not
//! show this pseudouser in their membership lists, and the pseudouser membership event must not
//! be used when calculating room names").
//!
//! The room name follows the spec's algorithm
//! ([Calculating the display name for a room](https://spec.matrix.org/v1.16/client-server-api/#calculating-the-display-name-for-a-room)),
//! with user names disambiguated per
//! [Calculating the display name for a user](https://spec.matrix.org/v1.16/client-server-api/#calculating-the-display-name-for-a-user).
//! The summary (`m.heroes`, `m.joined_member_count`, `m.invited_member_count`) is computed as the
//! `/sync` summary describes it, with pseudousers removed: heroes are the first 5 joined or
//! invited members other than the viewing user, in stream order (the order of the state list the
//! [`RoomState`] was built from); when there are none, the left and banned members instead.
//!
//! Decisions: an empty `displayname` counts as no display name (the user ID is shown); names are
//! joined in English as in the spec's examples ("Alice and Bob", "Alice, Bob, and Charlie",
//! "Alice, Bob, and 1234 others"); homeservers that localise can use [`RoomSummary`] and
//! [`disambiguated_name`] directly.

use crate::json::{Object, Value};
use crate::room_state::RoomState;

use super::is_pseudouser;

/// How many heroes the summary carries (the spec's "first 5 members").
pub const HEROES: usize = 5;

/// A room member as clients list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user ID (state key).
    pub user_id: String,
    /// `join`, `invite`, `leave`, `ban`, `knock`…
    pub membership: String,
    /// The `displayname` if a non-empty string.
    pub displayname: Option<String>,
}

/// Every member with a string membership, pseudousers left out, in user-ID order.
pub fn visible_members(state: &RoomState) -> Vec<Member> {
    state
        .of_type("m.room.member")
        .filter(|(user, _)| !is_pseudouser(user))
        .filter_map(|(user, entry)| {
            let membership = entry.content().get("membership")?.as_str()?;
            Some(Member {
                user_id: user.to_owned(),
                membership: membership.to_owned(),
                displayname: displayname_of(entry.content()).map(str::to_owned),
            })
        })
        .collect()
}

/// Joined and invited members only (what a member list shows), pseudousers left out.
pub fn active_members(state: &RoomState) -> Vec<Member> {
    visible_members(state)
        .into_iter()
        .filter(|m| m.membership == "join" || m.membership == "invite")
        .collect()
}

fn displayname_of(content: &Object) -> Option<&str> {
    content
        .get("displayname")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The spec's disambiguated display name of `user_id`: the raw user ID without a display name;
/// the display name if unique among joined and invited members (pseudousers never count);
/// otherwise `"name (@user:server)"`.
pub fn disambiguated_name(state: &RoomState, user_id: &str) -> String {
    let Some(name) = state
        .content("m.room.member", user_id)
        .and_then(displayname_of)
    else {
        return user_id.to_owned();
    };
    let clashes = state
        .of_type("m.room.member")
        .filter(|(other, _)| *other != user_id && !is_pseudouser(other))
        .filter(|(_, e)| {
            matches!(
                e.content().get("membership").and_then(Value::as_str),
                Some("join" | "invite")
            )
        })
        .any(|(_, e)| displayname_of(e.content()) == Some(name));
    if clashes {
        format!("{name} ({user_id})")
    } else {
        name.to_owned()
    }
}

/// The `/sync` room summary, pseudousers left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// `m.heroes`.
    pub heroes: Vec<String>,
    /// `m.joined_member_count` (the viewing user included if joined).
    pub joined_member_count: u64,
    /// `m.invited_member_count`.
    pub invited_member_count: u64,
}

/// Computes the summary for `own_user_id` (the logged-in user, never a hero).
pub fn room_summary(state: &RoomState, own_user_id: &str) -> RoomSummary {
    let mut joined = 0u64;
    let mut invited = 0u64;
    let mut active: Vec<(usize, &str)> = Vec::new();
    let mut gone: Vec<(usize, &str)> = Vec::new();
    for (user, entry) in state.of_type("m.room.member") {
        if is_pseudouser(user) {
            continue;
        }
        let membership = entry.content().get("membership").and_then(Value::as_str);
        match membership {
            Some("join") => joined += 1,
            Some("invite") => invited += 1,
            _ => {}
        }
        if user == own_user_id {
            continue;
        }
        match membership {
            Some("join" | "invite") => active.push((entry.stream_order, user)),
            Some("leave" | "ban") => gone.push((entry.stream_order, user)),
            _ => {}
        }
    }
    let pick = if active.is_empty() {
        &mut gone
    } else {
        &mut active
    };
    pick.sort_unstable();
    RoomSummary {
        heroes: pick
            .iter()
            .take(HEROES)
            .map(|(_, u)| (*u).to_owned())
            .collect(),
        joined_member_count: joined,
        invited_member_count: invited,
    }
}

/// A room's display name and which step of the algorithm produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomName {
    /// Step 1: `m.room.name`.
    Named(String),
    /// Step 2: `m.room.canonical_alias`.
    Alias(String),
    /// Step 3 i/ii: composed from the heroes.
    Members(String),
    /// Step 3 iii: the viewing user is alone ("Empty Room", "Empty Room (was Alice)").
    Empty(String),
}

impl RoomName {
    /// The name to show.
    pub fn as_str(&self) -> &str {
        match self {
            RoomName::Named(s) | RoomName::Alias(s) | RoomName::Members(s) | RoomName::Empty(s) => {
                s
            }
        }
    }

    /// `{"kind": "named"|"alias"|"members"|"empty", "name": ...}`.
    pub fn to_json(&self) -> Value {
        let kind = match self {
            RoomName::Named(_) => "named",
            RoomName::Alias(_) => "alias",
            RoomName::Members(_) => "members",
            RoomName::Empty(_) => "empty",
        };
        let mut o = Object::new();
        o.insert("kind".into(), Value::from(kind));
        o.insert("name".into(), Value::from(self.as_str()));
        Value::Object(o)
    }
}

/// A plausible room alias `#localpart:server` (the alias grammar; the server part non-empty).
fn is_valid_alias(alias: &str) -> bool {
    alias.len() <= 255
        && alias
            .strip_prefix('#')
            .and_then(|r| r.split_once(':'))
            .is_some_and(|(_, server)| !server.is_empty())
}

/// The room's display name as `own_user_id` sees it, pseudousers left out.
pub fn room_display_name(state: &RoomState, own_user_id: &str) -> RoomName {
    if let Some(name) = state
        .content("m.room.name", "")
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
    {
        if !name.is_empty() {
            return RoomName::Named(name.to_owned());
        }
    }
    if let Some(alias) = state
        .content("m.room.canonical_alias", "")
        .and_then(|c| c.get("alias"))
        .and_then(Value::as_str)
    {
        if is_valid_alias(alias) {
            return RoomName::Alias(alias.to_owned());
        }
    }
    let summary = room_summary(state, own_user_id);
    let names: Vec<String> = summary
        .heroes
        .iter()
        .map(|h| disambiguated_name(state, h))
        .collect();
    let total = summary
        .joined_member_count
        .saturating_add(summary.invited_member_count);
    let others_in_room = total.saturating_sub(1);
    let shown = names.len() as u64;
    if total > 1 {
        let rest = others_in_room.saturating_sub(shown);
        return RoomName::Members(join_names(&names, rest));
    }
    if names.is_empty() {
        return RoomName::Empty("Empty Room".to_owned());
    }
    // Alone: the heroes are the members who left or were banned; count the ones not shown.
    let gone = state
        .memberships()
        .filter(|(u, m)| *u != own_user_id && !is_pseudouser(u) && matches!(*m, "leave" | "ban"))
        .count() as u64;
    RoomName::Empty(format!(
        "Empty Room (was {})",
        join_names(&names, gone.saturating_sub(shown))
    ))
}

/// "A", "A and B", "A, B, and C"; with `rest > 0`: "A and 3 others", "A, B, and 3 others".
fn join_names(names: &[String], rest: u64) -> String {
    let mut parts: Vec<String> = names.to_vec();
    if rest > 0 {
        parts.push(if rest == 1 {
            "1 other".to_owned()
        } else {
            format!("{rest} others")
        });
    }
    match parts.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}
