"""Server-to-server rooms and their upgrade negotiation (MSC3348).

- :func:`is_s2s_room`: the room type ``m.s2s`` (or unstable ``support.feline.s2s``).
- :func:`check_server_user_membership`: the one authorization call for a server user's membership,
  under a :class:`ServerUserPolicy`.
- :func:`initial_state`: the event templates to create an s2s room with a peer.
- :class:`Negotiation` with :class:`NegotiationPolicy`: the ``m.s2s.upgrade.*`` exchange; each
  :class:`Step` says what to send (``send``), what to deliver again (``resend``), whether to
  upgrade the room now (``upgrade``, to the initiator only) and the outcome so far
  (``"in_progress"``, ``"agreed:<version>"``, ``"failed:<error>"``, ``"vendor:<method>"``).
  Report sent event IDs with ``sent`` and call ``tick`` on a timer (``docs/s2s.md``).
  :func:`negotiation_choose` is the choice rule alone.
"""

import enum

from servership._native import (
    Decision,
    Negotiation,
    NegotiationPolicy,
    Step,
    check_server_user_membership,
    initial_state,
    is_s2s_room,
    negotiation_choose,
)

#: The stable room type.
ROOM_TYPE = "m.s2s"
#: The unstable room type.
ROOM_TYPE_UNSTABLE = "support.feline.s2s"
#: Event types of the negotiation.
PROPOSAL = "m.s2s.upgrade.proposal"
REPLY = "m.s2s.upgrade.reply"
ACCEPT = "m.s2s.upgrade.accept"
ACK = "m.s2s.upgrade.ack"
FAIL = "m.s2s.upgrade.fail"
VENDOR = "m.s2s.upgrade"


class ServerUserPolicy(str, enum.Enum):
    """Where server users may be members; a ``str``, so the values pass straight to
    :func:`check_server_user_membership`."""

    #: MSC3348: only in s2s rooms.
    S2S_ONLY = "s2s_only"
    #: MSC1777: a user of that server joined or invited, and the room's auth rules allow the join.
    PEEKING = "peeking"
    #: Allowed if either of the above allows it (the default).
    EITHER = "either"

    def __str__(self) -> str:
        return self.value


__all__ = [
    "ACCEPT",
    "ACK",
    "Decision",
    "FAIL",
    "Negotiation",
    "NegotiationPolicy",
    "PROPOSAL",
    "REPLY",
    "ROOM_TYPE",
    "ROOM_TYPE_UNSTABLE",
    "ServerUserPolicy",
    "Step",
    "VENDOR",
    "check_server_user_membership",
    "initial_state",
    "is_s2s_room",
    "negotiation_choose",
]
