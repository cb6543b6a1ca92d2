"""Servers as members, against a real Synapse (B of the lab) and a rogue homeserver: the attacks
of issue 12 that used to work.

- A join built by hand and sent with ``send_join`` (skipping the ``make_join`` check): a server
  pseudouser while ``pseudousers`` is off, and a server that is not able to subscribe into a
  gated room. Both got 200 (and the room's state); both are now answered exactly as an unknown
  room is, and nothing is persisted.
- ``make_join`` of a gated room answers as an unknown room does: the room does not reveal itself.
- One ``/send`` with 100 ``m.server.knock`` EDUs for rooms that do not exist gave 100 rows; now
  none.
- Joins that reach B in ``/send``, relayed by a resident server (the rogue, once joined): its
  own pseudouser's join, and another server's user's join into a gated room. Both used to be
  persisted; both are now dropped.
- With ``pseudousers: true``, the MSC1777 rule decides: a server with no user in the room cannot
  put its pseudouser in; once one of its users is joined, it can.
"""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from typing import Any, Iterator

import pytest

from harness.lab import Lab
from harness.rogue import start_rogue as _start_rogue
from harness.lab import uid as _uid
from harness.lab import eventually as _eventually
from harness.rogue import RogueHomeserver, q

import servership

VERS = "&".join(f"ver={v}" for v in ("10", "11", "12"))


@pytest.fixture(scope="module")
def rogue(lab: Lab) -> Iterator[RogueHomeserver]:
    mallory = _start_rogue(lab, "Mallory")
    try:
        yield mallory
    finally:
        mallory.stop()


@pytest.fixture(scope="module")
def second_rogue(lab: Lab) -> Iterator[RogueHomeserver]:
    """Trudy: a server that never joins, whose joins Mallory relays."""
    trudy = _start_rogue(lab, "Trudy")
    try:
        yield trudy
    finally:
        trudy.stop()


def _make_join(rogue: RogueHomeserver, lab: Lab, room_id: str, user: str) -> tuple[int, Any]:
    return rogue.request(lab.b, "GET",
                         f"/_matrix/federation/v1/make_join/{q(room_id)}/{q(user)}?{VERS}")


def _relayed_join(signer: RogueHomeserver, template: dict, version: str, as_user: str,
                  after: str, depth: int) -> dict:
    """A join of ``as_user`` signed by ``signer``, built on a ``make_join`` template's auth
    events (a first join names the same ones), after the event ``after``."""
    event = dict(template)
    event.update(sender=as_user, state_key=as_user, origin_server_ts=int(time.time() * 1000),
                 prev_events=[after], depth=depth)
    if "origin" in event:
        event["origin"] = signer.server_name
    return servership.sign_event(event, signer.server_name, signer.signing_key, version)


def _join_by_send_join(rogue: RogueHomeserver, lab: Lab, room: str, user: str) -> tuple[dict, str]:
    """``user`` of the rogue joins B's public ``room`` by make_join and send_join; returns the
    template and the join's event ID."""
    status, made = _make_join(rogue, lab, room, user)
    assert status == 200, made
    status, answer, event_id = _send_join_with_id(rogue, lab, room, made["event"],
                                                  made["room_version"], user)
    assert status == 200, answer
    return made, event_id


def _send_join_with_id(rogue: RogueHomeserver, lab: Lab, room_id: str, template: dict,
                       version: str, as_user: str) -> tuple[int, Any, str]:
    """Sign a join built from a template, for ``as_user``, and send it with send_join; the
    answer and the join's event ID."""
    event = dict(template)
    event.update(sender=as_user, state_key=as_user, origin_server_ts=int(time.time() * 1000))
    signed = servership.sign_event(event, rogue.server_name, rogue.signing_key, version)
    event_id = servership.event_id(signed, version)
    status, answer = rogue.request(
        lab.b, "PUT", f"/_matrix/federation/v2/send_join/{q(room_id)}/{q(event_id)}", signed)
    return status, answer, event_id


def _send_join(rogue: RogueHomeserver, lab: Lab, room_id: str, template: dict,
               version: str, as_user: str) -> tuple[int, Any]:
    status, answer, _ = _send_join_with_id(rogue, lab, room_id, template, version, as_user)
    return status, answer


