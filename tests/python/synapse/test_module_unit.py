"""Unit tests of the Synapse module's plumbing with a fake ModuleApi and a fake core.

Run: ``pytest tests/python/synapse/test_module_unit.py`` (needs matrix-synapse importable,
not running; no native core needed).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import servership

from fake_api import FakeEvent, FakeModuleApi
from servership.synapse import ServershipModule, _compat, _core
from servership.synapse.config import parse

ConfigError = _compat.ConfigError


@pytest.fixture(autouse=True)
def _clean_servlets() -> Iterator[None]:
    yield
    _compat.unregister_servlet_group()


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "servership.db")


# --- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "servership.store_path is required"),
        ({"store_path": 3}, "servership.store_path must be a non-empty file path"),
        ({"store_path": ":memory:"}, "servership.store_path must be a file"),
        ({"store_path": "/nonexistent-dir/x.db"}, "directory that does not exist"),
        ({"discovery": {"max_tags_per_request": 0}},
         "servership.discovery.max_tags_per_request must be a positive integer"),
        ({"discovery": {"max_tags_per_request": True}},
         "servership.discovery.max_tags_per_request must be a positive integer"),
        ({"discovery": {"budget_tags": 10}}, "servership.discovery.budget_tags must be at least"),
        ({"discovery": {"budget_window_seconds": "1h"}},
         "servership.discovery.budget_window_seconds must be a positive integer"),
        ({"discovery": {"stable_path": "yes"}}, "servership.discovery.stable_path must be true"),
        ({"discovery": {"colour": 1}}, "servership.discovery.colour is not a known setting"),
        ({"invites": {"mode": "drop"}}, 'servership.invites.mode must be "warn" or "reject"'),
        ({"invites": 7}, "servership.invites must be a mapping"),
        ({"gated_rooms": "!a:b"}, "servership.gated_rooms must be a list"),
        ({"gated_rooms": ["!a:b", "room"]}, "servership.gated_rooms[1] must be a room ID"),
        ({"audit": {"notify_admin": "admin"}}, "servership.audit.notify_admin must be a user ID"),
        ({"audit": {"max_peers": -1}}, "servership.audit.max_peers must be a positive integer"),
        ({"audit": {"spread_seconds": -1}},
         "servership.audit.spread_seconds must be a non-negative integer"),
        ({"audit": {"enabled": True}, "discovery": False},
         "servership.audit.enabled needs discovery.enabled"),
        ({"pseudousers": "on"}, "servership.pseudousers must be true or false"),
        ({"invites": {"send_msc4329": 1}}, "servership.invites.send_msc4329 must be true or false"),
        ({"allow_untested_synapse": "yes"},
         "servership.allow_untested_synapse must be true or false"),
        ({"typo": 1}, "servership.typo is not a known setting"),
    ],
)
def test_config_errors_name_the_key(raw: dict, message: str, store: str) -> None:
    if "store_path" not in raw and raw:
        raw = dict(raw, store_path=store)
    with pytest.raises(ConfigError) as err:
        ServershipModule.parse_config(raw)
    assert message in str(err.value)


def test_config_defaults_and_shorthands(store: str) -> None:
    conf = parse({"store_path": store, "knocks": False, "audit": True,
                  "gated_rooms": ["!a:b", "!a:b"]})
    assert conf.knocks.enabled is False
    assert conf.audit.enabled is True and conf.audit.max_peers == 20
    assert conf.knocks.gated_rooms == ("!a:b",)
    assert conf.discovery.max_tags_per_request == 1000
    assert conf.invites.stable_v3_path is False and conf.invites.mode == "warn"


def test_store_path_must_not_be_synapse_database(tmp_path: Path) -> None:
    db = str(tmp_path / "homeserver.db")
    conf = parse({"store_path": db})
    with pytest.raises(ConfigError, match="servership.store_path must not be Synapse's own"):
        ServershipModule(conf, FakeModuleApi(db_file=db))


def test_missing_core_fails_start(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = _core.importlib.import_module

    def no_native(name: str) -> object:
        if name == "servership._native":
            raise ImportError("No module named 'servership._native'")
        return real_import(name)

    monkeypatch.setattr(_core, "_cached", None)
    monkeypatch.setattr(_core.importlib, "import_module", no_native)
    with pytest.raises(_core.CoreUnavailable, match="servership._native"):
        ServershipModule(parse({"store_path": store}), FakeModuleApi())
    assert not _core.native_available()


# --- registration --------------------------------------------------------------------------


def _servlet_paths() -> set[tuple[str, str]]:
    from synapse.federation.transport.server import SERVLET_GROUPS

    out = set()
    for cls in SERVLET_GROUPS.get(_compat.SERVLET_GROUP, ()):
        method = next(m for m in ("POST", "PUT") if hasattr(cls, f"on_{m}"))
        out.add((method, cls.PREFIX + cls.PATH))
    return out


def test_registers_endpoints_and_hooks(store: str) -> None:
    api = FakeModuleApi()
    ServershipModule(parse({"store_path": store}), api)
    assert _servlet_paths() == {
        ("POST", "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"),
        ("PUT", "/_matrix/federation/unstable/org.matrix.msc4329/invite/(?P<room_id>[^/]*)"),
        ("PUT", "/_matrix/federation/unstable/org.matrix.msc0000/invite/(?P<room_id>[^/]*)"),
    }
    assert set(api.web_resources) == {"/_synapse/client/servership/v1/knock",
                                      "/_synapse/client/servership/v1/knocks",
                                      "/_synapse/client/servership/v1/audit"}
    assert set(api.third_party) == {"on_new_event", "check_event_allowed", "on_create_room"}
    assert set(api.spam) == {"federated_user_may_invite", "check_event_for_spam",
                             "should_drop_federated_event"}
    assert set(api._hs.edu_handlers) == {"m.server.knock", "org.servership.knock.accepted"}


def test_stable_paths_and_disabled_features(store: str) -> None:
    api = FakeModuleApi()
    ServershipModule(parse({"store_path": store,
                            "discovery": {"stable_path": True},
                            "invites": {"stable_v3_path": True}, "knocks": False}), api)
    paths = {p for _, p in _servlet_paths()}
    assert "/_matrix/federation/v1/discover_common_rooms" in paths
    assert "/_matrix/federation/v3/invite/(?P<room_id>[^/]*)" in paths
    assert api._hs.edu_handlers == {}
    _compat.unregister_servlet_group()
    api = FakeModuleApi()
    ServershipModule(parse({"store_path": store,
                            "discovery": False, "invites": False, "audit": False}), api)
    assert _servlet_paths() == set()
    # Only the membership hooks, which every configuration needs.
    assert set(api.spam) == {"check_event_for_spam", "should_drop_federated_event"}


# --- with a fake core ----------------------------------------------------------------------


class FakeCore:
    """Stands in for the native core behind ``_core``'s functions."""

    def __init__(self) -> None:
        self.tags: dict[str, int] = {}
        self.knocks: list[tuple] = []
        self.discovery_error: _core.CoreError | None = None
        self.invite_error: _core.CoreError | None = None
        self.recognised: dict[str, list[str]] = {}
        self.create_problem: str | None = None
        self.verified: list[tuple] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        m = monkeypatch.setattr
        m(_core, "native_available", lambda: True)
        m(_core, "require", lambda: None)
        m(_core, "open_tag_store", lambda path, name: self)
        m(_core, "make_responder", lambda store, *a, **k: self)
        m(_core, "open_knock_store", lambda path, expiry: self)
        m(_core, "open_limited_knock_store", lambda path, expiry, cap, window: self)
        m(_core, "record_join", self.record_join)
        m(_core, "backfill_tags", lambda s, rooms, now: sum(self.record_join(s, r, now)
                                                             for r in rooms))
        m(_core, "respond_discovery", self.respond)
        m(_core, "check_invite", self.check_invite)
        m(_core, "check_spec_invite", self.check_spec_invite)
        m(_core, "parse_knock", self.parse_knock)
        m(_core, "record_knock", lambda s, room, server, now: self.knocks.append((room, server)))
        m(_core, "join_allowed", self.join_allowed)

        async def signature_problem(api: Any, pdu: dict, version: str) -> str | None:
            self.verified.append((pdu, version))
            return self.create_problem

        m(_compat, "event_signature_problem", signature_problem)

    def __len__(self) -> int:
        return len(self.tags)

    def record_join(self, store: Any, room_id: str, now: int, due: int | None = None) -> bool:
        new = room_id not in self.tags
        self.tags.setdefault(room_id, now)
        return new

    def respond(self, responder: Any, body: bytes, origin: str, now: int) -> dict:
        if self.discovery_error:
            raise self.discovery_error
        asked = json.loads(body)["room_participation_tags"]
        return {"recognised_tags": [t for t in asked if t in self.tags]}

    def check_invite(self, path_room_id: str, body: bytes, me: str, origin: str,
                     keys: dict | None = None) -> Any:
        self.invite_keys = keys
        if self.invite_error:
            raise self.invite_error
        parsed = json.loads(body)
        return _core.InviteResult(
            event_id="$computed", room_version="12", room_id=path_room_id,
            creator_servers=[origin],
            invite_room_state=[{"type": "m.room.create", "state_key": "", "sender": "@c:a",
                                "content": {"room_version": "12"}}],
            event=parsed["event"], create_event={"type": "m.room.create", "sender": "@c:a"})

    def check_spec_invite(self, room_id: str, event_id: str, body: bytes, me: str,
                          origin: str) -> Any:
        if self.invite_error:
            raise self.invite_error
        return None

    def parse_knock(self, content: dict) -> str:
        room = content.get("room_id")
        if not isinstance(room, str):
            raise _core.CoreError("M_BAD_JSON", 400, "room_id must be a string")
        return room

    def join_allowed(self, state: list, server: str, gated: bool) -> tuple[bool, str]:
        ok = any(e["type"] == "m.server.is_able_to_subscribe" and e["state_key"] == server
                 for e in state)
        return ok, "able to subscribe" if ok else "not able to subscribe"


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> FakeCore:
    fake = FakeCore()
    fake.install(monkeypatch)
    return fake


