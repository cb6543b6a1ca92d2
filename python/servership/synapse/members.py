"""Servers as members, enforced on every path a membership takes through this Synapse.

``ServershipModule`` hands these hooks to Synapse (see ``MembersHooks.register``):

- **make_join** (``check_event_allowed``, which Synapse runs on the join template it builds for a
  remote server): a refused join gets exactly the answer an unknown room gets,
  ``404 M_NOT_FOUND "Could not find room_version for <room>"``, so a gated room does not reveal
  itself;
- **send_join** (``check_event_for_spam``, which Synapse runs on the join event of a
  ``send_join`` request before it persists it or answers with the room's state): refused the
  same way, so a hand-built join never gets in nor gets the state;
- **/send** (``should_drop_federated_event``): a refused join sent by any resident server is
  dropped, and ``check_event_for_spam`` soft-fails one reaching us any other way (backfill,
  missing events);
- **local join rules** (``on_create_room``, ``check_event_allowed``): a join rule the room
  version's auth rules do not know (``peekable`` in every standard version) is refused with a
  clear error before anything is sent, because Synapse would accept it and then refuse every
  membership change in the room;
- **knocks** (``on_knock_edu``): recorded only for a room this server knows and gates, within
  the core's per-origin cap, never waiting more than about a second; everything else is dropped
  the same way. Expired knocks are purged on a schedule.

What is refused (``decide_remote_join``), for a join of a remote user into a room we are in:
a server pseudouser when ``pseudousers`` is off; with ``pseudousers`` on, one the operator's
deny lists name or the MSC1777 rule (``check_pseudouser_join`` over the room's current state)
refuses; and, in a gated room, a server that is not able to subscribe.

What a local check cannot do: keep a server out of the other resident servers' view of the
room. They may accept a join we refuse; only auth rules that every server runs can prevent
that: the members room version (``room_version.py``). In its rooms, with
``members_room_version`` on, these checks stand aside and the rules decide; ``peekable`` is then
a join rule the room knows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from . import _compat, _core, metrics

logger = logging.getLogger("servership.synapse.members")


@dataclass(frozen=True)
class JoinVerdict:
    """The outcome of ``decide_remote_join``: ``allowed``, and why (a stable code, a sentence)."""

    allowed: bool
    reason: str
    detail: str = ""


ALLOW = JoinVerdict(True, "allowed")


class MembersHooks:
    """The membership, join-rule and knock hooks of ``ServershipModule``.

    ``knock_store`` is a blocking callable returning the module's knock store (or ``None``); it is
    only ever called through ``api.defer_to_thread``.
    """

    def __init__(self, api: Any, config: Any, knock_store: Callable[[], Any],
                 rules: Any = None) -> None:
        self._api = api
        self._config = config
        self._knock_store = knock_store
        self._gated = frozenset(config.knocks.gated_rooms)
        #: ``room_version.MembersRules`` when ``members_room_version`` is on, else None.
        self._rules = rules

    def _rules_decide(self, room_id: str, state_events: Any = None) -> bool:
        """In a room with the members rules (and the setting on), the rules in event auth
        decide every join, on every resident server alike: a local refusal on top would only
        fork this server's view from the others'. So the local checks stand aside there.
        ``state_events`` (Synapse's state map, when the caller has it) settles a room the
        marked set has not met yet, from its create event."""
        if self._rules is None:
            return False
        if self._rules.applies(room_id):
            return True
        create = state_events.get(("m.room.create", "")) if state_events is not None else None
        return create is not None and self._rules.applies_with(room_id, create)

    def register(self) -> None:
        """Register the hooks with Synapse (call once, from the module's ``__init__``)."""
        api = self._api
        api.register_spam_checker_callbacks(
            check_event_for_spam=self.check_event_for_spam,
            should_drop_federated_event=self.should_drop_federated_event,
        )
        api.register_third_party_rules_callbacks(on_create_room=self.on_create_room)
        if self._config.knocks.enabled and api.should_run_background_tasks():
            api.looping_background_call(
                self.purge_knocks,
                self._config.knocks.purge_interval_seconds * 1000,
                desc="servership_purge_knocks",
            )

    # -- deciding ---------------------------------------------------------------------------------

    async def decide_remote_join(
        self, room_id: str, target: str, state: list[dict]
    ) -> JoinVerdict:
        """Whether the remote user ``target`` may join ``room_id``, whose current state is
        ``state`` (plain event dicts). Rooms we hold no state for are not ours to judge."""
        server = _core.user_server(target)
        if server is None:
            return JoinVerdict(False, "not_a_user_id", f"{target!r} is not a user ID")
        if not any(e.get("type") == "m.room.create" for e in state):
            return ALLOW
        if _core.is_server_pseudouser(target):
            if not self._config.pseudousers:
                return JoinVerdict(
                    False, "pseudousers_disabled", "server pseudousers are off (pseudousers: false)"
                )
            allowed, reason, detail = await self._api.defer_to_thread(
                _core.check_pseudouser_join,
                state,
                target,
                room_id,
                list(self._config.denied_servers),
                list(self._config.denied_rooms),
            )
            if not allowed:
                return JoinVerdict(False, reason, detail)
        if room_id in self._gated:
            allowed, reason = await self._api.defer_to_thread(
                _core.join_allowed, state, server, True
            )
            metrics.GATED_JOINS.labels("allowed" if allowed else "refused").inc()
            if not allowed:
                return JoinVerdict(False, reason, f"{room_id} is gated and {server} may not join")
        return ALLOW

    async def _current_state(self, room_id: str, target: str) -> list[dict] | None:
        """What ``decide_remote_join`` needs of the room's current state for ``target``: all of
        it for a pseudouser that the MSC1777 rule judges, else the create event and the
        target server's ``m.server.is_able_to_subscribe``. ``None`` while the room has partial
        state (we are joining it ourselves: not ours to judge yet)."""
        if _core.is_server_pseudouser(target) and self._config.pseudousers:
            return await _compat.current_state(self._api, room_id)
        server = _core.user_server(target) or ""
        return await _compat.current_state(
            self._api,
            room_id,
            [("m.room.create", ""), ("m.server.is_able_to_subscribe", server)],
        )

    async def _judge(self, room_id: str, target: str) -> JoinVerdict:
        """``decide_remote_join`` on the current state. Only pseudousers and joins into gated
        rooms can be refused, so only they cost a state read; when the check itself fails they
        are refused (fail closed), and the failure is logged."""
        if _core.user_server(target) is None:
            return JoinVerdict(False, "not_a_user_id", f"{target!r} is not a user ID")
        if not _core.is_server_pseudouser(target) and room_id not in self._gated:
            return ALLOW
        if self._rules_decide(room_id):
            return ALLOW
        try:
            state = await self._current_state(room_id, target)
            if state is None:
                return ALLOW
            return await self.decide_remote_join(room_id, target, state)
        except Exception as exc:  # noqa: BLE001 - any failure of the check keeps the door shut
            logger.error("servership: checking the join of %s to %s failed: %r", target,
                         room_id, exc)
            return JoinVerdict(False, "check_failed", str(exc))

    def _remote_join(self, event: Any) -> str | None:
        """The joining user of a remote join event, or None for anything else."""
        if event.type != "m.room.member" or event.membership != "join":
            return None
        target = event.state_key
        if not isinstance(target, str) or self._api.is_mine(target):
            return None
        return target

    def _refused(self, path: str, room_id: str, target: str, verdict: JoinVerdict) -> None:
        metrics.JOINS_REFUSED.labels(path, verdict.reason).inc()
        logger.info(
            "servership: refused the join of %s to %s at %s (%s: %s)",
            target, room_id, path, verdict.reason, verdict.detail,
        )

    # -- Synapse callbacks ------------------------------------------------------------------------

    async def check_event_allowed(self, event: Any, state_events: Any) -> tuple[bool, None]:
        """Runs on every event this server builds: refuses join rules the room version does not
        know, and remote joins (the ``make_join`` templates) ``decide_remote_join`` refuses."""
        if event.type == "m.room.join_rules" and event.state_key == "":
            # Synapse's event content is an immutable mapping, not a dict.
            self._check_join_rule(
                event.room_version.identifier, _compat.plain_json(event.content),
                self._rules_decide(event.room_id, state_events),
            )
            return True, None
        target = self._remote_join(event)
        if target is None or self._rules_decide(event.room_id, state_events):
            return True, None
        state = [_compat.plain_json(e.get_dict()) for e in state_events.values()]
        try:
            verdict = await self.decide_remote_join(event.room_id, target, state)
        except _core.CoreError as exc:
            # A failed check keeps the door shut: fail closed.
            verdict = JoinVerdict(False, "check_failed", str(exc))
        if not verdict.allowed:
            self._refused("make_join", event.room_id, target, verdict)
            raise _compat.unknown_room_error(event.room_id)
        return True, None

    async def check_event_for_spam(self, event: Any) -> Any:
        """Runs on federated PDUs before they are persisted, the join of a ``send_join``
        included: a refused ``send_join`` is answered as an unknown room; a refused join that
        arrives any other way is soft-failed."""
        target = self._remote_join(event)
        if target is None:
            return _compat.NOT_SPAM
        verdict = await self._judge(event.room_id, target)
        if verdict.allowed:
            return _compat.NOT_SPAM
        if _compat.in_send_join_request(event.room_id):
            self._refused("send_join", event.room_id, target, verdict)
            raise _compat.unknown_room_error(event.room_id)
        self._refused("federated", event.room_id, target, verdict)
        return _compat.soft_fail_code()

    async def should_drop_federated_event(self, event: Any) -> bool:
        """Runs on every PDU of a ``/send`` transaction: drops refused joins."""
        target = self._remote_join(event)
        if target is None:
            return False
        verdict = await self._judge(event.room_id, target)
        if verdict.allowed:
            return False
        self._refused("send", event.room_id, target, verdict)
        return True

    async def on_create_room(
        self, requester: Any, request_content: dict, is_requester_admin: bool
    ) -> None:
        """Refuses a ``createRoom`` whose ``initial_state`` sets a join rule its room version
        does not know, before the room exists. With ``members_room_version`` on, a request
        whose ``creation_content`` carries the marker asks for the members rules: ``peekable``
        is then known, and the marker on any version but 12 is refused (it would be ignored)."""
        version = str(
            request_content.get("room_version") or _compat.default_room_version(self._api)
        )
        marked = self._marked_request(version, request_content.get("creation_content"))
        for entry in request_content.get("initial_state") or []:
            if (
                isinstance(entry, dict)
                and entry.get("type") == "m.room.join_rules"
                and entry.get("state_key", "") == ""
            ):
                self._check_join_rule(version, entry.get("content"), marked)

    def _marked_request(self, version: str, creation_content: Any) -> bool:
        """Whether a ``createRoom`` asks for the members rules (setting on only)."""
        if self._rules is None or not isinstance(creation_content, dict):
            return False
        marker = _core.members_marker()
        if marker not in creation_content:
            return False
        create = {"type": "m.room.create", "state_key": "", "sender": "@a:a",
                  "content": {**creation_content, "room_version": version}}
        if self._rules.is_marked_create(create):
            return True
        raise _compat.matrix_error(
            400,
            f"creation_content.{marker} asks for the members room version, which needs "
            f"room_version 12 and the value {_core.members_room_version()!r} exactly (got "
            f"room_version {version} and {creation_content[marker]!r}): the room would be a "
            "plain room",
            "M_INVALID_PARAM",
        )

    def _check_join_rule(self, room_version: str, content: Any, members_rules: bool) -> None:
        rule = content.get("join_rule") if isinstance(content, dict) else None
        if rule is None or _compat.join_rule_known(room_version, rule):
            return
        if members_rules and rule == "peekable":
            return
        metrics.JOIN_RULES_REFUSED.inc()
        logger.info("servership: refused join rule %r in room version %s", rule, room_version)
        raise _compat.matrix_error(
            400,
            f"the join rule {rule!r} is unknown to the auth rules of room version "
            f"{room_version}: Synapse would accept it and then refuse every join and membership "
            "change in the room. Use a join rule this room version knows (public, invite, "
            "knock, restricted, ...); 'peekable' needs the experimental room version that "
            "defines it.",
            "M_INVALID_PARAM",
        )

    # -- knocks -----------------------------------------------------------------------------------

    async def on_knock_edu(self, origin: str, content: Any) -> None:
        """Record an ``m.server.knock`` EDU for a room we know and gate. EDUs get no answer:
        unknown rooms, rooms that are not gated, invalid EDUs and knocks over the origin's cap
        are dropped alike (only the metric and the log tell them apart)."""
        if not isinstance(content, dict):
            metrics.KNOCKS_RECEIVED.labels("invalid").inc()
            return
        try:
            room_id = await self._api.defer_to_thread(_core.parse_knock, content)
        except _core.CoreError as exc:
            metrics.KNOCKS_RECEIVED.labels("invalid").inc()
            logger.info("servership: dropped knock from %s: %s", origin, exc)
            return
        if not await self._gated_here(room_id):
            metrics.KNOCKS_RECEIVED.labels("dropped").inc()
            logger.info("servership: dropped knock from %s (not a gated room here)", origin)
            return
        try:
            store = await self._api.defer_to_thread(self._knock_store)
            await self._api.defer_to_thread(
                _core.record_knock, store, room_id, origin, _compat.now_ms(self._api)
            )
        except _core.CoreError as exc:
            outcome = "over_cap" if exc.errcode == "M_LIMIT_EXCEEDED" else "failed"
            metrics.KNOCKS_RECEIVED.labels(outcome).inc()
            logger.info("servership: dropped knock from %s on %s: %s", origin, room_id, exc)
            return
        metrics.KNOCKS_RECEIVED.labels("recorded").inc()
        logger.info("servership: %s knocked on %s", origin, room_id)

    async def _gated_here(self, room_id: str) -> bool:
        """Whether we know ``room_id`` and gate it: listed in ``gated_rooms``, or, with the
        members rules on, a room of that version whose create event says
        ``org.servership.gated: true`` (gated for every resident)."""
        state = await _compat.current_state(self._api, room_id, [("m.room.create", "")])
        create = next((e for e in state or [] if e.get("type") == "m.room.create"), None)
        if create is None:
            return False
        if room_id in self._gated:
            return True
        if self._rules is None or not self._rules.applies_with(room_id, create):
            return False
        content = create.get("content")
        return isinstance(content, dict) and content.get(_core.gated_flag()) is True

    async def purge_knocks(self) -> int:
        """Delete expired knocks (scheduled every ``knocks.purge_interval_seconds``)."""
        try:
            store = await self._api.defer_to_thread(self._knock_store)
            if store is None:
                return 0
            purged = await self._api.defer_to_thread(
                _core.purge_knocks, store, _compat.now_ms(self._api)
            )
        except _core.CoreError as exc:
            metrics.KNOCKS_PURGED.labels("failed").inc()
            logger.warning("servership: purging expired knocks failed: %s", exc)
            return 0
        metrics.KNOCKS_PURGED.labels("purged").inc(purged)
        return int(purged)


__all__ = ["JoinVerdict", "MembersHooks"]
