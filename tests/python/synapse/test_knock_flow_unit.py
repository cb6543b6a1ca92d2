"""The knocking server's side of the knock flow (``servership.synapse.knock_flow``), with a fake
``ModuleApi`` and the real core: an ``org.servership.knock.accepted`` EDU makes the server join
only for a knock it sent, to that origin, with the origin's valid grant for it; every hostile
content is dropped with a reason, never raised into Synapse.

Run: ``pytest tests/python/synapse/test_knock_flow_unit.py`` (needs matrix-synapse importable and
the servership wheel installed; no servers).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest

import servership
from fake_api import FakeModuleApi
from servership.synapse import knock_flow
from servership.synapse.config import parse

ORIGIN = "r.example"
US = "s.example"


class _Api(FakeModuleApi):
    def __init__(self) -> None:
        super().__init__(server_name=US)
        self.joins: list[tuple] = []

    async def update_room_membership(self, **kw: Any) -> None:
        self.joins.append((kw["target"], kw["room_id"], kw["new_membership"],
                           kw["remote_room_hosts"]))


def _key() -> servership.SigningKey:
    return servership.SigningKey.from_seed("ed25519:k",
                                           base64.b64encode(os.urandom(32)).decode().rstrip("="))


def _grant(key: servership.SigningKey, room_id: str, state_key: str = US,
           sender: str = f"@mod:{ORIGIN}", value: Any = True) -> dict:
    event = {"type": knock_flow.GRANT_TYPE, "room_id": room_id, "sender": sender,
             "state_key": state_key, "content": {"is_able_to_subscribe": value},
             "origin_server_ts": 1, "depth": 5, "prev_events": ["$p"], "auth_events": ["$a"]}
    return servership.sign_event(event, ORIGIN, key, "12")


@pytest.fixture
def flow(monkeypatch: pytest.MonkeyPatch) -> tuple[knock_flow.KnockFlow, _Api, Any]:
    api = _Api()
    key = _key()
    async def known(room_id: Any) -> str:
        return str(room_id)

    flow = knock_flow.KnockFlow(api, parse({"store_path": "/tmp/unused.db"}), US, lambda: None,
                                known)

    async def keys(self: Any, pdu: dict) -> dict:
        return {ORIGIN: {key.key_id: key.public_key}}

    monkeypatch.setattr(knock_flow.KnockFlow, "_origin_keys", keys)
    return flow, api, key


def _edu(flow: knock_flow.KnockFlow, origin: str, content: Any) -> None:
    asyncio.run(flow.on_accepted_edu(origin, content))


def test_a_valid_grant_for_our_knock_joins_the_user(flow: Any) -> None:
    f, api, key = flow
    f.remember("!room", ORIGIN, f"@alice:{US}")
    _edu(f, ORIGIN, {"room_id": "!room", "room_version": "12", "event": _grant(key, "!room")})
    assert api.joins == [(f"@alice:{US}", "!room", "join", [ORIGIN])]
    status = f.status("!room")
    assert status["state"] == "joined" and status["grant_event_id"].startswith("$"), status


@pytest.mark.parametrize("case", [
    "no knock", "other origin", "other server", "our name in upper case", "our name with a port",
    "false", "string true", "other room", "sender elsewhere", "bad signature", "tampered",
    "wrong version", "not an object", "event not an object", "nul bytes", "deep nesting",
    "huge", "no keys",
])
def test_hostile_acceptances_are_ignored(flow: Any, case: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    f, api, key = flow
    if case != "no knock":
        f.remember("!room", ORIGIN, f"@alice:{US}")
    origin, room, version = ORIGIN, "!room", "12"
    event: Any = _grant(key, "!room")
    if case == "other origin":
        origin = "evil.example"
    elif case == "other server":
        event = _grant(key, "!room", state_key="evil.example")
    elif case == "our name in upper case":
        event = _grant(key, "!room", state_key=US.upper())
    elif case == "our name with a port":
        event = _grant(key, "!room", state_key=US + ":8448")
    elif case == "false":
        event = _grant(key, "!room", value=False)
    elif case == "string true":
        event = _grant(key, "!room", value="true")
    elif case == "other room":
        event = _grant(key, "!elsewhere")
    elif case == "sender elsewhere":
        event = _grant(key, "!room", sender="@mod:evil.example")
    elif case == "bad signature":
        other = _key()
        event = _grant(other, "!room")
    elif case == "tampered":
        event = dict(event, origin_server_ts=2)
    elif case == "wrong version":
        version = "no-such-version"
    elif case == "not an object":
        _edu(f, origin, ["room_id", "!room"])
        assert api.joins == [] and f.status("!room")["state"] == "sent"
        return
    elif case == "event not an object":
        event = "$event"
    elif case == "nul bytes":
        event = dict(event, content={"is_able_to_subscribe": True, "x": "a\0b"})
    elif case == "deep nesting":
        deep: Any = 1
        for _ in range(5000):
            deep = [deep]
        event = dict(event, content={"is_able_to_subscribe": True, "deep": deep})
    elif case == "huge":
        event = dict(event, content={"is_able_to_subscribe": True, "pad": "x" * 70000})
    elif case == "no keys":
        async def none(self: Any, pdu: dict) -> dict:
            return {}
        monkeypatch.setattr(knock_flow.KnockFlow, "_origin_keys", none)
    _edu(f, origin, {"room_id": room, "room_version": version, "event": event})
    assert api.joins == [], case
    assert f.status("!room")["state"] in ("sent", "none"), case


def test_a_replayed_acceptance_joins_once(flow: Any) -> None:
    f, api, key = flow
    f.remember("!room", ORIGIN, f"@alice:{US}")
    content = {"room_id": "!room", "room_version": "12", "event": _grant(key, "!room")}
    _edu(f, ORIGIN, content)
    _edu(f, ORIGIN, content)
    assert len(api.joins) == 1


def test_knocks_expire_and_are_capped(flow: Any) -> None:
    f, api, key = flow
    hs = api._hs
    f.remember("!old", ORIGIN, f"@alice:{US}")
    hs.now += 8 * 24 * 3600 * 1000  # past knocks.expiry_seconds (7 days)
    assert f.status("!old")["state"] == "none"
    for i in range(knock_flow.MAX_SENT + 5):
        f.remember(f"!r{i}", ORIGIN, f"@alice:{US}")
    assert f.status("!r0")["state"] == "none"
    assert f.status(f"!r{knock_flow.MAX_SENT + 4}")["state"] == "sent"
