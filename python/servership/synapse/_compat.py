"""Every use of Synapse internals, in one place.

The servership module needs a few things that Synapse's public ``ModuleApi`` does not offer:
federation servlets with X-Matrix authentication, the signed federation HTTP client, the EDU
registry and sender, the invite pipeline, the server-notices manager, and two SQL queries over
Synapse's own tables. All of them are reached from here, so that a Synapse upgrade that moves a
name breaks exactly one file. See ``docs/synapse-internals.md`` for why each one is needed.

Tested range: ``matrix-synapse >=1.140.0,<1.164`` (CI runs the Synapse suite on 1.140.0 and
1.163.2). Inside it, nothing here asks for a version number: each internal that moved between
releases is detected (a signature, a method, a flag) and the code takes the path that fits. The
range itself is checked when the config is parsed (``config.parse``): outside it the module
refuses to load, with a config error naming ``servership.allow_untested_synapse``, unless that
is set; a feature whose internals are then missing still refuses by its own key.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

# Public module API (stable across the range).
from synapse.module_api import NOT_SPAM, ModuleApi  # noqa: F401  (re-exported)
from synapse.module_api.errors import ConfigError, SynapseError  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from synapse.events import EventBase  # noqa: F401

logger = logging.getLogger("servership.synapse")

#: Oldest Synapse release the suite runs on (inclusive).
TESTED_MIN = (1, 140, 0)
#: First Synapse release the suite has not run on (exclusive).
TESTED_BELOW = (1, 164, 0)
#: The range as a pip requirement (pyproject.toml's ``synapse`` extra says the same).
TESTED_REQUIREMENT = "matrix-synapse>=1.140.0,<1.164"

#: Name of our group in Synapse's table of federation servlet groups.
SERVLET_GROUP = "org.servership"


def synapse_version() -> tuple[int, int, int]:
    """The running Synapse's version as a tuple: the leading ``X.Y.Z`` of ``__version__``
    (which carries the git branch and commit when Synapse runs inside a checkout, e.g.
    ``1.140.0 (b=main,b35a516)``); missing parts are 0, no number at all is ``(0, 0, 0)``."""
    import re

    import synapse

    m = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(getattr(synapse, "__version__", "")))
    if m is None:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


def untested_synapse() -> str | None:
    """Why the running Synapse is outside the tested range, or None inside it. Only the range
    is a version check; what the module needs inside it is detected where it is used."""
    version = synapse_version()
    if TESTED_MIN <= version < TESTED_BELOW:
        return None
    text = ".".join(str(n) for n in version)
    return f"this is Synapse {text}, outside the tested range {TESTED_REQUIREMENT}"


def homeserver(api: Any) -> Any:
    """The ``HomeServer`` behind a ``ModuleApi`` (private attribute ``_hs``)."""
    return api._hs


# ---------------------------------------------------------------------------------------------
# Federation servlets
# ---------------------------------------------------------------------------------------------


def federation_servlet_base() -> type:
    """Synapse's base class for X-Matrix-authenticated federation servlets.

    Our subclasses get one extra keyword argument, ``raw_body`` (the request body as bytes),
    because Synapse hands servlets only the parsed JSON, and our validators must see the bytes
    the peer sent (duplicate keys, number forms) to answer with the right error.
    """
    from synapse.federation.transport.server._base import BaseFederationServlet

    class RawBodyFederationServlet(BaseFederationServlet):  # type: ignore[misc, valid-type]
        def _wrap(self, func: Callable[..., Awaitable[Any]]) -> Any:
            inner = super()._wrap(func)

            @functools.wraps(inner)
            async def with_raw_body(request: Any, *args: Any, **kwargs: Any) -> Any:
                raw = b""
                content = getattr(request, "content", None)
                if content is not None and request.method in (b"PUT", b"POST"):
                    content.seek(0)
                    raw = content.read()
                    content.seek(0)
                return await inner(request, *args, raw_body=raw, **kwargs)

            return with_raw_body

    return RawBodyFederationServlet


def register_servlet_group(servlets: Iterable[type]) -> None:
    """Add our servlets to every ``federation`` listener Synapse builds after this call.

    Synapse instantiates modules before it creates listeners, and ``register_servlets``
    iterates ``SERVLET_GROUPS`` at that time, so adding a group here is enough.
    """
    from synapse.federation.transport.server import SERVLET_GROUPS

    SERVLET_GROUPS[SERVLET_GROUP] = tuple(servlets)


def unregister_servlet_group() -> None:
    """Remove our servlet group (used by tests that create several modules in one process)."""
    from synapse.federation.transport.server import SERVLET_GROUPS

    SERVLET_GROUPS.pop(SERVLET_GROUP, None)


def matrix_error(http_status: int, message: str, errcode: str, **extra: Any) -> Exception:
    """A ``SynapseError`` that Synapse renders as a Matrix error body."""
    # SynapseError(code, msg, errcode, additional_fields) in the supported range.
    return SynapseError(http_status, message, errcode, additional_fields=extra or None)


# ---------------------------------------------------------------------------------------------
# Invites: hand a checked v3 invite to Synapse's normal v2 pipeline
# ---------------------------------------------------------------------------------------------


async def process_invite(
    api: Any, origin: str, room_id: str, event_id: str, event: dict, room_version: str
) -> dict:
    """Run Synapse's own invite handling (ACL, signature checks, spam checks, persistence,
    co-signing) for an invite the core has already checked.

    ``event["unsigned"]["invite_room_state"]`` must already hold the rewritten state. Returns
    ``{"event": <event co-signed by us>}``, as the v2 endpoint does.
    """
    server = homeserver(api).get_federation_server()
    params = inspect.signature(server.on_invite_request).parameters
    if "event_json" in params:
        # 1.158+: keyword-only, with the IDs from the request path.
        result = await server.on_invite_request(
            origin=origin,
            expected_room_id=room_id,
            expected_event_id=event_id,
            event_json=event,
            room_version_id=room_version,
        )
    else:  # pragma: no cover - older releases, outside the tested range
        result = await server.on_invite_request(origin, event, room_version)
    signed = dict(result.get("event", {}))
    unsigned = signed.get("unsigned")
    if isinstance(unsigned, dict):
        # Like v2: invite_room_state is for our own use, not echoed back. Copy first: the
        # dict may be shared with the event Synapse stored.
        signed["unsigned"] = {k: v for k, v in unsigned.items() if k != "invite_room_state"}
    return {"event": signed}


async def event_signature_problem(api: Any, pdu: dict, room_version_id: str) -> str | None:
    """Why ``pdu`` fails Synapse's own signature and content-hash checks, or None if it passes.

    The core checks an MSC4329 create event's shape and, in v12, that its hash is the room ID;
    it leaves signatures to the caller (no key ring given). This is that caller: Synapse's
    keyring fetches and caches the signing servers' keys as for any PDU.
    """
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.crypto.event_signing import check_event_content_hash
    from synapse.federation.federation_base import (
        InvalidEventSignatureError,
        _check_sigs_on_pdu,
        event_from_pdu_json,
    )

    room_version = KNOWN_ROOM_VERSIONS.get(room_version_id)
    if room_version is None:
        return f"room version {room_version_id} is unknown to this Synapse"
    try:
        event = event_from_pdu_json(pdu, room_version)
        await _check_sigs_on_pdu(homeserver(api).get_keyring(), room_version, event)
    except (InvalidEventSignatureError, SynapseError) as exc:
        return str(exc)
    if not check_event_content_hash(event):
        return "its content hash does not match its content"
    return None


def invite_sending_problem(api: Any = None) -> str | None:
    """Why this Synapse's invite-sending internals do not fit :func:`send_invites_with`, or
    None. Without ``api`` it looks at Synapse's classes (``config.parse`` does, so that
    ``invites.send_msc4329`` is refused as a clean config error); with it, at this process's
    objects (the module does again at start-up). 1.140 and 1.150 have a three-argument
    ``_do_send_invite`` and no ``get_stripped_room_state_ids_from_event_context``."""
    if api is None:
        try:
            from synapse.federation.federation_client import FederationClient
            from synapse.storage.databases.main import DataStore
        except ImportError as exc:
            return f"Synapse's federation client or store cannot be imported ({exc})"
        client: Any = FederationClient
        store: Any = DataStore
    else:
        hs = homeserver(api)
        client = hs.get_federation_client()
        store = hs.get_datastores().main
    original = getattr(client, "_do_send_invite", None)
    if original is None:
        return "FederationClient._do_send_invite does not exist"
    try:
        params = list(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        return "FederationClient._do_send_invite has no readable signature"
    if params and params[0] == "self":
        params = params[1:]
    if params[:4] != ["destination", "pdu", "context", "room_version"]:
        return f"FederationClient._do_send_invite takes ({', '.join(params)})"
    if not callable(getattr(store, "get_stripped_room_state_ids_from_event_context", None)):
        return "the store has no get_stripped_room_state_ids_from_event_context"
    return None


def _frozen_event_class_problem() -> type | None:
    """The event class whose ``auth_event_ids()`` fails once Synapse has frozen the event, or
    None. Before its events moved to Rust, Synapse froze every event it hands to
    ``check_event_allowed`` (lists become tuples), and its room-version-12 class then added a
    list to that tuple: every later local event in a v12 room failed with 500 (seen on 1.140:
    a ``/leave``). Only modules that register ``check_event_allowed`` trigger it."""
    try:
        from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
        from synapse.events import make_event_from_dict

        version = KNOWN_ROOM_VERSIONS.get("12")
        if version is None:
            return None
        event = make_event_from_dict(
            {"type": "m.room.member", "state_key": "@a:b", "sender": "@a:b",
             "room_id": "!" + "A" * 43, "content": {"membership": "leave"},
             "auth_events": ["$x"], "prev_events": [], "depth": 2, "origin_server_ts": 0,
             "hashes": {"sha256": "x"}, "signatures": {}},
            version,
        )
        freeze = getattr(event, "freeze", None)
        if freeze is None:  # Rust events: nothing is frozen
            return None
        freeze()
        event.auth_event_ids()
    except TypeError:
        return type(event)
    except Exception:  # noqa: BLE001 - a probe that cannot run has found nothing to fix
        return None
    return None


def fix_frozen_event_auth_ids() -> bool:
    """Where :func:`_frozen_event_class_problem` finds the bug, make that class's
    ``auth_event_ids()`` accept a frozen (tuple) ``auth_events``; True if it patched. Process
    wide and idempotent: called by the module before it registers ``check_event_allowed``."""
    cls = _frozen_event_class_problem()
    if cls is None:
        return False
    original = cls.auth_event_ids

    def auth_event_ids(self: Any) -> Any:
        auth = self._dict.get("auth_events")
        if not isinstance(auth, tuple):
            return original(self)
        # What the original computes (the create event's ID implied in v12), on a list.
        if self.type == "m.room.create" and self.get_state_key() == "":
            return list(auth)
        return list(auth) + ["$" + self.room_id[1:]]

    cls.auth_event_ids = auth_event_ids
    logger.info("servership: patched %s.auth_event_ids for frozen events (Synapse bug in "
                "room version 12 with check_event_allowed)", cls.__name__)
    return True


#: Most servers whose keys one invite may make us fetch, and key IDs per server.
MAX_KEY_SERVERS = 16
MAX_KEY_IDS = 4


def _with_timeout(api: Any, awaitable: Awaitable[Any], seconds: float) -> Any:
    """``awaitable`` as a Deferred that fails with a timeout after ``seconds`` (Synapse's
    ``timeout_deferred``, whose arguments became keyword-only with a ``clock`` in 1.15x)."""
    from twisted.internet import defer
    from synapse.util.async_helpers import timeout_deferred

    d = defer.ensureDeferred(awaitable)  # type: ignore[arg-type]
    hs = homeserver(api)
    if "clock" in inspect.signature(timeout_deferred).parameters:
        return timeout_deferred(deferred=d, timeout=seconds, clock=hs.get_clock())
    return timeout_deferred(d, seconds, hs.get_reactor())  # pragma: no cover - older Synapse


async def verify_keys_for(api: Any, pdus: Iterable[Any], timeout_seconds: float) -> dict:
    """The verify keys that ``pdus``' senders' servers signed them with, from Synapse's keyring
    (its store, then the servers themselves, as for any PDU), as ``{server: {key_id: base64}}``
    for ``KeyRing.from_json``. Keys that cannot be had within ``timeout_seconds`` in all are left
    out: the core then does not promote what they signed. At most ``MAX_KEY_SERVERS``
    servers."""
    from signedjson.key import encode_verify_key_base64
    from synapse.crypto.keyring import _FetchKeyRequest

    import servership

    wanted: dict[str, set[str]] = {}
    for pdu in pdus:
        if not isinstance(pdu, dict) or not isinstance(pdu.get("sender"), str):
            continue
        # Only the sender's server's signature counts for an event: fetch no other keys (a
        # hostile body must not steer our key fetches at hosts of its choosing).
        try:
            server = str(servership.UserId.parse(pdu["sender"]).server_name)
        except (servership.ServershipError, TypeError, ValueError):
            continue
        sigs = pdu.get("signatures")
        by_key = sigs.get(server) if isinstance(sigs, dict) else None
        if not isinstance(by_key, dict):
            continue
        if server not in wanted and len(wanted) >= MAX_KEY_SERVERS:
            continue
        ids = wanted.setdefault(server, set())
        for key_id in by_key:
            if isinstance(key_id, str) and key_id.startswith("ed25519:") and (
                len(ids) < MAX_KEY_IDS
            ):
                ids.add(key_id)
    if not wanted:
        return {}
    hs = homeserver(api)
    keyring = hs.get_keyring()
    clock = hs.get_clock()
    deadline = clock.time_msec() + timeout_seconds * 1000
    out: dict[str, dict[str, str]] = {}
    for server, key_ids in sorted(wanted.items()):
        left = (deadline - clock.time_msec()) / 1000
        if left <= 0 or not key_ids:
            break
        request = _FetchKeyRequest(server_name=server, minimum_valid_until_ts=0,
                                   key_ids=sorted(key_ids))
        try:
            found = await _with_timeout(api, keyring._inner_fetch_key_request(request), left)
        except Exception as exc:  # noqa: BLE001 - a server we cannot reach signs nothing here
            logger.info("servership: no keys for %s within the bound: %s", server, exc)
            continue
        keys = {kid: encode_verify_key_base64(result.verify_key)
                for kid, result in found.items() if result is not None}
        if keys:
            out[server] = keys
    return out


def send_invites_with(
    api: Any,
    build_request: Callable[[dict, dict, list[dict]], Awaitable[tuple[str, dict]]],
) -> None:
    """Make Synapse send invites to remote users as ``build_request`` says (MSC4329), falling
    back to its own v2 invite whenever that does not work out.

    Synapse has no hook for the outgoing invite request, so this wraps the private
    ``FederationClient._do_send_invite(destination, pdu, context, room_version)`` of this
    process's client (check :func:`invite_sending_problem` first). ``build_request(invite_pdu,
    create_pdu, stripped_state)`` returns ``(path, body)``; the answer must be the v2 shape
    ``{"event": ...}``, which Synapse then checks (our co-signature) as for v2. Any failure to
    build the request (a room our core refuses, say) and any failure of the remote (an error, a
    timeout, an answer without an ``event``) sends the ordinary v2 invite instead: MSC4329 may
    only ever add to what an invite could do before.
    """
    from synapse.events.utils import strip_event

    hs = homeserver(api)
    client = hs.get_federation_client()
    store = hs.get_datastores().main
    clock = hs.get_clock()
    original = client._do_send_invite

    async def do_send_invite(destination: str, pdu: Any, context: Any, room_version: Any) -> Any:
        if room_version.identifier in ("1", "2"):
            # MSC4329 needs event IDs computed from the event (room version 3 and later).
            return await original(destination, pdu, context, room_version)
        try:
            now = clock.time_msec()
            # The same state Synapse would send as invite_room_state (MSC4311), as full events.
            state_ids = await store.get_stripped_room_state_ids_from_event_context(pdu, context)
            events = await store.get_events(state_ids)
            creates = [e for e in events.values() if e.type == "m.room.create"]
            if not creates:
                raise ValueError(f"no create event for {pdu.room_id}")
            stripped = [dict(strip_event(e)) for e in events.values()
                        if e.type != "m.room.create"]
            path, body = await build_request(
                pdu.get_pdu_json(now), creates[0].get_pdu_json(now), stripped
            )
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, v2 still works
            logger.warning("servership: could not build an MSC4329 invite for %s (%s); sending "
                           "a v2 invite", pdu.event_id, exc)
            return await original(destination, pdu, context, room_version)
        try:
            answer = await client.transport_layer.client.put_json(
                destination=destination, path=path, data=body, ignore_backoff=True
            )
            if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
                raise ValueError("the answer has no event")
        except Exception as exc:  # noqa: BLE001 - the remote's failure: fall back, as above
            status, reason = http_request_error_details(exc)
            logger.info("servership: %s did not take the MSC4329 invite (%s %s); sending a v2 "
                        "invite", destination, status or "", reason)
            return await original(destination, pdu, context, room_version)
        logger.info("servership: sent MSC4329 invite %s to %s", pdu.event_id, destination)
        return answer

    client._do_send_invite = do_send_invite


# ---------------------------------------------------------------------------------------------
# Admin resources (client listener)
# ---------------------------------------------------------------------------------------------


def register_admin_json_resource(
    api: Any,
    path: str,
    handler: Callable[[str, dict], Awaitable[dict]],
    get_handler: Callable[[str, dict[str, str]], Awaitable[dict]] | None = None,
) -> None:
    """Serve ``POST path`` (JSON in, JSON out; ``handler(admin_user_id, body)``) and, if given,
    ``GET path?k=v`` (``get_handler(admin_user_id, query)``) to server admins only. Uses the
    public module API (``register_web_resource``, ``get_user_by_req``)."""
    from synapse.module_api import DirectServeJsonResource
    from synapse.http.servlet import parse_json_object_from_request

    async def admin_of(request: Any) -> str:
        requester = await api.get_user_by_req(request)
        user_id = requester.user.to_string()
        if not await api.is_user_admin(user_id):
            raise SynapseError(403, "server admins only", "M_FORBIDDEN")
        return user_id

    class AdminResource(DirectServeJsonResource):  # type: ignore[misc, valid-type]
        async def _async_render_POST(self, request: Any) -> tuple[int, dict]:
            user_id = await admin_of(request)
            body = parse_json_object_from_request(request)
            return 200, await handler(user_id, body)

        async def _async_render_GET(self, request: Any) -> tuple[int, dict]:
            if get_handler is None:
                raise SynapseError(405, "use POST", "M_UNRECOGNIZED")
            user_id = await admin_of(request)
            query = {
                k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
                for k, v in (request.args or {}).items()
                if v
            }
            return 200, await get_handler(user_id, query)

    api.register_web_resource(path, AdminResource())


# ---------------------------------------------------------------------------------------------
# EDUs
# ---------------------------------------------------------------------------------------------


def register_edu_handler(
    api: Any, edu_type: str, handler: Callable[[str, dict], Awaitable[None]]
) -> None:
    """Receive EDUs of ``edu_type`` (``handler(origin, content)``)."""
    homeserver(api).get_federation_registry().register_edu_handler(edu_type, handler)


class CannotSendFederation(RuntimeError):
    """This process does not send federation traffic (a generic worker)."""


def send_edu(api: Any, destination: str, edu_type: str, content: dict) -> None:
    """Queue an EDU for ``destination``. Only the main process or the federation sender can
    send; elsewhere Synapse raises ("Workers cannot send federation traffic"), and we raise
    :class:`CannotSendFederation`."""
    try:
        sender = homeserver(api).get_federation_sender()
    except Exception as exc:  # noqa: BLE001 - Synapse raises a bare Exception on workers
        raise CannotSendFederation(str(exc)) from exc
    sender.build_and_send_edu(destination, edu_type, content)


# ---------------------------------------------------------------------------------------------
# Signed outbound federation requests
# ---------------------------------------------------------------------------------------------


async def federation_post_json(
    api: Any, destination: str, path: str, data: dict, timeout_ms: int
) -> dict:
    """POST ``data`` to ``destination`` signed with X-Matrix by our server key."""
    client = homeserver(api).get_federation_http_client()
    return await client.post_json(
        destination, path, data=data, timeout=timeout_ms, ignore_backoff=False
    )


def http_request_error_details(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status, short reason) for an exception raised by the federation client."""
    code = getattr(exc, "code", None)
    return (code if isinstance(code, int) else None, f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------
# Server notices
# ---------------------------------------------------------------------------------------------


async def send_server_notice(api: Any, user_id: str, body: str) -> bool:
    """Send ``body`` as a server notice; False if server notices are not configured."""
    manager = homeserver(api).get_server_notices_manager()
    if not manager.is_enabled():
        return False
    await manager.send_notice(user_id, {"msgtype": "m.notice", "body": body})
    return True


# ---------------------------------------------------------------------------------------------
# Queries over Synapse's own tables (read-only)
# ---------------------------------------------------------------------------------------------


def _rows(txn: Any, sql: str, args: tuple = ()) -> list[tuple]:
    txn.execute(sql, args)
    return list(txn.fetchall())


def _like_suffix(server_name: str) -> str:
    """A LIKE pattern (escape character ``!``) for user IDs on ``server_name``."""
    escaped = server_name.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%:{escaped}"


def _on_server(user_id: str, server_name: str) -> bool:
    # LIKE is case-insensitive on SQLite and not on PostgreSQL: decide exactly here.
    return user_id.startswith("@") and user_id.endswith(":" + server_name) and (
        user_id[1 : -len(server_name) - 1].find(":") == -1
    )


async def joined_rooms(api: Any, limit: int | None = None) -> list[str]:
    """Rooms where at least one local user is currently joined, most recently joined first."""
    sql = (
        "SELECT room_id FROM local_current_membership WHERE membership = ?"
        " GROUP BY room_id ORDER BY MAX(event_stream_ordering) DESC"
    )
    args: tuple = ("join",)
    if limit is not None:
        sql += " LIMIT ?"
        args = ("join", int(limit))
    rows = await api.run_db_interaction("servership_joined_rooms", _rows, sql, args)
    return [str(r[0]) for r in rows]


async def rooms_ever_joined(api: Any) -> list[str]:
    """Rooms where a local user (or our pseudouser ``@:server``) has ever *joined*: a
    membership event with ``membership = join`` that Synapse did not reject. Invites, knocks
    and rejected invites are not joins (``local_current_membership`` holds them too, so it is
    not used)."""
    server = api.server_name
    rows = await api.run_db_interaction(
        "servership_rooms_ever_joined",
        _rows,
        "SELECT DISTINCT m.room_id, m.user_id FROM room_memberships AS m"
        " LEFT JOIN rejections AS r ON r.event_id = m.event_id"
        " WHERE m.membership = 'join' AND r.event_id IS NULL"
        " AND m.user_id LIKE ? ESCAPE '!'",
        (_like_suffix(server),),
    )
    return sorted({str(room) for room, user in rows if _on_server(str(user), server)})


async def hosts_in_room(api: Any, room_id: str) -> set[str]:
    """Servers with at least one joined member in the room's current state."""
    hosts = await homeserver(api).get_datastores().main.get_current_hosts_in_room(room_id)
    return set(hosts)


#: Most membership events read for one audit (a room with more is audited on its first ones).
MAX_HISTORY = 200_000


async def membership_history(api: Any, room_id: str) -> list[tuple[str, str, str]]:
    """Every membership event Synapse holds for the room, as ``(user_id, membership, sender)``,
    rejected events left out, outliers included (the ``send_join`` state is what we were shown).

    Order: the room's DAG order (depth, then arrival), except that each user's membership in
    Synapse's *current state* comes last. The core reads a user's last entry as where they stand
    now; Synapse's state resolution decides that, not the depth a remote server wrote into its
    events (a forged depth must not turn a kick into an old one). Arrival alone cannot order
    this: Synapse gives the outliers of a ``send_join`` negative, descending stream orderings."""
    rows = await api.run_db_interaction(
        "servership_membership_history",
        _rows,
        "SELECT m.user_id, m.membership, m.sender FROM room_memberships AS m"
        " JOIN events AS e ON e.event_id = m.event_id"
        " LEFT JOIN rejections AS r ON r.event_id = m.event_id"
        " LEFT JOIN current_state_events AS c ON c.event_id = m.event_id"
        " WHERE m.room_id = ? AND r.event_id IS NULL"
        " ORDER BY CASE WHEN c.event_id IS NULL THEN 0 ELSE 1 END,"
        " e.topological_ordering, e.stream_ordering LIMIT ?",
        (room_id, MAX_HISTORY),
    )
    return [(str(u), str(m), str(s)) for (u, m, s) in rows]


async def has_membership(api: Any, room_id: str) -> bool:
    """Whether Synapse holds any membership event for the room (does it know the room?)."""
    rows = await api.run_db_interaction(
        "servership_has_membership",
        _rows,
        "SELECT 1 FROM room_memberships WHERE room_id = ? LIMIT 1",
        (room_id,),
    )
    return bool(rows)


async def shared_room_counts(api: Any, max_rooms: int, exclude: str | None = None) -> dict[str, int]:
    """For each other server: in how many of our ``max_rooms`` most recently joined rooms it has
    a joined member (Synapse's cached per-room host lists)."""
    counts: dict[str, int] = {}
    for room in await joined_rooms(api, max_rooms):
        if room == exclude:
            continue
        for host in await hosts_in_room(api, room):
            counts[host] = counts.get(host, 0) + 1
    counts.pop(api.server_name, None)
    return counts


async def servers_sharing_rooms(api: Any) -> set[str]:
    """Every server with a joined member in a room where one of our users is joined (Synapse's
    cached host list of each of our rooms)."""
    hosts: set[str] = set()
    for room in await joined_rooms(api):
        hosts |= await hosts_in_room(api, room)
    hosts.discard(api.server_name)
    return hosts


def synapse_checks_invite_state(api: Any, room_version_id: str) -> bool:
    """Whether this Synapse validates an incoming invite's ``invite_room_state`` itself for
    this room version (MSC4311; 1.162 and later, room versions flagged
    ``msc4311_stripped_state``: v12), warning about failures. Feature-detected."""
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
    from synapse.handlers.federation import FederationHandler

    if not hasattr(FederationHandler, "_parse_stripped_room_state"):
        return False
    version = KNOWN_ROOM_VERSIONS.get(room_version_id)
    return bool(getattr(version, "msc4311_stripped_state", False))


def synapse_database_files(api: Any) -> list[str]:
    """Synapse's own SQLite database files (empty for PostgreSQL)."""
    files: list[str] = []
    for db in getattr(homeserver(api).config.database, "databases", []):
        conf = getattr(db, "config", {}) or {}
        if conf.get("name") in ("sqlite3", "sqlite"):
            path = (conf.get("args") or {}).get("database")
            if isinstance(path, str):
                files.append(path)
    return files


def synapse_postgres_args(api: Any) -> dict[str, Any] | None:
    """The ``database.args`` of Synapse's PostgreSQL (``psycopg2``) database holding its
    ``main`` data store, or ``None`` when Synapse runs on SQLite."""
    found: dict[str, Any] | None = None
    for db in getattr(homeserver(api).config.database, "databases", []):
        conf = getattr(db, "config", {}) or {}
        if conf.get("name") != "psycopg2":
            continue
        args = dict(conf.get("args") or {})
        if "main" in (getattr(db, "databases", None) or ["main"]):
            return args
        found = found if found is not None else args
    return found


def plain_json(value: Any) -> Any:
    """A copy of ``value`` made of plain ``dict``/``list``/scalars: Synapse's events hold
    immutable mappings and tuples, which the core's strict converter does not take."""
    from collections.abc import Mapping

    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


def now_ms(api: Any) -> int:
    """Synapse's clock in milliseconds (the fake clock in Synapse's own tests)."""
    return int(homeserver(api).get_clock().time_msec())


# ---------------------------------------------------------------------------------------------
# Memberships and join rules (members.py)
# ---------------------------------------------------------------------------------------------


def unknown_room_error(room_id: str) -> Exception:
    """Exactly what Synapse answers a federation request about a room it does not know
    (``get_room_version_id``: ``404 M_NOT_FOUND``), so a refusal does not reveal the room."""
    from synapse.api.errors import NotFoundError

    return NotFoundError("Could not find room_version for %s" % (room_id,))


def in_send_join_request(room_id: str) -> bool:
    """True while Synapse is handling a ``send_join`` request for ``room_id`` (read from the
    request of the current log context, the only place the spam checker can learn why it was
    called)."""
    from urllib.parse import unquote

    from synapse.logging.context import current_context

    request = getattr(current_context(), "request", None)
    url = unquote(str(getattr(request, "url", "") or ""))
    return "/_matrix/federation/" in url and f"/send_join/{room_id}/" in url


def join_rule_known(room_version_id: str, rule: Any) -> bool:
    """Whether Synapse's event auth for ``room_version_id`` knows the join rule ``rule``
    (``event_auth._is_membership_change_allowed``): under any other rule it refuses every
    join, the room creator's own membership changes included. Unknown room versions: False."""
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS

    version = KNOWN_ROOM_VERSIONS.get(room_version_id)
    if version is None or not isinstance(rule, str):
        return False
    if rule in ("public", "invite", "private"):
        return True
    return bool(
        (rule == "knock" and version.knock_join_rule)
        or (rule == "restricted" and version.restricted_join_rule)
        or (rule == "knock_restricted" and version.knock_restricted_join_rule)
    )


def default_room_version(api: Any) -> str:
    """The room version ``createRoom`` uses when the request names none."""
    return str(homeserver(api).config.server.default_room_version.identifier)


async def current_state(
    api: Any, room_id: str, types: list[tuple[str, str | None]] | None = None
) -> list[dict] | None:
    """The room's current state as plain event dicts (only ``types`` if given), or ``None``
    while the room has partial state (we are joining it ourselves, MSC3706). Never waits for
    full state: ``ModuleApi.get_room_state`` does, and called from a spam check on the events
    of that very resync it never returns."""
    from synapse.types.state import StateFilter

    hs = homeserver(api)
    store = hs.get_datastores().main
    if await store.is_partial_state_room(room_id):
        return None
    state_filter = StateFilter.all() if types is None else StateFilter.from_types(types)
    ids = await hs.get_storage_controllers().state.get_current_state_ids(
        room_id, state_filter=state_filter, await_full_state=False
    )
    events = await store.get_events(list(ids.values()))
    return [plain_json(e.get_dict()) for e in events.values()]


def soft_fail_code() -> Any:
    """What ``check_event_for_spam`` returns to have Synapse soft-fail an event."""
    from synapse.api.errors import Codes

    return Codes.FORBIDDEN


# ---------------------------------------------------------------------------------------------
# The members room version in Synapse's own event auth (room_version.py)
# ---------------------------------------------------------------------------------------------

#: Where Synapse reads the two functions of its event auth that the members rules wrap: the
#: defining module first, then each module that binds the function by name at import (patching
#: only ``synapse.event_auth`` would miss those copies). ``synapse.state.v1``/``v2``,
#: ``handlers.message``, ``handlers.event_auth.compute_auth_events`` and ``sticky_events`` read
#: the attribute of ``synapse.event_auth`` at call time, so state resolution is covered too.
_AUTH_PATCHES: dict[str, tuple[str, ...]] = {
    "check_state_dependent_auth_rules": (
        "synapse.event_auth",
        "synapse.handlers.event_auth",
        "synapse.handlers.federation_event",
    ),
    "auth_types_for_event": (
        "synapse.event_auth",
        "synapse.events.builder",
        "synapse.handlers.federation_event",
        "synapse.push.bulk_push_rule_evaluator",
    ),
}
_AUTH_PARAMS = {
    "check_state_dependent_auth_rules": ["event", "auth_events"],
    "auth_types_for_event": ["room_version", "event"],
}
#: Set on our wrappers: the Synapse function each one wraps.
_WRAPPED_ATTR = "__servership_wraps__"


def _auth_originals() -> tuple[dict[str, Any], str | None]:
    """Synapse's two event auth functions (unwrapped), or why they do not fit."""
    import importlib

    try:
        event_auth = importlib.import_module("synapse.event_auth")
    except ImportError as exc:
        return {}, f"synapse.event_auth cannot be imported ({exc})"
    originals: dict[str, Any] = {}
    for name, params in _AUTH_PARAMS.items():
        fn = getattr(event_auth, name, None)
        fn = getattr(fn, _WRAPPED_ATTR, fn)
        if not inspect.isfunction(fn):
            return {}, f"synapse.event_auth.{name} is not a function"
        got = list(inspect.signature(fn).parameters)
        if got != params:
            return {}, f"synapse.event_auth.{name} takes ({', '.join(got)})"
        originals[name] = fn
    return originals, None


def members_auth_problem() -> str | None:
    """Why the members rules cannot be put into this Synapse's event auth, or None: each name
    in ``_AUTH_PATCHES`` must exist and be Synapse's own function (or our wrapper of it), with
    the parameters the wrappers pass on. Another module that replaced one of them is a
    problem too: two wrappers would not know of each other."""
    import importlib

    originals, problem = _auth_originals()
    if problem is not None:
        return problem
    for name, modules in _AUTH_PATCHES.items():
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                return f"{module_name} cannot be imported ({exc})"
            bound = getattr(module, name, None)
            if bound is None:
                return f"{module_name}.{name} does not exist"
            if getattr(bound, _WRAPPED_ATTR, bound) is not originals[name]:
                return f"{module_name}.{name} is not synapse.event_auth.{name}"
    return None


def install_members_auth(
    check: Callable[[Any, Any, Any], None],
    select: Callable[[Any, Any, Any], Any],
) -> None:
    """Route Synapse's event auth through the members rules, process-wide, at every name of
    ``_AUTH_PATCHES``: ``check(original, event, auth_events)`` replaces
    ``check_state_dependent_auth_rules`` and ``select(original, room_version, event)``
    replaces ``auth_types_for_event``; each gets Synapse's function to call. Installing again
    replaces the previous hooks (one module per process serves; unit tests make several).
    Raises ``ConfigError`` naming the setting when ``members_auth_problem`` finds one."""
    import importlib

    problem = members_auth_problem()
    if problem is not None:
        raise ConfigError(
            "servership.members_room_version.enabled needs Synapse's event auth functions "
            f"as this module knows them, and this Synapse differs ({problem}); set it to false"
        )
    originals, _ = _auth_originals()
    original_check = originals["check_state_dependent_auth_rules"]
    original_select = originals["auth_types_for_event"]

    @functools.wraps(original_check)
    def check_state_dependent_auth_rules(event: Any, auth_events: Any) -> None:
        check(original_check, event, auth_events)

    @functools.wraps(original_select)
    def auth_types_for_event(room_version: Any, event: Any) -> Any:
        return select(original_select, room_version, event)

    wrappers = {
        "check_state_dependent_auth_rules": check_state_dependent_auth_rules,
        "auth_types_for_event": auth_types_for_event,
    }
    for name, wrapper in wrappers.items():
        setattr(wrapper, _WRAPPED_ATTR, originals[name])
        for module_name in _AUTH_PATCHES[name]:
            setattr(importlib.import_module(module_name), name, wrapper)
    logger.info("servership: the members rules are in Synapse's event auth (%s)",
                ", ".join(f"{m}.{n}" for n, ms in _AUTH_PATCHES.items() for m in ms))


def uninstall_members_auth() -> None:
    """Put Synapse's own functions back (tests that load several modules in one process)."""
    import importlib

    originals, problem = _auth_originals()
    if problem is not None:
        return
    for name, modules in _AUTH_PATCHES.items():
        for module_name in modules:
            module = importlib.import_module(module_name)
            if getattr(module, name, None) is not originals[name]:
                setattr(module, name, originals[name])


def auth_error(reason: str) -> Exception:
    """The error Synapse's event auth raises for a refused event (403 ``M_FORBIDDEN``)."""
    from synapse.api.errors import AuthError

    return AuthError(403, reason)


def event_with_content(event: Any, content: dict) -> Any:
    """A copy of the Synapse event ``event`` with ``content`` instead of its own (for the
    auth check only: its event ID differs, which that check does not read)."""
    from synapse.events import make_event_from_dict

    pdu = plain_json(event.get_pdu_json())
    pdu["content"] = content
    return make_event_from_dict(pdu, event.room_version)


async def marked_create_events(api: Any) -> list[tuple[str, dict]]:
    """``(room_id, create event)`` for every v12 room in Synapse's store whose create event
    mentions the marker key (the caller decides which carry the marker exactly): one row per
    such room, read once at start-up. Rejected create events are left out."""
    import json

    rows = await api.run_db_interaction(
        "servership_marked_rooms",
        _rows,
        "SELECT e.room_id, j.json FROM events AS e"
        " JOIN event_json AS j ON j.event_id = e.event_id"
        " JOIN rooms AS r ON r.room_id = e.room_id"
        " LEFT JOIN rejections AS x ON x.event_id = e.event_id"
        " WHERE e.type = 'm.room.create' AND e.state_key = '' AND r.room_version = '12'"
        " AND x.event_id IS NULL AND j.json LIKE ?",
        ('%"org.servership.room_version"%',),
    )
    found: list[tuple[str, dict]] = []
    for room_id, text in rows:
        try:
            event = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(event, dict):
            found.append((str(room_id), event))
    return found


# ---------------------------------------------------------------------------------------------
# Peeking through our pseudouser (peeking.py)
# ---------------------------------------------------------------------------------------------


def peeking_problem() -> str | None:
    """What this Synapse lacks for ``peeking`` (``None``: nothing): reading a room's recent
    events goes through Synapse's own ``/messages`` code (history visibility, backfill)."""
    try:
        from synapse.api.constants import Direction  # noqa: F401
        from synapse.handlers.pagination import PaginationHandler
        from synapse.streams.config import PaginationConfig  # noqa: F401
        from synapse.types import create_requester  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    params = inspect.signature(PaginationHandler.get_messages).parameters
    missing = [p for p in ("requester", "room_id", "pagin_config") if p not in params]
    if missing:
        return f"PaginationHandler.get_messages has no {', '.join(missing)}"
    return None


def register_user_json_resource(
    api: Any,
    path: str,
    handlers: dict[str, Callable[[str, dict[str, str], dict], Awaitable[tuple[int, dict]]]],
) -> None:
    """Serve ``path`` to any authenticated local user that is not a guest (public module API:
    ``register_web_resource``, ``get_user_by_req``, which only knows this server's access
    tokens). ``handlers`` maps ``POST``/``GET``/``DELETE`` to ``handler(user_id, query, body)``
    answering ``(status, json)``; ``body`` is ``{}`` except for ``POST``."""
    from synapse.module_api import DirectServeJsonResource
    from synapse.http.servlet import parse_json_object_from_request

    async def serve(method: str, request: Any) -> tuple[int, dict]:
        handler = handlers.get(method)
        if handler is None:
            raise SynapseError(405, f"use {', '.join(sorted(handlers))}", "M_UNRECOGNIZED")
        requester = await api.get_user_by_req(request)
        if getattr(requester, "is_guest", False):
            raise SynapseError(403, "guests cannot peek", "M_GUEST_ACCESS_FORBIDDEN")
        query = {
            k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
            for k, v in (request.args or {}).items()
            if v
        }
        body = parse_json_object_from_request(request) if method == "POST" else {}
        return await handler(requester.user.to_string(), query, body)

    class UserResource(DirectServeJsonResource):  # type: ignore[misc, valid-type]
        async def _async_render_POST(self, request: Any) -> tuple[int, dict]:
            return await serve("POST", request)

        async def _async_render_GET(self, request: Any) -> tuple[int, dict]:
            return await serve("GET", request)

        async def _async_render_DELETE(self, request: Any) -> tuple[int, dict]:
            return await serve("DELETE", request)

    api.register_web_resource(path, UserResource())


async def set_own_membership(
    api: Any, user_id: str, room_id: str, membership: str, via: list[str] | None = None
) -> str:
    """``user_id`` (local; our pseudouser too, which needs no account) joins or leaves
    ``room_id`` itself; a join of a room we are not in goes to the ``via`` servers
    (make_join/send_join, signed by our server key as any event Synapse builds). Returns the
    event ID; raises ``SynapseError`` (a remote refusal keeps its status and errcode)."""
    event = await api.update_room_membership(
        sender=user_id, target=user_id, room_id=room_id, new_membership=membership,
        remote_room_hosts=via,
    )
    return str(event.event_id)


def error_details(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, errcode, message) of a ``SynapseError`` (502 for anything else)."""
    if isinstance(exc, SynapseError):
        # errcode is a Codes enum member in recent releases, a plain string before.
        errcode = getattr(exc.errcode, "value", exc.errcode)
        return int(exc.code), str(errcode), str(exc.msg)
    return 502, "M_UNKNOWN", f"{type(exc).__name__}: {exc}"


async def rooms_joined_by(api: Any, user_id: str) -> list[str]:
    """Rooms where the local ``user_id`` (our pseudouser) is currently joined."""
    rows = await api.run_db_interaction(
        "servership_rooms_joined_by",
        _rows,
        "SELECT room_id FROM local_current_membership WHERE user_id = ? AND membership = ?",
        (user_id, "join"),
    )
    return sorted({str(r[0]) for r in rows})


async def local_joined_users(api: Any, room_id: str) -> list[str]:
    """Local users (our pseudouser included) currently joined to ``room_id``."""
    rows = await api.run_db_interaction(
        "servership_local_joined_users",
        _rows,
        "SELECT user_id FROM local_current_membership WHERE room_id = ? AND membership = ?",
        (room_id, "join"),
    )
    return sorted({str(r[0]) for r in rows})


def _client_event(event: Any) -> dict:
    """The client-format fields of an event (as ``/messages`` gives them, without the
    serializer's per-release options)."""
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "room_id": event.room_id,
        "type": event.type,
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
        "content": plain_json(event.content),
    }
    if event.is_state():
        out["state_key"] = event.state_key
    return out


async def recent_events(api: Any, room_id: str, user_id: str, limit: int) -> list[dict]:
    """The newest ``limit`` events of ``room_id`` that ``user_id`` may see, newest first, as
    Synapse's ``/messages`` (backwards from now) computes them: membership and history
    visibility checked for that user, and history fetched from the residents (backfill) when
    we hold too little. Raises ``SynapseError`` (403) if the user may not read the room."""
    from synapse.api.constants import Direction
    from synapse.streams.config import PaginationConfig
    from synapse.types import create_requester

    hs = homeserver(api)
    config = PaginationConfig(from_token=None, to_token=None, direction=Direction.BACKWARDS,
                              limit=limit)
    result = await hs.get_pagination_handler().get_messages(
        create_requester(user_id), room_id, config
    )
    if isinstance(result, dict):  # releases that serialize inside get_messages
        return [plain_json(e) for e in result.get("chunk", [])]
    # 1.16x: a GetMessagesResult of FilteredEvent (the event in .event) or of events.
    return [_client_event(getattr(e, "event", e)) for e in result.messages_chunk]


# ---------------------------------------------------------------------------------------------
# s2s rooms (s2s_rooms.py): rooms created and upgraded by our pseudouser
# ---------------------------------------------------------------------------------------------

#: While set, the room upgrade running in this context adds these keys to the new room's
#: create content (Synapse copies only the room type; the members marker must follow too).
_UPGRADE_EXTRA_CREATE: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "servership_upgrade_extra_create", default=None
)


