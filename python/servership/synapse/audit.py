"""Discovery audits (MSC4358): after the server first joins a room, ask peers it already knows
whether they recognise that room. A peer that does but has no membership in the room is an
*unexplained participant*: a sign that we may be on a branch of the room others cannot see.

Bounded on purpose: at most ``audit.max_peers`` peers per room, requests spread over
``audit.spread_seconds``, at most ``MAX_PENDING`` audits queued, one audit at a time.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable

from . import _compat, _core, metrics
from .config import AuditConfig

logger = logging.getLogger("servership.synapse.audit")

#: Audits waiting to run; more than this and new rooms are skipped (and logged).
MAX_PENDING = 100
#: How many of our rooms we read members of to find peers to ask.
MAX_ROOMS_SCANNED = 500

UNSTABLE_PATH = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"


class Auditor:
    """Schedules and runs audits; one instance per module."""

    def __init__(
        self,
        api: Any,
        config: AuditConfig,
        max_tags_per_request: int,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._api = api
        self._config = config
        self._max_tags = max_tags_per_request
        self._rng = rng
        self._pending: set[str] = set()
        self._running = False

    @property
    def pending(self) -> frozenset[str]:
        """Rooms whose audit is scheduled but not finished."""
        return frozenset(self._pending)

    def schedule(self, room_id: str) -> bool:
        """Queue an audit of ``room_id`` after a random delay; False if skipped."""
        if room_id in self._pending:
            return False
        if len(self._pending) >= MAX_PENDING:
            logger.warning("servership audit queue full; not auditing %s", room_id)
            return False
        self._pending.add(room_id)
        delay_ms = int(self._rng() * self._config.spread_seconds * 1000)
        self._api.delayed_background_call(
            delay_ms, self.run, room_id, desc="servership_audit"
        )
        return True

    async def _known_peers(self) -> list[str]:
        rooms = await _compat.joined_rooms(self._api)
        peers: set[str] = set()
        for room in rooms[:MAX_ROOMS_SCANNED]:
            peers |= await _compat.hosts_in_room(self._api, room)
        peers.discard(self._api.server_name)
        return sorted(peers)

    async def run(self, room_id: str) -> _core.AuditOutcome | None:
        """Audit one room now. Never raises: failures are logged and counted."""
        try:
            return await self._run(room_id)
        except Exception:  # noqa: BLE001 - a background job must not die silently
            metrics.AUDITS.labels("failed").inc()
            logger.exception("servership audit of %s failed", room_id)
        finally:
            self._pending.discard(room_id)
        return None

    async def _run(self, room_id: str) -> _core.AuditOutcome:
        api = self._api
        room_servers = sorted(await _compat.hosts_in_room(api, room_id))
        known = await self._known_peers()
        peers = await api.defer_to_thread(
            _core.audit_plan, room_id, room_servers, known, self._config.max_peers
        )
        peers = list(peers)[: self._config.max_peers]
        logger.info(
            "servership audit of %s: asking %d peer(s): %s",
            room_id, len(peers), ", ".join(peers) or "none",
        )
        answers: list[tuple[str, str]] = []
        for peer in peers:
            answers.append((peer, await self._ask(peer, room_id)))
        membership = await _compat.membership_history(api, room_id)
        outcome = await api.defer_to_thread(
            _core.audit_report, room_id, api.server_name, membership, room_servers, answers
        )
        await self._report(outcome)
        return outcome

    async def _ask(self, peer: str, room_id: str) -> str:
        """Ask one peer about one room: ``_core.RECOGNISED``, ``NOT_RECOGNISED`` or
        ``FAILED_PREFIX + reason``. A peer's failure is data for the report, never a crash."""
        api = self._api
        bodies = await api.defer_to_thread(
            _core.audit_requests, api.server_name, peer, [room_id], self._max_tags
        )
        for body in bodies:
            try:
                answer = await _compat.federation_post_json(
                    api, peer, UNSTABLE_PATH, body, self._config.request_timeout_seconds * 1000
                )
            except Exception as exc:  # noqa: BLE001 - a peer's failure is data, not a crash
                status, reason = _compat.http_request_error_details(exc)
                metrics.AUDIT_REQUESTS.labels("error").inc()
                logger.info("servership audit: %s did not answer (%s %s)", peer, status, reason)
                return f"{_core.FAILED_PREFIX}{status or ''} {reason}".strip()
            try:
                recognised = await api.defer_to_thread(
                    _core.audit_read, peer, [room_id], body, answer
                )
            except _core.CoreError as exc:
                metrics.AUDIT_REQUESTS.labels("bad_answer").inc()
                logger.info("servership audit: %s answered badly: %s", peer, exc)
                return f"{_core.FAILED_PREFIX}{exc}"
            metrics.AUDIT_REQUESTS.labels("ok").inc()
            if room_id in recognised:
                return _core.RECOGNISED
        return _core.NOT_RECOGNISED

    async def _report(self, outcome: _core.AuditOutcome) -> None:
        metrics.AUDIT_LAST_UNEXPLAINED.set(len(outcome.unexplained))
        if not outcome.unexplained:
            metrics.AUDITS.labels("clean").inc()
            logger.info("servership audit of %s: %s", outcome.room_id, outcome.report_text)
            return
        metrics.AUDITS.labels("findings").inc()
        metrics.AUDIT_UNEXPLAINED.inc(len(outcome.unexplained))
        logger.warning(
            "servership audit of %s found unexplained participants %s: %s",
            outcome.room_id,
            ", ".join(outcome.unexplained),
            outcome.report_json,
        )
        admin = self._config.notify_admin
        if admin:
            try:
                sent = await _compat.send_server_notice(self._api, admin, outcome.report_text)
            except Exception:  # noqa: BLE001
                logger.exception("servership audit: could not notify %s", admin)
                return
            if not sent:
                logger.warning(
                    "servership audit: audit.notify_admin is set but server notices are not "
                    "configured (server_notices in homeserver.yaml)"
                )
