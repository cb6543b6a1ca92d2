"""Peeking over federation through server pseudousers (MSC1777).

A server takes part in a room as its pseudouser ``@:server``. This module says whether such a
pseudouser may join (:func:`check_pseudouser_join`), applies the operator's deny lists
(:class:`OperatorPolicy`), names rooms and lists members without pseudousers
(:func:`room_display_name`, :func:`visible_members`), and tracks local peeks to say when to join
or leave as the local pseudouser (:class:`PeekTracker`)::

    >>> from servership import peeking, RoomState
    >>> state = RoomState.from_events([
    ...     {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
    ... ])
    >>> peeking.check_pseudouser_join(state, "@:peer.example").reason
    'no_user_of_server'

Every ``state`` argument takes a :class:`~servership.RoomState`, a list of state event dicts or
JSON text of that list.
"""

from servership._native import (
    Decision,
    OperatorPolicy,
    PeekAdvice,
    PeekTracker,
    RoomState,
    check_pseudouser_join,
    room_display_name,
    visible_members,
)

__all__ = [
    "Decision",
    "OperatorPolicy",
    "PeekAdvice",
    "PeekTracker",
    "RoomState",
    "check_pseudouser_join",
    "room_display_name",
    "visible_members",
]
