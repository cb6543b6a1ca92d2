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

Auditing a room just joined::

    view = discovery.RoomView(room_id, our_name, memberships)
    audit = discovery.Audit.plan(view, known_peers, max_peers=20)
    answers = {peer: audit.read_response(peer, post(peer, audit.request_body(peer)))
               for peer in audit.peers}
    report = audit.report(answers)
"""

from servership._native import (
    DISCOVER_COMMON_ROOMS_PATH,
    DISCOVER_COMMON_ROOMS_STABLE_PATH,
    Audit,
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
    participation_tag,
    participation_tags,
)

__all__ = [
    "DISCOVER_COMMON_ROOMS_PATH",
    "DISCOVER_COMMON_ROOMS_STABLE_PATH",
    "Audit",
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
    "participation_tag",
    "participation_tags",
]
