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
    "AuditQueue",
    "normalise_origin",
    "check_members_rules",
    "members_auth_additions",
    "members_rules_apply",
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


def record_join(
    store: Any, room_id: str, joined_at_ms: int, audit_due_ms: int | None = None
) -> bool:
    """Record our tag for ``room_id``; True if it was new. With ``audit_due_ms``, a new tag
    also queues the room's audit, in the same transaction."""
    return bool(_call(store.record_join, room_id, joined_at_ms, audit_due_ms=audit_due_ms))


def backfill_tags(store: Any, room_ids: list[str], now_ms: int) -> int:
    """Record tags for rooms joined before the module was installed; returns how many were new."""
    return int(_call(store.backfill, room_ids, now_ms))


def missing_rooms(store: Any, room_ids: list[str]) -> list[str]:
    """The rooms of ``room_ids`` the store has no tag for (from memory, no writes)."""
    return [room for room in room_ids if not _call(store.contains_room, room)]


def tag_count(store: Any) -> int:
    """How many tags the store holds."""
    return len(store)


def make_responder(
    store: Any, max_tags: int, budget_tags: int, budget_window_ms: int, shared_budget: bool = False
) -> Any:
    """The ``discover_common_rooms`` responder with our limits. ``shared_budget`` keeps the
    per-origin budgets in the store's file, shared by every process that opens it."""
    return _call(
        _native().Responder,
        store,
        max_tags_per_request=max_tags,
        budget_tags=budget_tags,
        budget_window_ms=budget_window_ms,
        shared_budget=shared_budget,
    )


def normalise_origin(origin: str) -> str:
    """``origin`` as budgets and shared-room checks key it: host lowercased, trailing dot and
    the default port removed."""
    return str(_call(_native().normalise_origin, origin))


def respond_discovery(responder: Any, body: bytes, origin: str, now_ms: int) -> dict:
    """Answer a ``discover_common_rooms`` request body; raises ``CoreError``."""
    answer = _call(responder.respond, body, origin, now_ms)
    return json.loads(answer)


@dataclass(frozen=True)
class AuditOutcome:
    """What one audit of one room found."""

    room_id: str
    verdict: str
    unexplained: list[str]
    removed: list[str]
    explained: list[str]
    report_json: str
    report_text: str


#: What ``Auditor`` learnt from one peer: ``RECOGNISED``, ``NOT_RECOGNISED`` or
#: ``FAILED_PREFIX + reason``.
RECOGNISED = "recognised"
NOT_RECOGNISED = "not_recognised"
FAILED_PREFIX = "failed: "


def _view(room_id: str, server_name: str, history: list[tuple[str, str, str]],
          visible: list[str]) -> Any:
    return _call(_native().RoomView, room_id, server_name, history, visible=visible)


def audit_choose(
    room_id: str,
    server_name: str,
    history: list[tuple[str, str, str]],
    visible: list[str],
    candidates: list[tuple[str, int]],
    max_peers: int,
    seed: int,
) -> list[str]:
    """The peers to ask about ``room_id``: drawn from ``candidates`` (server, rooms shared with
    us), weighted by that count, never us or a server visible in the room
    (``Audit.choose``)."""
    view = _view(room_id, server_name, history, visible)
    return list(_call(_native().Audit.choose, view, candidates, max_peers, seed).peers)


def audit_request(peer: str, room_id: str) -> dict:
    """The ``discover_common_rooms`` body asking ``peer`` about ``room_id``."""
    return dict(json.loads(bytes(_call(_native().audit_request_body, peer, room_id))))


def audit_read(peer: str, room_id: str, body: bytes) -> bool:
    """Whether ``peer``'s answer (bytes) to :func:`audit_request` recognises the room. Raises
    ``CoreError`` (``M_BAD_JSON``) for a malformed answer."""
    answer = _call(_native().audit_read_response, peer, room_id, body)
    if answer.kind == "failed":
        raise CoreError("M_BAD_JSON", 400, str(answer.reason))
    return bool(answer.is_recognised)


def audit_report(
    room_id: str,
    server_name: str,
    history: list[tuple[str, str, str]],
    visible: list[str],
    answers: list[tuple[str, str]],
) -> AuditOutcome:
    """Classify every asked peer's answer against the room's membership history
    (``RoomView(room_id, server_name, history, visible=...)``, ``Audit.report``)."""
    native = _native()
    view = _view(room_id, server_name, history, visible)
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
        verdict=str(report.verdict),
        unexplained=list(report.unexplained),
        removed=[str(server) for server, _how, _by in report.removed],
        explained=[server for server, _how in report.explained],
        report_json=bytes(report.to_json()).decode(),
        report_text=str(report.to_text()),
    )


def open_audit_queue(path: str) -> Any:
    """The queue of pending audits, in the store file."""
    return _call(_native().AuditQueue, path)


