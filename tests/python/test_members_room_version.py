"""The members rules of room version org.servership.v12.members.1 through Python: every case of
tests/vectors/auth_members_room_version.json, as dicts and as JSON text, and the errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

import servership
from conftest import load_vectors

CASES: list[dict[str, Any]] = load_vectors("auth_members_room_version.json")["cases"]


def test_the_vectors_are_there() -> None:
    assert len(CASES) >= 60
    assert {c["rule"] for c in CASES} >= set("abcdef")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    want = case["expect"]
    d = servership.check_members_rules(case["event"], case["auth_events"], case["room_version"])
    assert (d.verdict, d.reason) == (want["verdict"], want["reason"]), d.detail
    assert bool(d) is (want["verdict"] == "allow")
    # The same through JSON text (str and bytes).
    text = servership.check_members_rules(
        json.dumps(case["event"]), json.dumps(case["auth_events"]).encode(), case["room_version"]
    )
    assert (text.verdict, text.reason) == (d.verdict, d.reason)


def test_constants() -> None:
    assert servership.MEMBERS_ROOM_VERSION == "org.servership.v12.members.1"
    assert servership.MEMBERS_MARKER == "org.servership.room_version"
    assert servership.MEMBERS_GATED == "org.servership.gated"
    assert servership.MEMBERS_VIA_USER == "org.servership.via_user"


def test_errors() -> None:
    event = CASES[0]["event"]
    auth = CASES[0]["auth_events"]
    with pytest.raises(servership.IncompatibleRoomVersionError):
        servership.check_members_rules(event, auth, "99")
    with pytest.raises(servership.BadJsonError, match=r"auth_events\[0\]"):
        servership.check_members_rules(event, [1], servership.MEMBERS_ROOM_VERSION)
    with pytest.raises(servership.BadJsonError):
        servership.check_members_rules(event, {"not": "a list"}, servership.MEMBERS_ROOM_VERSION)
    with pytest.raises(servership.ServershipError):
        servership.check_members_rules("{", auth, servership.MEMBERS_ROOM_VERSION)
    with pytest.raises(servership.BadJsonError):
        servership.check_members_rules(event, "[" * 100_000, servership.MEMBERS_ROOM_VERSION)
    # A decision, not an error: no create event among the auth events.
    d = servership.check_members_rules(event, [], servership.MEMBERS_ROOM_VERSION)
    assert (d.allowed, d.reason) == (False, "auth_events_invalid")
