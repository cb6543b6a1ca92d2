"""``PeekService`` against a fake ModuleApi: the paths a two-server lab cannot reach (a join
that lands in a room of the wrong version, a room created by a denied server, a restart, a
failed leave) and the clock (sessions expiring without waiting for real time)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fake_api import FakeEvent, FakeModuleApi

from servership.synapse import _compat, config as config_mod
from servership.synapse.peeking import PeekService

ROOM = "!" + "a" * 43
OTHER = "!" + "b" * 43
ME = "@:b.example"
BOB = "@bob:b.example"
VIA = ["a.example"]


class Rules:
    """``MembersRules``' one question: which rooms carry the members rules."""

    def __init__(self, *marked: str) -> None:
        self.marked = set(marked)

    def applies(self, room_id: str) -> bool:
        return room_id in self.marked


class World:
    """What Synapse would do: joins and leaves recorded, room state per room."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str, list[str] | None]] = []
        self.fail: dict[str, Exception] = {}
        self.state: dict[str, list[dict]] = {}
        #: When set, joins wait for it (requests in flight at once).
        self.hold: asyncio.Event | None = None

        async def set_own_membership(api: Any, user: str, room: str, membership: str,
                                     via: list[str] | None = None) -> str:
            self.calls.append((membership, room, via))
            if self.hold is not None and membership == "join":
                await self.hold.wait()
            if membership in self.fail:
                raise self.fail[membership]
            return "$ev"

        async def current_state(api: Any, room: str, types: Any = None) -> list[dict]:
            return self.state.get(room, [])

        monkeypatch.setattr(_compat, "set_own_membership", set_own_membership)
        monkeypatch.setattr(_compat, "current_state", current_state)


def _service(tmp_path: Path, rules: Rules, **raw: Any) -> tuple[PeekService, FakeModuleApi]:
    config = config_mod.parse({
        "store_path": str(tmp_path / "s.db"), "members_room_version": True,
        "peeking": {"enabled": True, "session_seconds": 60, "max_rooms": 2}, **raw,
    })
    api = FakeModuleApi("b.example")
    return PeekService(api, config, rules), api


def _create(sender: str) -> dict:
    return {"type": "m.room.create", "state_key": "", "sender": sender,
            "content": {"room_version": "12"}}


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _error(coro: Any) -> Any:
    with pytest.raises(_compat.SynapseError) as caught:
        _run(coro)
    return caught.value


def test_a_join_that_lands_in_a_plain_room_is_undone(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    service, _ = _service(tmp_path, Rules())
    err = _error(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))
    assert err.code == 400 and err.errcode == "M_INCOMPATIBLE_ROOM_VERSION"
    assert world.calls == [("join", ROOM, VIA), ("leave", ROOM, None)]
    err = _error(service.handle_read(BOB, {"room_id": ROOM}, {}))
    assert err.code == 404


def test_a_room_created_by_a_denied_server_is_left(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    world.state[ROOM] = [_create("@blue:evil.example")]
    service, _ = _service(tmp_path, Rules(ROOM), denied_servers=["evil.example"])
    err = _error(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))
    assert err.code == 403 and "evil.example" in err.msg
    assert [c[0] for c in world.calls] == ["join", "leave"]


def test_sessions_expire_on_the_clock_and_the_check_leaves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    world.state[ROOM] = [_create("@alice:a.example")]
    service, api = _service(tmp_path, Rules(ROOM))
    status, answer = _run(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))
    assert status == 200 and answer["joined"] is True and answer["expires_in_ms"] == 60_000
    api._hs.now += 59_000
    assert _run(service.check()) == 0 and [c[0] for c in world.calls] == ["join"]
    # Renewed: a full session from now.
    _run(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))
    api._hs.now += 59_000
    assert _run(service.check()) == 0
    api._hs.now += 2_000
    assert _run(service.check()) == 1
    assert [c[0] for c in world.calls] == ["join", "leave"]
    assert _error(service.handle_read(BOB, {"room_id": ROOM}, {})).code == 404


def test_a_failed_join_is_forgotten_and_a_failed_leave_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    service, api = _service(tmp_path, Rules(ROOM))
    world.fail["join"] = _compat.SynapseError(403, "not allowed", "M_FORBIDDEN")
    err = _error(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))
    assert err.code == 403 and err.errcode == "M_FORBIDDEN"
    del world.fail["join"]
    assert _run(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))[0] == 200
    world.fail["leave"] = _compat.SynapseError(502, "unreachable", "M_UNKNOWN")
    status, answer = _run(service.handle_end(BOB, {"room_id": ROOM}, {}))
    assert status == 200 and answer["left"] is False
    del world.fail["leave"]
    assert _run(service.check()) == 1
    assert [c[0] for c in world.calls] == ["join", "join", "leave", "leave"]


def test_rooms_found_at_start_up_are_kept_one_session_then_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    service, api = _service(tmp_path, Rules(ROOM, OTHER))
    api.db.executemany("INSERT INTO local_current_membership VALUES (?,?,?,?,?)", [
        (ROOM, ME, "$1", "join", 1), (OTHER, ME, "$2", "join", 2),
        (OTHER, BOB, "$3", "join", 3)])
    assert _run(service.rebuild()) == 2
    assert _run(service.check()) == 0
    api._hs.now += 61_000
    # ROOM: nobody of ours; OTHER: bob is joined, so the pseudouser stays.
    assert _run(service.check()) == 1
    assert world.calls == [("leave", ROOM, None)]
    # bob leaves OTHER: now it is left too.
    _run(service.on_member_event(FakeEvent("m.room.member", BOB, BOB, OTHER,
                                           {"membership": "leave"})))
    assert world.calls[-1] == ("leave", OTHER, None)


def test_a_remote_invite_never_joins_and_foreign_pseudouser_rooms_are_not_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    service, _ = _service(tmp_path, Rules(ROOM))
    _run(service.on_member_event(FakeEvent("m.room.member", ME, "@mallory:evil.example", ROOM,
                                           {"membership": "invite"})))
    # Our pseudouser joined a room for some other reason (not a peek): never ours to leave.
    _run(service.on_member_event(FakeEvent("m.room.member", ME, ME, OTHER,
                                           {"membership": "join"})))
    assert _run(service.check()) == 0
    assert world.calls == []


def test_caps_on_sessions_and_rooms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    World(monkeypatch)
    service, _ = _service(tmp_path, Rules(ROOM, OTHER, "!" + "c" * 43),
                          peeking={"enabled": True, "max_rooms": 2,
                                   "max_sessions_per_user": 1})
    assert _run(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))[0] == 200
    err = _error(service.handle_start(BOB, {}, {"room_id": OTHER, "via": VIA}))
    assert err.code == 429
    assert _run(service.handle_start("@bea:b.example", {},
                                     {"room_id": OTHER, "via": VIA}))[0] == 200
    err = _error(service.handle_start("@ben:b.example", {},
                                      {"room_id": "!" + "c" * 43, "via": VIA}))
    assert err.code == 429 and "rooms" in err.msg
    # Another user's peek of a room already peeked is no new room.
    assert _run(service.handle_start("@ben:b.example", {},
                                     {"room_id": ROOM, "via": VIA}))[0] == 200


def test_config_is_validated(tmp_path: Path) -> None:
    base = {"store_path": str(tmp_path / "s.db")}
    assert config_mod.parse(base).peeking.enabled is False
    for bad, key in (({"peeking": True}, "peeking.enabled"),
                     ({"peeking": {"enabled": "yes"}}, "peeking.enabled"),
                     ({"peeking": {"session_seconds": 0}}, "peeking.session_seconds"),
                     ({"peeking": {"max_via": 51}}, "peeking.max_via"),
                     ({"peeking": {"max_events": 1001}}, "peeking.max_events"),
                     ({"peeking": {"nope": 1}}, "peeking.nope")):
        with pytest.raises(_compat.ConfigError, match=key.replace(".", r"\.")):
            config_mod.parse({**base, **bad})
    on = config_mod.parse({**base, "members_room_version": True, "peeking": True})
    assert on.peeking.enabled and on.peeking.session_seconds == 300


def test_requests_in_flight_meet_the_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many requests at once, each for another room, while the first join is still under way:
    only what the caps allow is sent."""
    world = World(monkeypatch)
    rooms = ["!" + c * 43 for c in "cdefgh"]
    service, _ = _service(tmp_path, Rules(*rooms),
                          peeking={"enabled": True, "max_rooms": 3, "max_sessions_per_user": 2})

    async def burst() -> list[Any]:
        world.hold = asyncio.Event()
        tasks = [asyncio.ensure_future(service.handle_start(
            BOB if i < 3 else f"@u{i}:b.example", {}, {"room_id": room, "via": VIA}))
            for i, room in enumerate(rooms)]
        await asyncio.sleep(0)
        world.hold.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = _run(burst())
    codes = [r[0] if isinstance(r, tuple) else r.code for r in results]
    # bob: two sessions, his third refused; the others: one more room, then the rooms cap.
    assert codes == [200, 200, 429, 200, 429, 429], codes
    assert len([c for c in world.calls if c[0] == "join"]) == 3


def test_read_limits_are_ascii_digits_in_range(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    World(monkeypatch)
    service, _ = _service(tmp_path, Rules(ROOM))
    assert _run(service.handle_start(BOB, {}, {"room_id": ROOM, "via": VIA}))[0] == 200
    for limit in ("0", "101", "-1", " 5", "\u00b2", "\uff11", "1e3", "9" * 50):
        err = _error(service.handle_read(BOB, {"room_id": ROOM, "limit": limit}, {}))
        assert err.code == 400, limit
