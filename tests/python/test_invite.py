"""MSC4329 / MSC4311 invite checks from Python, on real invites signed in Python."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import servership
from conftest import REPO

ORIGIN = "origin.example"
RECEIVER = "receiver.example:8448"
ORIGIN_KEY = servership.SigningKey.from_seed("ed25519:1", "B" * 43)


class Room:
    """A small signed room: create, the creator's join and an invite for @bob."""

    def __init__(self, version: str, key: servership.SigningKey = ORIGIN_KEY) -> None:
        self.version = version
        self.key = key
        create: dict[str, Any] = {
            "type": "m.room.create",
            "state_key": "",
            "sender": f"@alice:{ORIGIN}",
            "origin_server_ts": 1_700_000_000_000,
            "depth": 1,
            "prev_events": [],
            "auth_events": [],
            "content": {"room_version": version},
        }
        if version != "12":
            create["room_id"] = f"!room:{ORIGIN}"
            create["content"]["creator"] = f"@alice:{ORIGIN}"
        self.create = servership.sign_event(create, ORIGIN, key, version)
        self.create_id = servership.event_id(self.create, version)
        self.room_id = (
            servership.room_id_from_create_event(self.create) if version == "12" else f"!room:{ORIGIN}"
        )
        self.join = self.pdu({"type": "m.room.member", "state_key": f"@alice:{ORIGIN}",
                              "content": {"membership": "join"}}, [], 2)
        join_id = servership.event_id(self.join, version)
        self.invite = self.pdu({"type": "m.room.member", "state_key": f"@bob:{RECEIVER}",
                                "content": {"membership": "invite"}}, [join_id], 3)

    def pdu(self, partial: dict[str, Any], auth: list[str], depth: int) -> dict[str, Any]:
        auth_events = auth if self.version == "12" else [self.create_id, *auth]
        event = dict(partial, room_id=self.room_id, sender=f"@alice:{ORIGIN}", depth=depth,
                     origin_server_ts=1_700_000_000_000 + depth, prev_events=[self.create_id],
                     auth_events=auth_events)
        return servership.sign_event(event, ORIGIN, self.key, self.version)

    def keys(self) -> servership.KeyRing:
        ring = servership.KeyRing()
        ring.add(ORIGIN, self.key.verify_key())
        return ring

    def body(self, **changes: Any) -> dict[str, Any]:
        body = {"event": self.invite, "state": [self.create], "invite_room_state": [NAME]}
        body.update(changes)
        return body


NAME = {"type": "m.room.name", "state_key": "", "sender": f"@alice:{ORIGIN}",
        "content": {"name": "Project room"}}


@pytest.mark.parametrize("version", ["11", "12"])
def test_valid_invite(version: str) -> None:
    room = Room(version)
    path, body = servership.build_invite_request(room.invite, room.create, (), [NAME])
    assert path == servership.INVITE_PATH_UNSTABLE_PREFIX + servership.percent_encode_path_segment(
        room.room_id
    )
    check = servership.check_invite(room.room_id, body, RECEIVER, ORIGIN, room.keys())
    assert isinstance(check, servership.InviteCheck)
    assert check.event_id == servership.event_id(room.invite, version)
    assert check.room_version == version
    assert check.room_id == room.room_id
    assert check.creators == [f"@alice:{ORIGIN}"]
    assert check.creator_servers == [ORIGIN]
    assert check.event == room.invite
    assert check.create_event == room.create
    assert check.invite_room_state[0] == NAME
    last = check.invite_room_state[-1]
    assert last["type"] == "m.room.create" and last["content"] == room.create["content"]
    assert check.promoted == [] and check.dropped == []
    assert check.signatures_checked
    as_json = json.loads(check.to_json())
    assert as_json["event_id"] == check.event_id
    assert as_json["invite_room_state"] == check.invite_room_state
    assert check.event_id in repr(check) and "signatures_checked=True" in repr(check)
    # The body carries only the create event: nothing proves alice's server is in the room.
    assert check.inviter_membership is None and check.proven_creator_servers == []
    assert as_json["inviter_membership"] is None and as_json["proven_creator_servers"] == []
    # With alice's own join in state, which the invite names, it is proven.
    proven = servership.check_invite(
        room.room_id, room.body(state=[room.create, room.join]), RECEIVER, ORIGIN, room.keys()
    )
    assert proven.inviter_membership == servership.event_id(room.join, version)
    assert proven.proven_creator_servers == [ORIGIN]
    # The same body as str and as a dict; without keys nothing is verified.
    assert servership.check_invite(room.room_id, body.decode(), RECEIVER, ORIGIN).event_id == (
        check.event_id
    )
    unchecked = servership.check_invite(room.room_id, json.loads(body), RECEIVER, ORIGIN, None)
    assert not unchecked.signatures_checked
    # The invitee's server counter-signs the invite it got back.
    ours = servership.SigningKey.from_seed("ed25519:r", "C" * 43)
    signed = servership.sign_event(check.event, RECEIVER, ours, check.room_version)
    servership.verify_event_signature(signed, RECEIVER, ours.verify_key(), check.room_version)
    servership.verify_event_signature(signed, ORIGIN, [ORIGIN_KEY.verify_key()], check.room_version)
    assert servership.check_content_hash(signed)


