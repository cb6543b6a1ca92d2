"""Discovery audits (MSC4358): after the server first joins a room, ask peers it already knows
whether they recognise that room, and classify each "yes" against the room's membership
history (the core decides; see ``docs/discovery.md``).

Where the work happens, so that it survives restarts and workers:

* the audit is queued in servership's store, in the same transaction that records the room's
  participation tag (``TagStore.record_join(..., audit_due_ms=...)``): a new tag is never left
  without its audit, and a tag that already existed queues nothing;
* only the process that runs Synapse's background tasks records joins and drains the queue
  (``looping_background_call`` runs there only), so each audit runs once per homeserver;
* a restart finds the queue where it was left; an audit that fails is retried a few times, then
  recorded as ``failed``.

Bounds: at most ``audit.max_peers`` peers per audit, at most ``audit.max_audits_per_hour``
audits an hour, one audit at a time; peers are drawn at random, weighted by how many rooms we
share with them, so repeated audits do not always ask the same servers.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any, Callable

from . import _compat, _core, metrics
from .config import AuditConfig

logger = logging.getLogger("servership.synapse.audit")

#: How many of our rooms (most recently joined first) we read to find peers to ask.
MAX_ROOMS_SCANNED = 500
#: Audits taken from the queue per drain.
DRAIN_BATCH = 5
#: Attempts before an audit that keeps failing is recorded as failed.
MAX_ATTEMPTS = 5
#: Pause before retrying a failed audit, per attempt so far.
RETRY_AFTER_MS = 60_000

UNSTABLE_PATH = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"


class Auditor:
    """Runs the audit queue; one instance per module. Only the background-tasks process
    drains it (``start``), but any process may run an audit on demand (admin API)."""

    def __init__(
        self,
        api: Any,
        config: AuditConfig,
        queue: Callable[[], Any],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._api = api
        self._config = config
        self._queue = queue
        self._rng = rng
        self._draining = False

    def due_ms(self, now_ms: int) -> int:
        """When an audit queued now should run: after a random delay in the spread."""
        return now_ms + int(self._rng() * self._config.spread_seconds * 1000)

    def start(self) -> None:
        """Drain the queue every ``audit.poll_seconds`` (background-tasks process only)."""
        self._api.looping_background_call(
            self.drain, self._config.poll_seconds * 1000, desc="servership_audit_queue"
        )

    async def drain(self) -> int:
        """Run the audits that are due, within the hourly bound; returns how many ran."""
        if self._draining:
            return 0
        self._draining = True
        try:
            return await self._drain()
        finally:
            self._draining = False

    async def _drain(self) -> int:
        api = self._api
        queue = await api.defer_to_thread(self._queue)
        now = _compat.now_ms(api)
        done_last_hour = await api.defer_to_thread(
            _core.queue_finished_since, queue, now - 3_600_000
        )
        allowed = max(0, self._config.max_audits_per_hour - done_last_hour)
        metrics.AUDITS_PENDING.set(await api.defer_to_thread(_core.queue_pending_count, queue))
        if allowed == 0:
            return 0
        due = await api.defer_to_thread(_core.queue_due, queue, now, min(DRAIN_BATCH, allowed))
        ran = 0
        for room_id in due:
            outcome = await self.run(room_id)
            now = _compat.now_ms(api)
            if outcome is not None:
                await api.defer_to_thread(
                    _core.queue_finish, queue, room_id, now, outcome.verdict, outcome.report_json
                )
                ran += 1
            else:
                await api.defer_to_thread(
                    _core.queue_retry, queue, room_id, now, MAX_ATTEMPTS, RETRY_AFTER_MS
                )
        return ran

    async def _peers(self, room_id: str, history: list[tuple[str, str, str]],
                     visible: list[str]) -> list[str]:
        counts = await _compat.shared_room_counts(self._api, MAX_ROOMS_SCANNED, exclude=room_id)
        candidates = sorted(counts.items())
        seed = int(self._rng() * 2**63)
        return await self._api.defer_to_thread(
            _core.audit_choose, room_id, self._api.server_name, history, visible, candidates,
            self._config.max_peers, seed,
        )

    async def run(self, room_id: str) -> _core.AuditOutcome | None:
        """Audit one room now. Never raises: failures are logged and counted (None)."""
        try:
            return await self._run(room_id)
        except Exception:  # noqa: BLE001 - a background job must not die silently
            metrics.AUDITS.labels("failed").inc()
            logger.exception("servership audit of %s failed", room_id)
        return None

    async def _run(self, room_id: str) -> _core.AuditOutcome:
        api = self._api
        visible = sorted(await _compat.hosts_in_room(api, room_id))
        history = await _compat.membership_history(api, room_id)
        peers = await self._peers(room_id, history, visible)
        logger.info(
            "servership audit of %s: asking %d peer(s): %s",
            room_id, len(peers), ", ".join(peers) or "none",
        )
        answers: list[tuple[str, str]] = []
        for peer in peers:
            answers.append((peer, await self._ask(peer, room_id)))
        outcome = await api.defer_to_thread(
            _core.audit_report, room_id, api.server_name, history, visible, answers
        )
        await self._report(outcome)
        return outcome

    async def _ask(self, peer: str, room_id: str) -> str:
        """Ask one peer about one room: ``_core.RECOGNISED``, ``NOT_RECOGNISED`` or
        ``FAILED_PREFIX + reason``. A peer's failure is data for the report, never a crash."""
        api = self._api
        body = await api.defer_to_thread(_core.audit_request, peer, room_id)
        try:
            answer = await _compat.federation_post_json(
                api, peer, UNSTABLE_PATH, body, self._config.request_timeout_seconds * 1000
            )
        except Exception as exc:  # noqa: BLE001 - a peer's failure is data, not a crash
            status, reason = _compat.http_request_error_details(exc)
            metrics.AUDIT_REQUESTS.labels("error").inc()
            logger.info("servership audit: %s did not answer (%s %s)", peer, status, reason)
            return _core.FAILED_PREFIX + (f"{status} {reason}" if status else reason)
        try:
            recognised = await api.defer_to_thread(
                _core.audit_read, peer, room_id, json.dumps(answer).encode()
            )
        except _core.CoreError as exc:
            metrics.AUDIT_REQUESTS.labels("bad_answer").inc()
            logger.info("servership audit: %s answered badly: %s", peer, exc)
            return f"{_core.FAILED_PREFIX}{exc}"
        metrics.AUDIT_REQUESTS.labels("ok").inc()
        return _core.RECOGNISED if recognised else _core.NOT_RECOGNISED

    async def _report(self, outcome: _core.AuditOutcome) -> None:
        metrics.AUDITS.labels(outcome.verdict).inc()
        metrics.AUDIT_LAST_UNEXPLAINED.set(len(outcome.unexplained))
        metrics.AUDIT_UNEXPLAINED.inc(len(outcome.unexplained))
        metrics.AUDIT_REMOVED.inc(len(outcome.removed))
        if not outcome.unexplained and not outcome.removed:
            logger.info("servership audit of %s: %s", outcome.room_id, outcome.report_text)
            return
        if outcome.unexplained:
            logger.warning(
                "servership audit of %s found unexplained participants %s: %s",
                outcome.room_id, ", ".join(outcome.unexplained), outcome.report_json,
            )
        if outcome.removed:
            logger.warning(
                "servership audit of %s found servers removed by another server %s: %s",
                outcome.room_id, ", ".join(outcome.removed), outcome.report_json,
            )
        await self._notify(outcome)

    async def _notify(self, outcome: _core.AuditOutcome) -> None:
        admin = self._config.notify_admin
        if not admin:
            return
        try:
            sent = await _compat.send_server_notice(self._api, admin, outcome.report_text)
        except Exception:  # noqa: BLE001 - the log line above already carries the report
            logger.exception("servership audit: could not notify %s", admin)
            return
        if not sent:
            logger.warning(
                "servership audit: audit.notify_admin is set but server notices are not "
                "configured (server_notices in homeserver.yaml)"
            )
