"""The members room version (``org.servership.v12.members.1``, marker route) enforced inside
real Synapses' own event auth, with ``members_room_version: {enabled: true}`` (issue 14,
item 3).

Three lab servers and the rogue homeserver: A and B run the setting, C runs the module with the
setting off. Every join below is built and signed by hand by the rogue (``send_join``, or
relayed in ``/send``), so nothing but the residents' event auth stands in its way:

- a pseudouser ``@:rogue`` without ``peekable`` and without a user of its server is refused;
  once a user of the rogue is joined and named by ``org.servership.via_user`` (with that
  membership in ``auth_events``), it is accepted; naming a user of another server, or leaving
  the membership out of ``auth_events``, is refused;
- under ``peekable`` a user's and a pseudouser's join are accepted (Synapse alone refuses every
  join under a join rule it does not know); ``peekable`` in an unmarked v12 room is refused;
- a gated room on two residents: a server without ``m.server.is_able_to_subscribe`` is refused
  by both residents' event auth (``send_join`` to each; relayed by ``/send``); once an admin
  grants it, ``make_join`` templates name the grant and the joins are accepted by both; B
  restarted still enforces the rules (the marked rooms come back from its store);
- a marked room created by a remote server (the rogue) is marked on B when B joins it;
- with the setting off (C), a marked room is a plain v12 room.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.lab import Homeserver, Lab, User
from harness.rogue import start_rogue as _start_rogue
from harness.lab import uid as _uid
from harness.lab import eventually as _eventually
from harness.rogue import RogueHomeserver, q

import servership

VERSION = "12"
MARKER = servership.MEMBERS_MARKER
MEMBERS = servership.MEMBERS_ROOM_VERSION
GATED = servership.MEMBERS_GATED
VIA = servership.MEMBERS_VIA_USER
GRANT = "m.server.is_able_to_subscribe"
ON = {"members_room_version": {"enabled": True}}


@pytest.fixture(scope="module")
def rv_lab(tmp_path_factory: pytest.TempPathFactory, lab_logs: list[Lab]) -> Iterator[Lab]:
    lab = Lab(Path(tmp_path_factory.mktemp("rv-lab")), names=("A", "B", "C"),
              per_server={"A": ON, "B": ON, "C": {}})
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
def rogue(rv_lab: Lab) -> Iterator[RogueHomeserver]:
    mallory = _start_rogue(rv_lab, "Mallory")
    try:
        yield mallory
    finally:
        mallory.stop()


@pytest.fixture(scope="module")
def trudy(rv_lab: Lab) -> Iterator[RogueHomeserver]:
    other = _start_rogue(rv_lab, "Trudy")
    try:
        yield other
    finally:
        other.stop()


# -- helpers ------------------------------------------------------------------------------------


def _wait_log(hs: Homeserver, pattern: str, after: int = 0, timeout: float = 20.0) -> str:
    """Synapse flushes INFO lines in batches: poll for the line (past offset ``after``)."""
    found = _eventually(lambda: re.search(pattern, hs.log_text()[after:]), timeout=timeout,
                        what=f"{pattern!r} in {hs.name}'s log")
    return found.group(0)


def _create(user: User, *, marked: bool = True, gated: bool = False,
            join_rule: str | None = None, version: str = VERSION,
            marker_value: Any = MEMBERS) -> tuple[int, Any]:
    body: dict[str, Any] = {"preset": "public_chat", "room_version": version,
                            "creation_content": {}}
    if marked:
        body["creation_content"][MARKER] = marker_value
    if gated:
        body["creation_content"][GATED] = True
    if join_rule is not None:
        body["initial_state"] = [{"type": "m.room.join_rules", "state_key": "",
                                  "content": {"join_rule": join_rule}}]
    return user.call("POST", "/_matrix/client/v3/createRoom", body)


def _room(user: User, **kw: Any) -> str:
    status, answer = _create(user, **kw)
    assert status == 200, answer
    return str(answer["room_id"])


def _state(user: User, room: str) -> dict[tuple[str, str], dict]:
    events = user.ok("GET", f"/_matrix/client/v3/rooms/{q(room)}/state")
    return {(e["type"], e["state_key"]): e for e in events}


def _members(user: User, room: str) -> dict[str, str]:
    return {k: e["content"].get("membership", "") for (t, k), e in _state(user, room).items()
            if t == "m.room.member"}


def _latest(user: User, room: str) -> str:
    """The newest state event ``user`` sees (any event the server holds will do as a prev)."""
    newest = max(_state(user, room).values(), key=lambda e: e["origin_server_ts"])
    return str(newest["event_id"])


def _grant(admin: User, room: str, server: str, able: bool = True) -> str:
    answer = admin.ok("PUT", f"/_matrix/client/v3/rooms/{q(room)}/state/{GRANT}/{q(server)}",
                      {"is_able_to_subscribe": able})
    return str(answer["event_id"])


def _hand_join(rogue: RogueHomeserver, seen_by: User, room: str, joiner: str, *,
               content: dict | None = None, auth: tuple[tuple[str, str], ...] = (),
               omit: tuple[tuple[str, str], ...] = ()) -> dict:
    """A join of ``joiner`` signed by ``rogue``, built without ``make_join``: ``auth_events``
    are the room's current power levels and join rules (as ``seen_by`` sees them), the
    joiner's server's grant if there is one, plus the ``auth`` keys, minus the ``omit`` keys."""
    state = _state(seen_by, room)
    server = joiner.split(":", 1)[1]
    keys = [("m.room.power_levels", ""), ("m.room.join_rules", ""), (GRANT, server),
            *auth]
    auth_ids = [state[k]["event_id"] for k in keys if k in state and k not in omit]
    event = {
        "type": "m.room.member", "room_id": room, "sender": joiner, "state_key": joiner,
        "content": {"membership": "join", **(content or {})},
        "auth_events": auth_ids, "prev_events": [_latest(seen_by, room)], "depth": 100,
        "origin_server_ts": int(time.time() * 1000),
    }
    return servership.sign_event(event, rogue.server_name, rogue.signing_key, VERSION)


def _send_join(rogue: RogueHomeserver, hs: Homeserver, room: str, pdu: dict) -> tuple[int, Any]:
    event_id = servership.event_id(pdu, VERSION)
    return rogue.request(hs.server_name, "PUT",
                         f"/_matrix/federation/v2/send_join/{q(room)}/{q(event_id)}", pdu)


def _make_join(rogue: RogueHomeserver, hs: Homeserver, room: str, user: str) -> tuple[int, Any]:
    return rogue.request(hs.server_name, "GET",
                         f"/_matrix/federation/v1/make_join/{q(room)}/{q(user)}?ver=12")


def _join_from_template(rogue: RogueHomeserver, hs: Homeserver, room: str, user: str,
                        as_user: str | None = None, content: dict | None = None,
                        extra_auth: list[str] | None = None) -> tuple[int, Any]:
    """``make_join`` for ``user``, then ``send_join`` of that template (for ``as_user`` if
    given, with ``content`` added and ``extra_auth`` appended to its auth events)."""
    status, made = _make_join(rogue, hs, room, user)
    assert status == 200, made
    event = dict(made["event"])
    joiner = as_user or user
    event.update(sender=joiner, state_key=joiner, origin_server_ts=int(time.time() * 1000))
    event["content"] = {**event["content"], **(content or {})}
    event["auth_events"] = list(event["auth_events"]) + list(extra_auth or [])
    signed = servership.sign_event(event, rogue.server_name, rogue.signing_key, VERSION)
    return _send_join(rogue, hs, room, signed)


def _refused(status: int, answer: Any) -> None:
    """What Synapse answers a ``send_join`` whose event its event auth rejected."""
    assert status == 403, (status, answer)
    assert answer.get("errcode") == "M_FORBIDDEN", answer


# -- the pseudouser rule (b) ------------------------------------------------------------------


def test_a_pseudouser_needs_a_user_of_its_server_named_by_via_user(
    rv_lab: Lab, rogue: RogueHomeserver
) -> None:
    alice = rv_lab.a.register(_uid("alice"))
    room = _room(alice)
    pseudo = f"@:{rogue.server_name}"
    mallory = rogue.user_id(_uid("mallory"))
    log_at = len(rv_lab.a.log_text())

    # No user of the rogue in the room: refused by A's event auth (Synapse alone accepts it
    # under `public`, docs/protocol.md).
    _refused(*_send_join(rogue, rv_lab.a, room, _hand_join(rogue, alice, room, pseudo)))
    _wait_log(rv_lab.a, r"the members rules refused \S+ \(m\.room\.member of "
              + re.escape(pseudo) + r"\) in .*no_user_of_server", after=log_at)
    # make_join itself runs event auth on the template: refused too.
    status, answer = _make_join(rogue, rv_lab.a, room, pseudo)
    assert status == 403, (status, answer)

    status, answer = _join_from_template(rogue, rv_lab.a, room, mallory)
    assert status == 200, answer
    _eventually(lambda: _members(alice, room).get(mallory) == "join", what="mallory joined")
    mallory_join = _state(alice, room)[("m.room.member", mallory)]["event_id"]

    # A user of the server is joined, but the join does not name it: refused.
    _refused(*_send_join(rogue, rv_lab.a, room, _hand_join(rogue, alice, room, pseudo)))
    # Names it, without its membership in auth_events: refused (the rules read auth events).
    _refused(*_send_join(rogue, rv_lab.a, room,
                         _hand_join(rogue, alice, room, pseudo, content={VIA: mallory})))
    # Names a user of another server (alice, joined): refused.
    _refused(*_send_join(rogue, rv_lab.a, room, _hand_join(
        rogue, alice, room, pseudo, content={VIA: alice.user_id},
        auth=(("m.room.member", alice.user_id),))))
    # A via_user that is not a string: refused.
    _refused(*_send_join(rogue, rv_lab.a, room, _hand_join(
        rogue, alice, room, pseudo, content={VIA: [mallory]})))
    assert pseudo not in _members(alice, room)

    # Names mallory with her membership in auth_events: accepted.
    status, answer = _send_join(rogue, rv_lab.a, room, _hand_join(
        rogue, alice, room, pseudo, content={VIA: mallory},
        auth=(("m.room.member", mallory),)))
    assert status == 200, answer
    _eventually(lambda: _members(alice, room).get(pseudo) == "join", what="the pseudouser")
    assert _state(alice, room)[("m.room.member", mallory)]["event_id"] == mallory_join


# -- peekable (rule a) ----------------------------------------------------------------------------


def test_peekable_lets_users_and_pseudousers_join_a_marked_room_only(
    rv_lab: Lab, rogue: RogueHomeserver
) -> None:
    bob = rv_lab.b.register(_uid("bob"))
    room = _room(bob, join_rule="peekable")
    assert _state(bob, room)[("m.room.join_rules", "")]["content"]["join_rule"] == "peekable"

    # A local user joins (Synapse alone refuses every join under a rule it does not know).
    bob2 = rv_lab.b.register(_uid("bob"))
    bob2.join(room)
    # A remote user: make_join and send_join.
    mallory = rogue.user_id(_uid("mallory"))
    status, answer = _join_from_template(rogue, rv_lab.b, room, mallory)
    assert status == 200, answer
    # The pseudouser, with no user named and none needed: make_join answers, send_join takes.
    pseudo = f"@:{rogue.server_name}"
    status, answer = _join_from_template(rogue, rv_lab.b, room, pseudo)
    assert status == 200, answer
    _eventually(lambda: {bob2.user_id, mallory, pseudo} <= {
        u for u, m in _members(bob, room).items() if m == "join"}, what="the three joins")

    # peekable in an unmarked v12 room is still refused before the room exists...
    status, answer = _create(bob, marked=False, join_rule="peekable")
    assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer
    # ...and as a later state event.
    plain = _room(bob, marked=False)
    status, answer = bob.call(
        "PUT", f"/_matrix/client/v3/rooms/{q(plain)}/state/m.room.join_rules/",
        {"join_rule": "peekable"})
    assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer


def test_a_marker_that_asks_for_nothing_is_refused_at_create_room(rv_lab: Lab) -> None:
    """The marker must be the identifier exactly, a string, on room version 12: anything else
    would make a plain room the creator did not ask for. A wrong-case key is not the marker
    (a plain room, peekable refused)."""
    bob = rv_lab.b.register(_uid("bob"))
    for kw in ({"version": "11"}, {"marker_value": MEMBERS.upper()},
               {"marker_value": {"id": MEMBERS}}, {"marker_value": None}):
        status, answer = _create(bob, **kw)
        assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", (kw, answer)
    status, answer = bob.call("POST", "/_matrix/client/v3/createRoom", {
        "room_version": VERSION, "creation_content": {MARKER.upper(): MEMBERS},
        "initial_state": [{"type": "m.room.join_rules", "state_key": "",
                           "content": {"join_rule": "peekable"}}]})
    assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer


# -- gated rooms (rule d), two residents ------------------------------------------------------


def test_a_gated_room_is_enforced_by_both_residents(
    rv_lab: Lab, rogue: RogueHomeserver, trudy: RogueHomeserver
) -> None:
    a, b = rv_lab.a, rv_lab.b
    alice = a.register(_uid("alice"))
    room = _room(alice, gated=True)
    _grant(alice, room, b.server_name)
    bob = b.register(_uid("bob"))
    bob.join(room, via=a.server_name)
    _eventually(lambda: _members(alice, room).get(bob.user_id) == "join", what="bob joined")

    mallory = rogue.user_id(_uid("mallory"))
    # No grant for the rogue: make_join at A refuses, and hand-built send_joins are refused by
    # A's and by B's event auth.
    status, answer = _make_join(rogue, a, room, mallory)
    assert status == 403, (status, answer)
    log_a, log_b = len(a.log_text()), len(b.log_text())
    _refused(*_send_join(rogue, a, room, _hand_join(rogue, alice, room, mallory)))
    _refused(*_send_join(rogue, b, room, _hand_join(rogue, bob, room, mallory)))
    for hs, at in ((a, log_a), (b, log_b)):
        _wait_log(hs, r"the members rules refused \S+ \(m\.room\.member of "
                  + re.escape(mallory) + r"\) .*not_able_to_subscribe", after=at)
    # The same join relayed to B in /send: rejected, not in B's state.
    log_b = len(b.log_text())
    relayed = _hand_join(rogue, bob, room, mallory)
    status, answer = rogue.send_transaction(b, [relayed])
    assert status == 200, answer
    # /send answers {} for a PDU it rejected (a rejection is not an error of the transaction).
    relayed_id = servership.event_id(relayed, VERSION)
    _wait_log(b, r"the members rules refused " + re.escape(relayed_id), after=log_b)
    assert mallory not in _members(bob, room)
    assert mallory not in _members(alice, room)

    # An admin of the room grants the rogue's server.
    grant_id = _grant(alice, room, rogue.server_name)
    _eventually(lambda: (GRANT, rogue.server_name) in _state(bob, room), what="B has the grant")
    # make_join templates now name the grant (the selection's addition)...
    for hs in (a, b):
        status, made = _make_join(rogue, hs, room, mallory)
        assert status == 200, made
        assert grant_id in made["event"]["auth_events"], (hs.name, made)
    # ...a join that leaves the grant out of its auth_events is still refused...
    _refused(*_send_join(rogue, a, room, _hand_join(rogue, alice, room, mallory,
                                                    omit=((GRANT, rogue.server_name),))))
    # ...and one with an auth event the selection does not name (Synapse's own rule 3).
    _refused(*_send_join(rogue, b, room, _hand_join(
        rogue, bob, room, mallory, auth=(("m.room.history_visibility", ""),))))
    # Accepted by A (and B hears of it from A), and by B directly.
    status, answer = _join_from_template(rogue, a, room, mallory)
    assert status == 200, answer
    mallory2 = rogue.user_id(_uid("mallory"))
    status, answer = _join_from_template(rogue, b, room, mallory2)
    assert status == 200, answer
    for user in (alice, bob):
        _eventually(lambda: {mallory, mallory2} <= {
            u for u, m in _members(user, room).items() if m == "join"},
            what=f"both joins at {user.server.name}")

    # Withdrawn: the next join of a rogue user is refused again.
    _grant(alice, room, rogue.server_name, able=False)
    _eventually(lambda: _state(bob, room)[(GRANT, rogue.server_name)]["content"]
                == {"is_able_to_subscribe": False}, what="B has the withdrawal")
    status, answer = _make_join(rogue, b, room, rogue.user_id(_uid("mallory")))
    assert status == 403, (status, answer)

    # B restarted: the marked rooms come back from its store. A second local user's join needs
    # the grant for B in its auth events, which only the marked set puts there.
    log_b = len(b.log_text())
    rv_lab.timings["restart_B_members"] = b.restart()
    count = _wait_log(b, r"the members rules apply in (\d+) rooms of the store", after=log_b)
    assert int(re.search(r"(\d+)", count).group(1)) >= 1  # type: ignore[union-attr]
    bob3 = b.register(_uid("bob"))
    bob3.join(room)
    assert _members(alice, room).get(bob3.user_id) == "join" or _eventually(
        lambda: _members(alice, room).get(bob3.user_id) == "join", what="bob3 at A")
    # ...and an ungranted server is still refused by B.
    _refused(*_send_join(trudy, b, room, _hand_join(trudy, bob, room, trudy.user_id("t"))))


# -- a marked room created elsewhere ----------------------------------------------------------


def test_a_marked_room_created_by_a_remote_server_is_marked_when_we_join(
    rv_lab: Lab, rogue: RogueHomeserver
) -> None:
    """The rogue creates a marked room and B's user joins it: B marks it from the send_join
    state, and then rejects the rogue's pseudouser join (no via_user) relayed in /send."""
    room = rogue.create_room(create_content={MARKER: MEMBERS})
    bob = rv_lab.b.register(_uid("bob"))
    bob.join(room.room_id, via=rogue.server_name)
    _eventually(lambda: _members(bob, room.room_id).get(bob.user_id) == "join",
                what="bob in the rogue's room")
    log_b = len(rv_lab.b.log_text())
    pseudo = f"@:{rogue.server_name}"
    pdu = room.build("m.room.member", {"membership": "join"}, sender=pseudo, state_key=pseudo)
    signed = servership.sign_event(pdu, rogue.server_name, rogue.signing_key, VERSION)
    status, answer = rogue.send_transaction(rv_lab.b, [signed])
    assert status == 200, answer
    _wait_log(rv_lab.b, r"the members rules refused "
              + re.escape(servership.event_id(signed, VERSION)) + r".*no_user_of_server",
              after=log_b)
    assert pseudo not in _members(bob, room.room_id)