def s2s_problem() -> str | None:
    """What this Synapse lacks for ``s2s`` (``None``: nothing): creating and upgrading rooms
    as our pseudouser goes through ``RoomCreationHandler``, which has no module API."""
    try:
        from synapse.api.room_versions import KNOWN_ROOM_VERSIONS  # noqa: F401
        from synapse.handlers.room import RoomCreationHandler
        from synapse.types import create_requester  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    params = inspect.signature(RoomCreationHandler.upgrade_room).parameters
    missing = [p for p in ("requester", "old_room_id", "new_version", "additional_creators")
               if p not in params]
    if missing:
        return f"RoomCreationHandler.upgrade_room has no {', '.join(missing)}"
    if not hasattr(RoomCreationHandler, "_calculate_upgraded_room_creation_content"):
        return "RoomCreationHandler has no _calculate_upgraded_room_creation_content"
    if not additional_creators_work():
        return ("its events freeze their content (Python events, before 1.155), so a v12 "
                "create event with additional_creators is refused and its upgrade of v12 rooms "
                "fails midway (seen on 1.140: 'immutabledict' object has no attribute 'pop')")
    return None


def synapse_room_version(identifier: str) -> Any:
    """Synapse's ``RoomVersion`` for ``identifier`` (``None`` if this Synapse does not know it)."""
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS

    return KNOWN_ROOM_VERSIONS.get(identifier)


