"""MSC3348 s2s rooms driven by the module: invites of our pseudouser, upgrade negotiation and
the upgrade itself (``s2s.enabled``; ``docs/s2s.md``, "Between servers that run the module").

- **Invites.** A remote server invites ``@:ourserver``: the invite is accepted (our pseudouser
  joins through the inviting server) only if the room is an s2s room (create ``type: m.s2s``)
  of the members room version, neither the room, the inviter's server nor the room's creator
  is on the operator's deny lists, we are in fewer than ``s2s.max_rooms`` s2s rooms, and the
  core's ``check_server_user_membership`` under ``s2s.policy`` allows the join. Anything else
  is rejected (our pseudouser declines the invite). The lure guard of peeking holds: an invite
  never makes us join a room that is not an s2s room.
- **Rooms.** An admin creates an s2s room with a peer (``POST .../s2s/rooms {"peer"}``): the
  room is created by our pseudouser, the peer's pseudouser is an additional creator (v12) and
  is invited.
- **Negotiation.** An admin starts an upgrade negotiation (``POST .../s2s/upgrade
  {"room_id"}``); our pseudouser sends the core's events, and every ``m.s2s.upgrade*`` event
  in an s2s room we are in goes through the core's ``Negotiation`` (one per room), which answers
  by ``s2s.versions``. Only a peer's pseudouser's events are handed to the machine: a user's,
  or a third server's, are ignored (they cannot speak for a server).
- **Upgrade.** The initiator, when the machine says so, upgrades the room with Synapse's own
  upgrade (as our pseudouser, the room's creator), keeps the members marker in the new room and
  invites the peer's pseudouser; the peer follows the tombstone by accepting that invite, which
  is checked like any other (a tombstone alone never makes us join).

Machines live in memory on the background-tasks process (the only one that runs this); a
restart forgets negotiations in flight (the peer's machine then times out).
"""

from __future__ import annotations

import logging
from typing import Any

from . import _compat, _core, metrics

logger = logging.getLogger("servership.synapse.s2s")

ROOMS_PATH = "/_synapse/client/servership/v1/s2s/rooms"
UPGRADE_PATH = "/_synapse/client/servership/v1/s2s/upgrade"
SEND_PATH = "/_synapse/client/servership/v1/s2s/send"
NEGOTIATION_PREFIX = "m.s2s.upgrade"
TOMBSTONE = "m.room.tombstone"
#: Negotiations kept per process (finished ones are dropped first).
MAX_NEGOTIATIONS = 1000
#: Attempts to join a room we were invited to (the inviter persists the invite only after we
#: answered it, so the first make_join can come too early).
JOIN_ATTEMPTS = 10
JOIN_DELAY_MS = 1000


def _servership() -> Any:
    import servership

    return servership


def _bad(message: str, errcode: str = "M_INVALID_PARAM", status: int = 400) -> Exception:
    return _compat.matrix_error(status, message, errcode)


