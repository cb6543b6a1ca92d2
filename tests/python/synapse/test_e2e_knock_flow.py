"""The MSC4099 knock flow end to end (issue 14, item 6), on real Synapses and a rogue homeserver.

B gates two rooms of its own; A knocks on them through its admin API. B's admin lists the
pending knocks (with the core's advice) and accepts one: the grant
``m.server.is_able_to_subscribe`` for A enters the room, B pushes it to A in an
``org.servership.knock.accepted`` EDU, and A's module joins the user who asked. The other knock is
refused: it is removed and A hears nothing. An admin of B without power in the room cannot grant.

The rogue Mallory plays a hostile resident: A knocks on a room of Mallory's, and Mallory sends
acceptances that must be ignored (for a room A never knocked on, for a knock A sent elsewhere,
for another server, with a garbage signature, with a tampered content). None makes A contact
Mallory; the one valid grant does, and A joins.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from typing import Any, Iterator

import pytest

from harness.lab import Lab, User
from harness.lab import uid as _uid
from harness.lab import eventually as _eventually
from harness.rogue import RogueHomeserver
from harness.rogue import start_rogue

KNOCK = "/_synapse/client/servership/v1/knock"
KNOCKS = "/_synapse/client/servership/v1/knocks"
ACCEPTED = "org.servership.knock.accepted"
GRANT = "m.server.is_able_to_subscribe"


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _join_status(user: User, room: str, via: str) -> int:
    status, _ = user.call("POST", f"/_matrix/client/v3/join/{_q(room)}?server_name={_q(via)}", {})
    return status


def _knocks(admin: User, room: str) -> list[dict]:
    return list(admin.ok("GET", f"{KNOCKS}?room_id={_q(room)}")["knocks"])


def _status(admin: User, room: str) -> dict:
    return dict(admin.ok("GET", f"{KNOCK}?room_id={_q(room)}"))


@pytest.fixture(scope="module")
def gated(lab: Lab) -> tuple[User, str, str]:
    """bob, an admin of B, creates two public rooms that B then gates (one restart)."""
    bob = lab.b.register(_uid("bob"), admin=True)
    accept_room = bob.create_room(preset="public_chat")
    refuse_room = bob.create_room(preset="public_chat")
    old = list(lab.b.module_config.get("gated_rooms", []))
    lab.timings["restart_B_knock_flow"] = lab.b.reconfigure(
        gated_rooms=old + [accept_room, refuse_room])
    return bob, accept_room, refuse_room


@pytest.fixture(scope="module")
def mallory(lab: Lab) -> Iterator[RogueHomeserver]:
    rogue = start_rogue(lab, "MalloryKF")
    try:
        yield rogue
    finally:
        rogue.stop()


def test_a_knock_is_accepted_the_grant_reaches_the_knocker_and_it_joins(
        lab: Lab, gated: tuple[User, str, str]) -> None:
    bob, room, _ = gated
    alice = lab.a.register(_uid("alice"), admin=True)
    # The gate holds before anything: B answers make_join as for an unknown room.
    assert _join_status(alice, room, lab.b.server_name) == 502
    assert _status(alice, room) == {"room_id": room, "state": "none"}
    assert alice.ok("POST", KNOCK, {"room_id": room, "destination": lab.b.server_name,
                                    "user_id": alice.user_id}) == {"sent": True}
    assert _status(alice, room)["state"] == "sent"
    knocks = _eventually(lambda: _knocks(bob, room), what="A's knock listed on B")
    assert [k["server"] for k in knocks] == [lab.a.server_name], knocks
    # The core's advice for a moderator: pending (nothing refuses A, nothing accepts it yet).
    assert knocks[0]["advice"]["verdict"] == "pending", knocks
    # Only server admins list and decide.
    carol = lab.b.register(_uid("carol"))
    status, body = carol.call("GET", f"{KNOCKS}?room_id={_q(room)}")
    assert status == 403, body
    answer = bob.ok("POST", KNOCKS, {"room_id": room, "server": lab.a.server_name,
                                     "decision": "accept"})
    assert answer["decision"] == "accept" and answer["notified"] is True, answer
    grant = bob.ok("GET", f"/_matrix/client/v3/rooms/{_q(room)}/state/{GRANT}/"
                   f"{_q(lab.a.server_name)}")
    assert grant == {"is_able_to_subscribe": True}, grant
    assert _knocks(bob, room) == []
    # A learns of it and joins alice, by itself.
    done = _eventually(lambda: _status(alice, room)["state"] in ("joined", "join_failed")
                       and _status(alice, room), timeout=30, what="A to join after the grant")
    assert done["state"] == "joined" and done["grant_event_id"] == answer["event_id"], done
    members = bob.ok("GET", f"/_matrix/client/v3/rooms/{_q(room)}/joined_members")["joined"]
    assert alice.user_id in members, members


def test_a_refused_knock_is_removed_and_a_moderator_without_power_cannot_grant(
        lab: Lab, gated: tuple[User, str, str]) -> None:
    bob, _, room = gated
    alice = lab.a.register(_uid("alice"), admin=True)
    alice.ok("POST", KNOCK, {"room_id": room, "destination": lab.b.server_name})
    _eventually(lambda: _knocks(bob, room), what="A's knock listed on B")
    # A server admin of B who is not in the room: Synapse refuses the grant event itself.
    dave = lab.b.register(_uid("dave"), admin=True)
    status, body = dave.call("POST", KNOCKS, {"room_id": room, "server": lab.a.server_name,
                                              "decision": "accept"})
    assert status == 403, (status, body)
    assert [k["server"] for k in _knocks(bob, room)] == [lab.a.server_name]
    # Hostile decisions: unknown decision, unknown knock, no such room.
    for bad, code in (({"room_id": room, "server": lab.a.server_name, "decision": "maybe"}, 400),
                      ({"room_id": room, "server": "nobody.example", "decision": "accept"}, 404),
                      ({"room_id": "!nope:nowhere.example", "server": lab.a.server_name,
                        "decision": "accept"}, 404),
                      ({"room_id": room, "server": ["x"], "decision": "accept"}, 400)):
        status, body = bob.call("POST", KNOCKS, bad)
        assert status == code, (bad, status, body)
    answer = bob.ok("POST", KNOCKS, {"room_id": room, "server": lab.a.server_name,
                                     "decision": "refuse"})
    assert answer["decision"] == "refuse", answer
    assert _knocks(bob, room) == []
    status, _ = bob.call("GET", f"/_matrix/client/v3/rooms/{_q(room)}/state/{GRANT}/"
                         f"{_q(lab.a.server_name)}")
    assert status == 404
    # A hears nothing: its knock stays "sent" and the gate still holds.
    time.sleep(3)
    assert _status(alice, room)["state"] == "sent"
    assert _join_status(alice, room, lab.b.server_name) == 502


def _accept(mallory: RogueHomeserver, lab: Lab, room_id: str, event: dict,
            version: str = "12") -> None:
    status, body = mallory.send_transaction(lab.a, [], [{
        "edu_type": ACCEPTED,
        "content": {"room_id": room_id, "room_version": version, "event": event}}])
    assert status == 200, (status, body)


def test_acceptances_the_knocker_did_not_ask_for_are_ignored(
        lab: Lab, mallory: RogueHomeserver) -> None:
    alice = lab.a.register(_uid("alice"), admin=True)
    room = mallory.create_room("12", join_rule="public")
    elsewhere = mallory.create_room("12", join_rule="public")
    alice.ok("POST", KNOCK, {"room_id": room.room_id, "destination": mallory.server_name})
    # A knock A sent to B, about a room B does not know.
    b_room = f"!{_uid('x')}:{lab.b.server_name}"
    alice.ok("POST", KNOCK, {"room_id": b_room, "destination": lab.b.server_name})

    def grant(r: Any, server: str = lab.a.server_name) -> dict:
        return r.event(r.send(GRANT, {"is_able_to_subscribe": True}, state_key=server,
                              forward=False))

    ignored = re.escape(f"servership: ignored a knock acceptance from {mallory.server_name}: ")
    attempts = [
        ("a room A never knocked on", elsewhere.room_id, grant(elsewhere),
         "we have no pending knock"),
        ("a knock A sent to B", b_room, grant(room), re.escape("not " + mallory.server_name)),
        ("another server's grant", room.room_id, grant(room, "other.example"),
         "not this server's grant"),
        ("a garbage signature", room.room_id,
         mallory.forge(room, GRANT, {"is_able_to_subscribe": True},
                       sender=mallory.user_id("blue"), state_key=lab.a.server_name),
         "does not verify|no verify key"),
        ("a tampered content", room.room_id,
         {**grant(room), "content": {"is_able_to_subscribe": True, "extra": 1}},
         "content hash"),
    ]
    for what, room_id, event, reason in attempts:
        _accept(mallory, lab, room_id, event)
        pattern = ignored + r".*(" + reason + ")"
        _eventually(lambda: re.search(pattern, lab.a.log_text()), what=f"A to ignore {what}")
    assert _status(alice, room.room_id)["state"] == "sent"
    assert not [r for r in mallory.received if "make_join" in r.path], "A tried to join"
    # The real grant, from the server A knocked at: A joins through it.
    _accept(mallory, lab, room.room_id, grant(room))
    done = _eventually(lambda: _status(alice, room.room_id)["state"] in ("joined", "join_failed")
                       and _status(alice, room.room_id), timeout=30, what="A to join")
    assert done["state"] == "joined", done
    assert room.members().get(alice.user_id) == "join"
    # Replaying the acceptance now does nothing (the knock is no longer pending).
    _accept(mallory, lab, room.room_id, grant(room))
    _eventually(lambda: len(re.findall(ignored + r"we have no pending knock on "
                                       + re.escape(repr(room.room_id)), lab.a.log_text())) >= 1,
                what="the replay ignored")