# -- the setting off ----------------------------------------------------------------------------


def test_with_the_setting_off_a_marked_room_is_plain_v12(
    rv_lab: Lab, rogue: RogueHomeserver
) -> None:
    c = rv_lab["C"]
    carol = c.register(_uid("carol"))
    # peekable is refused as in any v12 room; the marker is not checked.
    status, answer = _create(carol, gated=True, join_rule="peekable")
    assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer
    status, answer = _create(carol, version="11")
    assert status == 200, answer
    room = _room(carol, gated=True)
    # A server with no grant joins the gated room: v12 has no gate.
    mallory = rogue.user_id(_uid("mallory"))
    status, answer = _join_from_template(rogue, c, room, mallory)
    assert status == 200, answer
    _eventually(lambda: _members(carol, room).get(mallory) == "join", what="mallory at C")
    # A grant in the state is not named in joins' auth events (no additions to the selection).
    grant_id = _grant(carol, room, rogue.server_name)
    status, made = _make_join(rogue, c, room, rogue.user_id(_uid("mallory")))
    assert status == 200, made
    assert grant_id not in made["event"]["auth_events"]
    assert "members rules" not in c.log_text()


def test_the_knock_flow_opens_a_marked_gated_room_for_every_resident(
        rv_lab: Lab, rogue: RogueHomeserver) -> None:
    """Issue 14, item 6, on the room version: B knocks on A's marked gated room; before the
    grant B's join is refused by A's event auth; A's admin accepts through the admin API, the
    grant reaches B in the EDU and B's module joins its user by itself. The rogue, never
    granted, is still refused by both residents."""
    a, b = rv_lab["A"], rv_lab["B"]
    alice = a.register(_uid("alice"), admin=True)
    carol = b.register(_uid("carol"), admin=True)
    room = _room(alice, gated=True)
    path = f"/_matrix/client/v3/join/{q(room)}?server_name={q(a.server_name)}"
    status, body = carol.call("POST", path, {})
    assert status != 200, body
    carol.ok("POST", "/_synapse/client/servership/v1/knock",
             {"room_id": room, "destination": a.server_name, "user_id": carol.user_id})
    knocks = _eventually(
        lambda: alice.ok("GET", f"/_synapse/client/servership/v1/knocks?room_id={q(room)}")
        ["knocks"], what="B's knock recorded on A (a marked gated room gates it)")
    assert [k["server"] for k in knocks] == [b.server_name], knocks
    answer = alice.ok("POST", "/_synapse/client/servership/v1/knocks",
                      {"room_id": room, "server": b.server_name, "decision": "accept"})
    assert answer["notified"] is True, answer

    def joined() -> Any:
        st = carol.ok("GET", f"/_synapse/client/servership/v1/knock?room_id={q(room)}")
        return st if st["state"] in ("joined", "join_failed") else None

    done = _eventually(joined, timeout=40, what="B to join after the grant")
    assert done["state"] == "joined", done
    assert _members(alice, room).get(carol.user_id) == "join"
    # B now holds the room and runs its rules too: the ungranted rogue is refused by both.
    for hs in (a, b):
        pdu = _hand_join(rogue, alice, room, rogue.user_id(_uid("eve")))
        status, body = _send_join(rogue, hs, room, pdu)
        assert status == 403, (hs.name, status, body)
