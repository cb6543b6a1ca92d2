"""Peeking (MSC1777) between real Synapses on the members room version (issue 14, item 4).

Two lab servers run the module with ``members_room_version`` and ``peeking`` on; the rogue
homeserver plays a remote server that invites our pseudouser to lure it. A user of B peeks into rooms of A through B's endpoint
(``/_synapse/client/servership/v1/peek``): B joins as ``@:B`` (make_join/send_join to A, admitted
by A's event auth under ``peekable``), the user reads recent events and new ones, and when the
session ends (``DELETE``, or expiry found by the scheduled check) ``@:B`` leaves. Refusals: a
marked room that is not peekable (A's event auth), a plain v12 room, the operator's deny lists
(room, via servers), hostile requests, caps, users of other servers, and a remote
invite of ``@:B`` that must not make B join.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.lab import Homeserver, Lab, User, client_request
from harness.lab import uid as _uid
from harness.lab import eventually as _eventually
from harness.rogue import RogueHomeserver, q
from harness.rogue import start_rogue

import servership

MARKER = servership.MEMBERS_MARKER
MEMBERS = servership.MEMBERS_ROOM_VERSION
PEEK = "/_synapse/client/servership/v1/peek"
SESSION_SECONDS = 6
DENIED_ROOM = "!" + "deniedByTheOperator".ljust(43, "x")  # a v12 room ID: 43 characters
PEEKING = {
    "members_room_version": {"enabled": True},
    "peeking": {"enabled": True, "session_seconds": SESSION_SECONDS,
                "check_interval_seconds": 1, "max_sessions_per_user": 3, "max_via": 4},
}


@pytest.fixture(scope="module")
def peek_lab(tmp_path_factory: pytest.TempPathFactory, lab_logs: list[Lab]) -> Iterator[Lab]:
    lab = Lab(Path(tmp_path_factory.mktemp("peek-lab")),
              per_server={"A": PEEKING,
                          "B": {**PEEKING, "denied_rooms": [DENIED_ROOM],
                                "denied_servers": ["denied.example", "*.denied.example"]}})
    lab_logs.append(lab)
    try:
        lab.setup()
        lab.start()
        for name in ("A", "B"):
            _wait_log(lab[name], r"the members rules apply in \d+ rooms of the store")
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def rogue(peek_lab: Lab) -> Iterator[RogueHomeserver]:
    mallory = start_rogue(peek_lab, "Mallory")
    try:
        yield mallory
    finally:
        mallory.stop()


# -- helpers ------------------------------------------------------------------------------------


def _wait_log(hs: Homeserver, pattern: str, after: int = 0, timeout: float = 20.0) -> str:
    """Synapse flushes INFO lines in batches: poll for the line (past offset ``after``)."""
    found = _eventually(lambda: re.search(pattern, hs.log_text()[after:]), timeout=timeout,
                        what=f"{pattern!r} in {hs.name}'s log")
    return found.group(0)


def _room(user: User, *, join_rule: str | None = "peekable", marked: bool = True) -> str:
    body: dict[str, Any] = {"preset": "public_chat", "room_version": "12",
                            "creation_content": {MARKER: MEMBERS} if marked else {}}
    if join_rule is not None:
        body["initial_state"] = [{"type": "m.room.join_rules", "state_key": "",
                                  "content": {"join_rule": join_rule}}]
    return str(user.ok("POST", "/_matrix/client/v3/createRoom", body)["room_id"])


def _say(user: User, room: str, text: str) -> str:
    answer = user.ok("PUT", f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/"
                     f"{uuid.uuid4().hex}", {"msgtype": "m.text", "body": text})
    return str(answer["event_id"])


def _membership(user: User, room: str, target: str) -> str | None:
    events = user.ok("GET", f"/_matrix/client/v3/rooms/{q(room)}/state")
    for e in events:
        if e["type"] == "m.room.member" and e["state_key"] == target:
            return str(e["content"].get("membership"))
    return None


def _peek(user: User, room: Any, via: Any) -> tuple[int, Any]:
    return user.call("POST", PEEK, {"room_id": room, "via": via})


def _read(user: User, room: str, limit: int = 20) -> tuple[int, Any]:
    return user.call("GET", f"{PEEK}?room_id={q(room)}&limit={limit}")


def _end(user: User, room: str) -> tuple[int, Any]:
    return user.call("DELETE", f"{PEEK}?room_id={q(room)}")


def _bodies(answer: dict) -> list[str]:
    return [e["content"].get("body") for e in answer["events"] if e["type"] == "m.room.message"]


# -- the flow -------------------------------------------------------------------------------------


def test_a_user_peeks_reads_old_and_new_events_and_the_pseudouser_leaves(peek_lab: Lab) -> None:
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    room = _room(alice)
    _say(alice, room, "before the peek 1")
    _say(alice, room, "before the peek 2")
    bob = b.register(_uid("bob"))
    pseudo = f"@:{b.server_name}"

    status, answer = _peek(bob, room, [a.server_name])
    assert status == 200, answer
    assert answer["joined"] is True and answer["as"] == pseudo, answer
    assert 0 < answer["expires_in_ms"] <= SESSION_SECONDS * 1000, answer
    # The pseudouser's join is in the room, as A (the resident) sees it, signed by B.
    _eventually(lambda: _membership(alice, room, pseudo) == "join", what="@:B joined at A")

    # Recent events, from before the join too (B backfills them from A).
    status, read = _eventually(lambda: (lambda r: r if r[0] == 200 and {
        "before the peek 1", "before the peek 2"} <= set(_bodies(r[1])) else None)(
        _read(bob, room)), what="the old messages through the peek")
    assert read["state"].get("join_rule") in ("peekable", None), read["state"]
    assert any(e["type"] == "m.room.member" and e.get("state_key") == pseudo
               for e in read["events"]), "the pseudouser's own join is in the timeline"

    # A new message is readable.
    assert _peek(bob, room, [a.server_name])[1]["renewed"] is True
    _say(alice, room, "after the peek")
    _eventually(lambda: "after the peek" in _bodies(_read(bob, room)[1]),
                what="the new message through the peek")
    # The summary leaves the pseudouser out of the members.
    summary = _read(bob, room)[1]["state"]
    assert summary["members_room_version"] is True and summary["joined_members"] == 1, summary
    # Named as Bob would see it once joined: after alice (her display name is her localpart).
    assert summary["name"] == alice.user_id[1:].split(":", 1)[0], summary

    # The session ends: the pseudouser leaves; reading is refused from now on.
    status, ended = _end(bob, room)
    assert status == 200 and ended["left"] is True, ended
    _eventually(lambda: _membership(alice, room, pseudo) == "leave", what="@:B left at A")
    status, answer = _read(bob, room)
    assert status == 404 and answer["errcode"] == "M_NOT_FOUND", answer
    status, answer = _end(bob, room)
    assert status == 404, answer


def test_an_expired_session_makes_the_pseudouser_leave(peek_lab: Lab) -> None:
    """No DELETE: the scheduled check ends the session after ``session_seconds`` and leaves.
    Two peekers: the pseudouser stays while one of them renews."""
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    room = _room(alice)
    bob, bea = b.register(_uid("bob")), b.register(_uid("bea"))
    pseudo = f"@:{b.server_name}"
    assert _peek(bob, room, [a.server_name])[0] == 200
    status, answer = _peek(bea, room, [a.server_name])
    assert status == 200 and answer["joined"] is True, answer
    log_at = len(b.log_text())
    started = time.monotonic()
    # bea renews past bob's expiry: the pseudouser stays.
    while time.monotonic() - started < SESSION_SECONDS + 2:
        assert _peek(bea, room, [a.server_name])[0] == 200
        time.sleep(1)
    assert _read(bob, room)[0] == 404
    assert _read(bea, room)[0] == 200
    assert _membership(alice, room, pseudo) == "join"
    # bea stops renewing: the check leaves once her session expires.
    _eventually(lambda: _membership(alice, room, pseudo) == "leave",
                timeout=SESSION_SECONDS + 15, what="@:B left after the expiry")
    _wait_log(b, r"left " + re.escape(room) + r" \(no local peeker", after=log_at)


def test_a_local_member_keeps_the_pseudouser_in_until_they_leave(peek_lab: Lab) -> None:
    """The tracker counts local joined members: a peek ending while a user of B is joined
    does not leave; that user's leave does."""
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    room = _room(alice)
    bob, ben = b.register(_uid("bob")), b.register(_uid("ben"))
    pseudo = f"@:{b.server_name}"
    assert _peek(bob, room, [a.server_name])[0] == 200
    ben.join(room, via=a.server_name)
    _eventually(lambda: _membership(alice, room, ben.user_id) == "join", what="ben joined")
    status, ended = _end(bob, room)
    assert status == 200 and ended["left"] is False, ended
    time.sleep(2)  # two scheduled checks
    assert _membership(alice, room, pseudo) == "join"
    ben.ok("POST", f"/_matrix/client/v3/rooms/{q(room)}/leave", {})
    _eventually(lambda: _membership(alice, room, pseudo) == "leave", what="@:B left after ben")