def _module(store: str, **extra: Any) -> tuple[ServershipModule, FakeModuleApi]:
    api = FakeModuleApi()
    module = ServershipModule(parse(dict({"store_path": store}, **extra)), api)
    return module, api


def test_startup_backfills_only_rooms_ever_joined(core: FakeCore, store: str) -> None:
    module, api = _module(store)
    me = "@u:b.example"
    api.add_membership("!joined:x", me, "join")
    api.add_membership("!left:x", me, "join")
    api.add_membership("!left:x", me, "leave")
    api.add_membership("!invited:x", me, "invite", sender="@evil:x")
    api.add_membership("!rejected:x", me, "invite", sender="@evil:x")
    api.add_membership("!rejected:x", me, "leave")
    api.add_membership("!knocked:x", me, "knock")
    api.add_membership("!refused:x", me, "join", rejected=True)
    api.add_membership("!pseudo:x", "@:b.example", "join")
    api.add_membership("!remote:x", "@u:b.example.evil", "join")
    api.add_membership("!remote2:x", "@u:evil:b.example", "join")
    assert [d[3] for d in api.delayed] == ["servership_startup"]
    assert asyncio.run(module.startup()) == 3
    assert set(core.tags) == {"!joined:x", "!left:x", "!pseudo:x"}


