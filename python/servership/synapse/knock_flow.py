"""The MSC4099 knock flow between servers that run the module: knock, decide, grant, join.

1. **Knock.** An admin of the knocking server S asks it to knock (``POST
   /_synapse/client/servership/v1/knock`` ``{room_id, destination, user_id?}``; ``user_id`` is
   the local user who wants in, by default the admin). S sends ``m.server.knock`` to the
   destination R and remembers the knock (room, destination, user) until ``knocks.expiry_seconds``.
2. **Record.** R records it if it knows and gates the room (``MembersHooks.on_knock_edu``).
3. **Decide.** An admin of R, or a bot with an admin account, lists the room's pending knocks
   (``GET /_synapse/client/servership/v1/knocks?room_id=``, each with the core's ``decide_knock``
   advice) and decides (``POST`` the same path ``{room_id, server, decision}``):
   - ``accept``: the core's ``decide_knock`` (``auto_accept`` mode) must allow it (a banned or
     ACL-denied server is refused with the core's reason). The admin then sends the grant
     ``m.server.is_able_to_subscribe`` (``state_key`` S, ``{is_able_to_subscribe: true}``)
     through Synapse, so the room's power levels decide whether this admin may (Synapse's 403
     otherwise). The knock is removed and R pushes the signed grant to S in an
     ``org.servership.knock.accepted`` EDU.
   - ``refuse``: the knock is removed. S hears nothing: a refusal looks like silence, as a knock
     on an unknown room does.
4. **Learn.** Synapse drops PDUs for rooms it is not in, so the grant travels as an EDU whose
   content carries the PDU. S's module acts on it only when S knocked on that room at that
   origin (a server that was never asked cannot lure us into a room), the PDU is the grant for
   S exactly (spelling included) in that room, sent by a user of the origin, with a valid
   content hash and the origin's signature (keys from Synapse's keyring).
5. **Join.** S joins the user through the origin (``update_room_membership`` with
   ``remote_room_hosts``). The residents' event auth admits the join because the grant is now
   in the room's state; ``GET /_synapse/client/servership/v1/knock?room_id=`` shows where the
   knock stands.

What S remembers of its own knocks is in this process's memory (at most ``MAX_SENT`` rooms): it
must be the process that receives federation ``/send`` for the EDU to be recognised (a single
Synapse, or the main process when it serves federation). After a restart, a grant still works:
the user joins by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from . import _compat, _core, config as config_mod, metrics

logger = logging.getLogger("servership.synapse.knock_flow")

GRANT_TYPE = "m.server.is_able_to_subscribe"
ACCEPTED_EDU = "org.servership.knock.accepted"
ADMIN_KNOCKS_PATH = "/_synapse/client/servership/v1/knocks"
#: Outgoing knocks remembered at once; the oldest is forgotten first.
MAX_SENT = 1000
#: A grant PDU larger than this (canonical JSON bytes) is not looked at: Matrix caps PDUs at 64 KiB.
MAX_PDU_BYTES = 65536


@dataclass
class SentKnock:
    """A knock this server sent: where, for whom, and what became of it."""

    destination: str
    user_id: str
    sent_ms: int
    state: str = "sent"  # "sent", "accepted", "joined" or "join_failed"
    grant_event_id: str | None = None
    detail: str = ""


class KnockFlow:
    """Both ends of the flow: R's decisions (admin API) and S's knocks and their acceptance."""

    def __init__(self, api: Any, config: Any, server_name: str,
                 knock_store: Callable[[], Any],
                 known_room: Callable[[Any], Awaitable[str]]) -> None:
        """``known_room(room_id)`` is the module's check for the admin APIs: the room ID, or a
        400 for one that is not a room ID and a 404 for a room this server does not know."""
        self._api = api
        self._config = config
        self._server_name = server_name
        self._knock_store = knock_store
        self._known_room = known_room
        self._sent: dict[str, SentKnock] = {}

    def register(self) -> None:
        _compat.register_admin_json_resource(
            self._api, ADMIN_KNOCKS_PATH, self.handle_decide, self.handle_list
        )
        _compat.register_edu_handler(self._api, ACCEPTED_EDU, self.on_accepted_edu)

    # -- S: our own knocks ------------------------------------------------------------------------

    def remember(self, room_id: str, destination: str, user_id: str) -> None:
        """Note a knock we just sent (called by the knock admin API)."""
        self._expire()
        self._sent.pop(room_id, None)
        while len(self._sent) >= MAX_SENT:
            self._sent.pop(next(iter(self._sent)))
        self._sent[room_id] = SentKnock(destination, user_id, _compat.now_ms(self._api))

    def status(self, room_id: str) -> dict:
        """Where our knock on ``room_id`` stands (``none`` if we have none)."""
        self._expire()
        sent = self._sent.get(room_id)
        if sent is None:
            return {"room_id": room_id, "state": "none"}
        out: dict[str, Any] = {"room_id": room_id, "state": sent.state,
                               "destination": sent.destination, "user_id": sent.user_id}
        if sent.grant_event_id:
            out["grant_event_id"] = sent.grant_event_id
        if sent.detail:
            out["detail"] = sent.detail
        return out

    def _expire(self) -> None:
        horizon = _compat.now_ms(self._api) - self._config.knocks.expiry_seconds * 1000
        for room_id in [r for r, s in self._sent.items() if s.sent_ms < horizon]:
            del self._sent[room_id]

    async def on_accepted_edu(self, origin: str, content: Any) -> None:
        """``org.servership.knock.accepted`` from ``origin`` (authenticated by Synapse's
        transaction check). Dropped, with a log line and a metric, unless every check holds."""
        try:
            room_id, grant = await self._check_acceptance(origin, content)
        except _Ignored as why:
            metrics.KNOCK_ACCEPTANCES.labels("ignored").inc()
            logger.info("servership: ignored a knock acceptance from %s: %s", origin, why)
            return
        sent = self._sent[room_id]
        sent.state, sent.grant_event_id = "accepted", grant
        metrics.KNOCK_ACCEPTANCES.labels("accepted").inc()
        logger.info("servership: %s accepted our knock on %s (grant %s); joining %s",
                    origin, room_id, grant, sent.user_id)
        try:
            await self._api.update_room_membership(
                sender=sent.user_id, target=sent.user_id, room_id=room_id,
                new_membership="join", remote_room_hosts=[origin],
            )
        except Exception as exc:  # noqa: BLE001 - any failure is reported, none is fatal
            sent.state, sent.detail = "join_failed", str(exc)[:300]
            logger.warning("servership: joining %s after the knock was accepted failed: %s",
                           room_id, exc)
            return
        sent.state = "joined"
        logger.info("servership: %s joined %s after its knock was accepted",
                    sent.user_id, room_id)

    async def _check_acceptance(self, origin: str, content: Any) -> tuple[str, str]:
        """The room and grant event ID of a valid acceptance, else raises ``_Ignored``."""
        self._expire()
        if not isinstance(content, dict):
            raise _Ignored("content is not an object")
        room_id, version, pdu = (content.get("room_id"), content.get("room_version"),
                                 content.get("event"))
        if not isinstance(room_id, str) or not isinstance(version, str) or not isinstance(
                pdu, dict):
            raise _Ignored("needs room_id and room_version (strings) and event (an object)")
        sent = self._sent.get(room_id)
        if sent is None or sent.state != "sent":
            raise _Ignored(f"we have no pending knock on {room_id!r}")
        if origin != sent.destination:
            raise _Ignored(f"our knock on {room_id} went to {sent.destination}, not {origin}")
        if (pdu.get("type") != GRANT_TYPE or pdu.get("room_id") != room_id
                or pdu.get("state_key") != self._server_name
                or not isinstance(pdu.get("content"), dict)
                or pdu["content"].get("is_able_to_subscribe") is not True):
            raise _Ignored("the event is not this server's grant in that room")
        sender = pdu.get("sender")
        if not isinstance(sender, str) or _core.user_server(sender) != origin:
            raise _Ignored("the grant was not sent by a user of the origin")
        event_id = await self._api.defer_to_thread(_verify_grant, pdu, origin, version,
                                                   await self._origin_keys(pdu))
        return room_id, event_id

    async def _origin_keys(self, pdu: dict) -> dict:
        return await _compat.verify_keys_for(self._api, [pdu],
                                             self._config.invites.key_fetch_seconds)

    # -- R: deciding knocks on our rooms -----------------------------------------------------------

    async def handle_list(self, admin: str, query: dict[str, str]) -> dict:
        """``GET ...?room_id=``: the room's pending knocks, each with the core's advice."""
        room_id = await self._known_room(query.get("room_id"))
        store = await self._api.defer_to_thread(self._knock_store)
        knocks = [] if store is None else await self._api.defer_to_thread(
            store.for_room, room_id, _compat.now_ms(self._api))
        state = await _compat.current_state(self._api, room_id)
        out = []
        for knock in knocks:
            decision = await self._api.defer_to_thread(
                _core.decide_knock, room_id, knock["server"], state, "moderator")
            out.append({**knock, "advice": decision.decision.to_json()})
        return {"room_id": room_id, "knocks": out}

    async def handle_decide(self, admin: str, body: dict) -> dict:
        """``POST`` ``{room_id, server, decision: accept|refuse}``."""
        room_id = await self._known_room(body.get("room_id"))
        server, decision = body.get("server"), body.get("decision")
        if not isinstance(server, str) or not config_mod.server_name_ok(server):
            raise _compat.matrix_error(400, "server must be a server name", "M_INVALID_PARAM")
        if decision not in ("accept", "refuse"):
            raise _compat.matrix_error(400, "decision must be accept or refuse",
                                       "M_INVALID_PARAM")
        store = await self._api.defer_to_thread(self._knock_store)
        knock = None if store is None else await self._api.defer_to_thread(
            store.get, room_id, server, _compat.now_ms(self._api))
        if knock is None:
            raise _compat.matrix_error(404, f"no pending knock from {server} on {room_id}",
                                       "M_NOT_FOUND")
        if decision == "refuse":
            await self._api.defer_to_thread(store.remove, room_id, server)
            metrics.KNOCK_DECISIONS.labels("refused").inc()
            logger.info("servership: %s refused %s's knock on %s", admin, server, room_id)
            return {"room_id": room_id, "server": server, "decision": "refuse"}
        state = await _compat.current_state(self._api, room_id)
        verdict = await self._api.defer_to_thread(
            _core.decide_knock, room_id, server, state, "auto_accept")
        template = verdict.outward_event
        if template is None:
            metrics.KNOCK_DECISIONS.labels("denied").inc()
            d = verdict.decision
            raise _compat.matrix_error(403, f"servership refuses this grant: {d.reason}: "
                                       f"{d.detail}", "M_FORBIDDEN")
        event = await self._api.create_and_send_event_into_room({
            "type": template["type"], "room_id": room_id, "sender": admin,
            "state_key": template["state_key"], "content": template["content"],
        })
        await self._api.defer_to_thread(store.remove, room_id, server)
        metrics.KNOCK_DECISIONS.labels("accepted").inc()
        logger.info("servership: %s accepted %s's knock on %s (grant %s)", admin, server,
                    room_id, event.event_id)
        try:
            _compat.send_edu(self._api, server, ACCEPTED_EDU, {
                "room_id": room_id, "room_version": event.room_version.identifier,
                "event": _compat.plain_json(event.get_pdu_json()),
            })
            told = True
        except _compat.CannotSendFederation as exc:
            told = False
            logger.warning("servership: could not tell %s its knock was accepted: %s", server,
                           exc)
        return {"room_id": room_id, "server": server, "decision": "accept",
                "event_id": event.event_id, "notified": told}


class _Ignored(Exception):
    """Why an acceptance EDU was dropped."""


def _verify_grant(pdu: dict, origin: str, version: str, keys: dict) -> str:
    """The grant's event ID if its content hash and the origin's signature verify (blocking)."""
    import servership

    try:
        if len(servership.canonical_json(pdu)) > MAX_PDU_BYTES:
            raise _Ignored("the event is larger than a PDU may be")
        if not servership.check_content_hash(pdu):
            raise _Ignored("the event's content hash does not match")
        ring = servership.KeyRing.from_json(keys) if keys else None
        verify = ring.keys_for(origin) if ring is not None else []
        if not verify:
            raise _Ignored(f"no verify key of {origin} could be had")
        servership.verify_event_signature(pdu, origin, verify, version)
        return str(servership.event_id(pdu, version))
    except servership.ServershipError as exc:
        raise _Ignored(f"the event does not verify: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise _Ignored(f"the event is malformed: {exc}") from exc


__all__ = ["ACCEPTED_EDU", "ADMIN_KNOCKS_PATH", "KnockFlow", "SentKnock"]
