//! The `m.room.member` rules (rule 6 in v12).

use crate::decision::{Decision, ReasonCode};
use crate::json::{Object, Value};

use super::power_levels::{Power, named_level, user_level};
use super::{AuthState, allow, content_of, malformed, str_field};

fn deny(detail: impl Into<String>) -> Decision {
    Decision::deny(ReasonCode::MembershipNotAllowed, detail)
}

/// The prev_events IDs of an event: plain strings (v3+) or `[id, hashes]` pairs (v1/v2).
fn prev_event_ids(event: &Object) -> Vec<&str> {
    event
        .get("prev_events")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(pair) => pair.first().and_then(Value::as_str),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn check_member(
    event: &Object,
    sender: &str,
    state_key: Option<&str>,
    state: &AuthState<'_>,
) -> Decision {
    let version = state.version();
    // 6.1
    let Some(target) = state_key else {
        return malformed("an m.room.member event needs a state_key");
    };
    let Some(content) = content_of(event) else {
        return malformed("an m.room.member event needs content");
    };
    let Some(membership) = content.get("membership").and_then(Value::as_str) else {
        return malformed("an m.room.member event needs a string content.membership");
    };
    // 6.2 (signature of the authorising server) is the caller's; see the module docs.
    let authoriser = if version.auth.restricted_join_rule {
        match content.get("join_authorised_via_users_server") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return malformed("join_authorised_via_users_server must be a string"),
        }
    } else {
        None
    };

    let sender_membership = state.membership(sender);
    let target_membership = state.membership(target);
    let join_rule = state.join_rule();
    let levels = || -> Result<(Power, Power), Decision> {
        Ok((user_level(state, sender)?, user_level(state, target)?))
    };

    match membership {
        "join" => {
            // 6.3.1: the creator's first join, right after the create event. The spec does not
            // ask that the creator sends it; we do.
            let prev = prev_event_ids(event);
            if prev.len() == 1
                && prev.first() == Some(&state.create_event_id())
                && sender == target
                && state.is_creator(target)
                && creator_of(state) == Some(target)
            {
                return allow("the creator's first join");
            }
            // 6.3.2
            if sender != target {
                return deny(format!("{sender} cannot join {target} to the room"));
            }
            // 6.3.3
            if sender_membership == Some("ban") {
                return deny(format!("{sender} is banned"));
            }
            let invited_or_joined = matches!(sender_membership, Some("invite" | "join"));
            let knock = version.auth.knocking && join_rule == "knock";
            let restricted = (version.auth.restricted_join_rule && join_rule == "restricted")
                || (version.auth.knock_restricted_join_rule && join_rule == "knock_restricted");
            if join_rule == "invite" || knock {
                // 6.3.4
                return if invited_or_joined {
                    allow(format!("{sender} was invited or is joined"))
                } else {
                    deny(format!("{sender} is not invited to an invite-only room"))
                };
            }
            if restricted {
                // 6.3.5
                if invited_or_joined {
                    return allow(format!("{sender} was invited or is joined"));
                }
                let Some(authoriser) = authoriser else {
                    return deny("a restricted join needs join_authorised_via_users_server");
                };
                if state.membership(authoriser) != Some("join") {
                    return deny(format!("the authorising user {authoriser} is not joined"));
                }
                let invite = match named_level(state, "invite", 0) {
                    Ok(l) => l,
                    Err(d) => return d,
                };
                return match user_level(state, authoriser) {
                    Err(d) => d,
                    Ok(l) if l >= Power::Level(invite) => {
                        allow(format!("the join was authorised by {authoriser}"))
                    }
                    Ok(_) => deny(format!("the authorising user {authoriser} may not invite")),
                };
            }
            if join_rule == "public" {
                // 6.3.6
                return allow("the room is public");
            }
            if version.auth.servership_members && join_rule == "peekable" {
                // Members rule a: peekable behaves as public for joins.
                return allow("the room is peekable, which admits joins as public does");
            }
            // 6.3.7
            deny(format!(
                "the join rule {join_rule:?} does not let {sender} join"
            ))
        }
        "invite" => {
            // 6.4.1: third-party invites are refused, not verified (see the module docs).
            if content.contains_key("third_party_invite") {
                return deny("third-party invites are not verified here");
            }
            // 6.4.2
            if sender_membership != Some("join") {
                return Decision::deny(
                    ReasonCode::SenderNotJoined,
                    format!("{sender} is not joined, so cannot invite"),
                );
            }
            // 6.4.3
            if matches!(target_membership, Some("join" | "ban")) {
                return deny(format!("{target} is joined or banned"));
            }
            // 6.4.4
            let (have, invite) = match (user_level(state, sender), named_level(state, "invite", 0))
            {
                (Ok(h), Ok(i)) => (h, i),
                (Err(d), _) | (_, Err(d)) => return d,
            };
            if have >= Power::Level(invite) {
                allow(format!("{sender} may invite"))
            } else {
                super::insufficient(sender, have, invite, "inviting")
            }
        }
        "leave" => {
            // 6.5.1
            if sender == target {
                let may = match sender_membership {
                    Some("invite" | "join") => true,
                    Some("knock") => version.auth.knocking,
                    _ => false,
                };
                return if may {
                    allow(format!("{sender} leaves"))
                } else {
                    deny(format!("{sender} is not in the room, so cannot leave"))
                };
            }
            // 6.5.2
            if sender_membership != Some("join") {
                return Decision::deny(
                    ReasonCode::SenderNotJoined,
                    format!("{sender} is not joined, so cannot kick"),
                );
            }
            let (have, target_level) = match levels() {
                Ok(l) => l,
                Err(d) => return d,
            };
            let (ban, kick) = match (
                named_level(state, "ban", 50),
                named_level(state, "kick", 50),
            ) {
                (Ok(b), Ok(k)) => (b, k),
                (Err(d), _) | (_, Err(d)) => return d,
            };
            // 6.5.3
            if target_membership == Some("ban") && have < Power::Level(ban) {
                return super::insufficient(sender, have, ban, "unbanning");
            }
            // 6.5.4
            if have >= Power::Level(kick) && target_level < have {
                allow(format!("{sender} may kick {target}"))
            } else {
                deny(format!("{sender} may not kick {target}"))
            }
        }
        "ban" => {
            // 6.6.1
            if sender_membership != Some("join") {
                return Decision::deny(
                    ReasonCode::SenderNotJoined,
                    format!("{sender} is not joined, so cannot ban"),
                );
            }
            let (have, target_level) = match levels() {
                Ok(l) => l,
                Err(d) => return d,
            };
            let ban = match named_level(state, "ban", 50) {
                Ok(b) => b,
                Err(d) => return d,
            };
            // 6.6.2
            if have >= Power::Level(ban) && target_level < have {
                allow(format!("{sender} may ban {target}"))
            } else {
                deny(format!("{sender} may not ban {target}"))
            }
        }
        "knock" if version.auth.knocking => {
            // 6.7.1
            let knockable = join_rule == "knock"
                || (version.auth.knock_restricted_join_rule && join_rule == "knock_restricted");
            if !knockable {
                return deny(format!(
                    "the join rule {join_rule:?} does not allow knocking"
                ));
            }
            // 6.7.2
            if sender != target {
                return deny(format!("{sender} cannot knock for {target}"));
            }
            // 6.7.3
            if matches!(sender_membership, Some("ban" | "invite" | "join")) {
                return deny(format!("{sender} is banned, invited or joined already"));
            }
            allow(format!("{sender} knocks"))
        }
        // 6.8
        other => deny(format!("unknown membership {other:?}")),
    }
}

/// The single user rule 6.3.1 calls "the creator": `content.creator` before v11, the create
/// event's sender from v11.
fn creator_of<'a>(state: &AuthState<'a>) -> Option<&'a str> {
    if state.version().auth.implicit_room_creator {
        str_field(state.create(), "sender")
    } else {
        super::content_str(state.create(), "creator")
    }
}