class S2SRooms:
    """Invites, negotiations and upgrades of s2s rooms (``rules``: ``MembersRules``)."""

    def __init__(self, api: Any, config: Any, rules: Any) -> None:
        s = _servership()
        self._api = api
        self._config = config.s2s
        self._rules = rules
        self._server: str = api.server_name
        self._pseudouser = f"@:{self._server}"
        self._operator = s.OperatorPolicy(list(config.denied_servers), list(config.denied_rooms))
        self._policy = s.NegotiationPolicy(
            versions=list(self._config.versions), floor=self._config.floor
        )
        #: room ID -> the room's negotiation.
        self._negotiations: dict[str, Any] = {}
        #: room ID -> events waiting for the room's machine (handled one at a time).
        self._queues: dict[str, list[dict]] = {}
        #: replacement room ID -> the room it replaces (tombstones our peer sent).
        self._successors: dict[str, str] = {}
        #: rooms we upgraded: old room ID -> new room ID.
        self._upgraded: dict[str, str] = {}

    # -- wiring -----------------------------------------------------------------------------------

    def register(self) -> None:
        """Admin endpoints and the negotiation timer (background-tasks process only)."""
        _compat.register_admin_json_resource(self._api, ROOMS_PATH, self.handle_create)
        _compat.register_admin_json_resource(self._api, UPGRADE_PATH, self.handle_upgrade,
                                             self.handle_upgrade_status)
        _compat.register_admin_json_resource(self._api, SEND_PATH, self.handle_send)
        self._api.looping_background_call(self.tick, self._config.tick_seconds * 1000,
                                          desc="servership_s2s_tick")

    def wants(self, event: Any) -> bool:
        """Whether ``on_new_event`` has anything to do with ``event`` (cheap: every event)."""
        etype = event.type
        return ((etype == "m.room.member" and event.state_key == self._pseudouser)
                or etype.startswith(NEGOTIATION_PREFIX) or etype == TOMBSTONE)

    async def on_new_event(self, event: Any) -> None:
        """Every event Synapse persisted (on the background-tasks process)."""
        etype = event.type
        if etype == "m.room.member" and event.state_key == self._pseudouser:
            if event.membership == "invite" and not self._api.is_mine(event.sender):
                await self.on_invite(event)
        elif etype.startswith(NEGOTIATION_PREFIX):
            await self.on_negotiation_event(event)
        elif etype == TOMBSTONE and event.state_key == "":
            await self.on_tombstone(event)

    # -- invites ----------------------------------------------------------------------------------

    def _create_of(self, state: list[Any]) -> dict | None:
        for e in state:
            if isinstance(e, dict) and e.get("type") == "m.room.create" and e.get(
                    "state_key") == "":
                return e
        return None

    async def decide_invite(self, event: Any) -> tuple[bool, str, str]:
        """(accept, reason, detail) for a remote invite of our pseudouser."""
        s = _servership()
        room_id = event.room_id
        inviter = _core.user_server(event.sender) or ""
        # A Decision is falsy when it denies: test for None, never with ``or``.
        denied = self._operator.room_denied(room_id)
        if denied is None and inviter:
            denied = self._operator.server_denied(inviter)
        if denied is not None:
            return False, denied.reason, denied.detail
        unsigned = _compat.plain_json(event.get_pdu_json()).get("unsigned") or {}
        state = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
        state = [e for e in state if isinstance(e, dict)] if isinstance(state, list) else []
        create = self._create_of(state)
        if create is None:
            return False, "no_create_event", "the invite carries no m.room.create event"
        content = create.get("content") if isinstance(create.get("content"), dict) else {}
        if not s.s2s.is_s2s_room(content):
            # The lure guard: an invite alone never makes us join an ordinary room.
            return False, "not_s2s_room", f"{room_id} is not an s2s room (create type m.s2s)"
        if not self._rules.is_marked_create(create):
            return False, "not_members_room_version", (
                f"{room_id} is not of the members room version (rule f lets pseudousers in)")
        creator = _core.user_server(str(create.get("sender", ""))) or ""
        denied = self._operator.server_denied(creator) if creator else None
        if denied is not None:
            return False, denied.reason, f"{room_id} was created by {creator}: {denied.detail}"
        rooms = await _compat.rooms_joined_by(self._api, self._pseudouser)
        if room_id not in self._successors and len(rooms) >= self._config.max_rooms:
            return False, "too_many_rooms", (
                f"{self._pseudouser} is in {len(rooms)} rooms (s2s.max_rooms "
                f"{self._config.max_rooms})")
        invite = _compat.plain_json(event.get_dict())
        decision = s.s2s.check_server_user_membership(
            [*state, invite], self._pseudouser, "join", self._config.policy)
        if not decision.allowed:
            return False, decision.reason, decision.detail
        return True, "accepted", decision.detail

    async def on_invite(self, event: Any) -> None:
        room_id, inviter = event.room_id, _core.user_server(event.sender) or ""
        accept, reason, detail = await self.decide_invite(event)
        metrics.S2S_INVITES.labels(reason).inc()
        via = [inviter] if inviter else []
        logger.info("servership: s2s invite of %s to %s by %s: %s (%s: %s)", self._pseudouser,
                    room_id, event.sender, "accepted" if accept else "rejected", reason, detail)
        if accept:
            if not await self._join(room_id, via):
                return
            problem = await self._unfit(room_id)
            if problem is not None:
                # The invite's state lied (it is the inviter's word): the room we joined is not
                # what it claimed. Leave at once, as peeking does.
                metrics.S2S_INVITES.labels("lied").inc()
                logger.warning("servership: %s left %s at once: %s (the invite claimed "
                               "otherwise)", self._pseudouser, room_id, problem)
                await _compat.set_own_membership(self._api, self._pseudouser, room_id, "leave")
                return
            if room_id in self._successors:
                metrics.S2S_UPGRADES.labels("followed").inc()
                logger.info("servership: %s followed the tombstone of %s into %s",
                            self._pseudouser, self._successors[room_id], room_id)
            return
        try:
            await _compat.set_own_membership(self._api, self._pseudouser, room_id, "leave", via)
        except Exception as exc:  # noqa: BLE001 - the inviter's answer; logged, nothing else
            logger.warning("servership: %s could not reject the invite to %s: %s",
                           self._pseudouser, room_id, _compat.error_details(exc))

    async def _unfit(self, room_id: str) -> str | None:
        """Why a room just joined is no s2s room of the members room version, by its own
        create event (now that we hold it), or None."""
        for _attempt in range(JOIN_ATTEMPTS):
            state = await _compat.current_state(self._api, room_id, [("m.room.create", "")])
            create = self._create_of(state or [])
            if create is not None:
                if not _servership().s2s.is_s2s_room(create.get("content") or {}):
                    return "its create event has no type m.s2s"
                if not self._rules.applies_with(room_id, create):
                    return "it is not of the members room version"
                return None
            await _compat.sleep(self._api, JOIN_DELAY_MS)  # state still being fetched
        return "its create event could not be read"

    async def _join(self, room_id: str, via: list[str]) -> bool:
        """Our pseudouser joins through ``via``, trying a few times: the inviting server
        persists its invite only after we have answered it, and a tombstone can come before
        the invite to the replacement room."""
        for attempt in range(JOIN_ATTEMPTS):
            if room_id in await _compat.rooms_joined_by(self._api, self._pseudouser):
                return True
            try:
                # A copy: Synapse appends to the list it is given.
                await _compat.set_own_membership(self._api, self._pseudouser, room_id, "join",
                                                 list(via))
                logger.info("servership: %s joined s2s room %s", self._pseudouser, room_id)
                return True
            except Exception as exc:  # noqa: BLE001 - refused for now: try again shortly
                status, errcode, message = _compat.error_details(exc)
                logger.info("servership: %s could not join %s yet (attempt %d: %s %s %s)",
                            self._pseudouser, room_id, attempt + 1, status, errcode, message)
            await _compat.sleep(self._api, JOIN_DELAY_MS)
        logger.warning("servership: %s gave up joining %s through %s", self._pseudouser,
                       room_id, via)
        return False

    # -- creating a room with a peer --------------------------------------------------------------

    async def handle_create(self, admin: str, body: dict) -> dict:
        """``POST {"peer"}``: create an s2s room of the members room version with ``peer``."""
        s = _servership()
        peer = body.get("peer")
        if not isinstance(peer, str) or len(peer) > 255:
            raise _bad("peer must be a server name")
        try:
            s.ServerName.parse(peer)
        except Exception as exc:  # noqa: BLE001 - the core says what is wrong
            raise _bad(f"peer is not a server name: {exc}") from exc
        if _core.normalise_origin(peer) == _core.normalise_origin(self._server):
            raise _bad("peer is this server")
        denied = self._operator.server_denied(peer)
        if denied is not None:
            raise _bad(f"peer: {denied.detail}", "M_FORBIDDEN", 403)
        peer_user = f"@:{peer}"
        # The peer's pseudouser is a creator too: either server may then upgrade (whichever
        # ends up the initiator).
        creation = {"type": s.s2s.ROOM_TYPE, s.MEMBERS_MARKER: s.MEMBERS_ROOM_VERSION,
                    "additional_creators": [peer_user]}
        room_id = await _compat.create_room_as(self._api, self._pseudouser, {
            "room_version": "12",
            "preset": "private_chat",
            "creation_content": creation,
            "initial_state": [
                {"type": "m.room.history_visibility", "state_key": "",
                 "content": {"history_visibility": "shared"}},
                {"type": "m.room.guest_access", "state_key": "",
                 "content": {"guest_access": "forbidden"}},
            ],
        })
        await _compat.invite_as(self._api, self._pseudouser, peer_user, room_id)
        logger.info("servership: %s created s2s room %s with %s", admin, room_id, peer)
        return {"room_id": room_id, "peer": peer}

    async def handle_send(self, admin: str, body: dict) -> dict:
        """``POST {"room_id", "type", "content"}``: send a message event as our pseudouser into
        an s2s room it is joined to (the negotiation's and membership types are the module's)."""
        room_id, etype, content = body.get("room_id"), body.get("type"), body.get("content")
        if not isinstance(room_id, str) or not room_id.startswith("!") or len(room_id) > 255:
            raise _bad("room_id must be a room ID")
        if not isinstance(etype, str) or not 0 < len(etype) <= 255 or etype.startswith(
                (NEGOTIATION_PREFIX, "m.room.")):
            raise _bad("type must be an event type outside m.room.* and m.s2s.upgrade*")
        if not isinstance(content, dict):
            raise _bad("content must be an object")
        if await self._peer_of(room_id) is None:
            raise _bad(f"{room_id} is not an s2s room {self._pseudouser} shares with a peer",
                       "M_NOT_FOUND", 404)
        event_id = await _compat.send_message_as(self._api, self._pseudouser, room_id, etype,
                                                 content)
        return {"room_id": room_id, "event_id": event_id}

    # -- negotiation ------------------------------------------------------------------------------

    async def _peer_of(self, room_id: str) -> str | None:
        """The one other server whose pseudouser is joined to the s2s room (else None)."""
        state = await _compat.current_state(self._api, room_id, [("m.room.member", None),
                                                                   ("m.room.create", "")])
        if state is None:
            return None
        create = self._create_of(state)
        if create is None or not _servership().s2s.is_s2s_room(create.get("content") or {}):
            return None
        peers = {
            _core.user_server(e["state_key"]) for e in state
            if e.get("type") == "m.room.member" and (e.get("content") or {}).get(
                "membership") == "join" and _core.is_server_pseudouser(str(e.get("state_key")))
            and e["state_key"] != self._pseudouser
        }
        joined_self = any(e.get("type") == "m.room.member" and e.get("state_key") ==
                          self._pseudouser and (e.get("content") or {}).get("membership") ==
                          "join" for e in state)
        return peers.pop() if joined_self and len(peers) == 1 else None

    async def _settled_peer(self, room_id: str) -> str | None:
        """``_peer_of``, waiting a little while our own join is still settling: a peer's
        opening can arrive while Synapse is still fetching the room's state after our join."""
        for _attempt in range(JOIN_ATTEMPTS):
            peer = await self._peer_of(room_id)
            if peer is not None:
                return peer
            await _compat.sleep(self._api, JOIN_DELAY_MS)
        return None

    def _keep(self, room_id: str, negotiation: Any) -> None:
        if room_id not in self._negotiations and len(self._negotiations) >= MAX_NEGOTIATIONS:
            for other, n in list(self._negotiations.items()):
                if n.outcome != "in_progress":
                    del self._negotiations[other]
                    break
            else:
                raise _bad("too many negotiations in flight", "M_LIMIT_EXCEEDED", 429)
        self._negotiations[room_id] = negotiation

    async def handle_upgrade(self, admin: str, body: dict) -> dict:
        """``POST {"room_id"}``: open an upgrade negotiation with the room's peer."""
        room_id = body.get("room_id")
        if not isinstance(room_id, str) or not room_id.startswith("!") or len(room_id) > 255:
            raise _bad("room_id must be a room ID")
        current = self._negotiations.get(room_id)
        if current is not None and current.outcome == "in_progress":
            raise _bad(f"a negotiation is already running in {room_id}", "M_UNKNOWN", 409)
        peer = await self._peer_of(room_id)
        if peer is None:
            raise _bad(f"{room_id} is not an s2s room where {self._pseudouser} and exactly one "
                       "peer's pseudouser are joined", "M_NOT_FOUND", 404)
        negotiation, content = _servership().Negotiation.initiate(self._policy, self._server,
                                                                   peer)
        self._keep(room_id, negotiation)
        event_id = await _compat.send_message_as(self._api, self._pseudouser, room_id,
                                                 _servership().s2s.PROPOSAL, content)
        negotiation.sent(event_id)
        logger.info("servership: %s opened an upgrade negotiation in %s with %s (%s)", admin,
                    room_id, peer, event_id)
        return {"room_id": room_id, "peer": peer, "proposal": event_id}

    async def handle_upgrade_status(self, admin: str, query: dict[str, str]) -> dict:
        """``GET ?room_id=``: the negotiation's outcome and role, and the replacement room."""
        room_id = query.get("room_id", "")
        negotiation = self._negotiations.get(room_id)
        answer: dict[str, Any] = {"room_id": room_id,
                                  "outcome": negotiation.outcome if negotiation else "none"}
        if negotiation is not None:
            answer["role"] = negotiation.role
        replacement = self._upgraded.get(room_id) or next(
            (new for new, old in self._successors.items() if old == room_id), None)
        if replacement is not None:
            answer["replacement_room"] = replacement
        return answer

    async def on_negotiation_event(self, event: Any) -> None:
        sender = event.sender
        server = _core.user_server(sender) or ""
        if server == self._server:
            return  # our own echo: the machine knows what it sent
        if not _core.is_server_pseudouser(sender):
            metrics.S2S_NEGOTIATION_EVENTS.labels("not_a_pseudouser").inc()
            logger.info("servership: ignored %s %s in %s: sent by %s, not a server's "
                        "pseudouser", event.type, event.event_id, event.room_id, sender)
            return
        plain = {"event_id": event.event_id, "type": event.type, "sender": sender,
                 "content": _compat.plain_json(event.content)}
        self._queues.setdefault(event.room_id, []).append(plain)
        if len(self._queues[event.room_id]) == 1:
            await self._drain(event.room_id)

    async def _drain(self, room_id: str) -> None:
        """Hand the room's queued events to its machine, one at a time (a step sends an event
        before the next one may be handled)."""
        queue = self._queues[room_id]
        try:
            while queue:
                await self._handle(room_id, queue[0])
                queue.pop(0)
        finally:
            if not queue:
                self._queues.pop(room_id, None)

    async def _handle(self, room_id: str, event: dict) -> None:
        s = _servership()
        negotiation = self._negotiations.get(room_id)
        try:
            if negotiation is None or (negotiation.outcome != "in_progress"
                                       and event["type"] in (s.s2s.PROPOSAL, s.s2s.VENDOR)):
                if event["type"] not in (s.s2s.PROPOSAL, s.s2s.VENDOR):
                    raise _core.CoreError("M_INVALID_PARAM", 400,
                                          "no negotiation runs in this room and this is no "
                                          "opening")
                if await self._settled_peer(room_id) != _core.user_server(event["sender"]):
                    raise _core.CoreError("M_FORBIDDEN", 403,
                                          "the sender's server is not this s2s room's peer")
                negotiation, step = s.Negotiation.respond(self._policy, self._server, event)
                self._keep(room_id, negotiation)
            else:
                step = negotiation.handle(event)
        except Exception as exc:  # noqa: BLE001 - the core's refusal: the event changes nothing
            metrics.S2S_NEGOTIATION_EVENTS.labels("refused").inc()
            logger.info("servership: ignored %s %s in %s from %s: %s", event["type"],
                        event["event_id"], room_id, event["sender"], exc)
            return
        metrics.S2S_NEGOTIATION_EVENTS.labels("handled").inc()
        await self._act(room_id, negotiation, step)

    async def _act(self, room_id: str, negotiation: Any, step: Any) -> None:
        if step.send is not None:
            event_id = await _compat.send_message_as(self._api, self._pseudouser, room_id,
                                                     step.send["type"], step.send["content"])
            negotiation.sent(event_id)
        if step.resend is not None:
            # Synapse retries delivery of what it sent by itself; a lost event reaches the
            # peer when the peer backfills or gets missing events.
            logger.debug("servership: the negotiation in %s asks to deliver %s again", room_id,
                         step.resend)
        if step.outcome != "in_progress":
            logger.info("servership: upgrade negotiation in %s: %s (%s)", room_id, step.outcome,
                        negotiation.role)
        if step.upgrade is not None:
            await self._upgrade(room_id, step.upgrade, negotiation.peer_server)

    async def tick(self) -> None:
        for room_id, negotiation in list(self._negotiations.items()):
            if negotiation.outcome == "in_progress" and room_id not in self._queues:
                try:
                    await self._act(room_id, negotiation, negotiation.tick())
                except Exception as exc:  # noqa: BLE001 - tried again at the next tick
                    logger.warning("servership: tick of the negotiation in %s failed: %s",
                                   room_id, exc)

    # -- the upgrade ------------------------------------------------------------------------------

    async def _upgrade(self, room_id: str, version: str, peer: str) -> None:
        """Replace the room by one of ``version``, as our pseudouser; invite the peer."""
        s = _servership()
        members = version == s.MEMBERS_ROOM_VERSION
        synapse_version = _compat.synapse_room_version("12" if members else version)
        if synapse_version is None:  # config.parse checked the offered versions
            logger.error("servership: cannot upgrade %s to %s: unknown here", room_id, version)
            return
        peer_user = f"@:{peer}"
        try:
            new_room = await _compat.upgrade_room_as(
                self._api, self._pseudouser, room_id, synapse_version,
                [peer_user] if synapse_version.msc4289_creator_power_enabled else [],
                {s.MEMBERS_MARKER: s.MEMBERS_ROOM_VERSION} if members else {},
            )
            self._upgraded[room_id] = new_room
            await _compat.invite_as(self._api, self._pseudouser, peer_user, new_room)
        except Exception as exc:  # noqa: BLE001 - logged; the admin can start again
            metrics.S2S_UPGRADES.labels("failed").inc()
            logger.error("servership: upgrading %s to %s failed: %s", room_id, version,
                         _compat.error_details(exc))
            return
        metrics.S2S_UPGRADES.labels("upgraded").inc()
        logger.info("servership: upgraded s2s room %s to %s (%s); invited %s", room_id,
                    new_room, version, peer_user)

    async def on_tombstone(self, event: Any) -> None:
        """A tombstone our peer's pseudouser sent in an s2s room we are in: remember the
        replacement room. We follow it through the peer's invite, which goes through
        ``decide_invite`` like any other: a tombstone alone never makes us join a room (it
        could point at one that is no s2s room)."""
        sender, room_id = event.sender, event.room_id
        if self._api.is_mine(sender) or not _core.is_server_pseudouser(sender):
            return
        if await self._peer_of(room_id) != _core.user_server(sender):
            return
        replacement = (event.content or {}).get("replacement_room")
        if not isinstance(replacement, str) or not replacement.startswith("!"):
            return
        if len(self._successors) >= MAX_NEGOTIATIONS:
            self._successors.pop(next(iter(self._successors)))
        self._successors[replacement] = room_id
        logger.info("servership: %s replaced s2s room %s by %s", sender, room_id, replacement)


__all__ = ["ROOMS_PATH", "S2SRooms", "SEND_PATH", "UPGRADE_PATH"]