def test_on_new_event_records_local_joins_only(core: FakeCore, store: str) -> None:
    module, api = _module(store)
    for ev in (
        FakeEvent("m.room.member", "@bob:a.example", "@bob:a.example", "!r:x", {"membership": "join"}),
        FakeEvent("m.room.member", "@me:b.example", "@me:b.example", "!r:x", {"membership": "leave"}),
        FakeEvent("m.room.message", None, "@me:b.example", "!r:x", {"body": "hi"}),
    ):
        asyncio.run(module.on_new_event(ev, {}))
    assert api.background == []
    join = FakeEvent("m.room.member", "@me:b.example", "@me:b.example", "!r:x",
                     {"membership": "join"})
    asyncio.run(module.on_new_event(join, {}))
    assert [(d, a) for d, _, a in api.background] == [("servership_record_join", ("!r:x",))]
    desc, f, args = api.background[0]
    assert asyncio.run(f(*args)) is True
    assert asyncio.run(f(*args)) is False  # second join: not new
    assert "!r:x" in core.tags


def test_only_the_background_process_records_joins(core: FakeCore, store: str) -> None:
    worker = FakeModuleApi(background_tasks=False)
    module = ServershipModule(parse({"store_path": store, "audit": True}), worker)
    join = FakeEvent("m.room.member", "@me:b.example", "@me:b.example", "!r:x",
                     {"membership": "join"})
    asyncio.run(module.on_new_event(join, {}))
    assert worker.background == [] and worker.looping == [] and worker.delayed == []
    assert core.tags == {}
    # Not even registered there: Synapse would load every event's room state for nothing.
    assert set(worker.third_party) == {"check_event_allowed", "on_create_room"}


def test_on_new_event_is_registered_only_where_joins_are_recorded(store: str) -> None:
    for config, background, registered in (
        ({}, True, True),
        ({"audit": True}, True, True),
        ({"discovery": False}, True, False),  # no tags to record, no audits (they need it)
        ({}, False, False),
        ({"discovery": False, "invites": False, "knocks": False}, False, False),
    ):
        _compat.unregister_servlet_group()
        api = FakeModuleApi(background_tasks=background)
        ServershipModule(parse(dict(config, store_path=store)), api)
        assert ("on_new_event" in api.third_party) is registered, (config, background)
        # The membership checks stay whatever else is off.
        assert {"check_event_allowed", "on_create_room"} <= set(api.third_party)
        assert {"check_event_for_spam", "should_drop_federated_event"} <= set(api.spam)
        assert ("federated_user_may_invite" in api.spam) is (config.get("invites") is not False)
    _compat.unregister_servlet_group()


# --- audits, with the real core ------------------------------------------------------------


def _real(store: str, api: FakeModuleApi | None = None, **audit: Any) -> tuple[
        ServershipModule, FakeModuleApi]:
    api = api or FakeModuleApi()
    conf = {"enabled": True, "spread_seconds": 0, **audit}
    return ServershipModule(parse({"store_path": store, "audit": conf}), api), api


def test_first_join_queues_one_audit_in_the_store(store: str) -> None:
    module, api = _real(store)
    # (the knock purge is the members hooks' own looping call)
    assert [d[3] for d in api.looping if d[3] != "servership_purge_knocks"] == [
        "servership_audit_queue"]
    assert asyncio.run(module.record_join("!r:x")) is True
    assert asyncio.run(module.record_join("!r:x")) is False
    queue = _core.open_audit_queue(store)
    assert _core.queue_due(queue, api._hs.now + 1, 10) == ["!r:x"]
    # Another process's module on the same store (a worker, a restart) sees the same queue.
    again, _ = _real(store)
    assert asyncio.run(again.record_join("!r:x")) is False
    assert _core.queue_due(_core.open_audit_queue(store), api._hs.now + 1, 10) == ["!r:x"]


def _audit_world(api: FakeModuleApi) -> None:
    hs = api._hs
    me = "@me:b.example"
    api.db.executemany("INSERT INTO local_current_membership VALUES (?,?,?,?,?)",
                       [("!new:x", me, "$1", "join", 1), ("!old:x", me, "$2", "join", 2)])
    hs.hosts = {"!new:x": {"b.example", "x"},
                "!old:x": {"b.example", "x", "p1", "p2", "p3", "p4"}}
    api.add_membership("!new:x", "@a:x", "join")
    api.add_membership("!new:x", me, "join")
    api.add_membership("!new:x", "@gone:p2", "join")
    api.add_membership("!new:x", "@gone:p2", "leave")
    api.add_membership("!new:x", "@gone:p2", "invite", sender="@a:x")
    api.add_membership("!new:x", "@kicked:p4", "join")
    api.add_membership("!new:x", "@kicked:p4", "leave", sender="@a:x")


def _answers(api: FakeModuleApi, recognising: set[str], failing: set[str]) -> None:
    def answer(peer: str) -> Any:
        if peer in failing:
            return RuntimeError("connection refused")
        tag = servership.participation_tag(peer, "!new:x")
        return {"recognised_tags": [tag] if peer in recognising else []}

    api._hs.post_answers = {p: answer(p) for p in ("p1", "p2", "p3", "p4", "x")}


