"""``S2SRooms`` against a fake ModuleApi: the settings, and the invite decisions a two-server
lab does not reach (deny lists, the room cap, a missing create event, each policy)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fake_api import FakeEvent, FakeModuleApi

import servership
from servership.synapse import _compat, config as config_mod
from servership.synapse.room_version import MembersRules
from servership.synapse.s2s_rooms import S2SRooms

ROOM = "!" + "a" * 43
ME = "@:b.example"
MEMBERS = servership.MEMBERS_ROOM_VERSION


def _run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


def _service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joined: int = 0,
             **raw: Any) -> S2SRooms:
    monkeypatch.setattr(_compat, "s2s_problem", lambda: None)
    config = config_mod.parse({"store_path": str(tmp_path / "s.db"),
                               "members_room_version": True, "s2s": {"enabled": True},
                               **raw})

    async def rooms_joined_by(api: Any, user: str) -> list[str]:
        return [f"!room{i}" for i in range(joined)]

    monkeypatch.setattr(_compat, "rooms_joined_by", rooms_joined_by)
    return S2SRooms(FakeModuleApi("b.example"), config, MembersRules())


def _invite(create_content: dict | None, sender: str = "@:a.example",
            creator: str = "@:a.example") -> FakeEvent:
    state = [] if create_content is None else [{
        "type": "m.room.create", "state_key": "", "sender": creator,
        "content": {"room_version": "12", **create_content}}]
    state.append({"type": "m.room.join_rules", "state_key": "", "sender": creator,
                  "content": {"join_rule": "invite"}})
    return FakeEvent("m.room.member", ME, sender, ROOM, {"membership": "invite"},
                     unsigned={"invite_room_state": state})


S2S_MEMBERS = {"type": "m.s2s", servership.MEMBERS_MARKER: MEMBERS}


def test_config_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_compat, "s2s_problem", lambda: None)
    base = {"store_path": str(tmp_path / "s.db"), "members_room_version": True}
    off = config_mod.parse(base).s2s
    assert off.enabled is False and off.policy == "s2s_only"
    assert off.versions == ((MEMBERS, 10),)
    for bad, key in (({"s2s": True, "members_room_version": False}, "s2s.enabled"),
                     ({"s2s": {"policy": "anything"}}, "s2s.policy"),
                     ({"s2s": {"versions": []}}, "s2s.versions"),
                     ({"s2s": {"versions": [{"version": "12"}]}}, "s2s.versions[0]"),
                     ({"s2s": {"versions": [{"version": "Bad!", "rating": 1}]}},
                      "s2s.versions[0].version"),
                     ({"s2s": {"versions": [{"version": "12", "rating": True}]}},
                      "s2s.versions[0].rating"),
                     ({"s2s": {"versions": [{"version": "12", "rating": 1},
                                            {"version": "12", "rating": 2}]}},
                      "s2s.versions[1].version"),
                     ({"s2s": {"enabled": True, "versions": [{"version": "99", "rating": 1}]}},
                      "s2s.versions[0].version"),
                     ({"s2s": {"floor": 12}}, "s2s.floor"),
                     ({"s2s": {"tick_seconds": 0}}, "s2s.tick_seconds"),
                     ({"s2s": {"nope": 1}}, "s2s.nope")):
        with pytest.raises(_compat.ConfigError, match=key.replace(".", r"\.").replace(
                "[", r"\[").replace("]", r"\]")):
            config_mod.parse({**base, **bad})
    on = config_mod.parse({**base, "s2s": {"enabled": True, "policy": "either",
                                           "versions": [{"version": "12", "rating": 4}]}})
    assert on.s2s.enabled and on.s2s.policy == "either" and on.s2s.versions == (("12", 4),)
    # A Synapse that lacks the internals refuses the setting by its key.
    monkeypatch.setattr(_compat, "s2s_problem", lambda: "no upgrades here")
    with pytest.raises(_compat.ConfigError, match=r"s2s\.enabled.*no upgrades here"):
        config_mod.parse({**base, "s2s": True})


def test_an_invite_to_an_s2s_room_of_the_members_version_is_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = _service(tmp_path, monkeypatch)
    accept, reason, _ = _run(service.decide_invite(_invite(S2S_MEMBERS)))
    assert (accept, reason) == (True, "accepted")


@pytest.mark.parametrize("content, reason", [
    (None, "no_create_event"),
    ({}, "not_s2s_room"),
    ({servership.MEMBERS_MARKER: MEMBERS}, "not_s2s_room"),
    ({"type": "m.s2s"}, "not_members_room_version"),
    ({"type": "M.S2S", servership.MEMBERS_MARKER: MEMBERS}, "not_s2s_room"),
])
def test_invites_elsewhere_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        content: dict | None, reason: str) -> None:
    service = _service(tmp_path, monkeypatch)
    assert _run(service.decide_invite(_invite(content)))[:2] == (False, reason)


def test_the_operator_and_the_cap_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    denied = _service(tmp_path, monkeypatch, denied_servers=["evil.example"],
                      denied_rooms=[ROOM])
    assert _run(denied.decide_invite(_invite(S2S_MEMBERS)))[0] is False  # the room
    denied = _service(tmp_path, monkeypatch, denied_servers=["evil.example"])
    accept, reason, _ = _run(denied.decide_invite(_invite(S2S_MEMBERS, sender="@:evil.example")))
    assert not accept and "denied" in reason
    # A room created by a denied server, whoever invites.
    accept, _, detail = _run(denied.decide_invite(_invite(S2S_MEMBERS,
                                                          creator="@:evil.example")))
    assert not accept and "evil.example" in detail
    full = _service(tmp_path, monkeypatch, joined=2, s2s={"enabled": True, "max_rooms": 2})
    assert _run(full.decide_invite(_invite(S2S_MEMBERS)))[:2] == (False, "too_many_rooms")


def test_the_policy_named_in_the_settings_decides(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Under peeking (MSC1777), an invite is no reason for a pseudouser to join.
    service = _service(tmp_path, monkeypatch, s2s={"enabled": True, "policy": "peeking"})
    accept, reason, _ = _run(service.decide_invite(_invite(S2S_MEMBERS)))
    assert not accept and reason != "accepted"


def test_only_a_peers_pseudouser_speaks_for_it(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    service = _service(tmp_path, monkeypatch)
    proposal = FakeEvent("m.s2s.upgrade.proposal", None, "@mallory:a.example", ROOM,
                         {"versions": [{"version": MEMBERS, "rating": 1}]})
    assert service.wants(proposal)
    _run(service.on_negotiation_event(proposal))
    assert service._negotiations == {} and service._queues == {}
    own = FakeEvent("m.s2s.upgrade.proposal", None, ME, ROOM, proposal.content)
    _run(service.on_negotiation_event(own))
    assert service._negotiations == {}
    assert not service.wants(FakeEvent("m.room.message", None, "@:a.example", ROOM, {}))
