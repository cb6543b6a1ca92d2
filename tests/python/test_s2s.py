"""Server-to-server rooms and upgrade negotiation (MSC3348) through Python."""

from __future__ import annotations

from typing import Any

import pytest

import servership
from servership import s2s
from servership.s2s import Negotiation, NegotiationPolicy, ServerUserPolicy


def ev(event_type: str, state_key: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "state_key": state_key, "sender": "@a:origin.example", "content": content}


NORMAL = [
    ev("m.room.create", "", {"room_version": "11"}),
    ev("m.room.join_rules", "", {"join_rule": "public"}),
    ev("m.room.member", "@a:origin.example", {"membership": "join"}),
]
S2S = [
    ev("m.room.create", "", {"room_version": "11", "type": "m.s2s"}),
    ev("m.room.member", "@:peer.example", {"membership": "invite"}),
]


def test_is_s2s_room() -> None:
    assert s2s.is_s2s_room(S2S)
    assert not s2s.is_s2s_room(NORMAL)
    assert s2s.is_s2s_room({"type": "support.feline.s2s"})
    assert s2s.is_s2s_room(S2S[0])  # a whole create event
    assert not s2s.is_s2s_room({"room_version": "11"})
    assert s2s.is_s2s_room(servership.RoomState.from_events(S2S))


@pytest.mark.parametrize(
    ("policy", "allowed", "reason"),
    [
        ("s2s_only", False, "not_s2s_room"),
        ("peeking", False, "no_user_of_server"),
        ("either", False, "not_s2s_room"),
        (ServerUserPolicy.S2S_ONLY, False, "not_s2s_room"),
    ],
)
def test_server_user_in_a_normal_room(policy: str, allowed: bool, reason: str) -> None:
    d = s2s.check_server_user_membership(NORMAL, "@:peer.example", "join", policy)
    assert d.allowed is allowed and d.reason == reason


def test_server_user_in_a_normal_room_with_a_user_of_its_server() -> None:
    state = NORMAL + [ev("m.room.member", "@bob:peer.example", {"membership": "join"})]
    got = {p.value: s2s.check_server_user_membership(state, "@:peer.example", "join", p) for p in ServerUserPolicy}
    assert not got["s2s_only"] and got["s2s_only"].reason == "not_s2s_room"
    assert got["peeking"] and got["peeking"].reason == "server_has_joined_user"
    assert got["either"] and got["either"].reason == "server_has_joined_user"
    # Default policy is "either"; s2s rooms allow under s2s_only and either.
    assert s2s.check_server_user_membership(S2S, "@:peer.example", "join").reason == "s2s_room"
    # Bans count under every policy; an uninvited server user stays out of an s2s room.
    banned = S2S + [ev("m.room.member", "@:peer.example", {"membership": "ban"})]
    for p in ServerUserPolicy:
        assert s2s.check_server_user_membership(banned, "@:peer.example", "join", p).reason == "pseudouser_banned"
    assert s2s.check_server_user_membership(S2S[:1], "@:peer.example", "join").reason == "not_invited"
    assert s2s.check_server_user_membership(NORMAL, "@:peer.example", "invite", "peeking").reason == "pseudouser_joins_directly"
    assert s2s.check_server_user_membership(NORMAL, "@:peer.example", "leave", "s2s_only").reason == "leaving_always_allowed"
    with pytest.raises(servership.InvalidParamError, match="policy"):
        s2s.check_server_user_membership(NORMAL, "@:peer.example", "join", "sometimes")


def test_initial_state() -> None:
    events = s2s.initial_state("a.example", "b.example", "11")
    assert events[0]["type"] == "m.room.create" and events[0]["content"]["type"] == "m.s2s"
    assert events[-1] == {
        "type": "m.room.member",
        "state_key": "@:b.example",
        "sender": "@:a.example",
        "content": {"membership": "invite"},
    }
    v12 = s2s.initial_state("a.example", "b.example", "12", unstable=True)
    assert v12[0]["content"]["additional_creators"] == ["@:b.example"]
    assert v12[0]["content"]["type"] == "support.feline.s2s"
    with pytest.raises(servership.IncompatibleRoomVersionError):
        s2s.initial_state("a.example", "b.example", "99")
    with pytest.raises(servership.InvalidParamError):
        s2s.initial_state("a.example", "a.example", "11")


