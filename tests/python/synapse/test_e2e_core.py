"""End-to-end: two real Synapses federating on loopback, servership loaded in each, the native
core doing the protocol work. Every test goes over real federation (TLS, X-Matrix, Synapse's
own keyring) unless it says it signs a request itself.

Lab roles (see ``conftest.lab``): A sends its invites with MSC4329 and rejects spec invites
that fail MSC4311; B answers MSC4329 on the unstable path, only warns on MSC4311 failures, and
audits a room right after its first local join.

Run: ``pytest tests/python/synapse/test_e2e_core.py`` with the wheel and matrix-synapse
installed in the same interpreter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import urllib.parse
from typing import Any

import pytest

import servership
from harness.lab import Homeserver, Lab, User
from harness.lab import uid as _uid
from harness.lab import eventually as _eventually
from harness.releases import (
    MSC4329_SENDING_PROBLEM,
    SENDS_FULL_INVITE_STATE,
    SYNAPSE_CHECKS_V12_INVITE_STATE,
)

DISCOVER = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"
INVITE_V3 = "/_matrix/federation/unstable/org.matrix.msc4329/invite/"


def _tag(server_name: str, room_id: str) -> str:
    # MSC4358 / DESIGN.md §1: HMAC-SHA256(key=server name, msg=room ID), unpadded base64.
    # Written out here (not through the library) so the test checks the library's answer.
    mac = hmac.new(server_name.encode(), room_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode().rstrip("=")


def _log_has(hs: Homeserver, pattern: str, timeout: float = 15.0) -> re.Match:
    return _eventually(lambda: re.search(pattern, hs.log_text()), timeout,
                       f"{hs.name} log line /{pattern}/")


def _invited(user: User, room: str) -> dict:
    return user.wait_for(lambda s: room in s.get("rooms", {}).get("invite", {}),
                         what=f"invite to {room}")


def _discover(lab: Lab, origin: Homeserver, destination: Homeserver,
              tags: list[str]) -> tuple[int, Any]:
    return lab.federation_request(origin, destination, "POST", DISCOVER,
                                  {"room_participation_tags": tags})


# --- building and signing events as a lab server (for the forged-request tests) --------------


def _sign_event(hs: Homeserver, event: dict, room_version: str = "12") -> dict:
    """Add content hash and ``hs``'s signature, with Synapse's own event-signing code."""
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.crypto.event_signing import add_hashes_and_signatures

    add_hashes_and_signatures(KNOWN_ROOM_VERSIONS[room_version], event, hs.server_name,
                              hs.signing_key())
    return event


def _v12_room(sender: Homeserver) -> tuple[dict, str]:
    """A signed v12 create event of a room that exists nowhere, and its room ID."""
    creator = f"@{_uid('ghost')}:{sender.server_name}"
    create = _sign_event(sender, {
        "type": "m.room.create", "state_key": "", "sender": creator,
        "content": {"room_version": "12"}, "origin_server_ts": int(time.time() * 1000),
        "depth": 1, "auth_events": [], "prev_events": [],
    })
    return create, servership.room_id_from_create_event(create)


def _invite_event(sender: Homeserver, room_id: str, creator: str, invitee: str) -> dict:
    return _sign_event(sender, {
        "type": "m.room.member", "state_key": invitee, "sender": creator, "room_id": room_id,
        "content": {"membership": "invite"}, "origin_server_ts": int(time.time() * 1000),
        "depth": 2, "auth_events": [], "prev_events": [],
    })


# --- MSC4329: invites with the create event ----------------------------------------------------


def test_v3_invite_over_federation_is_accepted_and_visible_in_sync(lab: Lab) -> None:
    """A real invite from alice@A to bob@B: A's module sends it as MSC4329 (the create PDU of
    the room A really created, in ``state``), B's module checks it and hands it to Synapse,
    bob sees it in /sync and can join through it."""
    if MSC4329_SENDING_PROBLEM is not None:
        # Detected, not guessed from the version: test_e2e_releases checks the clean refusal.
        pytest.skip(f"this Synapse cannot send MSC4329 invites: {MSC4329_SENDING_PROBLEM}")
    alice, bob = lab.a.register(_uid("alice")), lab.b.register(_uid("bob"))
    room = alice.create_room(preset="private_chat")
    alice.invite(room, bob.user_id)
    sent = _log_has(lab.a, r"servership: sent MSC4329 invite (\$\S+) to " + re.escape(
        lab.b.server_name))
    synced = _invited(bob, room)
    state = synced["rooms"]["invite"][room]["invite_state"]["events"]
    create = [e for e in state if e["type"] == "m.room.create"]
    assert len(create) == 1 and create[0]["sender"] == alice.user_id, state
    # B processed it through the MSC4329 path (not the v2 fallback): its counter is in the log
    # of accepted v3 invites, and A never fell back.
    assert "does not serve MSC4329 invites" not in lab.a.log_text()
    assert sent.group(1) in lab.a.log_text()
    bob.join(room, via=lab.a.server_name)
    alice.ok("PUT", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/send/m.room.message/t1",
             {"msgtype": "m.text", "body": "after an MSC4329 invite"})
    bob.wait_for(lambda s: room in s.get("rooms", {}).get("join", {}), what="join")


def test_v3_invite_signed_by_the_test_is_accepted(lab: Lab) -> None:
    """Control for the forgery test below: the same hand-built request with the genuine create
    event goes through B's module and Synapse's invite handling (200, counter-signed by B)."""
    bob = lab.b.register(_uid("bob"))
    create, room_id = _v12_room(lab.a)
    invite = _invite_event(lab.a, room_id, create["sender"], bob.user_id)
    path, body = servership.build_invite_request(invite, create, [], [])
    status, answer = lab.federation_request(lab.a, lab.b, "PUT", path, raw=body)
    assert status == 200, answer
    assert lab.b.server_name in answer["event"]["signatures"], answer
    _invited(bob, room_id)


def test_v3_invite_with_forged_create_event_is_invalid_param(lab: Lab) -> None:
    bob = lab.b.register(_uid("bob"))
    create, room_id = _v12_room(lab.a)
    invite = _invite_event(lab.a, room_id, create["sender"], bob.user_id)
    # Same room ID in the path and the invite, but a create event whose hash is not that ID:
    # a sender claiming a different creator (here: a different room version content).
    forged = _sign_event(lab.a, dict(
        {k: v for k, v in create.items() if k not in ("hashes", "signatures")},
        content={"room_version": "12", "m.federate": False}))
    path, body = servership.build_invite_request(invite, forged, [], [])
    assert path.startswith(INVITE_V3)
    status, answer = lab.federation_request(lab.a, lab.b, "PUT", path, raw=body)
    assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer
    assert "room" in answer["error"].lower(), answer
    # And nothing reached bob.
    assert room_id not in bob.sync().get("rooms", {}).get("invite", {})


# --- MSC4311: spec invites (what Synapse itself sends) ----------------------------------------


def test_spec_invite_from_synapse_is_checked_and_accepted(lab: Lab) -> None:
    """bob@B invites carol@A: B's Synapse sends a v2 invite with the full create PDU in
    ``invite_room_state`` (MSC4311); A's module (mode reject) checks it and lets it through.
    A Synapse that sends stripped state (before 1.158) is refused: that is what reject means."""
    bob, carol = lab.b.register(_uid("bob")), lab.a.register(_uid("carol"))
    room = bob.create_room(preset="private_chat")
    if not SENDS_FULL_INVITE_STATE:
        status, answer = bob.call("POST", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}"
                                  "/invite", {"user_id": carol.user_id})
        assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer
        assert "full m.room.create PDU is required" in answer["error"], answer
        _log_has(lab.a, r"servership: rejected invite")
        return
    bob.invite(room, carol.user_id)
    _invited(carol, room)
    assert not re.search(r"servership: rejected invite", lab.a.log_text())


def _forged_spec_invite(lab: Lab, sender: Homeserver, receiver: Homeserver) -> tuple[int, Any, str]:
    """A v2 invite from ``sender`` whose invite_room_state has no create event; signed as
    ``sender`` (event and request), so only the MSC4311 check can object."""
    invitee = receiver.register(_uid("dave"))
    create, room_id = _v12_room(sender)
    invite = _invite_event(sender, room_id, create["sender"], invitee.user_id)
    event_id = servership.event_id(invite, "12")
    path = ("/_matrix/federation/v2/invite/" + urllib.parse.quote(room_id, safe="") + "/"
            + urllib.parse.quote(event_id, safe=""))
    body = {"room_version": "12", "event": invite,
            "invite_room_state": [{"type": "m.room.name", "state_key": "", "sender":
                                   create["sender"], "content": {"name": "no create here"}}]}
    status, answer = lab.federation_request(sender, receiver, "PUT", path, body)
    return status, answer, event_id


def test_spec_invite_without_create_event_rejected_in_reject_mode(lab: Lab) -> None:
    # 400 M_INVALID_PARAM, as the spec (MSC4311) asks: not the 403 of a spam-checker verdict.
    status, answer, event_id = _forged_spec_invite(lab, lab.b, lab.a)
    assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer
    _log_has(lab.a, r"servership: rejected invite " + re.escape(event_id))


def test_spec_invite_without_create_event_only_warned_in_warn_mode(lab: Lab) -> None:
    """In warn mode a v12 invite's state is left to Synapse's own MSC4311 validation (1.162+),
    which warns and lets it through: one check, one warning. Where Synapse has no such check
    (detected), the module checks and warns instead."""
    status, answer, event_id = _forged_spec_invite(lab, lab.a, lab.b)
    assert status == 200, answer
    ours = f"servership: invite {re.escape(event_id)} fails MSC4311 checks"
    if SYNAPSE_CHECKS_V12_INVITE_STATE:
        _log_has(lab.b, r"failed to validate `invite_room_state` on invite .*"
                 + re.escape(event_id))
        assert not re.search(ours, lab.b.log_text())
    else:
        _log_has(lab.b, ours)


# --- MSC4358: discovery, tags, audits ---------------------------------------------------------


def test_discovery_answers_the_right_subset_and_refuses_unsigned(lab: Lab) -> None:
    """bob@B joins one of alice's rooms and leaves it; alice has another room B never saw.
    Asked by A (signed), B recognises exactly the first (tags outlive membership)."""
    alice, bob = lab.a.register(_uid("alice")), lab.b.register(_uid("bob"))
    shared = alice.create_room(preset="private_chat")
    private = alice.create_room(preset="private_chat")
    alice.invite(shared, bob.user_id)
    _invited(bob, shared)
    bob.join(shared, via=lab.a.server_name)
    bob.ok("POST", f"/_matrix/client/v3/rooms/{urllib.parse.quote(shared)}/leave", {})
    tags = [_tag(lab.b.server_name, r) for r in (shared, private, "!" + "A" * 43)]
    status, body = _eventually(
        lambda: (lambda r: r if r[0] != 200 or r[1]["recognised_tags"] else None)(
            _discover(lab, lab.a, lab.b, tags)), what="B to record its tag")
    assert (status, body) == (200, {"recognised_tags": tags[:1]})
    status, body = lab.federation_request(None, lab.b, "POST", DISCOVER,
                                          {"room_participation_tags": tags})
    assert status == 401 and body["errcode"] == "M_UNAUTHORIZED", body


def test_discovery_errors_are_the_cores(lab: Lab) -> None:
    status, body = _discover(lab, lab.a, lab.b, "nope")  # type: ignore[arg-type]
    assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), body
    assert "room_participation_tags" in body["error"], body
    status, body = _discover(lab, lab.a, lab.b, [_tag("x", f"!{i}:x") for i in range(1001)])
    assert status == 413 and body["errcode"] == "M_TOO_LARGE", body


def test_tags_recorded_on_join_survive_a_restart(lab: Lab) -> None:
    alice, bob = lab.a.register(_uid("alice")), lab.b.register(_uid("bob"))
    room = alice.create_room(preset="public_chat")
    bob.join(room, via=lab.a.server_name)
    tag = _tag(lab.b.server_name, room)
    _eventually(lambda: _discover(lab, lab.a, lab.b, [tag])[1].get("recognised_tags"),
                what="the tag")
    seconds = lab.b.restart()
    lab.timings["restart_B"] = seconds
    assert _discover(lab, lab.a, lab.b, [tag]) == (200, {"recognised_tags": [tag]})


def test_audit_after_first_join_asks_known_peers(lab: Lab) -> None:
    """B audits a room right after its first local join: it asks A (a server it shares another
    room with, absent from this one) over signed federation, and logs the report."""
    alice, bob = lab.a.register(_uid("alice")), lab.b.register(_uid("bob"))
    shared = alice.create_room(preset="public_chat")
    bob.join(shared, via=lab.a.server_name)
    local = bob.create_room(preset="private_chat")  # B's first join: audited, A is a peer
    asked = _log_has(lab.b, r"servership audit of " + re.escape(local) + r": asking (.*)")
    assert lab.a.server_name in asked.group(1), asked.group(0)
    # A answered (it has never seen the room), so the audit completes without findings.
    report = _log_has(lab.b, r"servership audit of " + re.escape(local) + r": (?!asking)(.*)")
    assert "unexplained participants" not in report.group(0), report.group(0)


# --- MSC4099: knocks and gated rooms ----------------------------------------------------------


def test_knock_edu_is_delivered_and_recorded(lab: Lab) -> None:
    admin = lab.a.register(_uid("admin"), admin=True)
    bob = lab.b.register(_uid("bob"))
    room = bob.create_room(preset="private_chat")
    store = servership.KnockStore(lab.b.module_config["store_path"], 7 * 24 * 3600 * 1000)
    # B records knocks only for rooms it gates: this one is not (yet), so it is dropped.
    assert admin.ok("POST", "/_synapse/client/servership/v1/knock",
                    {"room_id": room, "destination": lab.b.server_name}) == {"sent": True}
    _log_has(lab.b, re.escape(f"servership: dropped knock from {lab.a.server_name}"))
    assert store.get(room, lab.a.server_name) is None
    gated = list(lab.b.module_config.get("gated_rooms", [])) + [room]
    lab.timings["restart_B"] = lab.b.reconfigure(gated_rooms=gated)
    assert admin.ok("POST", "/_synapse/client/servership/v1/knock",
                    {"room_id": room, "destination": lab.b.server_name}) == {"sent": True}
    _log_has(lab.b, re.escape(f"servership: {lab.a.server_name} knocked on {room}"))
    assert store.get(room, lab.a.server_name) is not None
    # Not for ordinary users.
    user = lab.a.register(_uid("user"))
    status, body = user.call("POST", "/_synapse/client/servership/v1/knock",
                             {"room_id": room, "destination": lab.b.server_name})
    assert status == 403, body


def test_a_knock_flood_writes_nothing(lab: Lab) -> None:
    """Issue 12: 100 knocks for rooms that do not exist gave 100 rows. A sends 100 knocks for
    rooms B does not know (Synapse's federation sender batches them into transactions); B
    drops them all before any write."""
    admin = lab.a.register(_uid("admin"), admin=True)
    store = servership.KnockStore(lab.b.module_config["store_path"], 7 * 24 * 3600 * 1000)
    before = len(store)
    dropped = re.escape(f"servership: dropped knock from {lab.a.server_name}")
    pattern = dropped + r" \(not a gated room here\)"
    seen = len(re.findall(pattern, lab.b.log_text()))
    tag = _uid("flood")
    for i in range(100):
        assert admin.ok("POST", "/_synapse/client/servership/v1/knock",
                        {"room_id": f"!{tag}{i}:{lab.b.server_name}",
                         "destination": lab.b.server_name}) == {"sent": True}
    _eventually(lambda: len(re.findall(pattern, lab.b.log_text())) >= seen + 100,
                timeout=30, what="100 dropped knocks on B")
    assert len(store) == before


def test_gated_room_refuses_a_server_until_it_is_able_to_subscribe(lab: Lab) -> None:
    alice, bob = lab.a.register(_uid("alice")), lab.b.register(_uid("bob"))
    room = alice.create_room(preset="public_chat")
    gated = list(lab.a.module_config.get("gated_rooms", [])) + [room]
    lab.timings["restart_A"] = lab.a.reconfigure(gated_rooms=gated)
    path = f"/_matrix/client/v3/join/{urllib.parse.quote(room)}?server_name=" + \
        urllib.parse.quote(lab.a.server_name)
    status, body = bob.call("POST", path, {})
    # A answers make_join exactly as for a room it does not know (404), so B tells bob it
    # could not join through any server, as it would for a room that does not exist.
    assert status == 502, (status, body)
    _log_has(lab.b, r"Failed to make_join via " + re.escape(lab.a.server_name) + r": 404")
    _log_has(lab.a, r"servership: refused the join of " + re.escape(bob.user_id)
             + r" to " + re.escape(room) + r" at make_join")
    alice.ok("PUT", f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/state/"
             f"m.server.is_able_to_subscribe/{urllib.parse.quote(lab.b.server_name)}",
             {"is_able_to_subscribe": True})
    status, body = bob.call("POST", path, {})
    assert status == 200, body


def test_peekable_is_refused_so_no_room_is_bricked(lab: Lab) -> None:
    """Issue 12: Synapse accepts `join_rule: peekable` in a standard room version, then refuses
    every membership change. The module refuses to send it, with a clear error, and the room
    stays usable."""
    alice = lab.a.register(_uid("alice"))
    status, body = alice.call("POST", "/_matrix/client/v3/createRoom", {
        "preset": "public_chat",
        "initial_state": [{"type": "m.room.join_rules", "state_key": "",
                           "content": {"join_rule": "peekable"}}],
    })
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM", (status, body)
    assert "peekable" in body["error"], body
    room = alice.create_room(preset="public_chat")
    quoted = urllib.parse.quote(room)
    status, body = alice.call("PUT", f"/_matrix/client/v3/rooms/{quoted}/state/m.room.join_rules/",
                              {"join_rule": "peekable"})
    assert status == 400 and "peekable" in body["error"], (status, body)
    # Nothing was sent: the join rule is still public, and membership changes still work.
    rules = alice.ok("GET", f"/_matrix/client/v3/rooms/{quoted}/state/m.room.join_rules/")
    assert rules == {"join_rule": "public"}, rules
    alice.ok("PUT", f"/_matrix/client/v3/rooms/{quoted}/state/m.room.member/"
             f"{urllib.parse.quote(alice.user_id)}", {"membership": "join", "displayname": "A"})


def test_admin_audit_classifies_a_departed_peer_and_a_stranger(lab: Lab) -> None:
    """The seed's scenario with two servers: bob@B joins alice's council and leaves; alice's
    attic B never saw. A's admin audits both through A's module (which asks B, signed): B
    recognises the council and is *explained* (its user left), and does not recognise the
    attic."""
    alice, bob = lab.a.register(_uid("alice")), lab.b.register(_uid("bob"))
    admin = lab.a.register(_uid("admin"), admin=True)
    lobby = alice.create_room(preset="public_chat")
    bob.join(lobby, via=lab.a.server_name)  # A and B now share a room: B is a known peer
    council = alice.create_room(preset="public_chat")
    bob.join(council, via=lab.a.server_name)
    bob.ok("POST", f"/_matrix/client/v3/rooms/{urllib.parse.quote(council)}/leave", {})
    attic = alice.create_room(preset="private_chat")
    tag = _tag(lab.b.server_name, council)
    _eventually(lambda: _discover(lab, lab.a, lab.b, [tag])[1].get("recognised_tags"),
                what="B's council tag")
    report = admin.ok("POST", "/_synapse/client/servership/v1/audit", {"room_id": council})
    assert report["asked"] == [lab.b.server_name], report
    assert report["unexplained"] == [] and report["verdict"] == "consistent", report
    assert report["explained"] == [{"server": lab.b.server_name, "membership": "leave"}], report
    report = admin.ok("POST", "/_synapse/client/servership/v1/audit", {"room_id": attic})
    assert report["asked"] == [lab.b.server_name], report
    assert report["not_recognising"] == [lab.b.server_name], report
    assert report["unexplained"] == [] and report["explained"] == [], report
