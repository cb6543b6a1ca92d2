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
                                      "/_synapse/client/servership/v1/audit"}
    assert set(api.third_party) == {"on_new_event", "check_event_allowed", "on_create_room"}
    assert set(api.spam) == {"federated_user_may_invite", "check_event_for_spam",
                             "should_drop_federated_event"}
    assert set(api._hs.edu_handlers) == {"m.server.knock"}


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
        m(_core, "make_responder", lambda store, *a: self)
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
        m(_core, "audit_plan", lambda room, servers, known, n: [p for p in known
                                                                 if p not in servers][:n])
        m(_core, "audit_requests", lambda me, peer, rooms, n: [{"rooms": rooms}])
        m(_core, "audit_read", lambda peer, rooms, req, resp: resp.get("recognised", []))
        m(_core, "audit_report", self.report)

    def record_join(self, store: Any, room_id: str, now: int) -> bool:
        new = room_id not in self.tags
        self.tags.setdefault(room_id, now)
        return new

    def respond(self, responder: Any, body: bytes, origin: str, now: int) -> dict:
        if self.discovery_error:
            raise self.discovery_error
        asked = json.loads(body)["room_participation_tags"]
        return {"recognised_tags": [t for t in asked if t in self.tags]}

    def check_invite(self, path_room_id: str, body: bytes, me: str, origin: str) -> Any:
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

    def report(self, room: str, me: str, membership: list, servers: list,
               answers: list) -> Any:
        self.answers = dict(answers)
        recognised_by = [p for p, kind in answers if kind == _core.RECOGNISED]
        members = {u.split(":", 1)[1] for u, _ in membership}
        unexplained = [p for p in recognised_by if p not in members]
        explained = [p for p in recognised_by if p in members]
        return _core.AuditOutcome(room, unexplained, explained,
                                  json.dumps({"room_id": room, "unexplained": unexplained}),
                                  f"{room}: unexplained {unexplained}")


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> FakeCore:
    fake = FakeCore()
    fake.install(monkeypatch)
    return fake


def _module(store: str, **extra: Any) -> tuple[ServershipModule, FakeModuleApi]:
    api = FakeModuleApi()
    module = ServershipModule(parse(dict({"store_path": store}, **extra)), api)
    return module, api


def test_startup_backfills_every_room_ever_joined(core: FakeCore, store: str) -> None:
    module, api = _module(store)
    api.db.executemany("INSERT INTO local_current_membership VALUES (?,?,?,?)",
                       [("!r1:x", "@u:b.example", "$1", "join"),
                        ("!r2:x", "@u:b.example", "$2", "leave")])
    assert [d[3] for d in api.delayed] == ["servership_startup"]
    assert asyncio.run(module.startup()) == 2
    assert set(core.tags) == {"!r1:x", "!r2:x"}


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


def test_first_join_schedules_one_audit(core: FakeCore, store: str) -> None:
    module, api = _module(store, audit={"enabled": True, "spread_seconds": 10})
    asyncio.run(module.record_join("!r:x"))
    asyncio.run(module.record_join("!r:x"))
    audits = [d for d in api.delayed if d[3] == "servership_audit"]
    assert len(audits) == 1 and 0 <= audits[0][0] <= 10_000
    assert module.auditor.pending == {"!r:x"}


