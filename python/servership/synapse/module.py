"""``ServershipModule``: the Synapse module class named in ``homeserver.yaml``.

It wires servership's features into Synapse: federation endpoints (served by Synapse's own
federation listener, X-Matrix-authenticated), hooks on joins and invites, the knock EDU and
audits. The protocol work happens in the core, reached through ``_core``; Synapse internals are
reached through ``_compat``. Blocking work (SQLite, checks) runs in Synapse's thread pool.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from typing import Any, Callable

from . import _compat, _core, config as config_mod, metrics
from .audit import Auditor
from .config import ServershipConfig
from .knock_flow import KnockFlow
from .members import MembersHooks
from .peeking import PeekService
from .room_version import MembersRules
from .s2s_rooms import S2SRooms

logger = logging.getLogger("servership.synapse")

KNOCK_EDU = "m.server.knock"
DISCOVERY_UNSTABLE_PREFIX = "/_matrix/federation/v1/org.matrix.msc4358"
DISCOVERY_STABLE_PREFIX = "/_matrix/federation/v1"
INVITE_UNSTABLE_PREFIXES = (
    "/_matrix/federation/unstable/org.matrix.msc4329",
    "/_matrix/federation/unstable/org.matrix.msc0000",
)
INVITE_STABLE_PREFIX = "/_matrix/federation/v3"
#: Admin API on the client listener (server admins only): ``POST`` ``{room_id, destination}``.
ADMIN_KNOCK_PATH = "/_synapse/client/servership/v1/knock"
#: Admin API: ``POST`` ``{room_id}``: audit that room now, answer with the report.
ADMIN_AUDIT_PATH = "/_synapse/client/servership/v1/audit"


def _is_server_pseudouser(user_id: str) -> bool:
    # MSC1777: exactly "@:" + a valid server name, as the core decides.
    return _core.is_server_pseudouser(user_id)


def _server_of(user_id: str) -> str:
    # The core's user ID rules ("" for anything that is not a user ID).
    return _core.user_server(user_id) or ""


#: The event ID of the MSC4329 invite this request's call chain is handing to Synapse, if any.
#: A context variable follows the request through Synapse's awaits (Twisted runs coroutines in
#: a copy of the caller's context), and no other request sees it.
_CHECKED_V3_INVITE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "servership_checked_v3_invite", default=None
)

#: Only the first events of an invite's ``state`` make us fetch keys (the core caps it anyway).
_MAX_STATE_FOR_KEYS = 64

#: How long the snapshot of "servers we share a room with" is used (seconds).
SHARED_ROOM_CACHE_SECONDS = 300
#: An origin missing from the snapshot triggers a new one if the snapshot is this old (seconds).
SHARED_ROOM_RECHECK_SECONDS = 5


class ServershipModule:
    """Servers as room participants, for Synapse. Configure in ``homeserver.yaml``::

        modules:
          - module: servership.synapse.ServershipModule
            config:
              store_path: /var/lib/synapse/servership.db
    """

    def __init__(self, config: ServershipConfig, api: Any) -> None:
        self._config = config
        self._api = api
        self._server_name: str = api.server_name
        # parse_config checked the Synapse release and the features' internals; it cannot see
        # Synapse's own config: check the database clash, and find Synapse's PostgreSQL
        # settings, here.
        self._store_location = self._resolve_store(config, api)
        # Fail at start-up, not at the first federation request: the core does every check.
        _core.require()

        self._open_lock = threading.Lock()
        self._tag_store: Any = None
        self._knock_store: Any = None
        self._audit_queue: Any = None
        self._responder: Any = None
        # One process per homeserver records joins and runs audits: the one Synapse runs its
        # background tasks on. The others only answer requests.
        self._background = bool(api.should_run_background_tasks())
        self._auditor = Auditor(api, config.audit, self._open_audit_queue)
        # (normalised names of the servers we share a room with, monotonic time taken), for
        # discovery.require_shared_room.
        self._sharing: tuple[frozenset[str], float] | None = None
        # The members room version in Synapse's own event auth (off by default). Every process
        # runs event auth, so every process installs it and reads the marked rooms.
        self._members_rules: MembersRules | None = None
        if config.members_room_version.enabled:
            rules = MembersRules()
            _compat.install_members_auth(rules.check, rules.select)
            api.delayed_background_call(0, rules.fill_from_store, api,
                                        desc="servership_marked_rooms")
            self._members_rules = rules
        self._members = MembersHooks(api, config, lambda: self._stores()[2],
                                     self._members_rules)
        self._knock_flow = KnockFlow(api, config, self._server_name, lambda: self._stores()[2],
                                     self._known_room)
        # Peeking (off by default): the sessions live in memory on the background-tasks
        # process, which alone serves the endpoint and leaves idle rooms.
        self._peeking: PeekService | None = None
        if config.peeking.enabled and self._background:
            self._peeking = PeekService(api, config, self._members_rules)

        # s2s rooms (off by default): invites, negotiations and upgrades on the
        # background-tasks process, which alone sees on_new_event here.
        self._s2s: S2SRooms | None = None
        if config.s2s.enabled and self._background and self._members_rules is not None:
            self._s2s = S2SRooms(api, config, self._members_rules)

        servlets = self._servlet_classes()
        if servlets:
            _compat.register_servlet_group(servlets)
        # Synapse freezes what it hands check_event_allowed; some releases then break on v12.
        _compat.fix_frozen_event_auth_ids()
        # Only the callbacks this process uses: with on_new_event registered, Synapse loads
        # the room state of every event it notifies. It records joins (tags for discovery, and
        # audits, which need discovery), on the background-tasks process only. The membership
        # checks of check_event_allowed (join rules, make_join) are always on.
        third_party: dict[str, Callable] = {"check_event_allowed": self.check_event_allowed}
        if self._background and (config.discovery.enabled or self._peeking is not None
                                 or self._s2s is not None):
            third_party["on_new_event"] = self.on_new_event
        api.register_third_party_rules_callbacks(**third_party)
        if config.invites.enabled:
            api.register_spam_checker_callbacks(
                federated_user_may_invite=self.federated_user_may_invite
            )
        self._members.register()
        if self._peeking is not None:
            self._peeking.register()
        if self._s2s is not None:
            self._s2s.register()
        if config.knocks.enabled:
            _compat.register_edu_handler(api, KNOCK_EDU, self.on_knock_edu)
            _compat.register_admin_json_resource(api, ADMIN_KNOCK_PATH, self.handle_admin_knock,
                                                 self.handle_admin_knock_status)
            self._knock_flow.register()
        if config.discovery.enabled:
            _compat.register_admin_json_resource(
                api, ADMIN_AUDIT_PATH, self.handle_admin_audit, self.handle_admin_audit_status
            )
        if config.invites.send_msc4329:
            problem = _compat.invite_sending_problem(api)
            if problem is not None:
                # parse_config looked at Synapse's classes; this looks at this process's
                # objects, which another module may have replaced.
                raise _compat.ConfigError(
                    f"servership.invites.send_msc4329 needs Synapse's invite-sending internals "
                    f"as of 1.158 ({problem}); set it to false on this Synapse"
                )
            _compat.send_invites_with(api, self.build_invite_request)
        if self._background:
            api.delayed_background_call(0, self.startup, desc="servership_startup")
            if config.audit.enabled:
                self._auditor.start()
        logger.info(
            "servership loaded (discovery=%s invites=%s knocks=%s audit=%s "
            "members_room_version=%s peeking=%s s2s=%s, store %s)",
            config.discovery.enabled,
            config.invites.enabled,
            config.knocks.enabled,
            config.audit.enabled,
            config.members_room_version.enabled,
            self._peeking is not None,
            self._s2s is not None,
            # Never the connection string: it may hold Synapse's database password.
            config.store_path if config.store.backend == "sqlite" else "postgres",
        )

    @staticmethod
    def _resolve_store(config: ServershipConfig, api: Any) -> str:
        """The store's location: the SQLite file, or a PostgreSQL connection string."""
        synapse_pg = _compat.synapse_postgres_args(api)
        if config.store.backend == "sqlite":
            path = config_mod.parse(
                {"store_path": config.store_path}, _compat.synapse_database_files(api)
            ).store_path
            if path is None:  # parse() never gives None for backend sqlite
                raise _compat.ConfigError("servership.store_path is required")
            if synapse_pg is not None:
                logger.warning(
                    "servership: Synapse runs on PostgreSQL but servership's store is the SQLite "
                    "file %s: workers on other hosts cannot reach it and it is not in the "
                    "database's backups. Set store: {backend: postgres} (docs/synapse.md)",
                    path,
                )
            return path
        if config.store.dsn is not None:
            return config.store.dsn
        if synapse_pg is None:
            raise _compat.ConfigError(
                "servership.store.backend: postgres needs Synapse on PostgreSQL (database.name: "
                "psycopg2) to reuse its settings, or a connection string in servership.store.dsn"
            )
        return config_mod.dsn_from_synapse_args(synapse_pg)

    @staticmethod
    def parse_config(config: Any) -> ServershipConfig:
        """Validate the ``config:`` block; raises ``ConfigError`` naming the bad key."""
        return config_mod.parse(config)

    # -- stores ---------------------------------------------------------------------------------

    def _stores(self) -> tuple[Any, Any, Any]:
        """Open the stores once (blocking: call in a thread)."""
        with self._open_lock:
            if self._tag_store is None:
                self._tag_store = _core.open_tag_store(self._store_location, self._server_name)
                d = self._config.discovery
                # The budget lives in the store file, so every process of this homeserver draws
                # on one budget per (normalised) origin, and a restart does not reset it.
                self._responder = _core.make_responder(
                    self._tag_store,
                    d.max_tags_per_request,
                    d.budget_tags,
                    d.budget_window_seconds * 1000,
                    shared_budget=True,
                )
            if self._knock_store is None and self._config.knocks.enabled:
                k = self._config.knocks
                self._knock_store = _core.open_limited_knock_store(
                    self._store_location,
                    k.expiry_seconds * 1000,
                    k.max_per_origin,
                    k.origin_window_seconds * 1000,
                )
        return self._tag_store, self._responder, self._knock_store

    def _open_audit_queue(self) -> Any:
        """The audit queue, in the same store file (blocking: call in a thread)."""
        with self._open_lock:
            if self._audit_queue is None:
                self._audit_queue = _core.open_audit_queue(self._store_location)
        return self._audit_queue

    async def startup(self) -> int:
        """Open the store and backfill tags for rooms joined before the module was installed."""
        await self._api.defer_to_thread(self._stores)
        rooms = await _compat.rooms_ever_joined(self._api)
        store = self._tag_store
        now = _compat.now_ms(self._api)
        installed_before = await self._api.defer_to_thread(_core.tag_count, store) > 0
        if installed_before and self._config.audit.enabled:
            # Joins the module missed (the process was down while another persisted them):
            # record each with its audit. On a first install, every old room is only tagged.
            missing = await self._api.defer_to_thread(_core.missing_rooms, store, rooms)
            added = 0
            for room in missing:
                if await self._api.defer_to_thread(_core.record_join, store, room, now,
                                                   self._auditor.due_ms(now)):
                    added += 1
        else:
            added = await self._api.defer_to_thread(_core.backfill_tags, store, rooms, now)
        metrics.TAGS_RECORDED.labels("backfill").inc(added)
        logger.info("servership: backfilled %d new tags from %d rooms", added, len(rooms))
        return added

    # -- federation endpoints -------------------------------------------------------------------

    def _servlet_classes(self) -> list[type]:
        base = _compat.federation_servlet_base()
        module = self
        classes: list[type] = []

        def make(name: str, prefix: str, path: str, method: str, handler: Callable) -> type:
            return type(
                name,
                (base,),
                {"PREFIX": prefix, "PATH": path, "CATEGORY": "Federation requests",
                 f"on_{method}": handler},
            )

        if self._config.discovery.enabled:

            async def on_post(self: Any, origin: str, content: Any, query: Any,
                              raw_body: bytes = b"") -> tuple[int, Any]:
                return await module.handle_discovery(origin, raw_body)

            classes.append(make("ServershipDiscoverCommonRooms", DISCOVERY_UNSTABLE_PREFIX,
                                "/discover_common_rooms", "POST", on_post))
            if self._config.discovery.stable_path:
                classes.append(make("ServershipDiscoverCommonRoomsStable",
                                    DISCOVERY_STABLE_PREFIX, "/discover_common_rooms",
                                    "POST", on_post))

        if self._config.invites.enabled:

            async def on_put(self: Any, origin: str, content: Any, query: Any, room_id: str,
                             raw_body: bytes = b"") -> tuple[int, Any]:
                return await module.handle_invite_v3(origin, room_id, raw_body)

            prefixes = list(INVITE_UNSTABLE_PREFIXES)
            if self._config.invites.stable_v3_path:
                prefixes.append(INVITE_STABLE_PREFIX)
            for n, prefix in enumerate(prefixes):
                classes.append(make(f"ServershipInviteV3_{n}", prefix,
                                    "/invite/(?P<room_id>[^/]*)", "PUT", on_put))
        return classes

    def _core_error(self, exc: _core.CoreError) -> Exception:
        extra = {}
        if exc.retry_after_ms is not None:
            extra["retry_after_ms"] = exc.retry_after_ms
        return _compat.matrix_error(exc.http_status, exc.message, exc.errcode, **extra)

    async def _origin_shares_a_room(self, origin: str) -> bool:
        """Whether ``origin`` (any spelling) has a joined member in one of our rooms. Answered
        from a snapshot of the servers we share rooms with, taken at most every
        ``SHARED_ROOM_CACHE_SECONDS``: the work does not grow with the number of distinct
        origins that ask (an attacker can have many names)."""
        now = time.monotonic()
        snapshot = self._sharing
        if snapshot is None or now - snapshot[1] >= SHARED_ROOM_CACHE_SECONDS:
            hosts = await _compat.servers_sharing_rooms(self._api)
            names = await self._api.defer_to_thread(
                lambda: {_core.normalise_origin(h) for h in hosts}
            )
            snapshot = (frozenset(names), now)
            self._sharing = snapshot
        if _core.normalise_origin(origin) in snapshot[0]:
            return True
        # A server that joined one of our rooms since the snapshot: look again, at most once a
        # few seconds for all origins together.
        if now - snapshot[1] >= SHARED_ROOM_RECHECK_SECONDS:
            self._sharing = None
            return await self._origin_shares_a_room(origin)
        return False

    async def handle_discovery(self, origin: str, body: bytes) -> tuple[int, Any]:
        """``POST .../discover_common_rooms`` from an authenticated ``origin``."""
        if self._config.discovery.require_shared_room and not await self._origin_shares_a_room(
            origin
        ):
            metrics.DISCOVERY_REQUESTS.labels("no_shared_room").inc()
            raise _compat.matrix_error(
                403,
                "this server answers discover_common_rooms only for servers it shares a room "
                "with",
                "M_FORBIDDEN",
            )
        try:
            _, responder, _ = await self._api.defer_to_thread(self._stores)
            answer = await self._api.defer_to_thread(
                _core.respond_discovery, responder, body, origin, _compat.now_ms(self._api)
            )
        except _core.CoreError as exc:
            metrics.DISCOVERY_REQUESTS.labels(exc.errcode).inc()
            raise self._core_error(exc) from exc
        metrics.DISCOVERY_REQUESTS.labels("ok").inc()
        return 200, answer

    async def handle_invite_v3(self, origin: str, room_id: str, body: bytes) -> tuple[int, Any]:
        """``PUT .../invite/{roomId}`` (MSC4329): check with the core, then hand the invite to
        Synapse's own pipeline with the rewritten ``invite_room_state``. Answers like v2:
        ``{"event": <invite co-signed by us>}``."""
        keys = await self._invite_keys(body)
        try:
            check = await self._api.defer_to_thread(
                _core.check_invite, room_id, body, self._server_name, origin, keys
            )
        except _core.CoreError as exc:
            metrics.INVITES_CHECKED.labels("v3", exc.errcode).inc()
            raise self._core_error(exc) from exc
        problem = await _compat.event_signature_problem(
            self._api, check.create_event, check.room_version
        )
        if problem is not None:
            metrics.INVITES_CHECKED.labels("v3", "M_INVALID_PARAM").inc()
            raise _compat.matrix_error(
                400, f"the m.room.create event in state does not verify: {problem}",
                "M_INVALID_PARAM",
            )
        metrics.INVITES_CHECKED.labels("v3", "ok").inc()
        event = dict(check.event)
        unsigned = event.get("unsigned")
        unsigned = dict(unsigned) if isinstance(unsigned, dict) else {}
        unsigned["invite_room_state"] = check.invite_room_state
        event["unsigned"] = unsigned
        # Mark *this request* (not the event ID: a v2 invite for the same event, sent while this
        # one is in flight, must still meet the MSC4311 hook).
        token = _CHECKED_V3_INVITE.set(check.event_id)
        try:
            result = await _compat.process_invite(
                self._api, origin, check.room_id, check.event_id, event, check.room_version
            )
        finally:
            _CHECKED_V3_INVITE.reset(token)
        return 200, result

    async def _invite_keys(self, body: bytes) -> dict:
        """Keys of the servers that signed the events in an MSC4329 body's ``state``, from
        Synapse's keyring within ``invites.key_fetch_seconds``; unparseable bodies get none
        (the core then answers with the precise error)."""
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        state = parsed.get("state") if isinstance(parsed, dict) else None
        if not isinstance(state, list):
            return {}
        return await _compat.verify_keys_for(
            self._api, state[:_MAX_STATE_FOR_KEYS], self._config.invites.key_fetch_seconds
        )

    async def build_invite_request(
        self, invite: dict, create: dict, stripped_state: list[dict]
    ) -> tuple[str, dict]:
        """The MSC4329 request (path, body) for an invite we send: the create event goes in
        ``state``, the stripped state (without the create event) in ``invite_room_state``."""
        path, body = await self._api.defer_to_thread(
            _core.build_invite_request,
            _compat.plain_json(invite),
            _compat.plain_json(create),
            _compat.plain_json(stripped_state),
        )
        metrics.INVITES_SENT.labels("msc4329").inc()
        return path, body

    # -- hooks ----------------------------------------------------------------------------------

    async def federated_user_may_invite(self, event: Any) -> Any:
        """MSC4311 checks of spec (v1/v2) invites: ``invites.mode`` warn or reject."""
        if _CHECKED_V3_INVITE.get() == event.event_id:
            # Called from inside our own MSC4329 handling of this very request: already checked.
            return _compat.NOT_SPAM
        if self._config.invites.mode == "warn" and _compat.synapse_checks_invite_state(
            self._api, event.room_version.identifier
        ):
            # This Synapse validates invite_room_state itself for this room version (1.162+),
            # logs and counts each failure (synapse_federation_saw_invalid_stripped_state) and
            # lets the invite through: the same outcome as our warn mode. One check is enough.
            metrics.INVITES_CHECKED.labels("spec", "left_to_synapse").inc()
            return _compat.NOT_SPAM
        pdu = _compat.plain_json(event.get_pdu_json())
        unsigned = pdu.pop("unsigned", {}) or {}
        body = json.dumps(
            {
                "room_version": event.room_version.identifier,
                "event": pdu,
                "invite_room_state": list(unsigned.get("invite_room_state", []) or []),
            }
        ).encode()
        origin = _server_of(event.sender)
        try:
            await self._api.defer_to_thread(
                _core.check_spec_invite,
                event.room_id,
                event.event_id,
                body,
                self._server_name,
                origin,
            )
            # The core checked the create PDU's shape and room; its signatures are checked here
            # with Synapse's keyring, as for MSC4329 invites (in v1-v11 nothing else binds the
            # create event to its sender's server).
            create = next(
                (
                    e
                    for e in unsigned.get("invite_room_state", []) or []
                    if isinstance(e, dict) and e.get("type") == "m.room.create"
                ),
                None,
            )
            problem = (
                await _compat.event_signature_problem(
                    self._api, create, event.room_version.identifier
                )
                if create is not None
                else None
            )
            if problem is not None:
                raise _core.CoreError(
                    "M_INVALID_PARAM",
                    400,
                    f"the m.room.create event in invite_room_state does not verify: {problem}",
                )
        except _core.CoreError as exc:
            if self._config.invites.mode == "reject":
                metrics.INVITES_CHECKED.labels("spec", exc.errcode).inc()
                logger.info("servership: rejected invite %s: %s", event.event_id, exc)
                # Raised, not returned: a spam-checker verdict becomes 403, and the spec
                # (MSC4311) asks for 400 with the check's errcode (M_INVALID_PARAM).
                raise _compat.matrix_error(exc.http_status, exc.message, exc.errcode) from exc
            metrics.INVITES_CHECKED.labels("spec", "warned").inc()
            logger.warning("servership: invite %s fails MSC4311 checks: %s", event.event_id, exc)
            return _compat.NOT_SPAM
        metrics.INVITES_CHECKED.labels("spec", "ok").inc()
        return _compat.NOT_SPAM

    def _is_local(self, user_id: str) -> bool:
        """A user of ours, including our pseudouser ``@:server``."""
        return _server_of(user_id) == self._server_name and user_id.startswith("@")

    async def on_new_event(self, event: Any, state_events: Any) -> None:
        """Record our tag on a local member's (or our pseudouser's) join; queue the audit of a
        room the server newly joined. Only on the background-tasks process: Synapse calls this
        on every process, and one record per homeserver is enough."""
        if not self._background:
            return
        if self._s2s is not None and self._s2s.wants(event):
            self._api.run_as_background_process(
                "servership_s2s_event", self._s2s.on_new_event, event
            )
        if event.type != "m.room.member" or not self._is_local(event.state_key):
            return
        if self._peeking is not None:
            self._api.run_as_background_process(
                "servership_peek_membership", self._peeking.on_member_event, event
            )
        if event.membership != "join" or not self._config.discovery.enabled:
            return
        self._api.run_as_background_process(
            "servership_record_join", self.record_join, event.room_id
        )

    async def record_join(self, room_id: str) -> bool:
        """Record the tag for ``room_id``; on our first join, queue its audit in the same
        transaction (so a restart or a crash between the two loses nothing)."""
        now = _compat.now_ms(self._api)
        due = self._auditor.due_ms(now) if self._config.audit.enabled else None
        try:
            store, _, _ = await self._api.defer_to_thread(self._stores)
            new = await self._api.defer_to_thread(_core.record_join, store, room_id, now, due)
        except _core.CoreError as exc:
            logger.error("servership: could not record the tag for %s: %s", room_id, exc)
            return False
        if new:
            metrics.TAGS_RECORDED.labels("join").inc()
            if due is not None:
                logger.info("servership: first join of %s; audit queued", room_id)
        return bool(new)

    async def check_event_allowed(self, event: Any, state_events: Any) -> tuple[bool, None]:
        """Every event this server builds, the ``make_join`` templates for remote servers
        included: see ``MembersHooks.check_event_allowed``."""
        return await self._members.check_event_allowed(event, state_events)

    # -- knocks ---------------------------------------------------------------------------------

    async def on_knock_edu(self, origin: str, content: Any) -> None:
        """An ``m.server.knock`` EDU: see ``MembersHooks.on_knock_edu``."""
        await self._members.on_knock_edu(origin, content)

    async def handle_admin_knock(self, admin: str, body: dict) -> dict:
        """``POST /_synapse/client/servership/v1/knock`` ``{"room_id", "destination",
        "user_id"?}``: send ``m.server.knock`` for the room to that server (server admins only),
        and remember it, so that when the destination accepts, ``user_id`` (a local user, by
        default the admin) joins (``knock_flow``)."""
        room_id, destination = body.get("room_id"), body.get("destination")
        user_id = body.get("user_id", admin)
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise _compat.matrix_error(400, "room_id must be a room ID", "M_INVALID_PARAM")
        if not isinstance(destination, str) or not config_mod.server_name_ok(destination):
            raise _compat.matrix_error(400, "destination must be a server name", "M_INVALID_PARAM")
        if destination == self._server_name:
            raise _compat.matrix_error(400, "destination is this server", "M_INVALID_PARAM")
        if not isinstance(user_id, str) or not self._is_local(user_id):
            raise _compat.matrix_error(400, "user_id must be a user of this server",
                                       "M_INVALID_PARAM")
        try:
            self.send_knock(destination, room_id)
        except _compat.CannotSendFederation as exc:
            # A worker reached through a listener the admin API was not routed to.
            raise _compat.matrix_error(
                503,
                f"this process does not send federation traffic ({exc}); send the request to "
                "the main process (or the federation sender's host)",
                "M_UNKNOWN",
            ) from exc
        self._knock_flow.remember(room_id, destination, user_id)
        logger.info("servership: %s sent a knock on %s to %s", admin, room_id, destination)
        return {"sent": True}

    async def handle_admin_knock_status(self, admin: str, query: dict[str, str]) -> dict:
        """``GET /_synapse/client/servership/v1/knock?room_id=...``: where our knock stands
        (``none``, ``sent``, ``accepted``, ``joined`` or ``join_failed``)."""
        room_id = query.get("room_id")
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise _compat.matrix_error(400, "room_id must be a room ID", "M_INVALID_PARAM")
        return self._knock_flow.status(room_id)

    async def _known_room(self, room_id: Any) -> str:
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise _compat.matrix_error(400, "room_id must be a room ID", "M_INVALID_PARAM")
        if not await _compat.has_membership(self._api, room_id):
            raise _compat.matrix_error(404, "this server knows no such room", "M_NOT_FOUND")
        return room_id

    async def handle_admin_audit(self, admin: str, body: dict) -> dict:
        """``POST /_synapse/client/servership/v1/audit`` ``{"room_id"}``: audit the room now
        (server admins only); answers with the report."""
        room_id = await self._known_room(body.get("room_id"))
        logger.info("servership: %s asked for an audit of %s", admin, room_id)
        outcome = await self._auditor.run(room_id)
        if outcome is None:
            raise _compat.matrix_error(500, "the audit failed; see the server log", "M_UNKNOWN")
        return dict(json.loads(outcome.report_json))

    async def handle_admin_audit_status(self, admin: str, query: dict[str, str]) -> dict:
        """``GET /_synapse/client/servership/v1/audit?room_id=...``: the state of the room's
        automatic audit (``pending``, ``done`` or ``none``) and, once done, its report."""
        room_id = await self._known_room(query.get("room_id"))
        queue = await self._api.defer_to_thread(self._open_audit_queue)
        state, verdict, report = await self._api.defer_to_thread(
            _core.audit_status, queue, room_id
        )
        answer: dict[str, Any] = {"room_id": room_id, "state": state or "none"}
        if verdict is not None:
            answer["verdict"] = verdict
        if report is not None:
            answer["report"] = report
        return answer

    def send_knock(self, destination: str, room_id: str) -> None:
        """Send ``m.server.knock`` for ``room_id`` to ``destination`` (main process or
        federation sender only)."""
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise ValueError("room_id must be a room ID starting with '!'")
        _compat.send_edu(self._api, destination, KNOCK_EDU, {"room_id": room_id})

    # -- for tests and admin tooling ------------------------------------------------------------

    @property
    def config(self) -> ServershipConfig:
        """The parsed configuration."""
        return self._config

    @property
    def peeking(self) -> PeekService | None:
        """The peek service (``None`` unless ``peeking.enabled``, or on another process)."""
        return self._peeking

    @property
    def auditor(self) -> Auditor:
        """The audit scheduler."""
        return self._auditor


__all__ = ["ServershipModule"]
