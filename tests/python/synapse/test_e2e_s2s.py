"""s2s rooms (MSC3348) driven by the module between real Synapses (issue 14, item 5).

Two lab servers run the module with ``members_room_version`` and ``s2s`` on. An admin of A
creates an s2s room with B: A's pseudouser creates it and invites ``@:B``, and B's module
accepts the invite by its policy. An admin of A opens an upgrade negotiation; both modules
answer each other through the core's state machine with no one's help, A upgrades the room
(Synapse's own upgrade, as ``@:A``) and B follows the tombstone. Each server then sends an
event into the new room and sees the other's. The rogue homeserver tries the lures: invites of
``@:B`` to rooms that are not s2s rooms of the members room version, and negotiation events
out of order or sent by a user, which B's module must ignore.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.lab import Homeserver, Lab, User
from harness.lab import uid as _uid
from harness.lab import eventually as _eventually
from harness.releases import S2S_PROBLEM, SYNAPSE_VERSION
from harness.rogue import RogueHomeserver, q
from harness.rogue import start_rogue

import servership

MARKER = servership.MEMBERS_MARKER
MEMBERS = servership.MEMBERS_ROOM_VERSION
ROOMS = "/_synapse/client/servership/v1/s2s/rooms"
UPGRADE = "/_synapse/client/servership/v1/s2s/upgrade"
SEND = "/_synapse/client/servership/v1/s2s/send"

# Where the module refuses s2s.enabled (test_e2e_releases.py proves the refusal is clean), the
# reason shows in pytest's summary; these tests are never counted as passing there.
pytestmark = pytest.mark.skipif(
    S2S_PROBLEM is not None, reason=f"s2s rooms need what Synapse {SYNAPSE_VERSION} lacks: "
    f"{S2S_PROBLEM}")
S2S = {
    "members_room_version": {"enabled": True},
    "s2s": {"enabled": True, "tick_seconds": 1,
            "versions": [{"version": MEMBERS, "rating": 10}, {"version": "12", "rating": 3}]},
}


@pytest.fixture(scope="module")
def s2s_lab(tmp_path_factory: pytest.TempPathFactory, lab_logs: list[Lab]) -> Iterator[Lab]:
    lab = Lab(Path(tmp_path_factory.mktemp("s2s-lab")),
              per_server={"A": S2S, "B": {**S2S, "denied_servers": ["denied.example"]}})
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
def rogue(s2s_lab: Lab) -> Iterator[RogueHomeserver]:
    mallory = start_rogue(s2s_lab, "Mallory")
    try:
        yield mallory
    finally:
        mallory.stop()


@pytest.fixture(scope="module")
def admins(s2s_lab: Lab) -> tuple[User, User]:
    return (s2s_lab.a.register(_uid("admina"), admin=True),
            s2s_lab.b.register(_uid("adminb"), admin=True))


# -- helpers ------------------------------------------------------------------------------------


def _wait_log(hs: Homeserver, pattern: str, after: int = 0, timeout: float = 30.0) -> str:
    """Synapse flushes INFO lines in batches: poll for the line (past offset ``after``)."""
    found = _eventually(lambda: re.search(pattern, hs.log_text()[after:]), timeout=timeout,
                        what=f"{pattern!r} in {hs.name}'s log")
    return found.group(0)


def _state(admin: User, room: str) -> list[dict]:
    status, answer = admin.call("GET", f"/_synapse/admin/v1/rooms/{q(room)}/state")
    return list(answer.get("state", [])) if status == 200 else []


def _membership(admin: User, room: str, target: str) -> str | None:
    for e in _state(admin, room):
        if e["type"] == "m.room.member" and e["state_key"] == target:
            return str(e["content"].get("membership"))
    return None


def _state_event(admin: User, room: str, etype: str) -> dict | None:
    return next((e for e in _state(admin, room) if e["type"] == etype and e["state_key"] == ""),
                None)


def _messages(admin: User, room: str) -> list[dict]:
    status, answer = admin.call(
        "GET", f"/_synapse/admin/v1/rooms/{q(room)}/messages?dir=b&limit=100")
    return list(answer.get("chunk", [])) if status == 200 else []


def _s2s_room(admin: User, peer: str) -> str:
    return str(admin.ok("POST", ROOMS, {"peer": peer})["room_id"])


# -- the flow -----------------------------------------------------------------------------------


def test_an_s2s_room_is_created_negotiated_upgraded_and_keeps_working(
    s2s_lab: Lab, admins: tuple[User, User]
) -> None:
    a, b = s2s_lab.a, s2s_lab.b
    admin_a, admin_b = admins
    pa, pb = f"@:{a.server_name}", f"@:{b.server_name}"
    log_b = len(b.log_text())

    # 1. A's pseudouser creates the room and invites @:B; B's module accepts by its policy.
    room = _s2s_room(admin_a, b.server_name)
    _eventually(lambda: _membership(admin_a, room, pb) == "join", what=f"{pb} joined {room}")
    _wait_log(b, re.escape(f"s2s invite of {pb} to {room} by {pa}: accepted"), after=log_b)
    create = _state_event(admin_a, room, "m.room.create")
    assert create is not None and create["sender"] == pa
    assert create["content"]["type"] == "m.s2s" and create["content"][MARKER] == MEMBERS

    # 2. A opens the negotiation; the two machines settle it between themselves.
    opened = admin_a.ok("POST", UPGRADE, {"room_id": room})
    assert opened["peer"] == b.server_name

    def settled() -> dict | None:
        answer = admin_a.ok("GET", f"{UPGRADE}?room_id={q(room)}")
        return answer if "replacement_room" in answer else None

    status_a = _eventually(settled, what="A's upgrade")
    assert status_a["outcome"] == f"agreed:{MEMBERS}" and status_a["role"] == "initiator"
    new_room = status_a["replacement_room"]
    status_b = _eventually(
        lambda: (lambda s: s if s["outcome"] != "in_progress" else None)(
            admin_b.ok("GET", f"{UPGRADE}?room_id={q(room)}")), what="B's outcome")
    assert status_b["outcome"] == f"agreed:{MEMBERS}" and status_b["role"] == "responder"

    # The negotiation as the room holds it (lists equal: proposal, accept, ack, ack), each
    # answer pointing at the event it answers; only pseudousers sent them.
    chain = [e for e in reversed(_messages(admin_a, room)) if e["type"].startswith("m.s2s.")]
    types = sorted((e["type"], e["sender"]) for e in chain)
    assert types == sorted([("m.s2s.upgrade.proposal", pa), ("m.s2s.upgrade.accept", pb),
                            ("m.s2s.upgrade.ack", pa), ("m.s2s.upgrade.ack", pb)]), types
    # Each answer points at the event before it: one line from the proposal to the last ack.
    summary = [(e["type"], e["sender"], e["event_id"],
                e["content"].get("m.relates_to", {}).get("event_id")) for e in chain]
    answered = {e[3]: e for e in summary if e[3] is not None}
    line, current = [], next(e for e in summary if e[0] == "m.s2s.upgrade.proposal")
    while current is not None:
        line.append(current)
        current = answered.get(current[2])
    assert len(line) == len(summary) == 4, summary

    # 3. The upgrade: a tombstone in the old room, a new s2s room of the members room version
    #    that names its predecessor; B followed the tombstone.
    tombstone = _state_event(admin_a, room, "m.room.tombstone")
    assert tombstone is not None and tombstone["sender"] == pa
    assert tombstone["content"]["replacement_room"] == new_room
    new_create = _state_event(admin_a, new_room, "m.room.create")
    assert new_create is not None
    assert new_create["content"]["type"] == "m.s2s"
    assert new_create["content"][MARKER] == MEMBERS
    assert new_create["content"]["predecessor"]["room_id"] == room
    _eventually(lambda: _membership(admin_a, new_room, pb) == "join",
                what=f"{pb} joined the replacement room")
    _eventually(lambda: _membership(admin_b, new_room, pb) == "join",
                what="B sees its own join of the replacement room")
    _eventually(lambda: admin_b.ok("GET", f"{UPGRADE}?room_id={q(room)}").get(
        "replacement_room") == new_room, what="B's record of the tombstone")

    # 4. The new room works both ways.
    from_a = admin_a.ok("POST", SEND, {"room_id": new_room, "type": "org.example.ping",
                                       "content": {"from": "A"}})["event_id"]
    from_b = admin_b.ok("POST", SEND, {"room_id": new_room, "type": "org.example.ping",
                                       "content": {"from": "B"}})["event_id"]
    _eventually(lambda: any(e["event_id"] == from_a for e in _messages(admin_b, new_room)),
                what="B sees A's event")
    _eventually(lambda: any(e["event_id"] == from_b for e in _messages(admin_a, new_room)),
                what="A sees B's event")


def test_admin_endpoints_refuse_bad_requests(s2s_lab: Lab, admins: tuple[User, User]) -> None:
    a, b = s2s_lab.a, s2s_lab.b
    admin_a, admin_b = admins
    user = a.register(_uid("user"))
    assert user.call("POST", ROOMS, {"peer": b.server_name})[0] == 403
    for body in ({}, {"peer": 42}, {"peer": "not a name!"}, {"peer": a.server_name}):
        assert admin_a.call("POST", ROOMS, body)[0] == 400, body
    assert admin_b.call("POST", ROOMS, {"peer": "denied.example"})[0] == 403
    # An ordinary room is no s2s room: no negotiation, no sending as the pseudouser.
    plain = admin_a.create_room(preset="private_chat")
    assert admin_a.call("POST", UPGRADE, {"room_id": plain})[0] == 404
    assert admin_a.call("POST", SEND, {"room_id": plain, "type": "org.example.x",
                                       "content": {}})[0] == 404
    room = _s2s_room(admin_a, b.server_name)
    for etype in ("m.room.member", "m.s2s.upgrade.accept", 7):
        assert admin_a.call("POST", SEND, {"room_id": room, "type": etype,
                                           "content": {}})[0] == 400, etype


# -- attacks ------------------------------------------------------------------------------------


def _invite_outcome(b: Homeserver, rogue: RogueHomeserver, room: Any, outcome: str) -> None:
    pseudo = f"@:{b.server_name}"
    log_b = len(b.log_text())
    seen = len(rogue.received)
    status, answer = rogue.invite(room, pseudo)
    assert status == 200, answer
    _wait_log(b, re.escape(f"s2s invite of {pseudo} to {room.room_id} by "
                           f"{rogue.user_id('blue')}: {outcome}"), after=log_b)
    joins = [r.path for r in rogue.received[seen:] if "make_join" in r.path
             or "send_join" in r.path]
    if outcome.startswith("rejected"):
        assert joins == [], joins
        # The invite was declined (make_leave/send_leave to the inviter).
        _eventually(lambda: any("send_leave" in r.path for r in rogue.received[seen:]),
                    what="B's rejection of the invite")
    else:
        assert any("send_join" in p for p in joins), joins


def test_invites_to_rooms_that_are_not_s2s_rooms_of_the_members_version_are_rejected(
    s2s_lab: Lab, rogue: RogueHomeserver
) -> None:
    b = s2s_lab.b
    # A members-version room that is not an s2s room (the lure peeking also refuses).
    plain = rogue.create_room(create_content={MARKER: MEMBERS}, join_rule="invite")
    _invite_outcome(b, rogue, plain, "rejected (not_s2s_room")
    # An s2s room of plain v12: its auth rules do not know pseudousers.
    unmarked = rogue.create_room(create_content={"type": "m.s2s"}, join_rule="invite")
    _invite_outcome(b, rogue, unmarked, "rejected (not_members_room_version")


def test_forged_and_out_of_order_negotiation_events_are_ignored(
    s2s_lab: Lab, rogue: RogueHomeserver
) -> None:
    b = s2s_lab.b
    pseudo_rogue = f"@:{rogue.server_name}"
    room = rogue.create_room(create_content={"type": "m.s2s", MARKER: MEMBERS},
                             join_rule="invite", creator="blue")
    _invite_outcome(b, rogue, room, "accepted")
    # The rogue's pseudouser joins its own room (invited: rule f), so it is the room's peer.
    # One transaction at a time: Synapse refuses concurrent ones from one origin.
    blue = rogue.user_id("blue")
    pdus = [room.event(room.send("m.room.member", {"membership": "invite"}, sender=blue,
                                 state_key=pseudo_rogue, forward=False)),
            room.event(room.send("m.room.member", {"membership": "join"}, sender=pseudo_rogue,
                                 state_key=pseudo_rogue, forward=False))]
    assert rogue.send_transaction(b, pdus)[0] == 200
    log_b = len(b.log_text())
    seen = len(rogue.received)
    # Out of order: an accept with no negotiation running.
    accept = room.send("m.s2s.upgrade.accept", {
        "version": MEMBERS, "m.relates_to": {"rel_type": "m.reference", "event_id": "$nothing"}},
        sender=pseudo_rogue, forward=False)
    assert rogue.send_transaction(b, [room.event(accept)])[0] == 200
    _wait_log(b, re.escape(f"ignored m.s2s.upgrade.accept {accept} in {room.room_id}"),
              after=log_b)
    # A proposal sent by a user of the server, not its pseudouser.
    proposal = room.send("m.s2s.upgrade.proposal", {"versions": [{"version": MEMBERS,
                                                                  "rating": 9}]},
                         sender=blue, forward=False)
    assert rogue.send_transaction(b, [room.event(proposal)])[0] == 200
    _wait_log(b, re.escape(f"ignored m.s2s.upgrade.proposal {proposal} in {room.room_id}: "
                           f"sent by {blue}"), after=log_b)
    time.sleep(2)  # B's answer, if any, would have been sent by now
    sent = [json.dumps(r.body) for r in rogue.received[seen:] if "/send/" in r.path]
    assert not any("m.s2s.upgrade" in body for body in sent), sent
    # The control: the same room's pseudouser, with a well-formed proposal, gets B's answer
    # (so the silence above is B ignoring those events, not B never answering).
    good = room.send("m.s2s.upgrade.proposal", {"versions": [{"version": MEMBERS,
                                                              "rating": 9}]},
                     sender=pseudo_rogue, forward=False)
    assert rogue.send_transaction(b, [room.event(good)])[0] == 200

    def answer() -> dict | None:
        for r in rogue.received[seen:]:
            for pdu in (r.body or {}).get("pdus", []) if isinstance(r.body, dict) else []:
                if pdu.get("type") == "m.s2s.upgrade.reply":
                    return dict(pdu)
        return None

    reply = _eventually(answer, what="B's reply to the rogue's proposal")
    assert reply["sender"] == f"@:{b.server_name}"
    assert reply["content"]["m.relates_to"]["event_id"] == good
    assert {"version": MEMBERS, "rating": 10} in reply["content"]["versions"]


def test_an_invite_whose_state_lies_is_left_at_once(s2s_lab: Lab,
                                                    rogue: RogueHomeserver) -> None:
    """The invite's ``invite_room_state`` is the inviter's word. It claims an s2s room of the
    members room version; the room is an s2s room of plain v12 (no marker), where the invite
    lets B's pseudouser in. B joins (it cannot know before), reads the real create event and
    leaves at once. (Claiming an s2s room for a marked ordinary room gets less far: B's own
    event auth, under the members rules, refuses the join.)"""
    b = s2s_lab.b
    pseudo = f"@:{b.server_name}"
    room = rogue.create_room(create_content={"type": "m.s2s"}, join_rule="invite")
    fake_create = dict(room.event(room.create_id))
    fake_create["content"] = dict(fake_create["content"], **{MARKER: MEMBERS})
    sender = rogue.user_id("blue")
    ev = room.build("m.room.member", {"membership": "invite"}, sender=sender,
                    state_key=pseudo)
    signed = servership.sign_event(ev, rogue.server_name, rogue.signing_key, room.version)
    event_id = servership.event_id(signed, room.version)
    log_b = len(b.log_text())
    status, answer = rogue.request(
        b.server_name, "PUT",
        f"/_matrix/federation/v2/invite/{q(room.room_id)}/{q(event_id)}",
        {"room_version": room.version, "event": signed, "invite_room_state": [fake_create]})
    assert status == 200, answer
    room.add(answer["event"])
    _wait_log(b, re.escape(f"s2s invite of {pseudo} to {room.room_id} by {sender}: accepted"),
              after=log_b)
    _wait_log(b, re.escape(f"{pseudo} left {room.room_id} at once: it is not of the members "
                           "room version"), after=log_b)
    _eventually(lambda: room.members().get(pseudo) == "leave", what="B's leave at the rogue")
