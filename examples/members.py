"""A server knocks on a gated room, a moderator lets it in, and its join then goes through.

Run with the servership wheel installed: ``python examples/members.py``.
"""

import tempfile
from pathlib import Path

import servership
from servership import subscription

ROOM = "!room:origin.example"
PEER = "peer.example"


def main() -> None:
    state = [
        {"type": "m.room.create", "state_key": "", "sender": "@mod:origin.example",
         "content": {"room_version": "11"}},
        {"type": "m.room.member", "state_key": "@mod:origin.example",
         "sender": "@mod:origin.example", "content": {"membership": "join"}},
    ]
    gate = subscription.JoinGate([ROOM])

    with tempfile.TemporaryDirectory() as tmp:
        store = servership.KnockStore(Path(tmp) / "servership.db", expire_after_ms=86_400_000)

        # 1. The knock EDU arrives in a transaction from PEER.
        edu = {"edu_type": "m.server.knock", "content": {"room_id": ROOM}}
        room_id = subscription.parse_knock_edu(edu)
        record = store.record(room_id, PEER)
        print(f"knock on {room_id} from {PEER} recorded (seen {record['times']} time)")

        # 2. Decide: the room wants a moderator, so the knock stays pending (nothing is sent).
        decision = subscription.decide_knock(room_id, PEER, state, mode="moderator")
        assert decision.outward_event is None
        print(f"decision: {decision.decision.verdict} ({decision.decision.reason})")

        # 3. PEER tries to join the gated room: refused.
        before = gate.check_join(ROOM, state, PEER)
        print(f"join before: {before.verdict} ({before.reason})")

        # 4. A moderator accepts: the room gets m.server.is_able_to_subscribe for PEER.
        state.append({
            "type": subscription.ABLE_TO_SUBSCRIBE, "state_key": PEER,
            "sender": "@mod:origin.example",
            "content": subscription.able_to_subscribe_content(True),
        })
        print(f"moderator sends {subscription.ABLE_TO_SUBSCRIBE} for {PEER}")

        # 5. The join now goes through.
        after = gate.check_join(ROOM, state, PEER)
        print(f"join after: {after.verdict} ({after.reason})")
        assert after and subscription.is_able_to_subscribe(state, PEER)


if __name__ == "__main__":
    main()