def queue_due(queue: Any, now_ms: int, limit: int) -> list[str]:
    """Rooms whose audit is due, earliest first."""
    return [str(r) for r in _call(queue.due, now_ms, limit)]


def queue_finished_since(queue: Any, since_ms: int) -> int:
    """Audits finished since ``since_ms`` (for the hourly bound)."""
    return int(_call(queue.finished_since, since_ms))


def queue_pending_count(queue: Any) -> int:
    return len(_call(queue.pending))


def queue_finish(queue: Any, room_id: str, now_ms: int, verdict: str, report_json: str) -> None:
    """Record the audit of ``room_id`` as done, with its verdict and report."""
    _call(queue.finish, room_id, verdict, now_ms, report_json=report_json)


def queue_retry(queue: Any, room_id: str, now_ms: int, max_attempts: int,
                retry_after_ms: int) -> bool:
    """After a failed attempt: postpone the audit, or give up after ``max_attempts`` (records
    it as ``failed``). True if it gave up."""
    attempts = int(_call(queue.attempts, room_id)) + 1
    if attempts >= max_attempts:
        _call(queue.finish, room_id, "failed", now_ms)
        return True
    _call(queue.postpone, room_id, now_ms + retry_after_ms * attempts)
    return False


def audit_status(queue: Any, room_id: str) -> tuple[str | None, str | None, dict | None]:
    """(state, verdict, report) of the room's automatic audit; Nones where there is none."""
    state = _call(queue.state, room_id)
    outcome = _call(queue.outcome, room_id)
    report = _call(queue.report, room_id)
    return (
        None if state is None else str(state),
        None if outcome is None else str(outcome[0]),
        None if not report else dict(json.loads(report)),
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
    #: The inviter's own verified join that the invite names (MSC4329 with keys only): proof
    #: that the origin is in the room.
    inviter_membership: str | None = None
    #: ``creator_servers`` when that proof exists, else empty: what a creator policy reads.
    proven_creator_servers: list[str] = field(default_factory=list)


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
        inviter_membership=getattr(check, "inviter_membership", None),
        proven_creator_servers=list(getattr(check, "proven_creator_servers", [])),
    )


def check_invite(path_room_id: str, body: bytes, receiving_server: str, origin: str,
                 keys: dict | None = None) -> InviteResult:
    """Check an MSC4329 invite request body; raises ``CoreError``. ``keys`` (``{server:
    {key_id: base64}}``, from Synapse's keyring) lets the core verify signatures and hashes of
    the events it promotes from ``state``; the caller still verifies the create event with
    Synapse's keyring, and Synapse's own pipeline the invite event."""
    native = _native()
    ring = _call(native.KeyRing.from_json, keys) if keys else None
    return _invite_result(
        _call(native.check_invite, path_room_id, body, receiving_server, origin, ring)
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


def decide_knock(room_id: str, server: str, state: list[dict] | None, mode: str) -> Any:
    """The core's ``decide_knock`` on the room's current state (``moderator`` or
    ``auto_accept``): a ``KnockDecision`` with ``decision`` and ``outward_event``."""
    return _call(_native().decide_knock, room_id, server, state, None, None, mode)


def join_allowed(state_events: list[dict], server_name: str, gated: bool) -> tuple[bool, str]:
    """Whether a join from ``server_name`` may proceed in a room with this current state."""
    decision = _call(_native().join_allowed, state_events, server_name, gated)
    return bool(decision.allowed), str(decision.reason)


# --- memberships (MSC1777, MSC3348) ----------------------------------------------------------


# --- the members room version (room_version.py) ----------------------------------------------
# Called inline from Synapse's synchronous event auth (no thread: in-memory checks of a few
# events, no I/O).


def gated_flag() -> str:
    """The create-content key that gates a room of the members room version."""
    return str(_native().MEMBERS_GATED)


def members_rules_apply(create: dict) -> bool:
    """Whether a create event (plain dict) makes a room with the members rules."""
    return bool(_call(_native().members_rules_apply, create))


def members_auth_additions(event: dict) -> list[tuple[str, str]]:
    """What the members rules add to v12's auth events selection for ``event``."""
    return [(str(t), str(k)) for t, k in _call(_native().members_auth_additions, event)]


def check_members_rules(event: dict, auth_events: list[dict], room_version: str) -> Any:
    """The core's ``Decision`` (``allowed``, ``reason``, ``detail``) for ``event``."""
    return _call(_native().check_members_rules, event, auth_events, room_version)


def members_marker() -> str:
    """The create-content key that asks a v12 room for the members rules."""
    return str(_servership().MEMBERS_MARKER)


def members_room_version() -> str:
    """The members room version's identifier (the marker's value)."""
    return str(_servership().MEMBERS_ROOM_VERSION)


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
