"""End-to-end tests that need the servership native core (``servership._native``).

These FAIL (never skip) while the core is missing, so the integrator sees what is left.
Run: ``pytest tests/python/synapse/test_e2e_core.py`` after ``maturin develop``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid

import pytest

from conftest import native_core_present
from lab import Lab

DISCOVER = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"


@pytest.fixture(autouse=True)
def _require_core() -> None:
    if not native_core_present():
        pytest.fail(
            "servership._native is missing: build the core with `maturin develop` "
            "(these tests exercise the Rust core through the Synapse module)"
        )


def _tag(server_name: str, room_id: str) -> str:
    # MSC4358 / DESIGN.md §1: HMAC-SHA256(key=server name, msg=room ID), unpadded base64.
    mac = hmac.new(server_name.encode(), room_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode().rstrip("=")


def _joined_room(lab: Lab) -> tuple[str, str]:
    alice = lab.a.register(f"alice{uuid.uuid4().hex[:6]}")
    bob = lab.b.register(f"bob{uuid.uuid4().hex[:6]}")
    room = alice.create_room(preset="private_chat")
    alice.invite(room, bob.user_id)
    bob.wait_for(lambda s: room in s.get("rooms", {}).get("invite", {}), what="invite")
    bob.join(room, via=lab.a.server_name)
    return room, bob.user_id


def test_discovery_recognises_rooms_the_server_joined(lab: Lab) -> None:
    room, _ = _joined_room(lab)
    unknown = "!" + "A" * 43
    tags = [_tag(lab.b.server_name, room), _tag(lab.b.server_name, unknown)]
    deadline = time.monotonic() + 10
    while True:
        status, body = lab.federation_request(lab.a, lab.b, "POST", DISCOVER,
                                              {"room_participation_tags": tags})
        assert status == 200, body
        if body["recognised_tags"] == tags[:1] or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the tag is recorded in the background after the join
    assert body == {"recognised_tags": tags[:1]}


def test_discovery_bad_body_is_a_matrix_error(lab: Lab) -> None:
    status, body = lab.federation_request(lab.a, lab.b, "POST", DISCOVER,
                                          {"room_participation_tags": "nope"})
    assert status == 400, body
    assert body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), body
    assert "room_participation_tags" in body["error"], body


def test_discovery_too_many_tags(lab: Lab) -> None:
    tags = [_tag("x", f"!{i}:x") for i in range(1001)]
    status, body = lab.federation_request(lab.a, lab.b, "POST", DISCOVER,
                                          {"room_participation_tags": tags})
    assert status == 413 and body["errcode"] == "M_TOO_LARGE", body


def test_v3_invite_without_create_event_is_invalid_param(lab: Lab) -> None:
    path = "/_matrix/federation/unstable/org.matrix.msc4329/invite/%21x%3A" + lab.a.server_name
    body = {"event": {"type": "m.room.member"}, "invite_room_state": [], "state": []}
    status, answer = lab.federation_request(lab.a, lab.b, "PUT", path, body)
    assert status == 400 and answer["errcode"] == "M_INVALID_PARAM", answer