async def create_room_as(api: Any, user_id: str, config: dict) -> str:
    """Create a room as the local ``user_id`` (our pseudouser, which has no account: the
    module API's ``create_room`` wants a registered user). Returns the room ID."""
    from synapse.types import create_requester

    handler = homeserver(api).get_room_creation_handler()
    room_id, _alias, _stream = await handler.create_room(
        create_requester(user_id), config, ratelimit=False
    )
    return str(room_id)


def _install_upgrade_hook(handler: Any) -> None:
    """Wrap this handler's creation-content calculation once: inside an upgrade of ours
    (the context variable set) the extra keys are added; every other upgrade is untouched."""
    if getattr(handler, "_servership_upgrade_hook", False):
        return
    original = handler._calculate_upgraded_room_creation_content

    def calculate(*args: Any, **kwargs: Any) -> Any:
        content = original(*args, **kwargs)
        extra = _UPGRADE_EXTRA_CREATE.get()
        if extra:
            content.update(extra)
        return content

    handler._calculate_upgraded_room_creation_content = calculate
    handler._servership_upgrade_hook = True


async def upgrade_room_as(api: Any, user_id: str, old_room_id: str, version: Any,
                          additional_creators: list[str], extra_create: dict) -> str:
    """Synapse's own room upgrade (tombstone in the old room, state copied, new room with a
    ``predecessor``), requested by the local ``user_id``; ``extra_create`` goes into the new
    create event's content. Returns the new room ID."""
    from synapse.types import create_requester

    handler = homeserver(api).get_room_creation_handler()
    _install_upgrade_hook(handler)
    token = _UPGRADE_EXTRA_CREATE.set(dict(extra_create))
    try:
        new_room = await handler.upgrade_room(
            create_requester(user_id), old_room_id, version,
            additional_creators=additional_creators or None, ratelimit=False,
        )
    finally:
        _UPGRADE_EXTRA_CREATE.reset(token)
    return str(new_room)


