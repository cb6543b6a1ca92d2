"""Subscription-based authorization of servers (MSC4099).

- :func:`parse_knock_edu`: validates an ``m.server.knock`` EDU (or its content); returns the room ID.
- :class:`KnockStore`: knocks recorded idempotently per (room, server), expiring.
- :func:`decide_knock`: accept, deny or leave pending (server ACL, policy lists, your own research
  callback, the room's mode); only :attr:`KnockDecision.outward_event` may be acted on towards
  the knocking server.
- ``m.server.is_able_to_subscribe``: :func:`able_to_subscribe_content`, :func:`is_able_to_subscribe`.
- ``m.server.subscription``: :func:`check_subscription_event`.
- Gated joins: :class:`JoinGate`, or :func:`join_allowed` when you keep the configuration yourself.
- :class:`ServerAcl`: ``m.room.server_acl`` evaluation.
"""

from servership._native import (
    Decision,
    JoinGate,
    KnockDecision,
    KnockStore,
    ServerAcl,
    able_to_subscribe_content,
    check_subscription_event,
    decide_knock,
    is_able_to_subscribe,
    join_allowed,
    parse_knock_edu,
)

#: The EDU type of a knock.
KNOCK_EDU_TYPE = "m.server.knock"
#: The state event type that grants the capability.
ABLE_TO_SUBSCRIBE = "m.server.is_able_to_subscribe"
#: The state event type that uses it.
SUBSCRIPTION = "m.server.subscription"

__all__ = [
    "ABLE_TO_SUBSCRIBE",
    "Decision",
    "JoinGate",
    "KNOCK_EDU_TYPE",
    "KnockDecision",
    "KnockStore",
    "SUBSCRIPTION",
    "ServerAcl",
    "able_to_subscribe_content",
    "check_subscription_event",
    "decide_knock",
    "is_able_to_subscribe",
    "join_allowed",
    "parse_knock_edu",
]