# -- refusals -------------------------------------------------------------------------------------


def test_a_marked_room_that_is_not_peekable_is_refused_by_the_residents_event_auth(
    peek_lab: Lab,
) -> None:
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    room = _room(alice, join_rule="public")
    bob = b.register(_uid("bob"))
    pseudo = f"@:{b.server_name}"
    log_a = len(a.log_text())
    for _ in range(2):  # a refused join is forgotten: asking again is judged again
        status, answer = _peek(bob, room, [a.server_name])
        assert status == 403, (status, answer)
        assert answer["errcode"] == "M_FORBIDDEN", answer
    _wait_log(a, r"the members rules refused \S+ \(m\.room\.member of " + re.escape(pseudo)
              + r"\) in .*no_user_of_server", after=log_a)
    assert _membership(alice, room, pseudo) is None
    assert _read(bob, room)[0] == 404


def test_a_plain_v12_room_is_refused(peek_lab: Lab) -> None:
    """A plain room: A (pseudousers off) answers make_join as for an unknown room (404), which
    B's Synapse reports as "Failed to make_join via any server" (502)."""
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    room = _room(alice, join_rule=None, marked=False)
    bob = b.register(_uid("bob"))
    status, answer = _peek(bob, room, [a.server_name])
    assert status == 502 and "make_join" in answer["error"], (status, answer)
    assert _membership(alice, room, f"@:{b.server_name}") is None
    assert _read(bob, room)[0] == 404


