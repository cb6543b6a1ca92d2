"""Peeking via server pseudousers (MSC1777) through Python."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import servership
from servership import peeking

ROOM = "!room:origin.example"


def ev(event_type: str, state_key: str, content: dict[str, Any], sender: str = "@a:origin.example") -> dict[str, Any]:
    return {"type": event_type, "state_key": state_key, "sender": sender, "content": content}


def public_room(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        ev("m.room.create", "", {"room_version": "11"}),
        ev("m.room.join_rules", "", {"join_rule": "public"}),
        ev("m.room.member", "@a:origin.example", {"membership": "join", "displayname": "Alice"}),
        *extra,
    ]


def test_pseudouser_denied_in_public_room_without_users_of_its_server() -> None:
    d = peeking.check_pseudouser_join(public_room(), "@:peer.example")
    assert isinstance(d, servership.Decision)
    assert not d and not d.allowed
    assert d.verdict == "deny"
    assert d.reason == "no_user_of_server"
    assert "peer.example" in d.detail
    assert d.to_json() == {
        "allowed": False,
        "verdict": "deny",
        "reason": "no_user_of_server",
        "detail": d.detail,
    }
    assert repr(d).startswith("Decision(verdict='deny', reason='no_user_of_server'")


def test_pseudouser_allowed_after_a_user_of_its_server_was_invited() -> None:
    state = public_room(ev("m.room.member", "@bob:peer.example", {"membership": "invite"}))
    d = peeking.check_pseudouser_join(state, "@:peer.example")
    assert d and d.verdict == "allow" and d.reason == "server_has_invited_user"
    joined = public_room(ev("m.room.member", "@bob:peer.example", {"membership": "join"}))
    assert peeking.check_pseudouser_join(joined, "@:peer.example").reason == "server_has_joined_user"


def test_peekable_room_and_ban() -> None:
    # No standard room version knows `peekable`: Synapse refuses every join under it.
    peekable = public_room(
        ev("m.room.join_rules", "", {"join_rule": "peekable"}),
        ev("m.room.member", "@bob:peer.example", {"membership": "join"}),
    )
    assert peeking.check_pseudouser_join(peekable, "@:peer.example").reason == "unknown_join_rule"
    banned = peekable + [ev("m.room.member", "@:peer.example", {"membership": "ban"})]
    assert peeking.check_pseudouser_join(banned, "@:peer.example").reason == "pseudouser_banned"
    assert peeking.check_pseudouser_join(peekable, "@bob:peer.example").reason == "not_a_pseudouser"


def test_invite_only_room_needs_the_pseudousers_own_invite() -> None:
    room = public_room(
        ev("m.room.join_rules", "", {"join_rule": "invite"}),
        ev("m.room.member", "@bob:peer.example", {"membership": "join"}),
    )
    assert peeking.check_pseudouser_join(room, "@:peer.example").reason == "not_invited"
    invited = room + [ev("m.room.member", "@:peer.example", {"membership": "invite"})]
    assert peeking.check_pseudouser_join(invited, "@:peer.example").allowed


def test_state_forms_agree() -> None:
    events = public_room(ev("m.room.member", "@bob:peer.example", {"membership": "join"}))
    state = servership.RoomState.from_events(events)
    assert len(state) == 4 and "RoomState(events=4)" == repr(state)
    text = json.dumps(events).encode()
    assert servership.RoomState.from_events(text).membership("@bob:peer.example") == "join"
    for form in (state, events, text, json.dumps(events)):
        assert peeking.check_pseudouser_join(form, "@:peer.example").reason == "server_has_joined_user"


def test_malformed_state_names_the_index() -> None:
    with pytest.raises(servership.BadJsonError, match=r"state\[1\]"):
        servership.RoomState.from_events([ev("m.room.create", "", {}), {"type": "x", "state_key": 3}])
    with pytest.raises(servership.BadJsonError, match=r"state\[0\] must be an object"):
        peeking.check_pseudouser_join([1], "@:x.example")
    with pytest.raises(servership.BadJsonError):
        peeking.check_pseudouser_join(b"[{", "@:x.example")
    with pytest.raises(servership.BadJsonError):
        peeking.check_pseudouser_join(42, "@:x.example")  # type: ignore[arg-type]


def test_names_leave_pseudousers_out() -> None:
    state = [
        ev("m.room.member", "@me:origin.example", {"membership": "join"}),
        ev("m.room.member", "@:peer.example", {"membership": "join"}),
        ev("m.room.member", "@bob:origin.example", {"membership": "join", "displayname": "Bob"}),
    ]
    assert peeking.room_display_name(state, "@me:origin.example") == "Bob"
    members = peeking.visible_members(state)
    assert [m["user_id"] for m in members] == ["@bob:origin.example", "@me:origin.example"]
    assert members[0]["displayname"] == "Bob" and members[1]["displayname"] is None


def test_operator_policy() -> None:
    policy = peeking.OperatorPolicy(denied_servers=["*.evil.example"], denied_rooms=["!bad:x.example"])
    d = policy.server_denied("a.evil.example:8448")
    assert d is not None and d.reason == "server_denied_by_operator"
    assert policy.server_denied("good.example") is None
    assert policy.room_denied("!bad:x.example") is not None
    assert policy.room_denied("!r:b.evil.example") is not None
    d = policy.check_remote_pseudouser_join(ROOM, [ev("m.room.join_rules", "", {"join_rule": "peekable"})], "@:a.evil.example")
    assert d.reason == "server_denied_by_operator"
    with pytest.raises(servership.TooLargeError):
        peeking.OperatorPolicy(denied_servers=["*" * 65_537])
    # Long entries count (only more than an event can carry is refused).
    assert peeking.OperatorPolicy(denied_servers=["*" * 5000 + "evil.example"]).server_denied("EVIL.example") is not None


def test_peek_tracker_flow() -> None:
    tracker = peeking.PeekTracker("origin.example")
    advice = tracker.request_peek(ROOM, "@me:origin.example", True)
    assert advice.action == "join" and advice.decision.reason == "peek_requested"
    assert tracker.request_peek(ROOM, "@you:origin.example", True).action == "nothing"
    remote = tracker.request_peek(ROOM, "@eve:elsewhere.example", True)
    assert (remote.action, remote.decision.reason) == ("refuse", "not_a_local_user")
    assert tracker.membership_changed(ROOM, "@:origin.example", "join").action == "nothing"
    assert tracker.pseudouser_joined(ROOM)
    assert sorted(tracker.peekers(ROOM)) == ["@me:origin.example", "@you:origin.example"]
    assert tracker.end_peek(ROOM, "@me:origin.example").action == "nothing"
    leave = tracker.end_peek(ROOM, "@you:origin.example")
    assert leave.action == "leave" and leave.decision.reason == "no_local_interest"
    assert tracker.remote_invite(ROOM, "@me:origin.example").action == "nothing"
    refuse = tracker.request_peek("!other:x.example", "@me:origin.example", False)
    assert refuse.action == "refuse" and not refuse.decision
    denied = peeking.PeekTracker("origin.example", peeking.OperatorPolicy(denied_rooms=[ROOM]))
    assert denied.request_peek(ROOM, "@me:origin.example", True).action == "refuse"
    with pytest.raises(servership.InvalidParamError):
        peeking.PeekTracker("not a server")


def test_peek_tracker_is_shareable_between_threads() -> None:
    tracker = peeking.PeekTracker("origin.example")
    actions: list[str] = []
    lock = threading.Lock()

    def peek(i: int) -> None:
        a = tracker.request_peek(ROOM, f"@u{i}:origin.example", True).action
        with lock:
            actions.append(a)

    threads = [threading.Thread(target=peek, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert actions.count("join") == 1 and actions.count("nothing") == 15
