"""A fake ``ModuleApi`` (and the bits of ``HomeServer`` that ``_compat`` reaches) for unit tests.

Async methods are plain coroutines, so tests drive them with ``asyncio.run``; "threads" run the
function inline (the point of the fake is to observe what is called, not to schedule).
"""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace
from typing import Any


class FakeEvent:
    """The attributes of Synapse's Rust ``Event`` that the module reads."""

    def __init__(self, type: str, state_key: str | None, sender: str, room_id: str,
                 content: dict, event_id: str = "$e", room_version: str = "12",
                 unsigned: dict | None = None) -> None:
        self.type = type
        self.state_key = state_key
        self.sender = sender
        self.room_id = room_id
        self.content = content
        self.event_id = event_id
        self.membership = content.get("membership")
        self.room_version = SimpleNamespace(identifier=room_version)
        self._unsigned = unsigned or {}

    def get_dict(self) -> dict:
        return {"type": self.type, "state_key": self.state_key, "sender": self.sender,
                "room_id": self.room_id, "content": self.content}

    def get_pdu_json(self) -> dict:
        return dict(self.get_dict(), unsigned=self._unsigned)


class FakeHomeServer:
    def __init__(self, api: "FakeModuleApi", db_file: str | None) -> None:
        dbs = []
        if db_file:
            dbs.append(SimpleNamespace(config={"name": "sqlite3", "args": {"database": db_file}}))
        self.config = SimpleNamespace(database=SimpleNamespace(databases=dbs))
        self.edu_handlers: dict[str, Any] = {}
        self.sent_edus: list[tuple] = []
        self.posts: list[tuple] = []
        self.post_answers: dict[str, Any] = {}
        self.notices: list[tuple] = []
        self.notices_enabled = True
        self.hosts: dict[str, set[str]] = {}
        self.invites: list[dict] = []
        self.during_invite: Any = None
        # Invite sending (invites.send_msc4329): Synapse's internals as of 1.158, or older.
        self.new_invite_internals = True
        self.invite_state: list[str] = []
        self.invite_state_events: list[Any] = []
        self.v2_invites: list[str] = []
        self.msc4329_puts: list[tuple] = []
        self.msc4329_answer: Any = {"event": {"sent_by": "msc4329"}}
        self.now = 1_700_000_000_000

    def get_federation_registry(self) -> Any:
        return SimpleNamespace(register_edu_handler=self.edu_handlers.__setitem__)

    def get_federation_sender(self) -> Any:
        return SimpleNamespace(build_and_send_edu=lambda *a: self.sent_edus.append(a))

    def get_federation_http_client(self) -> Any:
        async def post_json(destination: str, path: str, data: Any = None, **kw: Any) -> Any:
            self.posts.append((destination, path, data))
            answer = self.post_answers.get(destination)
            if isinstance(answer, Exception):
                raise answer
            return answer

        return SimpleNamespace(post_json=post_json)

    def get_server_notices_manager(self) -> Any:
        async def send_notice(user_id: str, content: dict) -> None:
            self.notices.append((user_id, content))

        return SimpleNamespace(is_enabled=lambda: self.notices_enabled, send_notice=send_notice)

    def get_datastores(self) -> Any:
        async def get_current_hosts_in_room(room_id: str) -> set[str]:
            return set(self.hosts.get(room_id, set()))

        async def get_stripped_room_state_ids_from_event_context(pdu: Any, ctx: Any) -> list:
            return list(self.invite_state)

        async def get_events(ids: list) -> dict:
            return {e.event_id: e for e in self.invite_state_events if e.event_id in ids}

        main = SimpleNamespace(get_current_hosts_in_room=get_current_hosts_in_room,
                               get_events=get_events)
        if self.new_invite_internals:
            main.get_stripped_room_state_ids_from_event_context = (
                get_stripped_room_state_ids_from_event_context)
        return SimpleNamespace(main=main)

    def get_federation_server(self) -> Any:
        async def on_invite_request(*, origin: str, expected_room_id: str,
                                    expected_event_id: str, event_json: dict,
                                    room_version_id: str) -> dict:
            self.invites.append(dict(origin=origin, room_id=expected_room_id,
                                     event_id=expected_event_id, event=event_json,
                                     room_version=room_version_id))
            if self.during_invite is not None:  # what Synapse runs inside (the spam checkers)
                await self.during_invite(expected_event_id)
            signed = dict(event_json, signatures={"b": {}})
            return {"event": signed}

        return SimpleNamespace(on_invite_request=on_invite_request)

    def get_federation_client(self) -> Any:
        if not hasattr(self, "_federation_client"):
            if self.new_invite_internals:
                async def _do_send_invite(destination: str, pdu: Any, context: Any,
                                          room_version: Any) -> dict:
                    self.v2_invites.append(destination)
                    return {"event": {"sent_by": "synapse v2"}}
            else:  # 1.140/1.150: no context argument
                async def _do_send_invite(destination: str, pdu: Any,  # type: ignore[misc]
                                          room_version: Any) -> dict:
                    return {"event": {"sent_by": "synapse v2"}}

            async def put_json(destination: str, path: str, data: Any, **kw: Any) -> Any:
                self.msc4329_puts.append((destination, path))
                answer = self.msc4329_answer
                if isinstance(answer, BaseException):
                    raise answer
                return answer

            self._federation_client = SimpleNamespace(
                _do_send_invite=_do_send_invite,
                transport_layer=SimpleNamespace(client=SimpleNamespace(put_json=put_json)))
        return self._federation_client

    def get_clock(self) -> Any:
        return SimpleNamespace(time_msec=lambda: self.now)