def test_discovery_handler_answers_and_maps_errors(core: FakeCore, store: str) -> None:
    from synapse.api.errors import SynapseError

    module, _ = _module(store)
    core.tags["t1"] = 1
    body = json.dumps({"room_participation_tags": ["t0", "t1"]}).encode()
    assert asyncio.run(module.handle_discovery("a.example", body)) == (
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
    from synapse.module_api import NOT_SPAM

    invite = FakeEvent("m.room.member", "@me:b.example", "@x:a.example", "!r:a",
                       {"membership": "invite"}, unsigned={"invite_room_state": []})
    core.invite_error = _core.CoreError("M_INVALID_PARAM", 400, "no m.room.create")
    warn, _ = _module(store)
    assert asyncio.run(warn.federated_user_may_invite(invite)) is NOT_SPAM
    _compat.unregister_servlet_group()
    reject, _ = _module(store, invites={"mode": "reject"})
    code, extra = asyncio.run(reject.federated_user_may_invite(invite))
    assert code == "M_INVALID_PARAM" and extra == {"error": "no m.room.create"}
    core.invite_error = None
    assert asyncio.run(reject.federated_user_may_invite(invite)) is NOT_SPAM

    # A create PDU whose signature fails Synapse's keyring is refused (reject) or logged (warn).
    create = {"type": "m.room.create", "state_key": "", "sender": "@c:a.example"}
    signed_create = FakeEvent("m.room.member", "@me:b.example", "@x:a.example", "!r:a",
                              {"membership": "invite"},
                              unsigned={"invite_room_state": [create]})
    core.verified.clear()
    core.create_problem = "Signature on create not valid"
    code, extra = asyncio.run(reject.federated_user_may_invite(signed_create))
    assert code == "M_INVALID_PARAM" and "does not verify: Signature on create" in extra["error"]
    assert core.verified == [(create, "12")]
    assert asyncio.run(warn.federated_user_may_invite(signed_create)) is NOT_SPAM
    core.create_problem = None
    assert asyncio.run(reject.federated_user_may_invite(signed_create)) is NOT_SPAM


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


def test_audit_reports_unexplained_peers(core: FakeCore, store: str) -> None:
    from servership.synapse import metrics

    module, api = _module(store, audit={"enabled": True, "notify_admin": "@admin:b.example"})
    hs = api._hs
    api.db.executemany("INSERT INTO local_current_membership VALUES (?,?,?,?)",
                       [("!new:x", "@me:b.example", "$1", "join"),
                        ("!old:x", "@me:b.example", "$2", "join")])
    hs.hosts = {"!new:x": {"b.example", "x"},
                "!old:x": {"b.example", "x", "p1", "p2", "p3"}}
    api.db.executemany("INSERT INTO current_state_events VALUES (?,?,?,?,?)",
                       [("$3", "!new:x", "m.room.member", "@gone:p2", "leave")])
    hs.post_answers = {"p1": {"recognised": ["!new:x"]}, "p2": {"recognised": ["!new:x"]},
                       "p3": RuntimeError("connection refused")}
    before = metrics.AUDIT_UNEXPLAINED._value.get()
    outcome = asyncio.run(module.auditor.run("!new:x"))
    assert outcome is not None
    assert outcome.unexplained == ["p1"] and outcome.explained == ["p2"]
    assert {p[0] for p in hs.posts} == {"p1", "p2", "p3"}
    assert core.answers["p1"] == core.answers["p2"] == _core.RECOGNISED
    assert core.answers["p3"].startswith(_core.FAILED_PREFIX)
    assert "connection refused" in core.answers["p3"]
    assert all(p[1].endswith("/org.matrix.msc4358/discover_common_rooms") for p in hs.posts)
    assert metrics.AUDIT_UNEXPLAINED._value.get() == before + 1
    assert hs.notices == [("@admin:b.example",
                           {"msgtype": "m.notice", "body": "!new:x: unexplained ['p1']"})]


def test_audit_respects_max_peers_and_never_raises(core: FakeCore, store: str) -> None:
    module, api = _module(store, audit={"enabled": True, "max_peers": 1})
    api.db.execute("INSERT INTO local_current_membership VALUES ('!o:x','@me:b.example','$','join')")
    api._hs.hosts = {"!o:x": {"p1", "p2", "p3"}}
    api._hs.post_answers = {}
    asyncio.run(module.auditor.run("!n:x"))
    assert len(api._hs.posts) == 1
    api.db.execute("DROP TABLE current_state_events")  # a broken query must not kill the job
    assert asyncio.run(module.auditor.run("!n:x")) is None


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


def test_admin_audit_answers_with_the_report(core: FakeCore, store: str) -> None:
    from synapse.api.errors import SynapseError

    module, api = _module(store)
    api.db.execute("INSERT INTO local_current_membership VALUES ('!o:x','@me:b.example','$','join')")
    api._hs.hosts = {"!o:x": {"b.example", "p1"}, "!n:x": {"b.example"}}
    api._hs.post_answers = {"p1": {"recognised": ["!n:x"]}}
    report = asyncio.run(module.handle_admin_audit("@admin:b.example", {"room_id": "!n:x"}))
    assert report == {"room_id": "!n:x", "unexplained": ["p1"]}
    with pytest.raises(SynapseError):
        asyncio.run(module.handle_admin_audit("@admin:b.example", {"room_id": 3}))


def test_send_msc4329_wraps_synapse_invite_sender(core: FakeCore, store: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeModuleApi()
    original = api._hs.get_federation_client()._do_send_invite
    ServershipModule(parse({"store_path": store}), api)
    assert api._hs.get_federation_client()._do_send_invite is original  # off by default
    _compat.unregister_servlet_group()
    module = ServershipModule(parse({"store_path": store, "invites": {"send_msc4329": True}}),
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
