"""``members_room_version``: the setting, the detection of Synapse's event auth functions, and
the wrappers on real Synapse events (``make_event_from_dict``) without a running server.

Real-Synapse tests are in ``test_e2e_room_version.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import servership

from fake_api import FakeModuleApi
from servership.synapse import ServershipModule, _compat
from servership.synapse.config import parse
from servership.synapse.room_version import MAX_UNMARKED, MembersRules

ConfigError = _compat.ConfigError
KEY = servership.SigningKey.from_seed("ed25519:1", "R" * 43)
SERVER = "a.example"
ALICE = f"@alice:{SERVER}"


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "servership.db")


@pytest.fixture(autouse=True)
def _restore_synapse() -> Iterator[None]:
    yield
    _compat.uninstall_members_auth()
    _compat.unregister_servlet_group()


# -- the setting --------------------------------------------------------------------------------


def test_the_setting_is_off_by_default_and_validated(store: str) -> None:
    assert parse({"store_path": store}).members_room_version.enabled is False
    assert parse({"store_path": store, "members_room_version": True}).members_room_version.enabled
    for raw, message in (
        ({"enabled": "yes"}, "servership.members_room_version.enabled must be true or false"),
        ({"enabeld": True}, "servership.members_room_version.enabeld is not a known setting"),
        (3, "servership.members_room_version must be a mapping"),
    ):
        with pytest.raises(ConfigError) as err:
            parse({"store_path": store, "members_room_version": raw})
        assert message in str(err.value)


def test_a_moved_synapse_function_is_a_config_error_naming_the_key(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import synapse.handlers.federation_event as fe

    assert _compat.members_auth_problem() is None
    monkeypatch.setattr(fe, "check_state_dependent_auth_rules", lambda event, auth_events: None)
    problem = _compat.members_auth_problem()
    assert problem is not None and "synapse.handlers.federation_event" in problem
    with pytest.raises(ConfigError) as err:
        ServershipModule.parse_config({"store_path": store, "members_room_version": True})
    assert "servership.members_room_version.enabled" in str(err.value)
    # Off, the same Synapse is fine.
    ServershipModule.parse_config({"store_path": store})
    # A name that is gone.
    monkeypatch.undo()
    monkeypatch.delattr(fe, "auth_types_for_event")
    assert "does not exist" in str(_compat.members_auth_problem())


def test_a_changed_signature_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    import synapse.event_auth as ea

    def check_state_dependent_auth_rules(event: Any, auth_events: Any, extra: Any) -> None:
        return None

    monkeypatch.setattr(ea, "check_state_dependent_auth_rules", check_state_dependent_auth_rules)
    assert "takes (event, auth_events, extra)" in str(_compat.members_auth_problem())


def test_install_patches_every_name_and_uninstall_restores() -> None:
    import importlib

    import synapse.event_auth as ea

    originals = {n: getattr(ea, n) for n in _compat._AUTH_PATCHES}
    rules = MembersRules()
    _compat.install_members_auth(rules.check, rules.select)
    for name, modules in _compat._AUTH_PATCHES.items():
        for module in modules:
            bound = getattr(importlib.import_module(module), name)
            assert bound is not originals[name], (module, name)
            assert getattr(bound, _compat._WRAPPED_ATTR) is originals[name]
    # Installing twice wraps Synapse's function, not our wrapper.
    _compat.install_members_auth(rules.check, rules.select)
    assert getattr(ea.auth_types_for_event, _compat._WRAPPED_ATTR) is originals[
        "auth_types_for_event"]
    assert _compat.members_auth_problem() is None
    _compat.uninstall_members_auth()
    for name, modules in _compat._AUTH_PATCHES.items():
        for module in modules:
            assert getattr(importlib.import_module(module), name) is originals[name]


# -- the wrappers on real Synapse events ------------------------------------------------------


class Room:
    """A v12 room of real Synapse events, signed with one key."""

    def __init__(self, create_content: dict) -> None:
        from synapse.api.room_versions import KNOWN_ROOM_VERSIONS

        self.version = KNOWN_ROOM_VERSIONS["12"]
        create = {"type": "m.room.create", "state_key": "", "sender": ALICE,
                  "content": {"room_version": "12", **create_content},
                  "origin_server_ts": 1, "depth": 1, "prev_events": [], "auth_events": []}
        signed = servership.sign_event(create, SERVER, KEY, "12")
        self.room_id = servership.room_id_from_create_event(signed)
        self.create = self._event(signed)
        self.state: dict[tuple[str, str], Any] = {}
        self.add("m.room.member", ALICE, {"membership": "join"})
        self.add("m.room.power_levels", "", {"users": {}, "state_default": 50})
        self.add("m.room.join_rules", "", {"join_rule": "public"})

    def _event(self, pdu: dict) -> Any:
        from synapse.events import make_event_from_dict

        return make_event_from_dict(pdu, self.version)

    def build(self, etype: str, state_key: str, content: dict, sender: str = ALICE,
              auth: list[tuple[str, str]] | None = None) -> Any:
        keys = auth if auth is not None else list(self.state)
        pdu = {"type": etype, "state_key": state_key, "sender": sender, "content": content,
               "room_id": self.room_id, "origin_server_ts": int(time.time() * 1000),
               "depth": 2 + len(self.state), "prev_events": [self.create.event_id],
               "auth_events": [self.state[k].event_id for k in keys if k in self.state]}
        return self._event(servership.sign_event(pdu, SERVER, KEY, "12"))

    def add(self, etype: str, state_key: str, content: dict) -> Any:
        event = self.build(etype, state_key, content)
        self.state[(etype, state_key)] = event
        return event

    def auth(self, *keys: tuple[str, str]) -> list[Any]:
        return [self.create] + [self.state[k] for k in keys if k in self.state]


MARKED = {servership.MEMBERS_MARKER: servership.MEMBERS_ROOM_VERSION}
ALL = (("m.room.power_levels", ""), ("m.room.join_rules", ""))


@pytest.fixture
def installed() -> MembersRules:
    rules = MembersRules()
    _compat.install_members_auth(rules.check, rules.select)
    return rules


def _check(event: Any, auth: list[Any]) -> None:
    import synapse.event_auth as ea

    ea.check_state_dependent_auth_rules(event, auth)


def test_a_pseudouser_join_is_refused_in_a_marked_room_only(installed: MembersRules) -> None:
    from synapse.api.errors import AuthError

    pseudo = "@:b.example"
    for create_content, refused in (({}, False), (MARKED, True)):
        room = Room(create_content)
        join = room.build("m.room.member", pseudo, {"membership": "join"}, sender=pseudo)
        if refused:
            with pytest.raises(AuthError, match="no_user_of_server"):
                _check(join, room.auth(*ALL))
        else:
            _check(join, room.auth(*ALL))  # Synapse alone: allowed
        assert installed.applies(room.room_id) is refused


def test_peekable_reads_as_public_in_a_marked_room(installed: MembersRules) -> None:
    from synapse.api.errors import AuthError

    for create_content, allowed in (({}, False), (MARKED, True)):
        room = Room(create_content)
        room.add("m.room.join_rules", "", {"join_rule": "peekable"})
        join = room.build("m.room.member", "@bob:b.example", {"membership": "join"},
                          sender="@bob:b.example")
        if allowed:
            _check(join, room.auth(*ALL))
        else:
            with pytest.raises(AuthError):
                _check(join, room.auth(*ALL))


def test_a_marked_create_with_a_bad_gated_flag_is_refused(installed: MembersRules) -> None:
    from synapse.api.errors import AuthError

    room = Room({**MARKED, servership.MEMBERS_GATED: "yes"})
    with pytest.raises(AuthError, match="create"):
        _check(room.create, [])


def test_the_selection_adds_keys_in_marked_rooms_only(installed: MembersRules) -> None:
    import synapse.event_auth as ea

    plain, marked = Room({}), Room(MARKED)
    grant = ("m.server.is_able_to_subscribe", "b.example")
    for room in (plain, marked):
        # Any event of the room's that goes through the check marks (or clears) it.
        _check(room.state[("m.room.power_levels", "")], room.auth(("m.room.member", ALICE)))
    for room, expected in ((plain, False), (marked, True)):
        join = room.build("m.room.member", "@bob:b.example", {"membership": "join"},
                          sender="@bob:b.example")
        assert (grant in ea.auth_types_for_event(room.version, join)) is expected
        via = room.build("m.room.member", "@:b.example",
                         {"membership": "join", servership.MEMBERS_VIA_USER: "@u:b.example"},
                         sender="@:b.example")
        assert (("m.room.member", "@u:b.example") in ea.auth_types_for_event(room.version, via)
                ) is expected
    # A malformed via_user adds nothing (the check refuses the event).
    bad = marked.build("m.room.member", "@:b.example",
                       {"membership": "join", servership.MEMBERS_VIA_USER: 7},
                       sender="@:b.example")
    assert ("m.room.member", 7) not in ea.auth_types_for_event(marked.version, bad)


def test_the_gate_reads_the_grant_from_the_auth_events(installed: MembersRules) -> None:
    from synapse.api.errors import AuthError

    room = Room({**MARKED, servership.MEMBERS_GATED: True})
    bob = "@bob:b.example"
    join = room.build("m.room.member", bob, {"membership": "join"}, sender=bob)
    with pytest.raises(AuthError, match="not_able_to_subscribe"):
        _check(join, room.auth(*ALL))
    room.add("m.server.is_able_to_subscribe", "b.example", {"is_able_to_subscribe": True})
    grant = ("m.server.is_able_to_subscribe", "b.example")
    join = room.build("m.room.member", bob, {"membership": "join"}, sender=bob)
    _check(join, room.auth(*ALL, grant))
    # The same join with the grant left out of its auth events: refused.
    with pytest.raises(AuthError, match="not_able_to_subscribe"):
        _check(join, room.auth(*ALL))


def test_unmarked_rooms_cost_a_set_lookup(
    installed: MembersRules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its first event, an unmarked room is one set lookup per call: the create event is
    not read again, and the selection never calls the core."""
    from servership.synapse import _core

    import synapse.event_auth as ea

    room = Room({})
    pl = room.state[("m.room.power_levels", "")]
    _check(pl, room.auth(("m.room.member", ALICE)))
    calls = 0

    def counting(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        raise AssertionError("the core was called for an unmarked room")

    for name in ("members_rules_apply", "members_auth_additions", "check_members_rules"):
        monkeypatch.setattr(_core, name, counting)
    join = room.build("m.room.member", "@bob:b.example", {"membership": "join"},
                      sender="@bob:b.example")
    for _ in range(1000):
        _check(pl, room.auth(("m.room.member", ALICE)))
        ea.auth_types_for_event(room.version, join)
    assert calls == 0


def test_the_unmarked_memory_is_bounded() -> None:
    rules = MembersRules()
    plain = Room({})
    for i in range(MAX_UNMARKED + 5):
        rules._mark(f"!r{i}", plain.create)
    assert len(rules._unmarked) <= MAX_UNMARKED


def test_marked_rooms_come_back_from_the_store(store: str) -> None:
    """At start-up: v12 rooms whose create event carries the marker exactly; not a marker of
    the wrong case, type or version, nor a rejected create."""
    api = FakeModuleApi(SERVER)
    api.db.executescript(
        "ALTER TABLE events ADD COLUMN type TEXT; ALTER TABLE events ADD COLUMN state_key TEXT;"
        "CREATE TABLE event_json(event_id TEXT, json TEXT);"
        "CREATE TABLE rooms(room_id TEXT, room_version TEXT);")
    cases = {
        "!marked": ("12", MARKED, False),
        "!rejected": ("12", MARKED, True),
        "!upper": ("12", {servership.MEMBERS_MARKER: servership.MEMBERS_ROOM_VERSION.upper()},
                   False),
        "!number": ("12", {servership.MEMBERS_MARKER: 1}, False),
        "!v11": ("11", MARKED, False),
        "!plain": ("12", {}, False),
    }
    for room_id, (version, content, rejected) in cases.items():
        create = {"type": "m.room.create", "state_key": "", "sender": ALICE,
                  "content": {"room_version": version, **content}}
        eid = "$" + room_id[1:]
        api.db.execute("INSERT INTO events(event_id, room_id, type, state_key) VALUES (?,?,?,?)",
                       (eid, room_id, "m.room.create", ""))
        api.db.execute("INSERT INTO event_json VALUES (?,?)", (eid, json.dumps(create)))
        api.db.execute("INSERT INTO rooms VALUES (?,?)", (room_id, version))
        if rejected:
            api.db.execute("INSERT INTO rejections VALUES (?,?,?)", (eid, "auth", ""))
    rules = MembersRules()
    assert asyncio.run(rules.fill_from_store(api)) == 1
    assert rules.marked_rooms() == {"!marked"}


def test_the_module_installs_only_when_on(store: str) -> None:
    import synapse.event_auth as ea

    original = ea.auth_types_for_event
    ServershipModule(parse({"store_path": store}), FakeModuleApi(SERVER))
    assert ea.auth_types_for_event is original
    api = FakeModuleApi(SERVER)
    ServershipModule(parse({"store_path": store, "members_room_version": True}), api)
    assert getattr(ea.auth_types_for_event, _compat._WRAPPED_ATTR) is original
    assert any(desc == "servership_marked_rooms" for _, _, _, desc in api.delayed)


def test_events_that_are_not_plain_dicts_are_copied_first(installed: MembersRules) -> None:
    """The core takes plain dicts only; an event whose ``get_pdu_json()`` holds other mappings
    (frozen events of older releases) is copied into plain JSON and checked the same."""
    from types import MappingProxyType

    from synapse.api.errors import AuthError

    class Frozen:
        def __init__(self, event: Any) -> None:
            self._event = event

        def __getattr__(self, name: str) -> Any:
            return getattr(self._event, name)

        def get_pdu_json(self) -> Any:
            pdu = self._event.get_pdu_json()
            return MappingProxyType({**pdu, "content": MappingProxyType(dict(pdu["content"]))})

    room = Room(MARKED)
    pseudo = "@:b.example"
    join = room.build("m.room.member", pseudo, {"membership": "join"}, sender=pseudo)
    with pytest.raises(AuthError, match="no_user_of_server"):
        installed._decide(Frozen(join), [Frozen(e) for e in room.auth(*ALL)])
    user = room.build("m.room.member", "@bob:b.example", {"membership": "join"},
                      sender="@bob:b.example")
    installed._decide(Frozen(user), [Frozen(e) for e in room.auth(*ALL)])
