"""The membership, join-rule and knock hooks (``servership.synapse.members``), with a fake
``ModuleApi`` and the real core: make_join, send_join and ``/send`` refuse the same joins; a
refusal looks exactly like an unknown room; join rules a room version does not know are refused
with a clear error; knocks are recorded only for known, gated rooms, within the per-origin cap,
and purged on a schedule.

Run: ``pytest tests/python/synapse/test_members_unit.py`` (needs matrix-synapse importable and
the servership wheel installed; no servers).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Iterator

import pytest

from fake_api import FakeEvent, FakeModuleApi
from servership.synapse import ServershipModule, _compat, metrics
from servership.synapse.config import parse

ROOM = "!r:b.example"


@pytest.fixture(autouse=True)
def _clean_servlets() -> Iterator[None]:
    yield
    _compat.unregister_servlet_group()


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "servership.db")


@pytest.fixture(autouse=True)
def _state_from_the_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_compat.current_state`` reads Synapse's stores; here it reads the fake's room states
    (``api.partial`` lists rooms with partial state)."""

    async def current_state(api: Any, room_id: str, types: Any = None) -> list[dict] | None:
        if room_id in getattr(api, "partial", ()):
            return None
        events = await api.get_room_state(room_id, types)
        return [_compat.plain_json(e.get_dict()) for e in events.values()]

    monkeypatch.setattr(_compat, "current_state", current_state)


def ev(t: str, key: str, content: dict, sender: str = "@c:b.example", room: str = ROOM) -> FakeEvent:
    return FakeEvent(t, key, sender, room, content, room_version="11")


def room(*extra: FakeEvent, join_rule: str = "public") -> list[FakeEvent]:
    return [
        ev("m.room.create", "", {"room_version": "11"}),
        ev("m.room.member", "@c:b.example", {"membership": "join"}),
        ev("m.room.join_rules", "", {"join_rule": join_rule}),
        *extra,
    ]


def state_map(events: list[FakeEvent]) -> dict:
    return {(e.type, e.state_key): e for e in events}


def join(user: str, room_id: str = ROOM) -> FakeEvent:
    return FakeEvent("m.room.member", user, user, room_id, {"membership": "join"},
                     room_version="11")


def module(store: str, **extra: Any) -> tuple[ServershipModule, FakeModuleApi]:
    api = FakeModuleApi()
    return ServershipModule(parse(dict({"store_path": store}, **extra)), api), api


def count(counter: Any, *labels: str) -> float:
    return float((counter.labels(*labels) if labels else counter)._value.get())


def synapse_unknown_room_answer(room_id: str) -> dict:
    """What Synapse itself raises for a room it does not know (``get_room_version_id``)."""
    from synapse.api.errors import SynapseError
    from synapse.storage.databases.main.state import StateGroupWorkerStore

    class NoRows:
        class db_pool:  # noqa: N801 - stands in for the attribute
            @staticmethod
            def simple_select_one_onecol_txn(*args: Any, **kwargs: Any) -> None:
                return None

    with pytest.raises(SynapseError) as raised:
        StateGroupWorkerStore.get_room_version_id_txn(NoRows(), None, room_id)  # type: ignore[arg-type]
    return {"code": raised.value.code, "body": raised.value.error_dict(None)}


def answer(exc: Any) -> dict:
    return {"code": exc.code, "body": exc.error_dict(None)}


# --- the three paths of a join --------------------------------------------------------------


def test_make_join_refusal_looks_exactly_like_an_unknown_room(store: str) -> None:
    m, api = module(store, gated_rooms=[ROOM])
    state = state_map(room())
    with pytest.raises(_compat.SynapseError) as refused:
        asyncio.run(m.check_event_allowed(join("@eve:evil.example"), state))
    assert answer(refused.value) == synapse_unknown_room_answer(ROOM)
    assert answer(refused.value)["code"] == 404
    # Able to subscribe: let in.
    able = ev("m.server.is_able_to_subscribe", "good.example", {"is_able_to_subscribe": True})
    assert asyncio.run(
        m.check_event_allowed(join("@ann:good.example"), state_map(room(able)))
    ) == (True, None)


def send_join_context(room_id: str) -> Any:
    from urllib.parse import quote

    from synapse.logging.context import ContextRequest, LoggingContext

    url = f"/_matrix/federation/v2/send_join/{quote(room_id)}/%24join"
    request = ContextRequest(request_id="PUT-1", ip_address="127.0.0.1", site_tag="fed",
                             requester=None, authenticated_entity="evil.example",
                             method="PUT", url=url, protocol="1.1", user_agent="rogue")
    return LoggingContext(name="PUT-1", server_name="b.example", request=request)


