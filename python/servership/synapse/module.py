"""``ServershipModule``: the Synapse module class named in ``homeserver.yaml``.

It wires servership's features into Synapse: federation endpoints (served by Synapse's own
federation listener, X-Matrix-authenticated), hooks on joins and invites, the knock EDU and
audits. The protocol work happens in the core, reached through ``_core``; Synapse internals are
reached through ``_compat``. Blocking work (SQLite, checks) runs in Synapse's thread pool.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable

from . import _compat, _core, config as config_mod, metrics
from .audit import Auditor
from .config import ServershipConfig
from .members import MembersHooks

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
        _compat.check_supported_version(config.allow_untested_synapse)
        # parse_config cannot see Synapse's own config; check the database clash here.
        config_mod.parse(
            {"store_path": config.store_path}, _compat.synapse_database_files(api)
        )
        # Fail at start-up, not at the first federation request: the core does every check.
        _core.require()

        self._open_lock = threading.Lock()
        self._tag_store: Any = None
        self._knock_store: Any = None
        self._responder: Any = None
        # Invites we are passing to Synapse's pipeline ourselves: the MSC4311 hook skips them.
        self._v3_in_flight: set[str] = set()
        self._auditor = Auditor(api, config.audit, config.discovery.max_tags_per_request)
        self._members = MembersHooks(api, config, lambda: self._stores()[2])

        servlets = self._servlet_classes()
        if servlets:
            _compat.register_servlet_group(servlets)
        api.register_third_party_rules_callbacks(
            on_new_event=self.on_new_event, check_event_allowed=self.check_event_allowed
        )
        if config.invites.enabled:
            api.register_spam_checker_callbacks(
                federated_user_may_invite=self.federated_user_may_invite
            )
        self._members.register()
        if config.knocks.enabled:
            _compat.register_edu_handler(api, KNOCK_EDU, self.on_knock_edu)
            _compat.register_admin_json_resource(api, ADMIN_KNOCK_PATH, self.handle_admin_knock)
        if config.discovery.enabled:
            _compat.register_admin_json_resource(api, ADMIN_AUDIT_PATH, self.handle_admin_audit)
        if config.invites.send_msc4329:
            _compat.send_invites_with(api, self.build_invite_request)
        if api.should_run_background_tasks():
            api.delayed_background_call(0, self.startup, desc="servership_startup")
        logger.info(
            "servership loaded (discovery=%s invites=%s knocks=%s audit=%s, store %s)",
            config.discovery.enabled,
            config.invites.enabled,
            config.knocks.enabled,
            config.audit.enabled,
            config.store_path,
        )

    @staticmethod
    def parse_config(config: Any) -> ServershipConfig:
        """Validate the ``config:`` block; raises ``ConfigError`` naming the bad key."""
        return config_mod.parse(config)

    # -- stores ---------------------------------------------------------------------------------

    def _stores(self) -> tuple[Any, Any, Any]:
        """Open the stores once (blocking: call in a thread)."""
        with self._open_lock:
            if self._tag_store is None:
                self._tag_store = _core.open_tag_store(self._config.store_path, self._server_name)
                d = self._config.discovery
                self._responder = _core.make_responder(
                    self._tag_store,
                    d.max_tags_per_request,
                    d.budget_tags,
                    d.budget_window_seconds * 1000,
                )
            if self._knock_store is None and self._config.knocks.enabled:
                k = self._config.knocks
                self._knock_store = _core.open_limited_knock_store(
                    self._config.store_path,
                    k.expiry_seconds * 1000,
                    k.max_per_origin,
                    k.origin_window_seconds * 1000,
                )
        return self._tag_store, self._responder, self._knock_store

    async def startup(self) -> int:
        """Open the store and backfill tags for rooms joined before the module was installed."""
        await self._api.defer_to_thread(self._stores)
        rooms = await _compat.rooms_ever_joined(self._api)
        store = self._tag_store
        added = await self._api.defer_to_thread(
            _core.backfill_tags, store, rooms, _compat.now_ms(self._api)
        )
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

    async def handle_discovery(self, origin: str, body: bytes) -> tuple[int, Any]:
        """``POST .../discover_common_rooms`` from an authenticated ``origin``."""
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
        try:
            check = await self._api.defer_to_thread(
                _core.check_invite, room_id, body, self._server_name, origin
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
        self._v3_in_flight.add(check.event_id)
        try:
            result = await _compat.process_invite(
                self._api, origin, check.room_id, check.event_id, event, check.room_version
            )
        finally:
            self._v3_in_flight.discard(check.event_id)
        return 200, result

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
        if event.event_id in self._v3_in_flight:
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
                return (_compat.spam_errcode(exc.errcode), {"error": exc.message})
            metrics.INVITES_CHECKED.labels("spec", "warned").inc()
            logger.warning("servership: invite %s fails MSC4311 checks: %s", event.event_id, exc)
            return _compat.NOT_SPAM
        metrics.INVITES_CHECKED.labels("spec", "ok").inc()
        return _compat.NOT_SPAM

    async def on_new_event(self, event: Any, state_events: Any) -> None:
        """Record our tag on a local member's join; audit rooms the server newly joined."""
        if event.type != "m.room.member" or event.membership != "join":
            return
        if not self._api.is_mine(event.state_key):
            return
        self._api.run_as_background_process(
            "servership_record_join", self.record_join, event.room_id
        )

    async def record_join(self, room_id: str) -> bool:
        """Record the tag for ``room_id``; schedule an audit if this is our first join."""
        try:
            store, _, _ = await self._api.defer_to_thread(self._stores)
            new = await self._api.defer_to_thread(
                _core.record_join, store, room_id, _compat.now_ms(self._api)
            )
        except _core.CoreError as exc:
            logger.error("servership: could not record the tag for %s: %s", room_id, exc)
            return False
        if new:
            metrics.TAGS_RECORDED.labels("join").inc()
            if self._config.audit.enabled and self._api.should_run_background_tasks():
                self._auditor.schedule(room_id)
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
        """``POST /_synapse/client/servership/v1/knock`` ``{"room_id", "destination"}``: send
        ``m.server.knock`` for the room to that server (server admins only)."""
        room_id, destination = body.get("room_id"), body.get("destination")
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise _compat.matrix_error(400, "room_id must be a room ID", "M_INVALID_PARAM")
        if not isinstance(destination, str) or not config_mod.server_name_ok(destination):
            raise _compat.matrix_error(400, "destination must be a server name", "M_INVALID_PARAM")
        if destination == self._server_name:
            raise _compat.matrix_error(400, "destination is this server", "M_INVALID_PARAM")
        self.send_knock(destination, room_id)
        logger.info("servership: %s sent a knock on %s to %s", admin, room_id, destination)
        return {"sent": True}

    async def handle_admin_audit(self, admin: str, body: dict) -> dict:
        """``POST /_synapse/client/servership/v1/audit`` ``{"room_id"}``: audit the room now
        (server admins only); answers with the report."""
        room_id = body.get("room_id")
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise _compat.matrix_error(400, "room_id must be a room ID", "M_INVALID_PARAM")
        logger.info("servership: %s asked for an audit of %s", admin, room_id)
        outcome = await self._auditor.run(room_id)
        if outcome is None:
            raise _compat.matrix_error(500, "the audit failed; see the server log", "M_UNKNOWN")
        return json.loads(outcome.report_json)

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
    def auditor(self) -> Auditor:
        """The audit scheduler."""
        return self._auditor


__all__ = ["ServershipModule"]