def test_audit_classifies_history_and_reports(store: str) -> None:
    from servership.synapse import metrics

    module, api = _real(store, notify_admin="@admin:b.example")
    _audit_world(api)
    _answers(api, recognising={"p1", "p2", "p4"}, failing={"p3"})
    before = metrics.AUDIT_UNEXPLAINED._value.get()
    outcome = asyncio.run(module.auditor.run("!new:x"))
    assert outcome is not None
    assert outcome.verdict == "hidden_branch_suspected"
    assert outcome.unexplained == ["p1"]  # recognises, never joined in our view
    assert outcome.explained == ["p2"]  # joined, left, re-invited: explained, no false alarm
    assert outcome.removed == ["p4"]  # kicked by x's user
    report = json.loads(outcome.report_json)
    assert {f["server"] for f in report["failed"]} == {"p3"}
    assert report["removed"][0]["removed_by"] == ["@a:x"]
    assert {p[0] for p in api._hs.posts} == {"p1", "p2", "p3", "p4"}  # x is visible: not asked
    assert all(p[1].endswith("/org.matrix.msc4358/discover_common_rooms") for p in api._hs.posts)
    assert metrics.AUDIT_UNEXPLAINED._value.get() == before + 1
    assert len(api._hs.notices) == 1 and "p1" in api._hs.notices[0][1]["body"]


def test_a_forged_depth_does_not_turn_a_kick_into_an_old_one(store: str) -> None:
    """Blue writes its kick of p4's user with a depth below the user's join: in DAG order the
    kick comes first. Synapse's current state still says "kicked", and that decides."""
    module, api = _real(store)
    _audit_world(api)
    api.db.execute("DELETE FROM room_memberships WHERE user_id = '@kicked:p4'")
    api.add_membership("!new:x", "@kicked:p4", "join", depth=100)
    api.add_membership("!new:x", "@kicked:p4", "leave", sender="@a:x", depth=5)
    _answers(api, recognising={"p4"}, failing=set())
    outcome = asyncio.run(module.auditor.run("!new:x"))
    assert outcome is not None and outcome.removed == ["p4"], outcome
    assert outcome.verdict == "removed_by_other_server"


def test_audit_respects_max_peers_and_never_raises(store: str) -> None:
    module, api = _real(store, max_peers=1)
    _audit_world(api)
    _answers(api, recognising=set(), failing=set())
    asyncio.run(module.auditor.run("!new:x"))
    assert len(api._hs.posts) == 1
    api.db.execute("DROP TABLE room_memberships")  # a broken query must not kill the job
    assert asyncio.run(module.auditor.run("!new:x")) is None


def test_queue_drain_runs_due_audits_once_and_keeps_the_report(store: str) -> None:
    module, api = _real(store)
    _audit_world(api)
    _answers(api, recognising={"p1"}, failing=set())
    asyncio.run(module.record_join("!new:x"))
    assert asyncio.run(module.auditor.drain()) == 1
    assert asyncio.run(module.auditor.drain()) == 0  # done: never again
    status = asyncio.run(module.handle_admin_audit_status("@admin:b.example",
                                                          {"room_id": "!new:x"}))
    assert status["state"] == "done" and status["verdict"] == "hidden_branch_suspected"
    assert status["report"]["unexplained"] == ["p1"]


def test_queue_drain_stops_at_the_hourly_bound(store: str) -> None:
    module, api = _real(store, max_audits_per_hour=1)
    _audit_world(api)
    _answers(api, recognising=set(), failing=set())
    api.add_membership("!other:x", "@me:b.example", "join")
    asyncio.run(module.record_join("!new:x"))
    asyncio.run(module.record_join("!other:x"))
    assert asyncio.run(module.auditor.drain()) == 1
    assert asyncio.run(module.auditor.drain()) == 0
    queue = _core.open_audit_queue(store)
    assert len(_core.queue_due(queue, api._hs.now + 1, 10)) == 1


def test_discovery_handler_answers_and_maps_errors(core: FakeCore, store: str) -> None:
    from synapse.api.errors import SynapseError

    module, api = _module(store)
    core.tags["t1"] = 1
    body = json.dumps({"room_participation_tags": ["t0", "t1"]}).encode()
    # a.example shares no room with us yet: refused, whatever it asks (require_shared_room).
    with pytest.raises(SynapseError) as err:
        asyncio.run(module.handle_discovery("a.example", body))
    assert (err.value.code, err.value.errcode) == (403, "M_FORBIDDEN")
    api.db.execute("INSERT INTO local_current_membership VALUES "
                   "('!s:x', '@me:b.example', '$1', 'join', 1)")
    api._hs.hosts = {"!s:x": {"b.example", "A.example"}}
    module._sharing = None
    # Any spelling of the same origin shares that room (and is charged as one origin).
    for spelling in ("a.example", "A.EXAMPLE.", "a.example:8448"):
        assert asyncio.run(module.handle_discovery(spelling, body)) == (
            200, {"recognised_tags": ["t1"]})
    core.discovery_error = _core.CoreError("M_LIMIT_EXCEEDED", 429, "budget spent", 1234)
    with pytest.raises(SynapseError) as err:
        asyncio.run(module.handle_discovery("a.example", body))
    assert err.value.code == 429 and err.value.errcode == "M_LIMIT_EXCEEDED"
    assert err.value.error_dict(None)["retry_after_ms"] == 1234