def test_send_join_of_a_refused_server_is_answered_as_an_unknown_room(store: str) -> None:
    """Issue 12: a join built by hand and sent with send_join got 200 (gated room)."""
    m, api = module(store, gated_rooms=[ROOM])
    api.set_room_state(ROOM, room())
    spam = api.spam["check_event_for_spam"]
    before = count(metrics.JOINS_REFUSED, "send_join", "not_able_to_subscribe")
    with send_join_context(ROOM):
        with pytest.raises(_compat.SynapseError) as refused:
            asyncio.run(spam(join("@eve:evil.example")))
    assert answer(refused.value) == synapse_unknown_room_answer(ROOM)
    assert count(metrics.JOINS_REFUSED, "send_join", "not_able_to_subscribe") == before + 1
    # The same join reaching us another way (backfill, missing events) is soft-failed.
    assert asyncio.run(spam(join("@eve:evil.example"))) == _compat.soft_fail_code()
    # Local users, other events and rooms we hold no state for are not judged.
    assert asyncio.run(spam(join("@me:b.example"))) is _compat.NOT_SPAM
    assert asyncio.run(spam(ev("m.room.message", None, {"body": "hi"}))) is _compat.NOT_SPAM  # type: ignore[arg-type]
    assert asyncio.run(spam(join("@eve:evil.example", "!elsewhere:x"))) is _compat.NOT_SPAM


def test_send_join_of_a_pseudouser_when_pseudousers_are_off(store: str) -> None:
    """Issue 12: `@:A` into B's room by send_join got 200 with pseudousers: false."""
    m, api = module(store)
    api.set_room_state(ROOM, room())
    with send_join_context(ROOM):
        with pytest.raises(_compat.SynapseError) as refused:
            asyncio.run(api.spam["check_event_for_spam"](join("@:a.example")))
    assert refused.value.code == 404


def test_rooms_we_are_still_joining_are_not_judged(store: str) -> None:
    """While we join a room ourselves (partial state), its events are not ours to judge, and
    reading its current state would wait for the very resync those events belong to."""
    m, api = module(store, gated_rooms=[ROOM])
    api.set_room_state(ROOM, room())
    api.partial = {ROOM}  # type: ignore[attr-defined]
    assert asyncio.run(api.spam["should_drop_federated_event"](join("@eve:evil.example"))) is False
    assert asyncio.run(api.spam["check_event_for_spam"](join("@eve:evil.example"))) is _compat.NOT_SPAM


def test_a_failing_check_refuses_only_what_it_could_refuse(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(api: Any, room_id: str, types: Any = None) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(_compat, "current_state", broken)
    m, api = module(store, gated_rooms=[ROOM], pseudousers=True)
    drop = api.spam["should_drop_federated_event"]
    # Gated rooms and pseudousers fail closed...
    assert asyncio.run(drop(join("@eve:evil.example"))) is True
    assert asyncio.run(drop(join("@:evil.example", "!other:b.example"))) is True
    # ...an ordinary join into an ungated room needs no state, and is never refused.
    assert asyncio.run(drop(join("@ann:good.example", "!other:b.example"))) is False


def test_joins_in_send_are_dropped(store: str) -> None:
    """Issue 12: joins that reach us through other resident servers were never checked."""
    m, api = module(store, gated_rooms=[ROOM])
    api.set_room_state(ROOM, room())
    drop = api.spam["should_drop_federated_event"]
    assert asyncio.run(drop(join("@eve:evil.example"))) is True
    assert asyncio.run(drop(join("@:evil.example"))) is True
    assert asyncio.run(drop(ev("m.room.message", None, {"body": "hi"}))) is False  # type: ignore[arg-type]
    able = ev("m.server.is_able_to_subscribe", "good.example", {"is_able_to_subscribe": True})
    api.set_room_state(ROOM, room(able))
    assert asyncio.run(drop(join("@ann:good.example"))) is False


def test_pseudousers_on_use_the_msc1777_rule_and_the_deny_lists(store: str) -> None:
    """Issue 12: with pseudousers: true any pseudouser joined any public room; and the rule
    must not allow what Synapse's event auth refuses."""
    m, api = module(store, pseudousers=True, denied_servers=["*.SPAM.example"])
    drop = api.spam["should_drop_federated_event"]
    # Public room, no user of a.example: MSC1777 refuses.
    api.set_room_state(ROOM, room())
    assert asyncio.run(drop(join("@:a.example"))) is True
    # A user of a.example is joined: allowed in a public room.
    api.set_room_state(ROOM, room(ev("m.room.member", "@bob:a.example", {"membership": "join"},
                                     sender="@bob:a.example")))
    assert asyncio.run(drop(join("@:a.example"))) is False
    # Invite-only: @bob:a being joined is not enough; the pseudouser needs its own invite.
    bob = ev("m.room.member", "@bob:a.example", {"membership": "join"}, sender="@bob:a.example")
    api.set_room_state(ROOM, room(bob, join_rule="invite"))
    assert asyncio.run(drop(join("@:a.example"))) is True
    invited = ev("m.room.member", "@:a.example", {"membership": "invite"})
    api.set_room_state(ROOM, room(bob, invited, join_rule="invite"))
    assert asyncio.run(drop(join("@:a.example"))) is False
    # The operator's deny list (ASCII case ignored).
    api.set_room_state(ROOM, room(ev("m.room.member", "@x:x.spam.example", {"membership": "join"})))
    before = count(metrics.JOINS_REFUSED, "send", "server_denied_by_operator")
    assert asyncio.run(drop(join("@:x.spam.example"))) is True
    assert count(metrics.JOINS_REFUSED, "send", "server_denied_by_operator") == before + 1


# --- join rules the room version does not know ----------------------------------------------


def test_peekable_is_refused_in_standard_room_versions_before_anything_is_sent(store: str) -> None:
    """Issue 12: `peekable` bricks a real Synapse room."""
    m, api = module(store)
    create = api.third_party["on_create_room"]
    requester = object()
    for version, rule in (("12", "peekable"), ("11", "peekable"), ("6", "knock")):
        body = {"room_version": version,
                "initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": rule}}]}
        with pytest.raises(_compat.SynapseError) as refused:
            asyncio.run(create(requester, body, False))
        assert refused.value.code == 400
        assert rule in refused.value.msg and version in refused.value.msg
    # Rules the version knows pass; so does a request without join rules.
    ok = {"room_version": "11",
          "initial_state": [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]}
    asyncio.run(create(requester, ok, False))
    asyncio.run(create(requester, {"room_version": "11", "preset": "public_chat"}, False))
    # A later change of the join rules, built locally.
    from types import MappingProxyType

    # Synapse hands the content as an immutable mapping, not a dict.
    change = FakeEvent("m.room.join_rules", "", "@c:b.example", ROOM,
                       MappingProxyType({"join_rule": "peekable"}), room_version="12")  # type: ignore[arg-type]
    with pytest.raises(_compat.SynapseError):
        asyncio.run(m.check_event_allowed(change, {}))
    fine = FakeEvent("m.room.join_rules", "", "@c:b.example", ROOM, {"join_rule": "invite"},
                     room_version="12")
    assert asyncio.run(m.check_event_allowed(fine, {})) == (True, None)


