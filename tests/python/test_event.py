"""Events from Python: event IDs, hashes, redaction and v12 room IDs against the shared vectors."""

from __future__ import annotations

from typing import Any

import pytest

import servership
from conftest import load_vectors


def test_event_id_vectors() -> None:
    cases = load_vectors("event_ids.json")
    assert len(cases) >= 10
    for case in cases:
        name, version, event = case["name"], case["room_version"], case["event"]
        if case["expect_content_hash"] is not None:
            assert servership.content_hash(event) == case["expect_content_hash"], name
        if case["expect_reference_hash"] is not None:
            assert servership.reference_hash(event, version) == case["expect_reference_hash"], name
        want = case["expect_event_id"]
        if want is None:
            continue
        if want == "error":
            with pytest.raises(servership.BadJsonError, match="cannot be derived"):
                servership.event_id(event, version)
            continue
        assert servership.event_id(event, version) == want, name
        # JSON text gives the same answer.
        assert servership.event_id(servership.canonical_json(event), version) == want, name


def test_v12_room_id_vectors() -> None:
    cases = load_vectors("v12_room_ids.json")["create_events"]
    rejected = 0
    for case in cases:
        name, event = case["name"], case["event"]
        if case["expect"] == "accept":
            room_id = servership.room_id_from_create_event(event)
            assert room_id == case["expect_room_id"], name
            assert room_id[1:] == case["expect_event_id"][1:], name
        else:
            with pytest.raises(servership.BadJsonError):
                servership.room_id_from_create_event(event)
            rejected += 1
    assert rejected == 2


def test_redaction_vectors() -> None:
    cases: Any = load_vectors("redaction.json")
    assert len(cases) > 100
    for case in cases:
        event, version = case["input"], case["room_version"]
        if case["expect"] == "error":
            with pytest.raises(servership.BadJsonError):
                servership.redact(event, version)
        else:
            assert servership.redact(event, version) == case["expect"], case["name"]


def test_unknown_room_version() -> None:
    with pytest.raises(servership.IncompatibleRoomVersionError) as info:
        servership.event_id({"type": "m.room.message"}, "99")
    assert info.value.room_version == "99"
    assert info.value.errcode == "M_INCOMPATIBLE_ROOM_VERSION"
    assert info.value.matrix_error == {
        "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
        "error": str(info.value),
        "room_version": "99",
    }


def test_hostile_events() -> None:
    for bad in [b'{"type":"x","type":"y"}', b"[]", b"not json", b'{"content":{"n":1.5}}']:
        with pytest.raises(servership.BadJsonError):
            servership.event_id(bad, "12")


def test_is_server_pseudouser() -> None:
    assert servership.is_server_pseudouser("@:example.org")
    assert servership.is_server_pseudouser("@:example.org:8448")
    assert not servership.is_server_pseudouser("@alice:example.org")
    assert not servership.is_server_pseudouser("@:")
    assert not servership.is_server_pseudouser(":example.org")