def test_v3_invite_goes_to_synapse_with_rewritten_state(core: FakeCore, store: str) -> None:
    from synapse.api.errors import SynapseError

    module, api = _module(store)
    event = {"type": "m.room.member", "state_key": "@me:b.example", "sender": "@x:a.example",
             "content": {"membership": "invite"}, "unsigned": {"invite_room_state": ["junk"]}}
    status, answer = asyncio.run(module.handle_invite_v3(
        "a.example", "!r:a", json.dumps({"event": event, "state": []}).encode()))
    assert status == 200 and answer["event"]["signatures"] == {"b": {}}
    assert "invite_room_state" not in answer["event"].get("unsigned", {})
    (call,) = api._hs.invites
    assert call["event_id"] == "$computed" and call["room_version"] == "12"
    assert call["event"]["unsigned"]["invite_room_state"][0]["type"] == "m.room.create"
    assert core.verified == [({"type": "m.room.create", "sender": "@c:a"}, "12")]
    core.create_problem = "Signature on create not valid"
    with pytest.raises(SynapseError) as err:
        asyncio.run(module.handle_invite_v3(
            "a.example", "!r:a", json.dumps({"event": event, "state": []}).encode()))
    assert (err.value.code, err.value.errcode) == (400, "M_INVALID_PARAM")
    assert "does not verify: Signature on create" in err.value.msg
    assert len(api._hs.invites) == 1  # never handed to Synapse
    core.invite_error = _core.CoreError("M_INVALID_PARAM", 400, "state[0].state_key must be \"\"")
    with pytest.raises(SynapseError) as err:
        asyncio.run(module.handle_invite_v3("a.example", "!r:a", b"{}"))
    assert (err.value.code, err.value.errcode) == (400, "M_INVALID_PARAM")
    assert "state[0].state_key" in err.value.msg


def test_spec_invite_warn_and_reject_modes(core: FakeCore, store: str) -> None:
    from synapse.api.errors import SynapseError
    from synapse.module_api import NOT_SPAM

    def rejected(module: ServershipModule, event: FakeEvent) -> SynapseError:
        with pytest.raises(SynapseError) as err:
            asyncio.run(module.federated_user_may_invite(event))
        return err.value

    invite = FakeEvent("m.room.member", "@me:b.example", "@x:a.example", "!r:a",
                       {"membership": "invite"}, unsigned={"invite_room_state": []},
                       room_version="11")
    core.invite_error = _core.CoreError("M_INVALID_PARAM", 400, "no m.room.create")
    warn, _ = _module(store)
    assert asyncio.run(warn.federated_user_may_invite(invite)) is NOT_SPAM
    _compat.unregister_servlet_group()
    reject, _ = _module(store, invites={"mode": "reject"})
    err = rejected(reject, invite)  # 400 with the spec's errcode, not a spam-checker 403
    assert (err.code, err.errcode, err.msg) == (400, "M_INVALID_PARAM", "no m.room.create")
    core.invite_error = None
    assert asyncio.run(reject.federated_user_may_invite(invite)) is NOT_SPAM

    # A create PDU whose signature fails Synapse's keyring is refused (reject) or logged (warn).
    create = {"type": "m.room.create", "state_key": "", "sender": "@c:a.example"}
    signed_create = FakeEvent("m.room.member", "@me:b.example", "@x:a.example", "!r:a",
                              {"membership": "invite"},
                              unsigned={"invite_room_state": [create]}, room_version="11")
    core.verified.clear()
    core.create_problem = "Signature on create not valid"
    err = rejected(reject, signed_create)
    assert err.errcode == "M_INVALID_PARAM" and "does not verify: Signature on create" in err.msg
    assert core.verified == [(create, "11")]
    assert asyncio.run(warn.federated_user_may_invite(signed_create)) is NOT_SPAM
    core.create_problem = None
    assert asyncio.run(reject.federated_user_may_invite(signed_create)) is NOT_SPAM