def test_the_operators_deny_lists_apply_to_peeks(peek_lab: Lab) -> None:
    a, b = peek_lab.a, peek_lab.b
    bob = b.register(_uid("bob"))
    pseudo = f"@:{b.server_name}"
    # A denied room: refused before any federation traffic.
    status, answer = _peek(bob, DENIED_ROOM, [a.server_name])
    assert status == 403 and answer["errcode"] == "M_FORBIDDEN", answer
    assert "operator" in answer["error"], answer
    # A denied server in via.
    alice = a.register(_uid("alice"))
    room = _room(alice)
    status, answer = _peek(bob, room, [a.server_name, "denied.example"])
    assert status == 403 and "denied.example" in answer["error"], answer
    # A glob, and a port: deny entries match the host (ports removed, as in server ACLs).
    status, answer = _peek(bob, room, ["evil.denied.example:8448"])
    assert status == 403 and "*.denied.example" in answer["error"], answer
    assert _membership(alice, room, pseudo) is None


def test_a_remote_invite_of_the_pseudouser_does_not_make_us_join(
    peek_lab: Lab, rogue: RogueHomeserver
) -> None:
    """The lure: the rogue invites ``@:B`` to its room (peekable, marked) and waits for a
    make_join that must never come."""
    b = peek_lab.b
    pseudo = f"@:{b.server_name}"
    room = rogue.create_room(create_content={MARKER: MEMBERS}, join_rule="peekable")
    log_b = len(b.log_text())
    seen = len(rogue.received)
    status, answer = rogue.invite(room, pseudo)
    assert status == 200, answer
    _wait_log(b, re.escape(f"invited {pseudo} to {room.room_id}; not joining "
                           "(remote_invite_is_no_reason)"), after=log_b)
    time.sleep(3)  # several scheduled checks
    asked = [r.path for r in rogue.received[seen:] if "make_join" in r.path
             or "send_join" in r.path]
    assert asked == [], asked


