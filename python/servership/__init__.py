"""servership: Matrix homeservers treating servers as room participants.

The heavy lifting happens in Rust (``servership._native``); this package re-exports it with
one flat namespace, plus the submodules ``servership.peeking``, ``servership.s2s`` and
``servership.subscription`` by concept::

    >>> import servership
    >>> servership.canonical_json({"b": 1, "a": [True, None]})
    b'{"a":[true,null],"b":1}'

Every error is a :class:`ServershipError` carrying the Matrix ``errcode``, the ``http_status`` to
answer with and the ``matrix_error`` body.
"""

from servership._native import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    BadJsonError,
    ForbiddenError,
    IncompatibleRoomVersionError,
    InternalError,
    InvalidParamError,
    LimitExceededError,
    NotFoundError,
    ServershipError,
    SigningKey,
    StorageError,
    TooLargeError,
    UnauthorizedError,
    VerifyKey,
    __version__,
    canonical_json,
    content_hash,
    event_id,
    is_server_pseudouser,
    redact,
    reference_hash,
    room_id_from_create_event,
    canonicalize,
    parse_json,
    sign_json,
    verify_json,
)
from servership._native import Decision, KnockStore, RoomState
# The members capabilities by concept (not in __all__, which lists the flat native names).
from servership import peeking, s2s, subscription  # noqa: E402,F401

__all__ = [
    "Decision",
    "KnockStore",
    "RoomState",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "BadJsonError",
    "ForbiddenError",
    "IncompatibleRoomVersionError",
    "InternalError",
    "InvalidParamError",
    "LimitExceededError",
    "NotFoundError",
    "ServershipError",
    "SigningKey",
    "StorageError",
    "TooLargeError",
    "UnauthorizedError",
    "VerifyKey",
    "__version__",
    "canonical_json",
    "content_hash",
    "event_id",
    "is_server_pseudouser",
    "redact",
    "reference_hash",
    "room_id_from_create_event",
    "canonicalize",
    "parse_json",
    "sign_json",
    "verify_json",
]