def test_warn_mode_leaves_v12_invites_to_synapses_own_check(
        core: FakeCore, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Synapse 1.162+ validates v12 invite_room_state itself and warns: in warn mode the module
    does not check it a second time (reject mode still does: Synapse only warns). Older
    releases do not (detected: no ``_parse_stripped_room_state``), and the module checks."""
    from synapse.api.errors import SynapseError
    from synapse.handlers.federation import FederationHandler
    from synapse.module_api import NOT_SPAM

    synapse_checks = hasattr(FederationHandler, "_parse_stripped_room_state")
    assert _compat.synapse_checks_invite_state(None, "12") is synapse_checks
    assert not _compat.synapse_checks_invite_state(None, "11")
    invite = FakeEvent("m.room.member", "@me:b.example", "@x:a.example", "!r:a",
                       {"membership": "invite"}, unsigned={"invite_room_state": []})
    checked: list[str] = []
    core_check = core.check_spec_invite

    def counting_check(room_id: str, *args: Any) -> Any:
        checked.append(room_id)
        return core_check(room_id, *args)

    monkeypatch.setattr(_core, "check_spec_invite", counting_check)
    core.invite_error = _core.CoreError("M_INVALID_PARAM", 400, "no m.room.create")
    warn, _ = _module(store)
    core.verified.clear()
    assert asyncio.run(warn.federated_user_may_invite(invite)) is NOT_SPAM
    # Checked once: by Synapse where it can, by the module where it cannot.
    assert checked == ([] if synapse_checks else ["!r:a"])
    _compat.unregister_servlet_group()
    reject, _ = _module(store, invites={"mode": "reject"})
    with pytest.raises(SynapseError):
        asyncio.run(reject.federated_user_may_invite(invite))


def test_a_v2_invite_racing_our_own_v3_handling_is_still_checked(core: FakeCore,
                                                                  store: str) -> None:
    """Our MSC4329 handler hands its checked invite to Synapse, whose spam checkers call the
    MSC4311 hook again: that call is skipped. A v2 invite for the same event ID, arriving while
    the first is in flight, is a different request: it is checked (and here refused)."""
    from synapse.api.errors import SynapseError
    from synapse.module_api import NOT_SPAM

    module, api = _module(store, invites={"mode": "reject"})
    v2 = FakeEvent("m.room.member", "@me:b.example", "@x:a.example", "!r:a",
                   {"membership": "invite"}, event_id="$computed",
                   unsigned={"invite_room_state": []}, room_version="11")
    outcomes: dict[str, Any] = {}

    async def scenario() -> None:
        inside = asyncio.Event()
        release = asyncio.Event()

        async def during_invite(event_id: str) -> None:
            core.invite_error = _core.CoreError("M_INVALID_PARAM", 400, "no m.room.create")
            outcomes["inner"] = await module.federated_user_may_invite(v2)
            inside.set()
            await release.wait()

        api._hs.during_invite = during_invite
        event = {"type": "m.room.member", "state_key": "@me:b.example", "sender": "@x:a.example",
                 "content": {"membership": "invite"}}
        v3 = asyncio.create_task(module.handle_invite_v3(
            "a.example", "!r:a", json.dumps({"event": event, "state": []}).encode()))
        await inside.wait()
        try:
            outcomes["racing"] = await asyncio.create_task(module.federated_user_may_invite(v2))
        except SynapseError as exc:
            outcomes["racing"] = exc
        release.set()
        await v3

    core.invite_error = None
    asyncio.run(scenario())
    assert outcomes["inner"] is NOT_SPAM
    assert isinstance(outcomes["racing"], SynapseError), outcomes
    assert outcomes["racing"].errcode == "M_INVALID_PARAM"


CREATE = FakeEvent("m.room.create", "", "@c:b.example", "!g:b.example", {"room_version": "11"})


def test_gated_room_join_needs_subscription(core: FakeCore, store: str) -> None:
    module, _ = _module(store, gated_rooms=["!g:b.example"])
    join = FakeEvent("m.room.member", "@x:a.example", "@x:a.example", "!g:b.example",
                     {"membership": "join"})
    base = {("m.room.create", ""): CREATE}
    # Refused exactly as an unknown room is (404), so the room does not reveal itself.
    with pytest.raises(_compat.SynapseError) as refused:
        asyncio.run(module.check_event_allowed(join, base))
    assert refused.value.code == 404
    able = FakeEvent("m.server.is_able_to_subscribe", "a.example", "@mod:b.example",
                     "!g:b.example", {"is_able_to_subscribe": True})
    state = {**base, ("m.server.is_able_to_subscribe", "a.example"): able}
    assert asyncio.run(module.check_event_allowed(join, state)) == (True, None)
    other = FakeEvent("m.room.member", "@x:a.example", "@x:a.example", "!open:b.example",
                      {"membership": "join"})
    assert asyncio.run(module.check_event_allowed(other, base)) == (True, None)


def test_gated_room_fails_closed_when_the_check_fails(core: FakeCore, store: str) -> None:
    def broken(state: list, server: str, gated: bool) -> tuple[bool, str]:
        raise _core.CoreError("M_BAD_JSON", 400, "state[0] is not an event")

    core.join_allowed = broken  # type: ignore[method-assign]
    _core.join_allowed = broken  # the fixture's monkeypatch restores it
    module, _ = _module(store, gated_rooms=["!g:b.example"])
    join = FakeEvent("m.room.member", "@x:a.example", "@x:a.example", "!g:b.example",
                     {"membership": "join"})
    with pytest.raises(_compat.SynapseError):
        asyncio.run(module.check_event_allowed(join, {("m.room.create", ""): CREATE}))


def test_remote_pseudouser_join_needs_setting(core: FakeCore, store: str) -> None:
    join = FakeEvent("m.room.member", "@:a.example", "@:a.example", "!r:b.example",
                     {"membership": "join"})
    state = {("m.room.create", ""): CREATE}
    off, _ = _module(store)
    with pytest.raises(_compat.SynapseError):
        asyncio.run(off.check_event_allowed(join, state))
    _compat.unregister_servlet_group()
    # On: the MSC1777 rule decides (here no user of a.example is in the room).
    on, _ = _module(store, pseudousers=True)
    with pytest.raises(_compat.SynapseError):
        asyncio.run(on.check_event_allowed(join, state))
    bob = FakeEvent("m.room.member", "@bob:a.example", "@bob:a.example", "!r:b.example",
                    {"membership": "join"})
    rules = FakeEvent("m.room.join_rules", "", "@c:b.example", "!r:b.example",
                      {"join_rule": "public"})
    state.update({("m.room.member", "@bob:a.example"): bob, ("m.room.join_rules", ""): rules})
    assert asyncio.run(on.check_event_allowed(join, state)) == (True, None)


def test_knock_edu_recorded_and_sent(core: FakeCore, store: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async def current_state(api: Any, room_id: str, types: Any = None) -> list[dict]:
        return [e.get_dict() for e in (await api.get_room_state(room_id, types)).values()]

    monkeypatch.setattr(_compat, "current_state", current_state)
    module, api = _module(store, gated_rooms=["!r:b.example"])
    api.set_room_state("!r:b.example", [CREATE])
    handler = api._hs.edu_handlers["m.server.knock"]
    asyncio.run(handler("a.example", {"room_id": "!r:b.example"}))
    asyncio.run(handler("a.example", {"room_id": 5}))
    asyncio.run(handler("a.example", ["not", "a", "dict"]))
    # Not gated here, or unknown: dropped, nothing written.
    asyncio.run(handler("a.example", {"room_id": "!open:b.example"}))
    assert core.knocks == [("!r:b.example", "a.example")]
    module.send_knock("a.example", "!r:a.example")
    assert api._hs.sent_edus == [("a.example", "m.server.knock", {"room_id": "!r:a.example"})]
    with pytest.raises(ValueError):
        module.send_knock("a.example", "not-a-room")


# --- admin endpoints and the MSC4329 sender ------------------------------------------------


def test_admin_endpoints_are_for_server_admins_only(core: FakeCore, store: str) -> None:
    from types import SimpleNamespace

    from synapse.api.errors import SynapseError

    module, api = _module(store)
    resource = api.web_resources["/_synapse/client/servership/v1/knock"]
    with pytest.raises(SynapseError) as err:
        asyncio.run(resource._async_render_POST(SimpleNamespace(user_id="@u:b.example")))
    assert (err.value.code, err.value.errcode) == (403, "M_FORBIDDEN")
    assert api._hs.sent_edus == []


def test_admin_knock_validates_and_sends(core: FakeCore, store: str) -> None:
    from synapse.api.errors import SynapseError

    module, api = _module(store)
    for bad in ({"room_id": "x", "destination": "a.example"},
                {"room_id": "!r:a.example", "destination": "bad name!"},
                {"room_id": "!r:a.example", "destination": "b.example"}):
        with pytest.raises(SynapseError) as err:
            asyncio.run(module.handle_admin_knock("@admin:b.example", bad))
        assert err.value.errcode == "M_INVALID_PARAM"
    assert asyncio.run(module.handle_admin_knock(
        "@admin:b.example", {"room_id": "!r:a.example", "destination": "a.example"})) == {
        "sent": True}
    assert api._hs.sent_edus == [("a.example", "m.server.knock", {"room_id": "!r:a.example"})]


def test_admin_knock_on_a_worker_is_a_clean_error(core: FakeCore, store: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A generic worker cannot send federation traffic (Synapse raises a bare Exception): the
    admin API says so and where to go, instead of a 500."""
    from synapse.api.errors import SynapseError

    module, api = _module(store)

    def no_sender() -> Any:
        raise Exception("Workers cannot send federation traffic")

    monkeypatch.setattr(api._hs, "get_federation_sender", no_sender)
    with pytest.raises(SynapseError) as err:
        asyncio.run(module.handle_admin_knock(
            "@admin:b.example", {"room_id": "!r:a.example", "destination": "a.example"}))
    assert (err.value.code, err.value.errcode) == (503, "M_UNKNOWN")
    assert "Workers cannot send federation traffic" in err.value.msg
    assert "main process" in err.value.msg
    assert api._hs.sent_edus == []


def test_admin_audit_answers_with_the_report(store: str) -> None:
    from synapse.api.errors import SynapseError

    module, api = _real(store)
    _audit_world(api)
    _answers(api, recognising={"p1"}, failing=set())
    report = asyncio.run(module.handle_admin_audit("@admin:b.example", {"room_id": "!new:x"}))
    assert report["room_id"] == "!new:x" and report["unexplained"] == ["p1"]
    with pytest.raises(SynapseError) as err:
        asyncio.run(module.handle_admin_audit("@admin:b.example", {"room_id": 3}))
    assert err.value.errcode == "M_INVALID_PARAM"
    with pytest.raises(SynapseError) as err:
        asyncio.run(module.handle_admin_audit("@admin:b.example", {"room_id": "!nowhere:x"}))
    assert (err.value.code, err.value.errcode) == (404, "M_NOT_FOUND")


def _parse_sending(store: str) -> Any:
    """A config with ``invites.send_msc4329`` for the fake homeserver, whatever the installed
    Synapse's classes offer (``parse`` checks those; the tests below check the fake's)."""
    real = _compat.invite_sending_problem
    _compat.invite_sending_problem = lambda api=None: None if api is None else real(api)
    try:
        return parse({"store_path": store, "invites": {"send_msc4329": True}})
    finally:
        _compat.invite_sending_problem = real


def test_parse_refuses_send_msc4329_where_synapse_lacks_the_internals(
        store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from synapse.federation.federation_client import FederationClient
    from synapse.storage.databases.main import DataStore

    async def three_args(self: Any, destination: str, pdu: Any, room_version: Any) -> Any:
        return None

    monkeypatch.setattr(FederationClient, "_do_send_invite", three_args)
    with pytest.raises(ConfigError, match=r"servership\.invites\.send_msc4329 needs .*"
                       r"takes \(destination, pdu, room_version\)"):
        parse({"store_path": store, "invites": {"send_msc4329": True}})
    async def four_args(self: Any, destination: str, pdu: Any, context: Any,
                        room_version: Any) -> Any:
        return None

    monkeypatch.setattr(FederationClient, "_do_send_invite", four_args)
    monkeypatch.setattr(DataStore, "get_stripped_room_state_ids_from_event_context", None,
                        raising=False)
    with pytest.raises(ConfigError, match="get_stripped_room_state_ids_from_event_context"):
        parse({"store_path": store, "invites": {"send_msc4329": True}})
    parse({"store_path": store, "invites": {"send_msc4329": False}})  # off: no check


def test_parse_refuses_a_synapse_outside_the_tested_range(
        store: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import synapse

    for version in ("1.139.9", "1.164.0", "2.0.0", "garbage", "", "1.139.9 (b=main,1640000)"):
        monkeypatch.setattr(synapse, "__version__", version)
        with pytest.raises(ConfigError, match=r"^servership\.allow_untested_synapse is false "
                           r"and this is Synapse .* outside the tested range "
                           r"matrix-synapse>=1\.140\.0,<1\.164"):
            parse({"store_path": store})
        with caplog.at_level("WARNING", logger="servership.synapse"):
            assert parse({"store_path": store, "allow_untested_synapse": True})
        assert "continuing because allow_untested_synapse is set" in caplog.text
    for version in ("1.140.0", "1.150.0", "1.163.2", "1.163.99rc1",
                    "1.140.0 (b=synapse-range,b35a516)"):
        monkeypatch.setattr(synapse, "__version__", version)
        assert parse({"store_path": store}).allow_untested_synapse is False


def test_send_msc4329_wraps_synapse_invite_sender(core: FakeCore, store: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeModuleApi()
    original = api._hs.get_federation_client()._do_send_invite
    ServershipModule(parse({"store_path": store}), api)
    assert api._hs.get_federation_client()._do_send_invite is original  # off by default
    _compat.unregister_servlet_group()
    module = ServershipModule(_parse_sending(store),
                              api)
    assert api._hs.get_federation_client()._do_send_invite is not original
    built: list = []
    monkeypatch.setattr(_core, "build_invite_request",
                        lambda invite, create, state: built.append((invite, create, state))
                        or ("/p", {"event": invite}))
    path, body = asyncio.run(module.build_invite_request(
        {"type": "m.room.member", "content": {"membership": "invite"}},
        {"type": "m.room.create"}, [{"type": "m.room.name"}]))
    assert path == "/p" and body["event"]["type"] == "m.room.member"
    assert built[0][1] == {"type": "m.room.create"}


def test_send_msc4329_refused_at_start_on_old_invite_internals(store: str) -> None:
    api = FakeModuleApi()
    api._hs.new_invite_internals = False
    with pytest.raises(_compat.ConfigError, match="servership.invites.send_msc4329"):
        ServershipModule(_parse_sending(store), api)


def test_send_msc4329_falls_back_to_v2_on_any_failure(core: FakeCore, store: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    api = FakeModuleApi()
    ServershipModule(_parse_sending(store), api)
    hs = api._hs
    send = hs.get_federation_client()._do_send_invite

    class Ev(SimpleNamespace):
        def get_pdu_json(self, now: int) -> dict:
            return {"type": self.type, "event_id": self.event_id}

    create = Ev(type="m.room.create", event_id="$c", room_id="!r:b")
    hs.invite_state, hs.invite_state_events = ["$c"], [create]
    invite = Ev(type="m.room.member", event_id="$i", room_id="!r:b")
    v11 = SimpleNamespace(identifier="11")
    monkeypatch.setattr(_core, "build_invite_request", lambda i, c, s: ("/msc4329", {"x": 1}))

    assert asyncio.run(send("a.example", invite, None, v11)) == {"event": {"sent_by": "msc4329"}}
    assert hs.v2_invites == []
    for failure in (RuntimeError("500 from the peer"), {"no": "event"}, TimeoutError()):
        hs.msc4329_answer = failure
        assert asyncio.run(send("a.example", invite, None, v11)) == {
            "event": {"sent_by": "synapse v2"}}
    assert hs.v2_invites == ["a.example"] * 3

    def refuse(*a: Any) -> Any:
        raise _core.CoreError("M_BAD_JSON", 400, "a float in a v4 room")

    monkeypatch.setattr(_core, "build_invite_request", refuse)  # the core refuses to build it
    puts = len(hs.msc4329_puts)
    assert asyncio.run(send("a.example", invite, None, v11))["event"]["sent_by"] == "synapse v2"
    assert len(hs.msc4329_puts) == puts  # nothing half-sent


def test_frozen_v12_events_keep_their_auth_events() -> None:
    """Synapse freezes the events it hands ``check_event_allowed``; on releases whose v12 event
    class then fails (1.140: tuple + list), the module's fix makes it answer as unfrozen."""
    import synapse.server  # noqa: F401  (import order, as Synapse loads it)
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.events import make_event_from_dict

    _compat.fix_frozen_event_auth_ids()
    assert _compat._frozen_event_class_problem() is None
    assert _compat.fix_frozen_event_auth_ids() is False  # nothing left to fix: idempotent
    room = "!" + "B" * 43
    event = make_event_from_dict(
        {"type": "m.room.member", "state_key": "@u:x", "sender": "@u:x", "room_id": room,
         "content": {"membership": "leave"}, "auth_events": ["$p", "$q"], "prev_events": [],
         "depth": 3, "origin_server_ts": 0, "hashes": {"sha256": "x"}, "signatures": {}},
        KNOWN_ROOM_VERSIONS["12"])
    unfrozen = list(event.auth_event_ids())
    assert unfrozen == ["$p", "$q", "$" + "B" * 43]
    if hasattr(event, "freeze"):
        event.freeze()
        assert list(event.auth_event_ids()) == unfrozen
