"""The one place where the Synapse module calls the servership core.

The core is the Rust library's Python binding (``servership``, native part
``servership._native``). It is imported lazily, on first use, so that the module's plumbing
(config, servlets, hooks) loads and can be tested without it, and so that integrating the
binding means editing this file only. Every function here takes and returns plain Python
values (``bytes``, ``str``, ``dict``, small dataclasses); the rest of the module never sees a
native object's attributes.

All functions here are blocking (SQLite, hashing, signature checks): callers run them through
``api.defer_to_thread``, never on the reactor thread.

Names marked PLANNED are the agreed binding names whose exact argument lists will be confirmed
at integration (see ``docs/synapse-internals.md``). The discovery section is integrated.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

_lock = threading.Lock()
#: Bindings the module calls; a wheel without any of them is refused at start-up.
_REQUIRED = (
    "ServershipError",
    "TagStore",
    "Responder",
    "check_invite",
    "check_spec_invite",
    "build_invite_request",
    "KnockStore",
    "parse_knock_edu",
    "join_allowed",
)
_cached: Any = None


class CoreUnavailable(RuntimeError):
    """The native core (``servership._native``) is not installed."""


class CoreError(Exception):
    """A Matrix error raised by the core: answer the peer with it as-is."""

    def __init__(
        self, errcode: str, http_status: int, message: str, retry_after_ms: int | None = None
    ) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.http_status = http_status
        self.message = message
        self.retry_after_ms = retry_after_ms

    def __str__(self) -> str:
        return f"{self.http_status} {self.errcode}: {self.message}"


def _servership() -> Any:
    """Import ``servership`` and check that its native part is there (cached)."""
    global _cached
    if _cached is not None:
        return _cached
    with _lock:
        if _cached is None:
            try:
                native = importlib.import_module("servership._native")
                mod = importlib.import_module("servership")
                for name in _REQUIRED:
                    if not hasattr(native, name):
                        raise ImportError(f"servership._native.{name} is missing")
            except ImportError as exc:
                raise CoreUnavailable(
                    "the servership native core is not installed (servership._native: "
                    f"{exc}); install the servership wheel, or build it with `maturin develop`"
                ) from exc
            _cached = mod
    return _cached


def require() -> None:
    """Raise ``CoreUnavailable`` unless the native core is installed (checked at start-up)."""
    _servership()


def _native() -> Any:
    """The native module itself (every binding is there, whatever the package re-exports)."""
    return _servership()._native


def native_available() -> bool:
    """True if the native core can be imported."""
    try:
        _servership()
    except CoreUnavailable:
        return False
    return True


def _translate(exc: BaseException) -> BaseException:
    """Map a ``servership.ServershipError`` to ``CoreError``; anything else unchanged."""
    mod = _cached
    if mod is not None and isinstance(exc, mod.ServershipError):
        retry = getattr(exc, "retry_after_ms", None)
        return CoreError(
            errcode=str(getattr(exc, "errcode", "M_UNKNOWN")),
            http_status=int(getattr(exc, "http_status", 500)),
            message=str(exc),
            retry_after_ms=int(retry) if isinstance(retry, int) else None,
        )
    return exc


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - translated, then re-raised
        translated = _translate(exc)
        if translated is exc:
            raise
        raise translated from exc


# --- discovery (MSC4358) ---------------------------------------------------------------------


def open_tag_store(path: str, server_name: str) -> Any:
    """Open (creating if needed) the participation-tag store in our own SQLite file."""
    return _call(_servership().TagStore, path, server_name)


def record_join(store: Any, room_id: str, joined_at_ms: int) -> bool:
    """Record our tag for ``room_id``; True if it was new."""
    return bool(_call(store.record_join, room_id, joined_at_ms))


def backfill_tags(store: Any, room_ids: list[str], now_ms: int) -> int:
    """Record tags for rooms joined before the module was installed; returns how many were new."""
    return int(_call(store.backfill, room_ids, now_ms))


def tag_count(store: Any) -> int:
    """How many tags the store holds."""
    return len(store)


def make_responder(store: Any, max_tags: int, budget_tags: int, budget_window_ms: int) -> Any:
    """The ``discover_common_rooms`` responder with our limits."""
    return _call(
        _native().Responder,
        store,
        max_tags_per_request=max_tags,
        budget_tags=budget_tags,
        budget_window_ms=budget_window_ms,
    )


def respond_discovery(responder: Any, body: bytes, origin: str, now_ms: int) -> dict:
    """Answer a ``discover_common_rooms`` request body; raises ``CoreError``."""
    answer = _call(responder.respond, body, origin, now_ms)
    return json.loads(answer)


@dataclass(frozen=True)
class AuditOutcome:
    """What one audit of one room found."""

    room_id: str
    unexplained: list[str]
    explained: list[str]
    report_json: str
    report_text: str


#: What ``Auditor`` learnt from one peer: ``RECOGNISED``, ``NOT_RECOGNISED`` or
#: ``FAILED_PREFIX + reason``.
RECOGNISED = "recognised"
NOT_RECOGNISED = "not_recognised"
FAILED_PREFIX = "failed: "


def audit_plan(
    room_id: str, room_servers: list[str], known_peers: list[str], max_peers: int
) -> list[str]:
    """The peers to ask about ``room_id``: ``known_peers`` (in the order given) that are not
    visible in the room, without duplicates, at most ``max_peers``
    (``Audit.plan(RoomView(..., visible=room_servers), ...)``)."""
    native = _native()
    view = _call(native.RoomView, room_id, "", visible=room_servers)
    return list(_call(native.Audit.plan, view, known_peers, max_peers).peers)


def audit_requests(server_name: str, peer: str, room_ids: list[str], max_tags: int) -> list[dict]:
    """Request bodies (chunked to ``max_tags``) asking ``peer`` about ``room_ids``
    (``Requester(peer, room_ids, max_tags).bodies``). The tags are keyed by the *peer's* name;
    ``server_name`` (ours) is not part of the question."""
    requester = _call(_native().Requester, peer, room_ids, max(1, max_tags))
    return [json.loads(body) for body in requester.bodies]


def audit_read(peer: str, room_ids: list[str], request: dict, response: Any) -> list[str]:
    """The room IDs ``peer`` recognised in ``response``, its answer to ``request`` (one body from
    ``audit_requests``). Raises ``CoreError`` (``M_BAD_JSON``) for a malformed answer, including
    one naming a tag that ``request`` did not ask."""
    native = _native()
    asked = request.get("room_participation_tags") if isinstance(request, dict) else None
    if not isinstance(asked, list):
        raise CoreError("M_BAD_JSON", 400, "the request has no room_participation_tags list")
    asked_set = {t for t in asked if isinstance(t, str)}
    tags = _call(native.participation_tags, peer, room_ids)
    rooms = [room for room, tag in zip(room_ids, tags) if tag in asked_set]
    requester = _call(native.Requester, peer, rooms, max(1, len(rooms)))
    body = json.dumps(response).encode()
    return list(_call(requester.map_response, 0, body))


def audit_report(
    room_id: str,
    server_name: str,
    membership: list[tuple[str, str]],
    room_servers: list[str],
    answers: list[tuple[str, str]],
) -> AuditOutcome:
    """Classify every asked peer's answer against the room (``RoomView(room_id, server_name,
    membership, visible=room_servers)``, ``Audit.report``): a peer that recognised the room with
    no membership at all is *unexplained*; one whose users left or were banned is *explained*;
    the report also lists peers that did not recognise it and peers that failed to answer."""
    native = _native()
    view = _call(native.RoomView, room_id, server_name, membership, visible=room_servers)
    peers = [peer for peer, _ in answers]
    audit = _call(native.Audit.plan, view, peers, max(1, len(peers)))

    def answer(kind: str) -> Any:
        if kind == RECOGNISED:
            return native.PeerAnswer.recognised()
        if kind == NOT_RECOGNISED:
            return native.PeerAnswer.not_recognised()
        return native.PeerAnswer.failed(kind[len(FAILED_PREFIX):] or "failed")

    report = _call(audit.report, [(peer, answer(kind)) for peer, kind in answers])
    return AuditOutcome(
        room_id=room_id,
        unexplained=list(report.unexplained),
        explained=[server for server, _how in report.explained],
        report_json=bytes(report.to_json()).decode(),
        report_text=str(report.to_text()),
    )


# --- invites (MSC4329, MSC4311) --------------------------------------------------------------


@dataclass(frozen=True)
class InviteResult:
    """A checked invite, with the ``invite_room_state`` to store for the invitee."""

    event_id: str
    room_version: str
    room_id: str
    creator_servers: list[str]
    invite_room_state: list[dict]
    event: dict = field(repr=False)
    #: The create PDU as received (MSC4329 only; its signatures are the caller's to verify).
    create_event: dict = field(default_factory=dict, repr=False)


def _invite_result(check: Any) -> InviteResult:
    # InviteCheck (MSC4329) has event and create_event; SpecInviteCheck (MSC4311) has neither.
    event = getattr(check, "event", None)
    create = getattr(check, "create_event", None)
    return InviteResult(
        event_id=str(check.event_id),
        room_version=str(check.room_version),
        room_id=str(check.room_id),
        creator_servers=list(check.creator_servers),
        invite_room_state=[dict(e) for e in check.invite_room_state],
        event=dict(event) if event is not None else {},
        create_event=dict(create) if create is not None else {},
    )


def check_invite(path_room_id: str, body: bytes, receiving_server: str, origin: str) -> InviteResult:
    """Check an MSC4329 invite request body; raises ``CoreError``. Signatures are not checked
    here (no key ring): the caller verifies the create event with Synapse's keyring, and
    Synapse's own pipeline verifies the invite event."""
    return _invite_result(
        _call(_native().check_invite, path_room_id, body, receiving_server, origin)
    )