async def invite_as(api: Any, sender: str, target: str, room_id: str) -> str:
    """The local ``sender`` invites ``target`` (a remote pseudouser) to ``room_id``."""
    event = await api.update_room_membership(
        sender=sender, target=target, room_id=room_id, new_membership="invite",
    )
    return str(event.event_id)


async def send_message_as(api: Any, sender: str, room_id: str, etype: str,
                          content: dict) -> str:
    """Send a (non-state) event as the local ``sender``; its event ID."""
    event = await api.create_and_send_event_into_room(
        {"type": etype, "room_id": room_id, "sender": sender, "content": content}
    )
    return str(event.event_id)


async def sleep(api: Any, ms: int) -> None:
    """Wait ``ms`` milliseconds on Synapse's clock (public module API)."""
    await api.sleep(ms / 1000)


@functools.lru_cache(maxsize=1)
def additional_creators_work() -> bool:
    """Whether rooms we build may name ``additional_creators`` (MSC4289). Releases whose events
    are Python objects freeze an event's content (lists become tuples) before event auth, whose
    check then refuses the tuple ("additional_creators must be an array", seen on 1.140): a
    create event with additional creators fails there."""
    try:
        from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
        from synapse.event_auth import check_valid_additional_creators
        from synapse.events import make_event_from_dict

        version = KNOWN_ROOM_VERSIONS.get("12")
        if version is None:
            return False
        event = make_event_from_dict(
            {"type": "m.room.create", "state_key": "", "sender": "@:a.example",
             "content": {"room_version": "12", "additional_creators": ["@:b.example"]},
             "auth_events": [], "prev_events": [], "depth": 1, "origin_server_ts": 0,
             "hashes": {"sha256": "x"}, "signatures": {}},
            version,
        )
        freeze = getattr(event, "freeze", None)
        if freeze is not None:
            freeze()
        check_valid_additional_creators(event.content["additional_creators"])
    except Exception:  # noqa: BLE001 - refused (or no MSC4289 at all): do without
        return False
    return True
