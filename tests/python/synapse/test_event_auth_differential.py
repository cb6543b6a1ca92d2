"""The MSC1777 and s2s membership rules against Synapse's own event auth, on the same state.

Pure Python, no servers: random room states (room versions 1-12, every join rule Synapse knows
plus ``peekable`` and malformed ones, ``m.federate``, bans, invites, joins of the server's users,
s2s room types) are built twice: as Synapse events, checked with
``synapse.event_auth.check_state_dependent_auth_rules``, and as plain dicts for servership. The
property: **servership never says "allow" where Synapse's event auth refuses** the same
membership event on the same state. The cases where servership is stricter are only the ones it
means to be (MSC1777 wants a user of the server in the room; a ``restricted`` join without an
invite needs an authorising signature the state cannot show).

Run: ``pytest tests/python/synapse/test_event_auth_differential.py`` (needs matrix-synapse
importable and the servership wheel installed).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

event_auth = pytest.importorskip("synapse.event_auth")
from synapse.api.errors import AuthError  # noqa: E402
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS  # noqa: E402
from synapse.events import make_event_from_dict  # noqa: E402

from servership import peeking, s2s  # noqa: E402

PSEUDO = "@:b.example"
VERSIONS = [str(n) for n in range(1, 13)]
JOIN_RULES: list[Any] = [
    None, "public", "invite", "knock", "restricted", "knock_restricted", "private", "peekable",
    "missing-key", 5,
]


class Room:
    """One random state, as Synapse events and as servership dicts."""

    def __init__(self, rng: random.Random) -> None:
        self.version = rng.choice(VERSIONS)
        self.rv = KNOWN_ROOM_VERSIONS[self.version]
        self.n = 0
        self.dicts: list[dict[str, Any]] = []
        self.events: list[Any] = []
        creator = "@alice:a.example" if rng.random() < 0.9 else "@carol:b.example"
        create: dict[str, Any] = {"room_version": self.version}
        if not self.rv.implicit_room_creator:
            create["creator"] = creator
        federate = rng.choice([None, None, True, False, "no"])
        if federate is not None:
            create["m.federate"] = federate
        if rng.random() < 0.4:
            create["type"] = rng.choice(["m.s2s", "support.feline.s2s"])
        self.add("m.room.create", "", creator, create)
        self.add("m.room.member", creator, creator, {"membership": "join"})
        self.add("m.room.power_levels", "", creator, {"users": {creator: 100}, "invite": 0})
        rule = rng.choice(JOIN_RULES)
        if rule == "missing-key":
            self.add("m.room.join_rules", "", creator, {})
        elif rule is not None:
            self.add("m.room.join_rules", "", creator, {"join_rule": rule})
        self.creator = creator
        for user, choices in (
            (PSEUDO, [None, None, "join", "invite", "leave", "ban", "knock"]),
            ("@bob:b.example", [None, "join", "invite", "leave", "ban"]),
            ("@dave:b.example:8448", [None, "join"]),
        ):
            m = rng.choice(choices)
            if m is not None:
                self.add("m.room.member", user, user, {"membership": m})

    def pdu(self, t: str, key: str, sender: str, content: dict[str, Any]) -> Any:
        self.n += 1
        d: dict[str, Any] = {
            "type": t, "state_key": key, "sender": sender, "content": content,
            "room_id": "!r:a.example", "auth_events": [], "prev_events": ["$p", "$q"],
            "depth": self.n, "origin_server_ts": self.n, "hashes": {"sha256": "x"},
            "signatures": {},
        }
        if self.rv.event_format == 1:
            d["event_id"] = f"$e{self.n}:a.example"
            d["prev_events"] = [["$p:a.example", {}], ["$q:a.example", {}]]
        if t == "m.room.create" and not self.rv.msc4291_room_ids_as_hashes:
            pass
        elif t == "m.room.create":
            d.pop("room_id")
        return make_event_from_dict(d, self.rv)

    def add(self, t: str, key: str, sender: str, content: dict[str, Any]) -> None:
        self.events = [e for e in self.events if (e.type, e.state_key) != (t, key)]
        self.dicts = [e for e in self.dicts if (e["type"], e["state_key"]) != (t, key)]
        self.events.append(self.pdu(t, key, sender, content))
        self.dicts.append({"type": t, "state_key": key, "sender": sender, "content": content})

    def synapse_allows(self, membership: str, sender: str) -> bool:
        event = self.pdu("m.room.member", PSEUDO, sender, {"membership": membership})
        try:
            event_auth.check_state_dependent_auth_rules(event, self.events)
        except AuthError:
            return False
        return True


def test_servership_never_allows_a_join_synapse_refuses() -> None:
    rng = random.Random(4099)
    stricter: Counter[str] = Counter()
    both = 0
    for _ in range(3000):
        room = Room(rng)
        theirs = room.synapse_allows("join", PSEUDO)
        d = peeking.check_pseudouser_join(room.dicts, PSEUDO)
        assert not (d.allowed and not theirs), (room.version, room.dicts, d)
        if theirs and not d.allowed:
            stricter[d.reason] += 1
            # Stricter only on purpose.
            assert d.reason in ("no_user_of_server", "not_invited"), (room.dicts, d)
            if d.reason == "not_invited":
                rule = next(
                    (e["content"].get("join_rule") for e in room.dicts if e["type"] == "m.room.join_rules"),
                    "invite",
                )
                assert rule in ("restricted", "knock_restricted"), (room.dicts, d)
        both += d.allowed and theirs
        for policy in ("s2s_only", "peeking", "either"):
            d = s2s.check_server_user_membership(room.dicts, PSEUDO, "join", policy)
            assert not (d.allowed and not theirs), (policy, room.version, room.dicts, d)
    assert both > 100, both
    assert stricter["no_user_of_server"] > 0


@pytest.mark.parametrize("membership", ["invite", "knock"])
def test_s2s_invites_and_knocks_are_never_allowed_where_synapse_refuses(membership: str) -> None:
    rng = random.Random(3348)
    allowed = 0
    for _ in range(2000):
        room = Room(rng)
        # An invite sent by the creator (joined, power 100): what is left to check is the target.
        sender = room.creator if membership == "invite" else PSEUDO
        theirs = room.synapse_allows(membership, sender)
        for policy in ("s2s_only", "peeking", "either"):
            d = s2s.check_server_user_membership(room.dicts, PSEUDO, membership, policy)
            assert not (d.allowed and not theirs), (policy, room.version, room.dicts, d)
            allowed += d.allowed
    assert allowed > 20, allowed


def test_the_issue_case_is_refused_by_both() -> None:
    """``@:b`` into an invite-only room because ``@bob:b`` is joined there."""
    room = Room(random.Random(0))
    room.events, room.dicts = [], []
    room.version, room.rv = "11", KNOWN_ROOM_VERSIONS["11"]
    room.add("m.room.create", "", "@alice:a.example", {"room_version": "11"})
    room.add("m.room.member", "@alice:a.example", "@alice:a.example", {"membership": "join"})
    room.add("m.room.join_rules", "", "@alice:a.example", {"join_rule": "invite"})
    room.add("m.room.member", "@bob:b.example", "@bob:b.example", {"membership": "join"})
    assert room.synapse_allows("join", PSEUDO) is False
    d = peeking.check_pseudouser_join(room.dicts, PSEUDO)
    assert (d.allowed, d.reason) == (False, "not_invited")
    room.add("m.room.member", PSEUDO, "@alice:a.example", {"membership": "invite"})
    assert room.synapse_allows("join", PSEUDO) is True
    assert peeking.check_pseudouser_join(room.dicts, PSEUDO).allowed
    # peekable: Synapse refuses every join, so does servership.
    room.add("m.room.join_rules", "", "@alice:a.example", {"join_rule": "peekable"})
    assert room.synapse_allows("join", PSEUDO) is False
    assert peeking.check_pseudouser_join(room.dicts, PSEUDO).reason == "unknown_join_rule"