# --- knocks -----------------------------------------------------------------------------------


def test_a_knock_flood_for_unknown_rooms_writes_nothing(store: str) -> None:
    """Issue 12: one /send with 100 knocks for rooms that do not exist gave 100 rows."""
    m, api = module(store, gated_rooms=[ROOM, "!g2:b.example", "!g3:b.example"],
                    knocks={"max_per_origin": 2})
    handler = api._hs.edu_handlers["m.server.knock"]
    dropped = count(metrics.KNOCKS_RECEIVED, "dropped")
    for i in range(100):
        asyncio.run(handler("flood.example", {"room_id": f"!nope{i}:b.example"}))
    assert count(metrics.KNOCKS_RECEIVED, "dropped") == dropped + 100
    knocks = m._stores()[2]
    assert len(knocks) == 0
    # Known, gated rooms: recorded up to the origin's cap, the rest counted and dropped.
    for r in (ROOM, "!g2:b.example", "!g3:b.example"):
        api.set_room_state(r, [ev("m.room.create", "", {"room_version": "11"}, room=r)])
    over = count(metrics.KNOCKS_RECEIVED, "over_cap")
    for r in (ROOM, "!g2:b.example", "!g3:b.example"):
        asyncio.run(handler("flood.example", {"room_id": r}))
    assert len(knocks) == 2
    assert count(metrics.KNOCKS_RECEIVED, "over_cap") == over + 1
    # A known room that is not gated: dropped the same way.
    api.set_room_state("!open:b.example", [ev("m.room.create", "", {}, room="!open:b.example")])
    asyncio.run(handler("polite.example", {"room_id": "!open:b.example"}))
    assert len(knocks) == 2


def test_expired_knocks_are_purged_on_a_schedule(store: str) -> None:
    m, api = module(store, gated_rooms=[ROOM],
                    knocks={"expiry_seconds": 60, "purge_interval_seconds": 600})
    (purge, every, _, desc) = api.looping[-1]
    assert (every, desc) == (600_000, "servership_purge_knocks")
    api.set_room_state(ROOM, room())
    asyncio.run(api._hs.edu_handlers["m.server.knock"]("a.example", {"room_id": ROOM}))
    assert len(m._stores()[2]) == 1
    api._hs.now += 61_000
    assert asyncio.run(purge()) == 1
    assert len(m._stores()[2]) == 0


def test_knock_config_is_validated(store: str) -> None:
    with pytest.raises(_compat.ConfigError, match="knocks.origin_window_seconds"):
        parse({"store_path": store, "knocks": {"origin_window_seconds": 0}})
    with pytest.raises(_compat.ConfigError, match=r"denied_rooms\[0\]"):
        parse({"store_path": store, "denied_rooms": ["not-a-room"]})
    with pytest.raises(_compat.ConfigError, match="denied_servers"):
        parse({"store_path": store, "denied_servers": "*.evil.example"})


# --- the core's identifiers, not string slicing ------------------------------------------------


def test_the_module_uses_the_cores_user_ids() -> None:
    from servership.synapse import module as module_mod

    # "@:" alone, or "@:" with something that is no server name, is no pseudouser.
    assert module_mod._is_server_pseudouser("@:b.example")
    for not_one in ("@:", "@:bad host", "@::x", "@a:b.example"):
        assert not module_mod._is_server_pseudouser(not_one), not_one
    assert module_mod._server_of("@a:b.example:8448") == "b.example:8448"
    assert module_mod._server_of("not a user") == ""