class FakeModuleApi:
    """Records registrations; runs db interactions on an in-memory sqlite copy of Synapse's
    two membership tables."""

    def __init__(self, server_name: str = "b.example", db_file: str | None = None,
                 background_tasks: bool = True) -> None:
        self.server_name = server_name
        self.background_tasks = background_tasks
        self.looping: list[tuple] = []
        self._hs = FakeHomeServer(self, db_file)
        self.third_party: dict[str, Any] = {}
        self.spam: dict[str, Any] = {}
        self.delayed: list[tuple] = []
        self.background: list[tuple] = []
        self.web_resources: dict[str, Any] = {}
        self.admins: set[str] = set()
        self.db = sqlite3.connect(":memory:")
        self.db.executescript(
            "CREATE TABLE local_current_membership(room_id TEXT, user_id TEXT, event_id TEXT,"
            " membership TEXT, event_stream_ordering BIGINT);"
            "CREATE TABLE current_state_events(event_id TEXT, room_id TEXT, type TEXT,"
            " state_key TEXT, membership TEXT);"
            "CREATE TABLE room_memberships(event_id TEXT, user_id TEXT, sender TEXT,"
            " room_id TEXT, membership TEXT, event_stream_ordering BIGINT);"
            "CREATE TABLE rejections(event_id TEXT, reason TEXT, last_check TEXT);"
            "CREATE TABLE events(event_id TEXT, room_id TEXT, topological_ordering BIGINT,"
            " stream_ordering BIGINT);"
        )

    def is_mine(self, id: str) -> bool:
        return id.split(":", 1)[-1] == self.server_name

    def register_third_party_rules_callbacks(self, **kw: Any) -> None:
        self.third_party.update(kw)

    def register_spam_checker_callbacks(self, **kw: Any) -> None:
        self.spam.update(kw)

    def register_web_resource(self, path: str, resource: Any) -> None:
        self.web_resources[path] = resource

    async def get_user_by_req(self, request: Any) -> Any:
        user_id = request.user_id
        return SimpleNamespace(user=SimpleNamespace(to_string=lambda: user_id))

    async def is_user_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    def should_run_background_tasks(self) -> bool:
        return self.background_tasks

    def looping_background_call(self, f: Any, msec: float, *args: Any, desc: str = "",
                                run_on_all_instances: bool = False) -> None:
        self.looping.append((f, msec, args, desc))

    def add_membership(self, room_id: str, user_id: str, membership: str,
                       sender: str | None = None, rejected: bool = False,
                       depth: int | None = None, stream: int | None = None) -> str:
        """A membership event in ``room_memberships`` and ``events`` (and ``rejections`` if
        ``rejected``); it becomes the user's membership in ``current_state_events`` unless
        rejected. ``depth`` and ``stream`` default to the order of calls."""
        n = self.db.execute("SELECT COUNT(*) FROM room_memberships").fetchone()[0] + 1
        event_id = f"$m{n}"
        self.db.execute("INSERT INTO room_memberships VALUES (?,?,?,?,?,?)",
                        (event_id, user_id, sender or user_id, room_id, membership, n))
        self.db.execute("INSERT INTO events VALUES (?,?,?,?)",
                        (event_id, room_id, n if depth is None else depth,
                         n if stream is None else stream))
        if rejected:
            self.db.execute("INSERT INTO rejections VALUES (?, 'auth', '')", (event_id,))
        else:
            self.db.execute("DELETE FROM current_state_events WHERE room_id = ? AND"
                            " type = 'm.room.member' AND state_key = ?", (room_id, user_id))
            self.db.execute("INSERT INTO current_state_events VALUES (?,?,?,?,?)",
                            (event_id, room_id, "m.room.member", user_id, membership))
        return event_id

    def delayed_background_call(self, msec: float, f: Any, *args: Any, desc: str = "") -> None:
        self.delayed.append((msec, f, args, desc))

    def run_as_background_process(self, desc: str, f: Any, *args: Any) -> None:
        self.background.append((desc, f, args))

    async def defer_to_thread(self, f: Any, *args: Any, **kw: Any) -> Any:
        return f(*args, **kw)

    async def run_db_interaction(self, desc: str, f: Any, *args: Any) -> Any:
        cur = self.db.cursor()
        try:
            return f(cur, *args)
        finally:
            cur.close()

    def set_room_state(self, room_id: str, events: list) -> None:
        """The current state ``get_room_state`` answers for ``room_id`` (FakeEvents)."""
        self.__dict__.setdefault("room_states", {})[room_id] = list(events)

    async def get_room_state(self, room_id: str, event_filter: Any = None) -> dict:
        events = self.__dict__.get("room_states", {}).get(room_id, [])
        out = {(e.type, e.state_key): e for e in events}
        if event_filter is not None:
            wanted = list(event_filter)
            out = {k: e for k, e in out.items()
                   if any(t == k[0] and (sk is None or sk == k[1]) for t, sk in wanted)}
        return out