def _unknown_room_answer(rogue: RogueHomeserver, lab: Lab, user: str) -> tuple[int, Any, str]:
    unknown = f"!{uuid.uuid4().hex}:{lab.b.server_name}"
    status, body = _make_join(rogue, lab, unknown, user)
    return status, body, unknown


def _same_as_unknown(answer: tuple[int, Any], room_id: str, unknown: tuple[int, Any, str]) -> None:
    status, body = answer
    u_status, u_body, u_room = unknown
    assert u_status == 404, (u_status, u_body)
    assert status == u_status, (status, body)
    assert body == {k: (v.replace(u_room, room_id) if isinstance(v, str) else v)
                    for k, v in u_body.items()}, (body, u_body)


def _members(lab: Lab, user: Any, room_id: str) -> dict[str, str]:
    chunk = user.ok("GET", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/members")
    return {e["state_key"]: e["content"]["membership"] for e in chunk["chunk"]}


def test_a_hand_built_send_join_of_a_pseudouser_is_refused(lab: Lab, rogue: RogueHomeserver) -> None:
    """Issue 12: `@:A` into B's room by send_join got 200 while B had pseudousers: false."""
    bob = lab.b.register(_uid("bob"))
    room = bob.create_room(preset="public_chat")
    mallory = rogue.user_id("mallory")
    # make_join for an ordinary user is allowed (a public room): it gives a valid template.
    status, made = _make_join(rogue, lab, room, mallory)
    assert status == 200, made
    pseudo = f"@:{rogue.server_name}"
    answer = _send_join(rogue, lab, room, made["event"], made["room_version"], pseudo)
    _same_as_unknown(answer, room, _unknown_room_answer(rogue, lab, mallory))
    assert "state" not in answer[1], "the room's state must not be handed out"
    assert pseudo not in _members(lab, bob, room)
    # Synapse's log handler flushes INFO lines in batches: wait for the line, do not race it.
    refused = re.escape(f"servership: refused the join of {pseudo} to {room} at send_join")
    _eventually(lambda: re.search(refused, lab.b.log_text()), what="the refusal in B's log")
    # The ordinary user's own join still works.
    status, _ = _send_join(rogue, lab, room, made["event"], made["room_version"], mallory)
    assert status == 200
    _eventually(lambda: _members(lab, bob, room).get(mallory) == "join", what="mallory joined")


def test_a_gated_room_refuses_make_join_and_send_join_as_an_unknown_room(
    lab: Lab, rogue: RogueHomeserver
) -> None:
    """Issue 12: a user of an ungated server got into a gated room by send_join; and make_join
    answered 403 where an unknown room gets 404."""
    bob = lab.b.register(_uid("bob"))
    room = bob.create_room(preset="public_chat")
    mallory = rogue.user_id(_uid("mallory"))
    # A template taken while the room was open...
    status, made = _make_join(rogue, lab, room, mallory)
    assert status == 200, made
    old_gated = list(lab.b.module_config.get("gated_rooms", []))
    lab.timings["restart_B_gated"] = lab.b.reconfigure(gated_rooms=old_gated + [room])
    try:
        unknown = _unknown_room_answer(rogue, lab, mallory)
        # ...make_join now answers as for a room B does not know...
        _same_as_unknown(_make_join(rogue, lab, room, mallory), room, unknown)
        # ...and so does a send_join of the old template.
        answer = _send_join(rogue, lab, room, made["event"], made["room_version"], mallory)
        _same_as_unknown(answer, room, unknown)
        assert mallory not in _members(lab, bob, room)
    finally:
        lab.timings["restart_B_ungated"] = lab.b.reconfigure(gated_rooms=old_gated)


def test_one_send_with_100_knocks_for_unknown_rooms_writes_nothing(
    lab: Lab, rogue: RogueHomeserver
) -> None:
    """Issue 12: one /send with 100 knocks for rooms that do not exist gave 100 rows."""
    store = servership.KnockStore(lab.b.module_config["store_path"], 7 * 24 * 3600 * 1000)
    before = len(store)
    pattern = re.escape(f"servership: dropped knock from {rogue.server_name}")
    seen = len(re.findall(pattern, lab.b.log_text()))
    edus = [{"edu_type": "m.server.knock",
             "content": {"room_id": f"!nope{i}{uuid.uuid4().hex[:6]}:{rogue.server_name}"}}
            for i in range(100)]
    status, answer = rogue.send_transaction(lab.b, [], edus)
    assert status == 200, answer
    _eventually(lambda: len(re.findall(pattern, lab.b.log_text())) >= seen + 100,
                timeout=30, what="100 dropped knocks")
    assert len(store) == before


def test_joins_relayed_in_send_by_a_resident_server_are_dropped(
    lab: Lab, rogue: RogueHomeserver, second_rogue: RogueHomeserver
) -> None:
    """Issue 12: joins that reach B through another resident server were never checked. Mallory
    joins a public room honestly, then relays in /send her own server's pseudouser's join
    (pseudousers: false on B) and, once the room is gated, the join of a user of Trudy."""
    bob = lab.b.register(_uid("bob"))
    room = bob.create_room(preset="public_chat")
    mallory = rogue.user_id(_uid("mallory"))
    made, mallory_join = _join_by_send_join(rogue, lab, room, mallory)
    _eventually(lambda: _members(lab, bob, room).get(mallory) == "join", what="mallory joined")
    version, depth = made["room_version"], int(made["event"]["depth"]) + 1

    pseudo = f"@:{rogue.server_name}"
    join = _relayed_join(rogue, made["event"], version, pseudo, mallory_join, depth)
    status, answer = rogue.send_transaction(lab.b, [join])
    assert status == 200, answer
    refused = re.escape(f"servership: refused the join of {pseudo} to {room} at send ")
    _eventually(lambda: re.search(refused, lab.b.log_text()), what="the pseudouser refused")
    assert pseudo not in _members(lab, bob, room)

    old_gated = list(lab.b.module_config.get("gated_rooms", []))
    lab.timings["restart_B_gated_relay"] = lab.b.reconfigure(gated_rooms=old_gated + [room])
    try:
        trudy_user = second_rogue.user_id(_uid("trudy"))
        relayed = _relayed_join(second_rogue, made["event"], version, trudy_user, mallory_join,
                                depth)
        status, answer = rogue.send_transaction(lab.b, [relayed])
        assert status == 200, answer
        refused = re.escape(f"servership: refused the join of {trudy_user} to {room} at send ")
        _eventually(lambda: re.search(refused, lab.b.log_text()), what="trudy's user refused")
        assert trudy_user not in _members(lab, bob, room)
    finally:
        lab.timings["restart_B_ungated_relay"] = lab.b.reconfigure(gated_rooms=old_gated)


def test_with_pseudousers_on_the_msc1777_rule_decides(lab: Lab, rogue: RogueHomeserver) -> None:
    """Issue 12: with pseudousers: true any pseudouser joined any public room; the module never
    called check_pseudouser_join. Now a server with no user in the room is refused (answered as
    an unknown room), and one whose user is joined gets in."""
    bob = lab.b.register(_uid("bob"))
    room = bob.create_room(preset="public_chat")
    pseudo = f"@:{rogue.server_name}"
    mallory = rogue.user_id(_uid("mallory"))
    lab.timings["restart_B_pseudousers"] = lab.b.reconfigure(pseudousers=True)
    try:
        unknown = _unknown_room_answer(rogue, lab, pseudo)
        _same_as_unknown(_make_join(rogue, lab, room, pseudo), room, unknown)
        refused = re.escape(f"servership: refused the join of {pseudo} to {room} at make_join")
        _eventually(lambda: re.search(refused, lab.b.log_text()), what="the MSC1777 refusal")
        # A hand-built send_join of a template taken for mallory does not get past it either.
        status, made = _make_join(rogue, lab, room, mallory)
        assert status == 200, made
        answer = _send_join(rogue, lab, room, made["event"], made["room_version"], pseudo)
        _same_as_unknown(answer, room, unknown)
        assert pseudo not in _members(lab, bob, room)

        # Once mallory is joined, her server's pseudouser may join.
        _join_by_send_join(rogue, lab, room, mallory)
        _eventually(lambda: _members(lab, bob, room).get(mallory) == "join", what="mallory")
        status, made = _make_join(rogue, lab, room, pseudo)
        assert status == 200, made
        status, answer = _send_join(rogue, lab, room, made["event"], made["room_version"], pseudo)
        assert status == 200, answer
        _eventually(lambda: _members(lab, bob, room).get(pseudo) == "join", what="pseudouser")
    finally:
        lab.timings["restart_B_pseudousers_off"] = lab.b.reconfigure(pseudousers=False)
