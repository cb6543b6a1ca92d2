"""Peeking (MSC1777) for local users, through this server's pseudouser ``@:server``.

A local user asks to peek a remote room (``POST /_synapse/client/servership/v1/peek``
``{"room_id", "via"}``). The core's ``PeekTracker`` decides (the operator's deny lists, the lure
guard: only a local user's request, never a remote invite, makes us join); on ``join`` the
server joins the room as ``@:server`` through the ``via`` servers, and the residents' event auth
(the members room version: ``peekable``) admits or refuses it. The user then reads the room's
recent events and a state summary (``GET ...?room_id=``) while the session lasts; it ends after
``peeking.session_seconds`` unless renewed (``POST`` again), or at once (``DELETE ...?room_id=``).
When no local user peeks or is joined any more, the tracker says ``leave`` and the pseudouser
leaves; a scheduled check on the background-tasks process ends expired sessions.

Only rooms of the members room version are peeked: a join that lands in any other room is
undone at once (there, MSC1777's rule is no auth rule, and a pseudouser with no user of its
server must not be in it). Sessions live in memory, on the background-tasks process (the only
one that serves the endpoint); after a restart, rooms the pseudouser is still in are kept for
one session length, so peekers can renew, then left.

Rules are the core's (``servership.PeekTracker``, ``OperatorPolicy``, ``room_display_name``,
``visible_members``); this file is the endpoint, the sessions and the schedule.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from . import _compat, _core, metrics

logger = logging.getLogger("servership.synapse.peeking")

PEEK_PATH = "/_synapse/client/servership/v1/peek"
#: Events one read returns when the request names no ``limit``.
DEFAULT_EVENTS = 20
#: Longest room ID accepted (Matrix caps event fields at 255 bytes).
MAX_ROOM_ID = 255
#: State summarised for a peeker.
_SUMMARY_TYPES = ("m.room.create", "m.room.name", "m.room.topic", "m.room.join_rules",
                  "m.room.canonical_alias", "m.room.member")


def _servership() -> Any:
    import servership

    return servership


def _bad(message: str, errcode: str = "M_INVALID_PARAM", status: int = 400) -> Exception:
    return _compat.matrix_error(status, message, errcode)


class PeekService:
    """The peek endpoint, the peek sessions and the scheduled leave of idle rooms.

    ``rules`` is ``room_version.MembersRules`` (which rooms carry the members rules).
    """

    def __init__(self, api: Any, config: Any, rules: Any) -> None:
        s = _servership()
        self._api = api
        self._config = config.peeking
        self._rules = rules
        self._server: str = api.server_name
        self._pseudouser = f"@:{self._server}"
        self._policy = s.OperatorPolicy(list(config.denied_servers), list(config.denied_rooms))
        self._tracker = s.PeekTracker(self._server, self._policy)
        #: (room ID, user ID) -> when the session ends (Synapse's clock, ms).
        self._sessions: dict[tuple[str, str], int] = {}
        #: Rooms our pseudouser joined for peekers (or was in at start-up) -> when to look at
        #: them again with no session (ms; 0: at the next check). Only these are ever left:
        #: a pseudouser join made for another purpose is not the tracker's to undo.
        self._peek_rooms: dict[str, int] = {}

    # -- wiring -----------------------------------------------------------------------------------

    def register(self) -> None:
        """Serve the endpoint and schedule the check (background-tasks process only)."""
        _compat.register_user_json_resource(
            self._api, PEEK_PATH,
            {"POST": self.handle_start, "GET": self.handle_read, "DELETE": self.handle_end},
        )
        self._api.looping_background_call(
            self.check, self._config.check_interval_seconds * 1000, desc="servership_peek_check"
        )
        self._api.delayed_background_call(0, self.rebuild, desc="servership_peek_rebuild")

    @property
    def pseudouser(self) -> str:
        return self._pseudouser

    def _now(self) -> int:
        return _compat.now_ms(self._api)

    def _session_ms(self) -> int:
        return self._config.session_seconds * 1000

    # -- validation -------------------------------------------------------------------------------

    def _room_id(self, value: Any) -> str:
        if not isinstance(value, str) or not value or len(value.encode()) > MAX_ROOM_ID:
            raise _bad(f"room_id must be a room ID of at most {MAX_ROOM_ID} bytes")
        try:
            _servership().RoomId.parse(value)
        except Exception as exc:  # noqa: BLE001 - the core's parse error says what is wrong
            raise _bad(f"room_id is not a room ID: {exc}") from exc
        return value

    def _via(self, value: Any) -> list[str]:
        """The servers to join through: valid names, not ours, none the operator denies."""
        if not isinstance(value, list) or not value:
            raise _bad("via must be a non-empty list of server names (the room's residents)")
        if len(value) > self._config.max_via:
            raise _bad(f"via names {len(value)} servers; at most {self._config.max_via}",
                       "M_TOO_LARGE", 413)
        ours = _core.normalise_origin(self._server)
        servers: list[str] = []
        for index, name in enumerate(value):
            if not isinstance(name, str) or len(name) > MAX_ROOM_ID:
                raise _bad(f"via[{index}] must be a server name")
            try:
                _servership().ServerName.parse(name)
            except Exception as exc:  # noqa: BLE001
                raise _bad(f"via[{index}] is not a server name: {exc}") from exc
            if _core.normalise_origin(name) == ours:
                raise _bad(f"via[{index}] is this server: name the room's remote residents")
            denied = self._policy.server_denied(name)
            if denied is not None:
                metrics.PEEK_REQUESTS.labels(denied.reason).inc()
                raise _bad(f"via[{index}]: {denied.detail}", "M_FORBIDDEN", 403)
            if name not in servers:
                servers.append(name)
        return servers

    def _live(self, room_id: str, user_id: str) -> int:
        """Milliseconds left in the user's session for the room (404 if none)."""
        left = self._sessions.get((room_id, user_id), 0) - self._now()
        if left <= 0:
            raise _bad(f"no open peek session for {room_id} (open one with POST {PEEK_PATH})",
                       "M_NOT_FOUND", 404)
        return left

    def _check_caps(self, room_id: str, user_id: str) -> None:
        """Bound what one user, and all users together, can make this server do."""
        now = self._now()
        mine = sum(1 for (r, u), end in self._sessions.items() if u == user_id and end > now)
        if mine >= self._config.max_sessions_per_user:
            metrics.PEEK_REQUESTS.labels("too_many_sessions").inc()
            raise _bad(f"{user_id} already has {mine} peek sessions (at most "
                       f"{self._config.max_sessions_per_user}); end one first",
                       "M_LIMIT_EXCEEDED", 429)
        if room_id not in self._peek_rooms and len(self._peek_rooms) >= self._config.max_rooms:
            metrics.PEEK_REQUESTS.labels("too_many_rooms").inc()
            raise _bad(f"this server already peeks into {len(self._peek_rooms)} rooms (at most "
                       f"{self._config.max_rooms})", "M_LIMIT_EXCEEDED", 429)

    # -- the endpoint -----------------------------------------------------------------------------

    async def handle_start(self, user_id: str, query: dict, body: dict) -> tuple[int, dict]:
        """``POST {"room_id", "via": [...]}``: open (or renew) a peek session."""
        room_id = self._room_id(body.get("room_id"))
        via = self._via(body.get("via"))
        key = (room_id, user_id)
        if self._sessions.get(key, 0) > self._now():
            self._sessions[key] = self._now() + self._session_ms()
            metrics.PEEK_REQUESTS.labels("renewed").inc()
            return 200, await self._answer(room_id, user_id, renewed=True)
        self._check_caps(room_id, user_id)
        # The resident's event auth decides whether the room lets a pseudouser in (peekable):
        # we cannot see its join rule before joining, so the tracker is told it may be.
        advice = self._tracker.request_peek(room_id, user_id, True)
        if advice.action == "refuse":
            metrics.PEEK_REQUESTS.labels(advice.decision.reason).inc()
            raise _bad(advice.decision.detail, "M_FORBIDDEN", 403)
        if advice.action == "join":
            # Counted before the join is sent, so that concurrent requests meet the caps.
            self._peek_rooms[room_id] = self._now() + self._session_ms()
            self._sessions[key] = self._now() + self._session_ms()
            try:
                await _compat.set_own_membership(
                    self._api, self._pseudouser, room_id, "join", via
                )
            except Exception as exc:  # noqa: BLE001 - every failure is the resident's answer
                self._tracker.join_failed(room_id)
                self._peek_rooms.pop(room_id, None)
                # join_failed dropped every peeker of the room: their sessions go too.
                for other in [k for k in self._sessions if k[0] == room_id]:
                    del self._sessions[other]
                status, errcode, message = _compat.error_details(exc)
                metrics.PEEK_REQUESTS.labels("join_failed").inc()
                logger.info("servership: %s could not join %s for %s through %s: %s %s %s",
                            self._pseudouser, room_id, user_id, via, status, errcode, message)
                raise _bad(f"{self._pseudouser} could not join {room_id} through "
                           f"{', '.join(via)}: {message}",
                           errcode, status if 400 <= status < 500 else 502) from exc
            self._tracker.membership_changed(room_id, self._pseudouser, "join")
            problem = await self._unfit(room_id)
            if problem is not None:
                for other in [k for k in self._sessions if k[0] == room_id]:
                    del self._sessions[other]
                    self._tracker.end_peek(room_id, other[1])
                await self._leave(room_id)
                metrics.PEEK_REQUESTS.labels(problem[0]).inc()
                raise _bad(problem[1], problem[2], problem[3])
            logger.info("servership: %s joined %s for %s's peek", self._pseudouser, room_id,
                        user_id)
        self._sessions[key] = self._now() + self._session_ms()
        metrics.PEEK_SESSIONS.set(len(self._sessions))
        metrics.PEEK_REQUESTS.labels(
            "joined" if advice.action == "join" else advice.decision.reason
        ).inc()
        return 200, await self._answer(room_id, user_id, renewed=False)

    async def _unfit(self, room_id: str) -> tuple[str, str, str, int] | None:
        """Why a room just joined must be left again: not of the members room version, or
        created by a server the operator denies."""
        if self._rules is None or not self._rules.applies(room_id):
            return ("not_members_room_version",
                    f"{room_id} is not a room of the members room version: peeking joins only "
                    "those (elsewhere a pseudouser needs a user of its server in the room)",
                    "M_INCOMPATIBLE_ROOM_VERSION", 400)
        state = await _compat.current_state(self._api, room_id, [("m.room.create", "")]) or []
        for event in state:
            creator = _core.user_server(str(event.get("sender", ""))) or ""
            denied = self._policy.server_denied(creator) if creator else None
            if denied is not None:
                return (denied.reason, f"{room_id} was created by {creator}: {denied.detail}",
                        "M_FORBIDDEN", 403)
        return None

    async def handle_read(self, user_id: str, query: dict, body: dict) -> tuple[int, dict]:
        """``GET ?room_id=...&limit=N``: the room's newest events (newest first) and a state
        summary, as our pseudouser sees them, within an open session (reading does not renew)."""
        room_id = self._room_id(query.get("room_id"))
        raw_limit = query.get("limit", str(DEFAULT_EVENTS))
        # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
        if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not (
            1 <= int(raw_limit) <= self._config.max_events
        ):
            raise _bad(f"limit must be a whole number from 1 to {self._config.max_events}")
        self._live(room_id, user_id)
        events = await _compat.recent_events(self._api, room_id, self._pseudouser,
                                             int(raw_limit))
        answer = await self._answer(room_id, user_id, renewed=False)
        answer["events"] = events
        return 200, answer

    async def handle_end(self, user_id: str, query: dict, body: dict) -> tuple[int, dict]:
        """``DELETE ?room_id=...``: end the session now; the pseudouser leaves if no one else
        of ours peeks or is joined."""
        room_id = self._room_id(query.get("room_id"))
        self._live(room_id, user_id)
        left = await self._end(room_id, user_id)
        return 200, {"room_id": room_id, "ended": True, "left": left}

    async def _answer(self, room_id: str, user_id: str, renewed: bool) -> dict:
        s = _servership()
        left = self._sessions.get((room_id, user_id), 0) - self._now()
        answer: dict[str, Any] = {
            "room_id": room_id,
            "expires_in_ms": max(0, left),
            "renewed": renewed,
            "joined": bool(self._tracker.pseudouser_joined(room_id)),
            "as": self._pseudouser,
        }
        state = await _compat.current_state(self._api, room_id, list(
            (t, None) for t in _SUMMARY_TYPES))
        if state is None:
            # Synapse is still fetching the room's full state (a partial-state join).
            answer["state"] = {"partial": True}
            return answer
        by_key = {(e.get("type"), e.get("state_key")): e for e in state}

        def content(etype: str) -> dict:
            value = by_key.get((etype, ""), {}).get("content")
            return value if isinstance(value, dict) else {}

        members = await self._api.defer_to_thread(s.visible_members, state)
        # The spec's name algorithm counts the viewer among the members ("Empty Room" when
        # alone): name the room as the peeker would see it once joined. A real membership of
        # theirs comes later in the list and wins.
        viewer = {"type": "m.room.member", "state_key": user_id, "sender": user_id,
                  "content": {"membership": "join"}}
        answer["state"] = {
            "name": await self._api.defer_to_thread(s.room_display_name, [viewer, *state],
                                                    user_id),
            "topic": content("m.room.topic").get("topic"),
            "join_rule": content("m.room.join_rules").get("join_rule"),
            "members_room_version": bool(self._rules is not None
                                         and self._rules.applies(room_id)),
            "joined_members": sum(1 for m in members if m.get("membership") == "join"),
        }
        return answer

    # -- sessions ending, leaving -----------------------------------------------------------------

    async def _end(self, room_id: str, user_id: str) -> bool:
        self._sessions.pop((room_id, user_id), None)
        metrics.PEEK_SESSIONS.set(len(self._sessions))
        advice = self._tracker.end_peek(room_id, user_id)
        if advice.action == "leave" and room_id in self._peek_rooms:
            return await self._leave(room_id)
        return False

    async def _leave(self, room_id: str) -> bool:
        """Our pseudouser leaves (it sends its own leave, as the members rules demand). On
        failure the room is looked at again at the next check."""
        try:
            await _compat.set_own_membership(self._api, self._pseudouser, room_id, "leave")
        except Exception as exc:  # noqa: BLE001 - retried at the next check
            self._peek_rooms[room_id] = 0
            metrics.PEEK_LEAVES.labels("failed").inc()
            logger.warning("servership: %s could not leave %s: %s", self._pseudouser, room_id,
                           _compat.error_details(exc))
            return False
        self._tracker.membership_changed(room_id, self._pseudouser, "leave")
        self._peek_rooms.pop(room_id, None)
        metrics.PEEK_LEAVES.labels("left").inc()
        logger.info("servership: %s left %s (no local peeker or member left)",
                    self._pseudouser, room_id)
        return True

    async def check(self) -> int:
        """End expired sessions; leave peeked rooms no local user peeks or is joined to.
        Returns how many rooms were left."""
        now = self._now()
        left = 0
        for (room_id, user_id), end in list(self._sessions.items()):
            if end <= now and await self._end(room_id, user_id):
                left += 1
        for room_id, review in list(self._peek_rooms.items()):
            if review > now or any(r == room_id for (r, _u) in self._sessions):
                continue
            # No session for the room any more (or never, after a restart): the tracker
            # re-examines it (nobody by that name peeks, so only its members count).
            advice = self._tracker.end_peek(room_id, self._pseudouser)
            if advice.action == "leave":
                left += int(await self._leave(room_id))
            elif self._tracker.pseudouser_joined(room_id):
                self._peek_rooms[room_id] = now + self._session_ms()
            else:
                self._peek_rooms.pop(room_id, None)
        return left

    async def rebuild(self) -> int:
        """At start-up: rooms our pseudouser is joined to, with their local members, go back
        into the tracker; they are kept one session length (peekers renew), then left if no
        one of ours is in them."""
        rooms = await _compat.rooms_joined_by(self._api, self._pseudouser)
        review = self._now() + self._session_ms()
        for room_id in rooms:
            for user in await _compat.local_joined_users(self._api, room_id):
                if user != self._pseudouser:
                    self._tracker.membership_changed(room_id, user, "join")
            self._tracker.membership_changed(room_id, self._pseudouser, "join")
            self._peek_rooms[room_id] = review
        logger.info("servership: %s is in %d rooms at start-up; reviewed in %d s",
                    self._pseudouser, len(rooms), self._config.session_seconds)
        return len(rooms)

    # -- memberships ------------------------------------------------------------------------------

    async def on_member_event(self, event: Any) -> None:
        """A membership of a local user (our pseudouser included) took effect: the tracker
        hears of it. A remote invite of our pseudouser is ignored: it never makes us join."""
        target, membership = event.state_key, event.membership
        room_id = event.room_id
        if target == self._pseudouser and membership == "invite" and not self._api.is_mine(
            event.sender
        ):
            advice = self._tracker.remote_invite(room_id, target)
            metrics.PEEK_LURES_IGNORED.inc()
            logger.info("servership: %s invited %s to %s; not joining (%s)", event.sender,
                        target, room_id, advice.decision.reason)
            return
        advice = self._tracker.membership_changed(room_id, target, membership)
        if target == self._pseudouser and membership in ("leave", "ban"):
            self._peek_rooms.pop(room_id, None)
        if advice.action == "leave" and room_id in self._peek_rooms:
            await self._leave(room_id)


__all__ = ["PEEK_PATH", "PeekService"]