def test_dropped_events_are_reported() -> None:
    room = Room("12")
    stray = room.pdu({"type": "m.room.topic", "state_key": "", "content": {"topic": "t"}},
                     ["$" + "A" * 43], 4)
    check = servership.check_invite(
        room.room_id, room.body(state=[room.create, stray]), RECEIVER, ORIGIN, room.keys()
    )
    assert len(check.dropped) == 1
    dropped = check.dropped[0]
    assert isinstance(dropped, servership.DroppedEvent)
    assert dropped.place == "state[1]" and dropped.reason
    assert dropped.event_id == servership.event_id(stray, "12")


def reject(room: Room, body: Any, errcode: str, status: int = 400, *, room_id: str | None = None,
           receiver: str = RECEIVER, keys: bool = True) -> servership.ServershipError:
    with pytest.raises(servership.ServershipError) as info:
        servership.check_invite(room_id or room.room_id, body, receiver, ORIGIN,
                                room.keys() if keys else None)
    assert info.value.errcode == errcode, info.value
    assert info.value.http_status == status
    assert info.value.matrix_error is not None
    assert info.value.matrix_error["errcode"] == errcode
    return info.value


def test_each_rule_has_its_errcode() -> None:
    room = Room("12")
    other = Room("12", servership.SigningKey.from_seed("ed25519:1", "D" * 43))
    reject(room, b"x" * (servership.MAX_INVITE_BODY_BYTES + 1), "M_TOO_LARGE", 413)
    reject(room, b"not json", "M_NOT_JSON")
    reject(room, b'{"event": {}, "state": [], "state": []}', "M_BAD_JSON")
    reject(room, {"event": room.invite}, "M_MISSING_PARAM")
    reject(room, room.body(state={}), "M_BAD_JSON")
    reject(room, room.body(event=[]), "M_BAD_JSON")
    reject(room, room.body(state=[]), "M_INVALID_PARAM")
    reject(room, room.body(state=[room.create, room.create]), "M_INVALID_PARAM")
    bad_version = dict(room.create, content={"room_version": "99"})
    reject(room, room.body(state=[bad_version]), "M_INCOMPATIBLE_ROOM_VERSION")
    reject(room, room.body(), "M_INVALID_PARAM", room_id="!elsewhere:origin.example")
    reject(room, room.body(), "M_INVALID_PARAM", receiver="someone-else.example")
    leave = room.pdu({"type": "m.room.member", "state_key": f"@bob:{RECEIVER}",
                      "content": {"membership": "leave"}}, [], 3)
    reject(room, room.body(event=leave), "M_INVALID_PARAM")
    tampered = dict(room.invite, origin_server_ts=1)
    reject(room, room.body(event=tampered), "M_INVALID_PARAM")
    # The same tampering is not visible without keys (the caller verifies PDUs itself).
    servership.check_invite(room.room_id, room.body(event=tampered), RECEIVER, ORIGIN)
    # A create event signed by some other key.
    reject(room, room.body(state=[other.create]), "M_INVALID_PARAM", room_id=other.room_id)