A, B = "a.example", "b.example"


class Wire:
    """Carries events between two negotiations, numbering event IDs."""

    def __init__(self) -> None:
        self.n = 0

    def event(self, event_type: str, content: dict[str, Any], sender: str) -> dict[str, Any]:
        self.n += 1
        return {"event_id": f"$e{self.n}", "type": event_type, "sender": f"@:{sender}", "content": content}


def test_negotiation_agrees_and_only_the_initiator_upgrades() -> None:
    wire = Wire()
    a_policy = NegotiationPolicy([("10", 5), ("11", 10), ("12", 8)])
    b_policy = NegotiationPolicy([("11", 7), ("12", 9)])
    a, content = Negotiation.initiate(a_policy, A, B)
    assert a.role == "initiator" and a.peer_server == B
    proposal = wire.event(s2s.PROPOSAL, content, A)
    with pytest.raises(servership.InvalidParamError, match="sent"):
        a.handle(wire.event(s2s.REPLY, {}, B))
    a.sent(proposal["event_id"])
    assert a.last_sent == proposal["event_id"]
    # Its own echo is ignored.
    assert a.handle(proposal).send is None and a.outcome == "in_progress"
    b, step = Negotiation.respond(b_policy, B, proposal)
    assert b.role == "responder"
    assert step.outcome == "in_progress" and step.send is not None
    assert step.send["type"] == s2s.REPLY
    reply = wire.event(step.send["type"], step.send["content"], B)
    b.sent(reply["event_id"])
    step = a.handle(reply)
    assert step.send is not None and step.send["type"] == s2s.ACCEPT
    assert step.send["content"]["version"] == "12"
    accept = wire.event(step.send["type"], step.send["content"], A)
    a.sent(accept["event_id"])
    step = b.handle(accept)
    assert step.send is not None and step.send["type"] == s2s.ACK
    ack = wire.event(step.send["type"], step.send["content"], B)
    b.sent(ack["event_id"])
    step = a.handle(ack)
    assert step.outcome == "agreed:12" and step.agreed_version == "12"
    assert step.upgrade == "12"
    assert step.send is not None
    ack2 = wire.event(step.send["type"], step.send["content"], A)
    a.sent(ack2["event_id"])
    step = b.handle(ack2)
    assert step.outcome == "agreed:12" and step.send is None and step.upgrade is None
    assert a.outcome == b.outcome == "agreed:12"
    # b's ack again (a duplicate): a, which had the last word, delivers its ack again.
    assert a.handle(ack).resend == ack2["event_id"]
    with pytest.raises(servership.InvalidParamError, match="finished"):
        a.handle(wire.event(s2s.ACK, {}, B))
    assert a.tick().resend is None


def test_negotiation_no_match() -> None:
    wire = Wire()
    a, content = Negotiation.initiate(NegotiationPolicy([("10", 5)]), A, B)
    proposal = wire.event(s2s.PROPOSAL, content, A)
    b, step = Negotiation.respond(NegotiationPolicy([("11", 5)]), B, proposal)
    assert step.send is not None and step.send["type"] == s2s.REPLY
    a.sent(proposal["event_id"])
    step = a.handle(wire.event(step.send["type"], step.send["content"], B))
    assert step.outcome == "failed:no match"
    assert step.send is not None and step.send["content"]["error"] == "no match"


