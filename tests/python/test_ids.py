"""Identifiers from Python against tests/vectors/identifiers.json, plus the accessors."""

from __future__ import annotations

from typing import Any

import pytest

import servership
from conftest import load_vectors

PARSERS: dict[str, Any] = {
    "server_name": servership.ServerName,
    "user_id": servership.UserId,
    "room_id": servership.RoomId,
    "event_id": servership.EventId,
}


def test_every_identifier_vector() -> None:
    cases = load_vectors("identifiers.json")
    assert len(cases) >= 45
    for case in cases:
        cls = PARSERS[case["kind"]]
        value = case["value"]
        if not case["valid"]:
            with pytest.raises(servership.InvalidParamError) as info:
                cls.parse(value)
            assert info.value.errcode == "M_INVALID_PARAM", value
            assert info.value.http_status == 400
            continue
        parsed = cls.parse(value)
        assert str(parsed) == value
        assert parsed == cls(value)
        assert hash(parsed) == hash(cls(value))
        if case["kind"] == "user_id":
            assert parsed.is_strict == case["strict"], value
            assert not parsed.is_server_pseudouser
        elif case["kind"] in ("room_id", "event_id"):
            assert parsed.format == case["format"], value
        if case["kind"] == "room_id":
            assert (parsed.server_name is not None) == (case["format"] == "legacy")


def test_accessors() -> None:
    server = servership.ServerName.parse("matrix.org:8448")
    assert (server.host, server.port) == ("matrix.org", 8448)
    assert servership.ServerName("[::1]").port is None
    assert repr(server) == "ServerName('matrix.org:8448')" or repr(server) == 'ServerName("matrix.org:8448")'

    user = servership.UserId.parse("@alice:example.org")
    assert user.localpart == "alice"
    assert user.server_name == servership.ServerName("example.org")
    assert user != servership.UserId("@alice:EXAMPLE.org")  # server names are case-sensitive
    assert {user, servership.UserId("@alice:example.org")} == {user}

    pseudo = servership.UserId.parse(servership.server_pseudouser("example.org:8448"))
    assert str(pseudo) == "@:example.org:8448"
    assert pseudo.is_server_pseudouser and pseudo.localpart == ""
    assert servership.is_server_pseudouser(str(pseudo))
    with pytest.raises(servership.InvalidParamError):
        servership.server_pseudouser("not a server")

    room = servership.RoomId("!abc:example.org")
    assert room.format == "legacy" and str(room.server_name) == "example.org"
    assert servership.EventId("$abc:example.org").server_name == servership.ServerName(
        "example.org"
    )


def test_identifiers_are_frozen() -> None:
    user = servership.UserId("@alice:example.org")
    with pytest.raises(AttributeError):
        user.localpart = "bob"  # type: ignore[misc]


def test_percent_encoding() -> None:
    assert servership.percent_decode_path_segment("%21abc%3Aexample.org") == "!abc:example.org"
    assert servership.percent_decode_path_segment("a+b") == "a+b"
    for room_id in ["!abc:example.org", "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", "!é/?#:x"]:
        encoded = servership.percent_encode_path_segment(room_id)
        assert "/" not in encoded and "?" not in encoded
        assert servership.percent_decode_path_segment(encoded) == room_id
    for bad in ["%", "%zz", "%00", "%ff"]:
        with pytest.raises(servership.InvalidParamError):
            servership.percent_decode_path_segment(bad)


def test_hostile_identifiers() -> None:
    for bad in ["", "@", "@a\x00b:example.org", "@a:" + "x" * 10_000, "\udcff"]:
        with pytest.raises(servership.ServershipError):
            servership.UserId.parse(bad)
    with pytest.raises(TypeError):
        servership.UserId.parse(42)  # type: ignore[arg-type]