def test_hostile_bodies_raise_never_crash() -> None:
    room = Room("12")
    reject(room, b" " * (10 * 1024 * 1024), "M_TOO_LARGE", 413)
    reject(room, b"[" * 100_000 + b"]" * 100_000, "M_BAD_JSON")
    deep: Any = []
    for _ in range(500):
        deep = [deep]
    reject(room, {"event": room.invite, "state": deep}, "M_BAD_JSON")
    reject(room, b"\xff\xfe", "M_NOT_JSON")
    reject(room, b'{"event": {}, "state": [1.5]}', "M_BAD_JSON")
    reject(room, {"event": room.invite, "state": [room.create, 1.5]}, "M_BAD_JSON")
    wrong = reject(room, room.body(state=["x", None, 3]), "M_BAD_JSON")
    assert "state[0]" in str(wrong)
    with pytest.raises(servership.BadJsonError):
        servership.check_invite(room.room_id, 42, RECEIVER, ORIGIN)  # type: ignore[arg-type]
    with pytest.raises(servership.InvalidParamError):
        servership.check_invite("!a\x00b:x", room.body(), RECEIVER, ORIGIN)


def test_spec_invite_v2() -> None:
    room = Room("12")
    body = {"room_version": "12", "event": room.invite,
            "invite_room_state": [NAME, room.create]}
    event_id = servership.event_id(room.invite, "12")
    check = servership.check_spec_invite(
        servership.SPEC_INVITE_V2, room.room_id, event_id, body, RECEIVER, ORIGIN, room.keys()
    )
    assert isinstance(check, servership.SpecInviteCheck)
    assert check.event_id == event_id and check.room_version == "12"
    assert check.creator_servers == [ORIGIN] and check.signatures_checked
    assert check.invite_room_state[-1]["type"] == "m.room.create"
    assert json.loads(check.to_json())["room_id"] == room.room_id
    with pytest.raises(servership.InvalidParamError):
        servership.check_spec_invite(2, room.room_id, "$" + "B" * 43, body, RECEIVER, ORIGIN)
    with pytest.raises(servership.InvalidParamError):
        servership.check_spec_invite(3, room.room_id, event_id, body, RECEIVER, ORIGIN)


def test_key_ring() -> None:
    ring = servership.KeyRing.from_json({ORIGIN: {"ed25519:1": {"key": ORIGIN_KEY.public_key}}})
    assert ring.keys_for(ORIGIN) == [ORIGIN_KEY.verify_key()]
    assert servership.KeyRing.from_json(json.dumps({ORIGIN: {"ed25519:1": ORIGIN_KEY.public_key}}))
    ring.add_base64("other.example", "ed25519:2", ORIGIN_KEY.public_key)
    assert len(ring.keys_for("other.example")) == 1 and ring.keys_for("nobody.example") == []
    with pytest.raises(servership.InvalidParamError):
        ring.add_base64(ORIGIN, "ed25519:1", "!!")
    with pytest.raises(servership.BadJsonError):
        servership.KeyRing.from_json(b'{"o": 1}')


def test_checks_run_in_parallel_threads() -> None:
    room = Room("12")
    _, body = servership.build_invite_request(room.invite, room.create)
    keys = room.keys()
    results: list[str] = []

    def work() -> None:
        for _ in range(20):
            results.append(servership.check_invite(room.room_id, body, RECEIVER, ORIGIN, keys).event_id)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and len(set(results)) == 1


def test_the_c_fixtures_check_the_same_from_python() -> None:
    fixtures = REPO / "tests" / "c" / "fixtures"
    meta = json.loads((fixtures / "invite_v12_meta.json").read_bytes())
    keys = servership.KeyRing.from_json((fixtures / "keys.json").read_bytes())
    args = (meta["room_id"], meta["receiving_server"], meta["origin"])
    body = (fixtures / "invite_v12.json").read_bytes()
    check = servership.check_invite(args[0], body, args[1], args[2], keys)
    assert check.event_id == meta["event_id"]
    with pytest.raises(servership.InvalidParamError):
        servership.check_invite(
            args[0], (fixtures / "invite_v12_tampered.json").read_bytes(), args[1], args[2], keys
        )


def test_event_signing_helpers() -> None:
    room = Room("11")
    assert servership.check_content_hash(room.create)
    changed = dict(room.create, content={"room_version": "11", "creator": "@mallory:x"})
    assert not servership.check_content_hash(changed)
    with pytest.raises(servership.UnauthorizedError):
        servership.verify_event_signature(changed, ORIGIN, ORIGIN_KEY.verify_key(), "11")
    with pytest.raises(servership.BadJsonError):
        servership.check_content_hash({"type": "x"})
    with pytest.raises(servership.IncompatibleRoomVersionError):
        servership.sign_event(room.create, ORIGIN, ORIGIN_KEY, "99")