def check_spec_invite(
    path_room_id: str, path_event_id: str, body: bytes, receiving_server: str, origin: str
) -> InviteResult:
    """Check a v2 invite whose ``invite_room_state`` should carry the full create PDU (MSC4311).
    ``body`` is the v2 request shape ``{room_version, event, invite_room_state}``."""
    native = _native()
    return _invite_result(
        _call(
            native.check_spec_invite,
            native.SPEC_INVITE_V2,
            path_room_id,
            path_event_id,
            body,
            receiving_server,
            origin,
        )
    )


def build_invite_request(
    invite: dict, create: dict, stripped_state: list[dict]
) -> tuple[str, dict]:
    """The MSC4329 request for an invite we send: ``(path, body)``."""
    path, body = _call(_native().build_invite_request, invite, create, [], stripped_state)
    return str(path), json.loads(body)


# --- subscriptions (MSC4099) -----------------------------------------------------------------


def parse_knock(content: dict) -> str:
    """Validate an ``m.server.knock`` EDU's content; returns its room ID."""
    return str(_call(_native().parse_knock_edu, content))


def open_knock_store(path: str, expiry_ms: int) -> Any:
    """Open the knock store (same SQLite file as the tags, its own tables)."""
    return _call(_native().KnockStore, path, expiry_ms)


