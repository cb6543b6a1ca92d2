"""Subscription authorization of servers (MSC4099) through Python."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import servership
from servership import subscription
from conftest import REPO

ROOM = "!room:origin.example"


def ev(event_type: str, state_key: str, content: dict[str, Any], sender: str = "@mod:origin.example") -> dict[str, Any]:
    return {"type": event_type, "state_key": state_key, "sender": sender, "content": content}


BASE = [ev("m.room.create", "", {"room_version": "11"})]


def able(server: str, value: bool = True) -> dict[str, Any]:
    return ev(subscription.ABLE_TO_SUBSCRIBE, server, subscription.able_to_subscribe_content(value))


def test_parse_knock_edu() -> None:
    assert subscription.parse_knock_edu({"room_id": ROOM}) == ROOM
    edu = {"edu_type": "m.server.knock", "content": {"room_id": ROOM}}
    assert subscription.parse_knock_edu(edu) == ROOM
    assert subscription.parse_knock_edu(json.dumps(edu).encode()) == ROOM
    with pytest.raises(servership.InvalidParamError):
        subscription.parse_knock_edu({"room_id": "not a room"})
    with pytest.raises(servership.BadJsonError):
        subscription.parse_knock_edu({"edu_type": "m.typing", "content": {"room_id": ROOM}})
    with pytest.raises(servership.BadJsonError):
        subscription.parse_knock_edu(b"\xff")
    with pytest.raises(servership.TooLargeError):
        subscription.parse_knock_edu(b" " * 100_000)


def test_knock_repeated_1000_times_is_stored_once(tmp_path: pathlib.Path) -> None:
    store = servership.KnockStore(str(tmp_path / "s.db"), 60_000)
    for i in range(1000):
        record = store.record(ROOM, "peer.example", 1_000 + i)
    assert len(store) == 1
    assert record["times"] == 1000 and record["first_seen_ms"] == 1_000 and record["last_seen_ms"] == 1_999
    assert store.get(ROOM, "peer.example", 2_000) == record
    assert [r["server"] for r in store.for_room(ROOM, 2_000)] == ["peer.example"]
    assert "s.db" in repr(store)


def test_expired_knock(tmp_path: pathlib.Path) -> None:
    store = subscription.KnockStore(tmp_path / "s.db", 1_000)
    store.record(ROOM, "peer.example", 10_000)
    assert store.get(ROOM, "peer.example", 10_500) is not None
    assert store.get(ROOM, "peer.example", 11_001) is None
    again = store.record(ROOM, "peer.example", 12_000)
    assert again["times"] == 1 and again["first_seen_ms"] == 12_000
    store.record(ROOM, "other.example", 0)
    assert store.purge_expired(12_500) == 1
    assert len(store) == 1
    # Default clock: a fresh record is not expired now.
    assert store.record("!x:origin.example", "peer.example")["times"] == 1
    assert store.get("!x:origin.example", "peer.example") is not None


def test_knock_store_threads(tmp_path: pathlib.Path) -> None:
    store = servership.KnockStore(str(tmp_path / "s.db"), 60_000)

    def work(i: int) -> None:
        for j in range(50):
            store.record(ROOM, f"s{i}.example", 1_000 + j)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 4
    assert all(r["times"] == 50 for r in store.for_room(ROOM, 1_100))


def test_server_matching_a_policy_list_glob_is_denied() -> None:
    policy = [ev("m.policy.rule.server", "rule1", {"entity": "*.evil.example", "recommendation": "m.ban", "reason": "spam"})]
    d = subscription.decide_knock(ROOM, "a.evil.example:8448", BASE, policy)
    assert d.decision.reason == "policy_ban" and d.decision.verdict == "deny"
    assert "spam" in d.decision.detail
    assert d.outward_event is None
    ok = subscription.decide_knock(ROOM, "good.example", BASE, policy)
    assert ok.decision.verdict == "pending" and ok.decision.reason == "awaiting_moderator"


def test_unknown_and_denied_rooms_look_alike_outside() -> None:
    unknown = subscription.decide_knock(ROOM, "peer.example", None)
    assert unknown.decision.reason == "unknown_room" and unknown.outward_event is None
    assert unknown.to_json() == {"decision": unknown.decision.to_json(), "outward_event": None}
    acl = BASE + [ev("m.room.server_acl", "", {"allow": ["*"], "deny": ["peer.example"]})]
    denied = subscription.decide_knock(ROOM, "peer.example", acl)
    assert denied.decision.reason == "server_acl_denied" and denied.outward_event is None
    auto = subscription.decide_knock(ROOM, "peer.example", BASE, mode="auto_accept")
    assert auto.decision.reason == "auto_accepted"
    assert auto.outward_event == {
        "type": subscription.ABLE_TO_SUBSCRIBE,
        "state_key": "peer.example",
        "content": {"is_able_to_subscribe": True},
    }
    with pytest.raises(servership.InvalidParamError, match="mode"):
        subscription.decide_knock(ROOM, "peer.example", BASE, mode="yolo")


def test_research_callback() -> None:
    calls: list[tuple[str, str]] = []

    def research(room_id: str, server: str) -> str | None:
        calls.append((room_id, server))
        return "accept" if server == "friend.example" else None

    d = subscription.decide_knock(ROOM, "friend.example", BASE, research=research)
    assert d.decision.reason == "research_accepted" and d.outward_event is not None
    assert calls == [(ROOM, "friend.example")]
    d = subscription.decide_knock(ROOM, "x.example", BASE, research=lambda r, s: ("deny", "bad rep"))
    assert d.decision.reason == "research_denied" and d.decision.detail == "bad rep"
    assert subscription.decide_knock(ROOM, "x.example", BASE, research=research).decision.verdict == "pending"


def test_research_callback_errors_propagate() -> None:
    class Boom(Exception):
        pass

    def explode(room_id: str, server: str) -> str:
        raise Boom("research service down")

    with pytest.raises(Boom, match="research service down"):
        subscription.decide_knock(ROOM, "x.example", BASE, research=explode)
    with pytest.raises(ValueError, match="accept"):
        subscription.decide_knock(ROOM, "x.example", BASE, research=lambda r, s: "maybe")
    with pytest.raises(TypeError):
        subscription.decide_knock(ROOM, "x.example", BASE, research=lambda r, s: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError):
        subscription.decide_knock(ROOM, "x.example", BASE, research="not callable")  # type: ignore[arg-type]


def test_subscription_event_from_the_wrong_server() -> None:
    state = BASE + [able("peer.example")]
    wrong = ev(subscription.SUBSCRIPTION, "peer.example", {}, sender="@eve:other.example")
    d = subscription.check_subscription_event(state, wrong)
    assert not d and d.reason == "wrong_sender_server"
    right = ev(subscription.SUBSCRIPTION, "peer.example", {}, sender="@bot:peer.example")
    assert subscription.check_subscription_event(state, right).reason == "able_to_subscribe"
    assert subscription.check_subscription_event(BASE, right).reason == "not_able_to_subscribe"
    assert subscription.check_subscription_event(state, json.dumps(right)).allowed


def test_gated_join_before_and_after_is_able_to_subscribe() -> None:
    gate = subscription.JoinGate()
    assert gate.check_join(ROOM, BASE, "peer.example").reason == "room_not_gated"
    gate.gate(ROOM)
    assert gate.is_gated(ROOM)
    before = gate.check_join(ROOM, BASE, "peer.example")
    assert not before and before.reason == "not_able_to_subscribe"
    assert not subscription.is_able_to_subscribe(BASE, "peer.example")
    after_state = BASE + [able("peer.example")]
    assert subscription.is_able_to_subscribe(after_state, "peer.example")
    after = gate.check_join(ROOM, after_state, "peer.example")
    assert after and after.reason == "able_to_subscribe"
    revoked = after_state + [able("peer.example", False)]
    assert not gate.check_join(ROOM, revoked, "peer.example")
    gate.ungate(ROOM)
    assert gate.check_join(ROOM, revoked, "peer.example")
    # The convenience the Synapse module uses.
    assert not subscription.join_allowed(BASE, "peer.example", True)
    assert subscription.join_allowed(after_state, "peer.example", True).reason == "able_to_subscribe"
    assert subscription.join_allowed(BASE, "peer.example", False).reason == "room_not_gated"


def test_server_acl() -> None:
    acl = subscription.ServerAcl({"allow": ["*.example"], "deny": ["bad.example"], "allow_ip_literals": False})
    assert acl.check("good.example:8448").reason == "server_acl_allowed"
    assert acl.check("bad.example").reason == "server_acl_denied"
    assert acl.check("1.2.3.4").reason == "ip_literal_denied"
    assert subscription.ServerAcl.from_state(BASE) is None


def test_pathological_globs_return_in_bounded_time() -> None:
    pattern = "*a" * 500 + "b"
    acl = subscription.ServerAcl({"allow": [pattern], "deny": [pattern]})
    policy = [ev("m.policy.rule.server", "r", {"entity": pattern, "recommendation": "m.ban"})]
    subject = "a" * 1000
    start = time.monotonic()
    assert acl.check(subject).reason == "server_acl_denied"  # matches nothing: no allow
    assert subscription.decide_knock(ROOM, subject, BASE, policy).decision.reason != "policy_ban"
    # Generous bound: a backtracking matcher would take astronomically long.
    assert time.monotonic() - start < 10


def test_example_flow_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "members.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "knock on !room:origin.example from peer.example recorded (seen 1 time)",
        "decision: pending (awaiting_moderator)",
        "join before: deny (not_able_to_subscribe)",
        "moderator sends m.server.is_able_to_subscribe for peer.example",
        "join after: allow (able_to_subscribe)",
    ]


def test_names_the_synapse_module_uses() -> None:
    # python/servership/synapse/_core.py reaches these through `import servership` alone.
    assert servership.subscription.parse_knock_edu({"room_id": ROOM}) == ROOM
    assert servership.KnockStore is subscription.KnockStore
    d = servership.subscription.join_allowed([], "peer.example", True)
    assert (d.allowed, d.reason) == (False, "not_able_to_subscribe")


def test_acl_and_policy_globs_ignore_ascii_case_and_the_port() -> None:
    acl = subscription.ServerAcl({"allow": ["*"], "deny": ["evil.example"]})
    for name in ("EVIL.example", "Evil.Example:8448"):
        assert acl.check(name).reason == "server_acl_denied", name
    assert subscription.ServerAcl({"allow": ["*.good.example"]}).check("A.GOOD.EXAMPLE").allowed
    policy = [ev("m.policy.rule.server", "r", {"entity": "*.evil.example", "recommendation": "m.ban"})]
    d = subscription.decide_knock(ROOM, "X.EVIL.example", BASE, policy)
    assert (d.decision.verdict, d.decision.reason) == ("deny", "policy_ban")
    long_entry = "*" * 1100 + "evil.example"
    assert subscription.ServerAcl({"allow": ["*"], "deny": [long_entry]}).check("EVIL.example").reason == "server_acl_denied"


def test_knock_store_caps_new_knocks_per_origin(tmp_path: Any) -> None:
    store = subscription.KnockStore(tmp_path / "k.db", 86_400_000, max_per_origin=3, origin_window_ms=60_000)
    assert "max_per_origin=3" in repr(store)
    for i in range(3):
        store.record(f"!r{i}:hs.example", "flood.example", 1_000)
    with pytest.raises(servership.LimitExceededError) as info:
        store.record("!r3:hs.example", "flood.example", 1_000)
    assert info.value.retry_after_ms == 60_000
    assert len(store) == 3
    # Repeats are not new; other origins have their own cap; the window moves on.
    assert store.record("!r0:hs.example", "flood.example", 2_000)["times"] == 2
    store.record("!r3:hs.example", "polite.example", 2_000)
    store.record("!r3:hs.example", "flood.example", 61_000)
    with pytest.raises(servership.InvalidParamError):
        subscription.KnockStore(tmp_path / "k2.db", 1000, origin_window_ms=0)