def test_hostile_requests_are_refused(peek_lab: Lab) -> None:
    a, b = peek_lab.a, peek_lab.b
    bob = b.register(_uid("bob"))
    alice = a.register(_uid("alice"))
    room = _room(alice)
    cases: list[tuple[Any, Any, int]] = [
        (None, [a.server_name], 400),
        (42, [a.server_name], 400),
        ("not a room", [a.server_name], 400),
        ("!" + "x" * 300, [a.server_name], 400),
        ("!room\x00:x", [a.server_name], 400),
        (room, None, 400),
        (room, [], 400),
        (room, a.server_name, 400),
        (room, [b.server_name], 400),            # ourselves
        (room, [b.server_name.upper()], 400),    # ourselves, spelt otherwise
        (room, ["bad name!"], 400),
        (room, [{"server": a.server_name}], 400),
        (room, [f"h{i}.example" for i in range(5)], 413),  # over max_via (4)
        (room, [f"h{i}.example" for i in range(10_000)], 413),
    ]
    for room_id, via, expected in cases:
        status, answer = _peek(bob, room_id, via)
        assert status == expected, (room_id, via, status, answer)
    # Not JSON, and other methods.
    status, _ = client_request("POST", b.client_url + PEEK, raw=b"{nope", token=bob.token)
    assert status == 400
    status, _ = client_request("PUT", b.client_url + PEEK, {}, token=bob.token)
    assert status in (400, 405)
    for limit in ("0", "-1", "abc", "1001", "1e3", "%C2%B2", "%EF%BC%91", "9" * 50):
        status, _ = bob.call("GET", f"{PEEK}?room_id={q(room)}&limit={limit}")
        assert status == 400, (limit, status)
    status, _ = bob.call("GET", f"{PEEK}?room_id={q(room)}&limit=5")
    assert status == 404  # a good request, but no session
    # Nothing was joined by any of that.
    assert _membership(alice, room, f"@:{b.server_name}") is None


def test_only_authenticated_local_users_may_peek(peek_lab: Lab) -> None:
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    room = _room(alice)
    # No token, and the token of a user of another server (A's alice at B).
    status, answer = client_request("POST", b.client_url + PEEK,
                                    {"room_id": room, "via": [a.server_name]})
    assert status == 401, answer
    status, answer = client_request("POST", b.client_url + PEEK,
                                    {"room_id": room, "via": [a.server_name]},
                                    token=alice.token)
    assert status == 401, answer
    assert _membership(alice, room, f"@:{b.server_name}") is None


def test_sessions_per_user_are_capped(peek_lab: Lab) -> None:
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    rooms = [_room(alice) for _ in range(4)]
    bob = b.register(_uid("bob"))
    for room in rooms[:3]:
        status, answer = _peek(bob, room, [a.server_name])
        assert status == 200, answer
    status, answer = _peek(bob, rooms[3], [a.server_name])
    assert status == 429 and answer["errcode"] == "M_LIMIT_EXCEEDED", answer
    # Renewing an open session is not a new one; ending one frees a place.
    assert _peek(bob, rooms[0], [a.server_name])[0] == 200
    assert _end(bob, rooms[0])[0] == 200
    assert _peek(bob, rooms[3], [a.server_name])[0] == 200
    for room in rooms[1:]:
        assert _end(bob, room)[0] == 200


def test_after_a_restart_rooms_nobody_renews_are_left(peek_lab: Lab) -> None:
    """Sessions are in memory: a restarted B finds the rooms its pseudouser is in, keeps them
    one session length for peekers to renew, then leaves the one nobody renewed."""
    a, b = peek_lab.a, peek_lab.b
    alice = a.register(_uid("alice"))
    kept, dropped = _room(alice), _room(alice)
    bob = b.register(_uid("bob"))
    pseudo = f"@:{b.server_name}"
    for room in (kept, dropped):
        assert _peek(bob, room, [a.server_name])[0] == 200
        _eventually(lambda: _membership(alice, room, pseudo) == "join", what="@:B joined")
    log_b = len(b.log_text())
    peek_lab.timings["restart_B_peeking"] = b.restart()
    _wait_log(b, re.escape(pseudo) + r" is in 2 rooms at start-up", after=log_b)
    assert _read(bob, kept)[0] == 404  # the session did not survive
    status, answer = _peek(bob, kept, [a.server_name])
    assert status == 200 and answer["joined"] is True, answer  # renewed: no second join

    def dropped_left() -> bool:
        # bob's client keeps renewing `kept` meanwhile, as a client showing the preview would.
        assert _peek(bob, kept, [a.server_name])[0] == 200
        return _membership(alice, dropped, pseudo) == "leave"

    _eventually(dropped_left, timeout=SESSION_SECONDS + 15,
                what="@:B left the room nobody renewed")
    assert _membership(alice, kept, pseudo) == "join"
    assert _end(bob, kept)[1]["left"] is True
    _eventually(lambda: _membership(alice, kept, pseudo) == "leave", what="@:B left kept")