def test_negotiation_would_downgrade_below_floor() -> None:
    wire = Wire()
    ours = NegotiationPolicy([("9", 10), ("11", 1)], floor="11")
    assert ours.advertised() == [("11", 1)]
    a, content = Negotiation.initiate(ours, A, B)
    assert [v["version"] for v in content["versions"]] == ["11"]
    proposal = wire.event(s2s.PROPOSAL, content, A)
    a.sent(proposal["event_id"])
    # The peer only supports 9: the floor keeps us from going there.
    _, step = Negotiation.respond(NegotiationPolicy([("9", 10)]), B, proposal)
    assert step.send is not None
    step = a.handle(wire.event(step.send["type"], step.send["content"], B))
    assert step.outcome == "failed:no match"
    # A responder whose floor leaves it nothing replies with an empty list; the initiator fails.
    a, content = Negotiation.initiate(NegotiationPolicy([("9", 10)]), A, B)
    proposal = wire.event(s2s.PROPOSAL, content, A)
    a.sent(proposal["event_id"])
    _, step = Negotiation.respond(NegotiationPolicy([("9", 10)], floor="10"), B, proposal)
    assert step.send is not None and step.send["type"] == s2s.REPLY
    assert step.send["content"]["versions"] == []
    step = a.handle(wire.event(step.send["type"], step.send["content"], B))
    assert step.outcome == "failed:no match"


def test_negotiation_vendor_methods() -> None:
    opening = {"event_id": "$v", "type": s2s.VENDOR, "sender": "@:a.example", "content": {"method": "org.example.x"}}
    n, step = Negotiation.respond(NegotiationPolicy([("11", 1)], vendor_methods=["org.example.y"]), B, opening)
    assert step.outcome == "failed:invalid method" and n.outcome == "failed:invalid method"
    assert step.send == {
        "type": s2s.FAIL,
        "content": {"error": "invalid method", "m.relates_to": {"rel_type": "m.reference", "event_id": "$v"}},
    }
    _, step = Negotiation.respond(NegotiationPolicy([("11", 1)], vendor_methods=["org.example.x"]), B, opening)
    assert step.outcome == "vendor:org.example.x"
    assert step.send is not None and step.send["type"] == s2s.ACCEPT
    assert step.send["content"]["method"] == "org.example.x"
    a, content = Negotiation.initiate_vendor(NegotiationPolicy([]), "org.example.x", A, B)
    assert content == {"method": "org.example.x"}
    a.sent("$v")
    accept = {"event_id": "$w", "type": s2s.ACCEPT, "sender": "@:b.example", "content": step.send["content"]}
    assert a.handle(accept).outcome == "vendor:org.example.x"


def test_negotiation_any_fail_ends_it_and_ticks_repair_loss() -> None:
    a, _ = Negotiation.initiate(NegotiationPolicy([("10", 1)]), A, B)
    a.sent("$p")
    assert a.tick().resend == "$p"
    fail = {"event_id": "$f", "type": s2s.FAIL, "sender": "@:b.example",
            "content": {"error": "on fire", "m.relates_to": {"rel_type": "m.reference", "event_id": "$p"}}}
    assert a.handle(fail).outcome == "failed:on fire"


def test_negotiation_refuses_malformed_events() -> None:
    def ev(t: str, content: Any) -> dict[str, Any]:
        return {"event_id": "$x", "type": t, "sender": "@:a.example", "content": content}

    with pytest.raises(servership.InvalidParamError):
        Negotiation.respond(NegotiationPolicy([("11", 1)]), B, ev("m.room.message", {}))
    with pytest.raises(servership.BadJsonError):
        Negotiation.respond(NegotiationPolicy([("11", 1)]), B, ev(s2s.PROPOSAL, {"versions": "11"}))
    with pytest.raises(servership.BadJsonError):
        Negotiation.respond(NegotiationPolicy([("11", 1)]), B, b"{not json")
    with pytest.raises(servership.InvalidParamError):
        Negotiation.respond(NegotiationPolicy([("11", 1)]), A, ev(s2s.PROPOSAL, {"versions": []}))
    with pytest.raises(servership.InvalidParamError):
        Negotiation.initiate(NegotiationPolicy([("9", 1)], floor="10"), A, B)
    with pytest.raises(servership.InvalidParamError):
        Negotiation.initiate(NegotiationPolicy([("9", 1)]), A, A)
    with pytest.raises(servership.InvalidParamError):
        NegotiationPolicy([("UPPER", 1)])
    with pytest.raises(servership.InvalidParamError):
        NegotiationPolicy([("10", 1), ("10", 2)])


def test_choice_rule() -> None:
    assert s2s.negotiation_choose([("11", 10), ("12", 1)], [("11", 1), ("12", 10)]) == "12"
    assert s2s.negotiation_choose([("11", 5)], [("12", 5)]) is None