def record_knock(store: Any, room_id: str, server: str, now_ms: int) -> None:
    """Record (idempotently) that ``server`` knocked on ``room_id``."""
    _call(store.record, room_id, server, now_ms)


def join_allowed(state_events: list[dict], server_name: str, gated: bool) -> tuple[bool, str]:
    """Whether a join from ``server_name`` may proceed in a room with this current state."""
    decision = _call(_native().join_allowed, state_events, server_name, gated)
    return bool(decision.allowed), str(decision.reason)


# --- memberships (MSC1777, MSC3348) ----------------------------------------------------------


def user_server(user_id: str) -> str | None:
    """The server name of a valid user ID (``servership.UserId``), or None."""
    try:
        return str(_servership().UserId(user_id).server_name)
    except Exception:  # noqa: BLE001 - any refusal of the core means "not a user ID"
        return None


def is_server_pseudouser(user_id: str) -> bool:
    """True exactly for ``@:server`` with a valid server name (the core's one definition)."""
    try:
        return bool(_servership().UserId(user_id).is_server_pseudouser)
    except Exception:  # noqa: BLE001
        return False


def check_pseudouser_join(
    state_events: list[dict],
    pseudouser: str,
    room_id: str,
    denied_servers: list[str],
    denied_rooms: list[str],
) -> tuple[bool, str, str]:
    """The operator's deny lists, then MSC1777 and the room's auth rules, for a remote
    pseudouser joining ``room_id``: (allowed, reason code, detail)."""
    native = _native()
    policy = _call(native.OperatorPolicy, denied_servers, denied_rooms)
    decision = _call(policy.check_remote_pseudouser_join, room_id, state_events, pseudouser)
    return bool(decision.allowed), str(decision.reason), str(decision.detail)


def open_limited_knock_store(
    path: str, expiry_ms: int, max_per_origin: int, origin_window_ms: int
) -> Any:
    """``open_knock_store`` with the per-origin cap."""
    return _call(
        _native().KnockStore,
        path,
        expiry_ms,
        max_per_origin=max_per_origin,
        origin_window_ms=origin_window_ms,
    )


def purge_knocks(store: Any, now_ms: int) -> int:
    """Delete knocks expired at ``now_ms`` (in short batches); returns how many."""
    return int(_call(store.purge_expired, now_ms))
