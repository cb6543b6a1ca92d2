"""Out-of-room server discovery (MSC4358): the endpoint, the requesting side and the audit.

See ``docs/discovery.md``. The tag itself and the store live in the top-level package
(:func:`servership.participation_tag`, :class:`servership.TagStore`) and are re-exported here, so
``from servership import discovery`` is enough for everything::

    >>> from servership import discovery
    >>> discovery.DISCOVER_COMMON_ROOMS_PATH
    '/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms'

Serving (answer with ``exc.http_status`` and ``exc.matrix_error`` on error)::

    responder = discovery.Responder(store, max_tags_per_request=1000)
    try:
        answer = responder.respond(body, origin)
    except servership.ServershipError as exc:
        ...

Serving from several processes (Synapse workers) on one budget, stored in the tag store's file::

    responder = discovery.Responder(store, shared_budget=True)

Auditing a room just joined, from its membership history ``(user_id, membership, sender)``::

    view = discovery.RoomView(room_id, our_name, history)
    audit = discovery.Audit.choose(view, {peer: rooms_shared}, max_peers=20,
                                   seed=secrets.randbits(64))
    answers = {peer: audit.read_response(peer, post(peer, audit.request_body(peer)))
               for peer in audit.peers}
    report = audit.report(answers)          # report.verdict, .unexplained, .removed, ...

One room, one peer, no ``Audit`` needed::

    body = discovery.audit_request_body(peer, room_id)
    answer = discovery.audit_read_response(peer, room_id, post(peer, body))

Queueing audits with the join that needs them (one transaction), and running them later::

    store.record_join(room_id, audit_due_ms=now + 60_000)
    queue = discovery.AuditQueue(store.path)
    for room_id in queue.due(limit=10):
        ...
        queue.finish(room_id, report.verdict)
"""

from servership._native import (
    DISCOVER_COMMON_ROOMS_PATH,
    DISCOVER_COMMON_ROOMS_STABLE_PATH,
    Audit,
    AuditQueue,
    AuditReport,
    BadJsonError,
    InvalidParamError,
    LimitExceededError,
    PeerAnswer,
    Requester,
    Responder,
    RoomView,
    TagStore,
    TooLargeError,
    audit_read_response,
    audit_request_body,
    normalise_origin,
    participation_tag,
    participation_tags,
)

__all__ = [
    "DISCOVER_COMMON_ROOMS_PATH",
    "DISCOVER_COMMON_ROOMS_STABLE_PATH",
    "Audit",
    "AuditQueue",
    "AuditReport",
    "BadJsonError",
    "InvalidParamError",
    "LimitExceededError",
    "PeerAnswer",
    "Requester",
    "Responder",
    "RoomView",
    "TagStore",
    "TooLargeError",
    "audit_read_response",
    "audit_request_body",
    "normalise_origin",
    "participation_tag",
    "participation_tags",
]
