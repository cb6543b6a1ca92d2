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


def test_members_rules_apply_reads_the_marker_exactly() -> None:
    def create(version: str, **content: Any) -> dict[str, Any]:
        return {"type": "m.room.create", "state_key": "", "sender": "@a:a.example",
                "content": {"room_version": version, **content}}

    marker, ident = servership.MEMBERS_MARKER, servership.MEMBERS_ROOM_VERSION
    assert servership.members_rules_apply(create("12", **{marker: ident}))
    assert servership.members_rules_apply(json.dumps(create(ident)))
    for plain in (create("12"), create("11", **{marker: ident}),
                  create("12", **{marker: ident.upper()}), create("12", **{marker: [ident]}),
                  create("12", **{marker.upper(): ident})):
        assert not servership.members_rules_apply(plain), plain
    with pytest.raises(servership.ServershipError):
        servership.members_rules_apply(create("99"))


def test_members_auth_additions() -> None:
    join = {"type": "m.room.member", "state_key": "@:b.example", "sender": "@:b.example",
            "content": {"membership": "join", servership.MEMBERS_VIA_USER: "@u:b.example"}}
    assert servership.members_auth_additions(join) == [
        ("m.server.is_able_to_subscribe", "b.example"), ("m.room.member", "@u:b.example")]
    leave = dict(join, content={"membership": "leave"})
    assert servership.members_auth_additions(leave) == []
    bad = dict(join, content={"membership": "join", servership.MEMBERS_VIA_USER: 1})
    with pytest.raises(servership.BadJsonError):
        servership.members_auth_additions(bad)
