"""The members room version (``org.servership.v12.members.1``) inside Synapse's own event auth.

Synapse cannot be taught a new room version identifier (its ``RoomVersion`` is a Rust class
Python cannot construct), so a room asks for the rules with the marker in a v12 create event
(``docs/protocol.md``, "The members room version"). With ``members_room_version.enabled``,
``_compat.install_members_auth`` routes two functions of Synapse's event auth through this
class, for every path an event takes (local events, federation events, ``send_join``, state
resolution):

- ``check_state_dependent_auth_rules(event, auth_events)``: in a marked room, Synapse's own
  rules run with ``peekable`` read as ``public`` (rule a), then the core's
  ``check_members_rules`` on the same auth events; a deny is an ``AuthError``, as any auth
  failure. A marked create event is checked by the core too (Synapse skips create events).
- ``auth_types_for_event(room_version, event)``: in a marked room, the core's additions to the
  selection (``members_auth_additions``: the joining server's ``m.server.is_able_to_subscribe``,
  a pseudouser's ``via_user`` membership). This function is synchronous and gets no create
  event, so it reads the set of marked rooms kept here.

Every rule is the core's; this file only decides which rooms the rules apply to and hands
Synapse's events over. An unmarked room costs one set lookup per call (after its first check).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from . import _compat, _core

logger = logging.getLogger("servership.synapse.room_version")

#: Unmarked v12 rooms remembered; past this many the memory is dropped and rebuilt as rooms are
#: seen again (a flood of made-up rooms must not grow it without end).
MAX_UNMARKED = 100_000
_CREATE = ("m.room.create", "")
_JOIN_RULES = ("m.room.join_rules", "")


class MembersRules:
    """Which rooms carry the members rules, and the two hooks of Synapse's event auth.

    A room is marked for good: in v12 the room ID is the create event's hash, so its create
    content (and the marker in it) cannot change. Rooms join the set when a marked create event
    goes through event auth (a room created here, or the state of a room we join), and at
    start-up from Synapse's store (``fill_from_store``).
    """

    def __init__(self) -> None:
        self._marked: set[str] = set()
        self._unmarked: set[str] = set()

    # -- which rooms ----------------------------------------------------------------------------

    def applies(self, room_id: str) -> bool:
        """Whether ``room_id`` is known to carry the members rules."""
        return room_id in self._marked

    def applies_with(self, room_id: str, create: Any) -> bool:
        """``applies``, settled from ``create`` (the room's create event) if not known yet."""
        if room_id in self._marked:
            return True
        if room_id in self._unmarked:
            return False
        return self._mark(room_id, create)

    def marked_rooms(self) -> frozenset[str]:
        return frozenset(self._marked)

    def _mark(self, room_id: str, create: Any) -> bool:
        """Remember whether the room of ``create`` (a Synapse event or dict) is marked."""
        pdu = create if isinstance(create, dict) else _compat.plain_json(create.get_pdu_json())
        try:
            marked = bool(_core.members_rules_apply(pdu))
        except Exception:  # noqa: BLE001 - a create event the core cannot read has no rules
            marked = False
        if marked:
            self._marked.add(room_id)
            self._unmarked.discard(room_id)
        else:
            self._remember_unmarked(room_id)
        return marked

    def _remember_unmarked(self, room_id: str) -> None:
        if room_id in self._marked:  # marked for good (Synapse knows one version per room)
            return
        if len(self._unmarked) >= MAX_UNMARKED:
            self._unmarked.clear()
        self._unmarked.add(room_id)

    def is_marked_create(self, create: Any) -> bool:
        """Whether a create event (dict) carries the marker exactly (``createRoom``'s check)."""
        try:
            return bool(_core.members_rules_apply(create))
        except Exception:  # noqa: BLE001 - unknown version or a malformed create: no rules
            return False

    async def fill_from_store(self, api: Any) -> int:
        """Mark every room of Synapse's store whose create event carries the marker; the
        number marked. Runs at start-up on every process (each one runs event auth)."""
        try:
            rows = await _compat.marked_create_events(api)
        except Exception as exc:  # noqa: BLE001 - the live path still marks rooms it meets
            logger.error("servership: reading the rooms with the members rules from Synapse's "
                         "store failed (%r); rooms are marked as their events are checked", exc)
            return 0
        count = sum(1 for room_id, create in rows if self._mark(room_id, create))
        logger.info("servership: the members rules apply in %d rooms of the store", count)
        return count

    def _room_marked(self, event: Any, auth_events: Iterable[Any]) -> bool:
        room_id = event.room_id
        if room_id in self._unmarked:
            return False
        if room_id in self._marked:
            return True
        for auth in auth_events:
            if (auth.type, auth.get_state_key()) == _CREATE:
                return self._mark(room_id, auth)
        return False  # no create event: Synapse's own check refuses the event

    # -- the hooks ------------------------------------------------------------------------------

    def check(self, original: Any, event: Any, auth_events: Iterable[Any]) -> None:
        """``check_state_dependent_auth_rules`` with the members rules in marked rooms."""
        room_id = event.room_id
        if room_id in self._unmarked:  # the common case: one set lookup
            original(event, auth_events)
            return
        if event.room_version.identifier != "12":
            # The marker means nothing outside v12 (the room's version never changes).
            self._remember_unmarked(room_id)
            original(event, auth_events)
            return
        if event.type == "m.room.create" and event.get_state_key() == "":
            original(event, auth_events)
            if self._mark(room_id, event):
                self._decide(event, [])
            return
        auth_events = list(auth_events)
        if not self._room_marked(event, auth_events):
            original(event, auth_events)
            return
        # Rule a: Synapse's membership rules read `peekable` as `public`.
        seen = auth_events
        if event.type == "m.room.member":
            seen = [self._public_if_peekable(e) for e in auth_events]
        original(event, seen)
        self._decide(event, auth_events)

    @staticmethod
    def _public_if_peekable(event: Any) -> Any:
        if (event.type, event.get_state_key()) != _JOIN_RULES:
            return event
        if event.content.get("join_rule") != "peekable":
            return event
        content = _compat.plain_json(event.content)
        content["join_rule"] = "public"
        return _compat.event_with_content(event, content)

    def _decide(self, event: Any, auth_events: list[Any]) -> None:
        """The core's verdict; a deny (or a check that cannot run) refuses the event."""
        try:
            decision = self._verdict(event, auth_events)
        except Exception as exc:  # noqa: BLE001 - fail closed
            logger.info("servership: the members rules could not check %s in %s: %r",
                        event.event_id, event.room_id, exc)
            raise _compat.auth_error(f"servership members rules: {exc}") from None
        if decision.allowed:
            return
        logger.info("servership: the members rules refused %s (%s of %s) in %s: %s: %s",
                    event.event_id, event.type, event.get_state_key(), event.room_id,
                    decision.reason, decision.detail)
        raise _compat.auth_error(
            f"servership members rules: {decision.reason}: {decision.detail}")

    @staticmethod
    def _verdict(event: Any, auth_events: list[Any]) -> Any:
        """The core's ``Decision``. Synapse's ``get_pdu_json()`` gives plain dicts (1.140 and
        1.163 alike), which the core takes as they are; anything else it refuses is copied
        into plain JSON first (the slow path: most of a marked room's cost)."""
        try:
            return _core.check_members_rules(
                event.get_pdu_json(), [e.get_pdu_json() for e in auth_events], "12")
        except (_core.CoreError, TypeError):
            return _core.check_members_rules(
                _compat.plain_json(event.get_pdu_json()),
                [_compat.plain_json(e.get_pdu_json()) for e in auth_events],
                "12",
            )

    def select(self, original: Any, room_version: Any, event: Any) -> Any:
        """``auth_types_for_event`` with the members rules' additions in marked rooms."""
        types = original(room_version, event)
        if event.room_id not in self._marked or room_version.identifier != "12":
            return types
        # An event or an EventBuilder: both say is_state(); a builder's state_key raises
        # when it has none.
        state_key = event.state_key if event.is_state() else None
        pdu: dict[str, Any] = {"type": event.type, "sender": event.sender,
                               "content": _compat.plain_json(event.content)}
        if state_key is not None:
            pdu["state_key"] = state_key
        try:
            extra = _core.members_auth_additions(pdu)
        except Exception:  # noqa: BLE001 - malformed: the auth check refuses the event
            return types
        return set(types) | {(t, k) for t, k in extra}


__all__ = ["MembersRules", "MAX_UNMARKED"]
