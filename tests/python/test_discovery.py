"""Out-of-room server discovery (MSC4358) through the Python binding: tags, the tag store, the
endpoint, the requesting side and the audit, all against the installed wheel."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

import servership
from servership import discovery
from conftest import load_vectors

# Server names as Matrix IDs spell them: plain, punycode (IDN), raw UTF-8 (a different key),
# IPv4 and IPv6 literals with ports.
SERVER_NAMES = [
    "a.example",
    "matrix.example.org:8448",
    "xn--mnchen-3ya.example",
    "münchen.example",
    "127.0.0.1:8008",
    "[2001:db8::1]:8448",
    "x" * 100,  # longer than the HMAC block: the key is hashed first
]


def v12_room_ids() -> list[str]:
    """Room IDs of both forms, from the vectors (never copied into this file)."""
    rooms = []
    for case in load_vectors("v12_room_ids.json")["create_events"]:
        want = case.get("expect_room_id")
        if isinstance(want, str) and want.startswith("!"):
            rooms.append(want)
    assert rooms, "no v12 room IDs in the vectors"
    return rooms


ROOMS = ["!OldRoom:beta.example.org:8448", "!abc:a.example", "!é:münchen.example"]


def hmac_tag(server: str, room: str) -> str:
    mac = hmac.new(server.encode(), room.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode().rstrip("=")


# --- tags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", SERVER_NAMES)
def test_tag_agrees_with_python_hmac(server: str) -> None:
    for room in ROOMS + v12_room_ids():
        tag = servership.participation_tag(server, room)
        assert tag == hmac_tag(server, room)
        assert len(tag) == 43


def test_idn_spellings_are_different_keys() -> None:
    room = ROOMS[0]
    assert servership.participation_tag(
        "xn--mnchen-3ya.example", room
    ) != servership.participation_tag("münchen.example", room)


def test_batch_equals_singles() -> None:
    rooms = ROOMS + v12_room_ids() + [f"!room{i}:a.example" for i in range(2000)]
    for server in SERVER_NAMES:
        batch = servership.participation_tags(server, rooms)
        assert batch == [servership.participation_tag(server, r) for r in rooms]
    assert servership.participation_tags("a.example", []) == []
    assert servership.participation_tags("a.example", (r for r in ROOMS)) == [
        servership.participation_tag("a.example", r) for r in ROOMS
    ]


def test_batch_rejects_a_single_string_and_non_strings() -> None:
    with pytest.raises(TypeError, match="sequence of str"):
        servership.participation_tags("a.example", "!abc:a.example")
    with pytest.raises(TypeError, match=r"room_ids\[1\] must be a str"):
        servership.participation_tags("a.example", ["!a:b", 5])


def test_batch_from_threads() -> None:
    rooms = [f"!room{i}:a.example" for i in range(5000)]
    want = [hmac_tag("a.example", r) for r in rooms]
    results: list[list[str]] = []

    def work() -> None:
        results.append(servership.participation_tags("a.example", rooms))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [want] * 4


# --- the tag store ------------------------------------------------------------------------------


def test_store_records_and_reopens(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tags.sqlite"
    store = servership.TagStore(path, "a.example")  # os.PathLike accepted
    assert len(store) == 0
    assert store.record_join("!one:a.example", 1000) is True
    assert store.record_join("!one:a.example", 2000) is False  # first time kept
    assert store.record_join("!two:b.example") is True  # default: now
    assert store.backfill(["!two:b.example", "!three:c.example", "!four:d.example"], 5) == 2
    assert len(store) == 4
    assert "!one:a.example" in store and store.contains_room("!three:c.example")
    assert "!never:a.example" not in store
    assert 42 not in store
    assert store.server_name == "a.example"
    assert store.path == str(path)
    assert store.index_bytes > 0
    assert repr(store) == f"<TagStore 'a.example' 4 rooms at {path}>"
    rooms = store.rooms()
    assert [r for r, _ in rooms] == [
        "!one:a.example",
        "!two:b.example",
        "!three:c.example",
        "!four:d.example",
    ]
    assert rooms[0][1] == 1000 and rooms[2][1] == 5
    assert rooms[1][1] > 1_600_000_000_000  # "now" is milliseconds since the epoch
    del store

    again = servership.TagStore(str(path), "a.example")
    assert len(again) == 4
    assert again.rooms() == rooms
    tags = [servership.participation_tag("a.example", r) for r, _ in rooms]
    other = servership.participation_tag("a.example", "!never:a.example")
    assert again.recognise(tags + [other]) == [True] * 4 + [False]
    with pytest.raises(servership.InvalidParamError, match=r"tags\[1\] is not 32 bytes"):
        again.recognise([tags[0], "AAAA"])


def test_store_refuses_bad_input(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tags.sqlite"
    store = servership.TagStore(path, "a.example")
    with pytest.raises(servership.InvalidParamError) as info:
        servership.TagStore(path, "b.example")
    assert info.value.errcode == "M_INVALID_PARAM"
    assert "a.example" in str(info.value)
    with pytest.raises(servership.InvalidParamError, match=r"room_ids\[1\]"):
        store.backfill(["!ok:a.example", "no-bang:a.example"], 1)
    assert len(store) == 0  # all or nothing
    with pytest.raises(servership.InvalidParamError, match="room_id"):
        store.record_join("!" + "x" * 300, 1)
    with pytest.raises(servership.InvalidParamError):
        store.record_join("!a\x00b:a.example", 1)
    with pytest.raises(TypeError):
        store.backfill("!abc:a.example", 1)
    with pytest.raises(servership.InvalidParamError):
        servership.TagStore(tmp_path / "x.sqlite", "")


def test_second_store_on_the_same_file_sees_writes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tags.sqlite"
    first = servership.TagStore(path, "a.example")
    second = servership.TagStore(path, "a.example")
    assert len(second) == 0
    first.record_join("!x:a.example", 1)
    first.backfill([f"!r{i}:a.example" for i in range(50)], 2)
    assert len(second) == 51
    assert "!x:a.example" in second
    responder = discovery.Responder(second)
    tag = servership.participation_tag("a.example", "!r7:a.example")
    body = json.dumps({"room_participation_tags": [tag]}).encode()
    assert json.loads(responder.respond(body, "b.example", 0)) == {"recognised_tags": [tag]}


def test_store_shared_between_threads(tmp_path: pathlib.Path) -> None:
    store = servership.TagStore(tmp_path / "tags.sqlite", "a.example")

    def work(n: int) -> None:
        for i in range(25):
            store.record_join(f"!t{n}-{i}:a.example", i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 100


WRITER = """
import sys, servership
path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = servership.TagStore(path, "a.example")
for i in range(count):
    store.record_join(f"!{prefix}{i}:a.example", i)
    print(i, flush=True)
store.backfill([f"!{prefix}bulk{i}:a.example" for i in range(count)], 1)
print("done", flush=True)
"""


def test_two_processes_writing_at_once(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "tags.sqlite")
    servership.TagStore(path, "a.example")  # create it first: the schema is not the test
    count = 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path, prefix, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("p", "q")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.splitlines()[-1] == "done"
    store = servership.TagStore(path, "a.example")
    assert len(store) == 4 * count
    rooms = {r for r, _ in store.rooms()}
    for prefix in ("p", "q"):
        for i in range(count):
            assert f"!{prefix}{i}:a.example" in rooms
            assert f"!{prefix}bulk{i}:a.example" in rooms


def test_sigkill_after_acknowledged_writes_loses_nothing(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "tags.sqlite")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, path, "k", "100000"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) == 40:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    store = servership.TagStore(path, "a.example")
    for i in acknowledged:
        assert f"!k{i}:a.example" in store
    assert len(store) >= len(acknowledged)


# --- the endpoint -------------------------------------------------------------------------------


@pytest.fixture
def responder(tmp_path: pathlib.Path) -> tuple[servership.TagStore, discovery.Responder]:
    store = servership.TagStore(tmp_path / "tags.sqlite", "a.example")
    store.backfill(["!known:a.example", "!other:b.example"], 1)
    return store, discovery.Responder(store, max_tags_per_request=100, budget_tags=300)


def request(*tags: Any) -> bytes:
    return json.dumps({"room_participation_tags": list(tags)}).encode()


def test_respond_recognises_known_tags(responder: Any) -> None:
    store, r = responder
    known = servership.participation_tag("a.example", "!known:a.example")
    unknown = servership.participation_tag("a.example", "!secret:c.example")
    padded = known + "="
    answer = r.respond(request(unknown, known, padded), "b.example", 0)
    assert isinstance(answer, bytes)
    assert answer == b'{"recognised_tags":["' + known.encode() + b'"]}'
    # A tag under another server's name is not recognised.
    foreign = servership.participation_tag("b.example", "!known:a.example")
    assert json.loads(r.respond(request(foreign), "b.example", 0)) == {"recognised_tags": []}
    assert r.paths == [discovery.DISCOVER_COMMON_ROOMS_PATH]
    assert discovery.Responder(store, stable_path=True).paths == [
        servership.DISCOVER_COMMON_ROOMS_PATH,
        servership.DISCOVER_COMMON_ROOMS_STABLE_PATH,
    ]
    assert servership.DISCOVER_COMMON_ROOMS_PATH.endswith("/org.matrix.msc4358/discover_common_rooms")
    assert servership.DISCOVER_COMMON_ROOMS_STABLE_PATH == (
        "/_matrix/federation/v1/discover_common_rooms"
    )
    assert "a.example" in repr(r) and "100 tags a request" in repr(r)
    # The default clock is "now".
    assert json.loads(r.respond(request(known), "c.example")) == {"recognised_tags": [known]}


def check_error(exc: BaseException, cls: type, errcode: str, status: int, message: str) -> None:
    assert isinstance(exc, cls), exc
    assert exc.errcode == errcode  # type: ignore[attr-defined]
    assert exc.http_status == status  # type: ignore[attr-defined]
    assert exc.matrix_error["errcode"] == errcode  # type: ignore[attr-defined]
    assert message in str(exc), str(exc)


BAD_REQUESTS = [
    (b"not json", servership.BadJsonError, "M_NOT_JSON", 400, ""),
    (b'{"room_participation_tags": [], "a": 1.5}', servership.BadJsonError, "M_BAD_JSON", 400, ""),
    (b"\xff\xfe", servership.BadJsonError, "M_NOT_JSON", 400, ""),
    (b"[]", servership.BadJsonError, "M_BAD_JSON", 400, "must be an object, not an array"),
    (b"{}", servership.InvalidParamError, "M_MISSING_PARAM", 400, "is required"),
    (
        b'{"room_participation_tags": "abc"}',
        servership.BadJsonError,
        "M_BAD_JSON",
        400,
        "must be an array, not a string",
    ),
    (
        b'{"room_participation_tags": [1]}',
        servership.BadJsonError,
        "M_BAD_JSON",
        400,
        "room_participation_tags[0] must be a string, not an integer",
    ),
    (
        request("A" * 43, "not*base64!"),
        servership.InvalidParamError,
        "M_INVALID_PARAM",
        400,
        "room_participation_tags[1] is not 32 bytes of base64",
    ),
    (
        request(base64.b64encode(b"\x01" * 31).decode()),
        servership.InvalidParamError,
        "M_INVALID_PARAM",
        400,
        "room_participation_tags[0] is not 32 bytes of base64",
    ),
    (
        request(*["A" * 43] * 101),
        servership.TooLargeError,
        "M_TOO_LARGE",
        413,
        "has 101 tags; at most 100",
    ),
    (request(*["A" * 43] * 100_000), servership.TooLargeError, "M_TOO_LARGE", 413, "bytes"),
    (b" " * 10_000_000, servership.TooLargeError, "M_TOO_LARGE", 413, "bytes"),
]


@pytest.mark.parametrize("body,cls,errcode,status,message", BAD_REQUESTS)
def test_respond_errors(
    responder: Any, body: bytes, cls: type, errcode: str, status: int, message: str
) -> None:
    _, r = responder
    with pytest.raises(servership.ServershipError) as info:
        r.respond(body, "b.example", 0)
    check_error(info.value, cls, errcode, status, message)
    # Refused requests are not charged to the budget.
    assert r.remaining_budget("b.example", 0) == 300


def test_respond_wrong_python_types(responder: Any) -> None:
    _, r = responder
    with pytest.raises(TypeError):
        r.respond({"room_participation_tags": []}, "b.example", 0)
    with pytest.raises(TypeError):
        r.respond(b"{}", 5, 0)
    # A negative time is a value out of range, not a wrong type (tests/python/test_hostile.py).
    with pytest.raises(servership.InvalidParamError):
        r.respond(b"{}", "b.example", -1)


def test_budget_exhausted_is_429_with_retry_after(responder: Any) -> None:
    _, r = responder
    tags = [servership.participation_tag("a.example", f"!r{i}:x") for i in range(100)]
    for _ in range(3):
        r.respond(request(*tags), "greedy.example", 10_000)
    assert r.remaining_budget("greedy.example", 10_000) == 0
    with pytest.raises(servership.LimitExceededError) as info:
        r.respond(request(tags[0]), "greedy.example", 25_000)
    check_error(info.value, servership.LimitExceededError, "M_LIMIT_EXCEEDED", 429, "greedy")
    assert info.value.retry_after_ms == 45_000
    assert info.value.matrix_error["retry_after_ms"] == 45_000
    # Another origin has its own budget; the window ends and the budget returns.
    r.respond(request(tags[0]), "polite.example", 25_000)
    r.respond(request(tags[0]), "greedy.example", 70_000)


def test_responder_config_is_checked(responder: Any) -> None:
    store, _ = responder
    with pytest.raises(servership.InvalidParamError, match="budget_tags"):
        discovery.Responder(store, max_tags_per_request=1000, budget_tags=10)
    with pytest.raises(servership.InvalidParamError, match="max_tags_per_request"):
        discovery.Responder(store, max_tags_per_request=0)
    with pytest.raises(TypeError):
        discovery.Responder(store, 1000)  # type: ignore[misc]  # keyword-only


# --- asking a peer ------------------------------------------------------------------------------


def test_requester_chunks_and_maps_answers(tmp_path: pathlib.Path) -> None:
    rooms = [f"!r{i}:a.example" for i in range(25)] + ["!r0:a.example"]
    req = discovery.Requester("b.example", rooms, max_tags_per_request=10)
    assert req.target == "b.example"
    assert len(req) == 3
    bodies = req.bodies
    assert [len(json.loads(b)["room_participation_tags"]) for b in bodies] == [10, 10, 5]
    assert json.loads(bodies[0])["room_participation_tags"][0] == hmac_tag("b.example", rooms[0])

    peer = servership.TagStore(tmp_path / "b.sqlite", "b.example")
    peer.backfill(["!r3:a.example", "!r12:a.example", "!unrelated:b.example"], 1)
    r = discovery.Responder(peer)
    found = []
    for i, body in enumerate(bodies):
        found += req.map_response(i, r.respond(body, "a.example", 0))
    assert found == ["!r3:a.example", "!r12:a.example"]


def test_requester_refuses_hostile_answers() -> None:
    req = discovery.Requester("b.example", ["!a:a.example"])
    stranger = servership.participation_tag("b.example", "!other:a.example")
    cases: list[tuple[bytes, str | None]] = [
        (b"[]", "must be an object"),
        (b"{}", "recognised_tags is missing"),
        (b'{"recognised_tags": [1]}', "recognised_tags[0] must be a string"),
        (b'{"recognised_tags": ["abc"]}', "recognised_tags[0] is not 32 bytes"),
        (json.dumps({"recognised_tags": [stranger]}).encode(), "was not asked"),
        (b"\xff", None),
    ]
    for body, message in cases:
        pattern = message.replace("[", r"\[") if message else None
        with pytest.raises(servership.BadJsonError, match=pattern):
            req.map_response(0, body)
    with pytest.raises(servership.InvalidParamError, match="chunk 5 does not exist"):
        req.map_response(5, b'{"recognised_tags": []}')


# --- the audit, the seed scenario in miniature --------------------------------------------------

ROOM = "!council:blue.example"


def test_full_audit_through_bytes(tmp_path: pathlib.Path) -> None:
    history = {
        "blue.example": [ROOM, "!lobby:green.example"],
        "green.example": [ROOM, "!lobby:green.example"],
        "gray.example": [ROOM, "!lobby:green.example"],
        "white.example": ["!lobby:green.example"],
    }
    responders = {}
    for server, rooms in history.items():
        store = servership.TagStore(tmp_path / f"{server}.sqlite", server)
        store.backfill(rooms, 1)
        responders[server] = discovery.Responder(store)

    # Blue's branch shows Purple only Blue, Purple and Gray's old join and leave.
    view = discovery.RoomView(
        ROOM,
        "purple.example",
        [
            ("@blue:blue.example", "join", "@blue:blue.example"),
            ("@gray:gray.example", "join", "@gray:gray.example"),
            ("@gray:gray.example", "leave", "@gray:gray.example"),
            ("@purple:purple.example", "join", "@purple:purple.example"),
        ],
    )
    assert view.is_visible("blue.example") and not view.is_visible("green.example")
    assert view.departure("gray.example") == "leave"
    known = ["green.example", "blue.example", "gray.example", "white.example", "purple.example",
             "down.example", "green.example"]
    audit = discovery.Audit.plan(view, known, 10)
    assert audit.peers == ["green.example", "gray.example", "white.example", "down.example"]
    assert audit.view.room_id == ROOM

    answers: dict[str, discovery.PeerAnswer] = {}
    for peer in audit.peers:
        body = audit.request_body(peer)
        assert isinstance(body, bytes)
        if peer not in responders:
            answers[peer] = discovery.PeerAnswer.failed("timed out")
            continue
        answer = responders[peer].respond(body, "purple.example", 0)
        answers[peer] = audit.read_response(peer, answer)
    assert answers["green.example"] == discovery.PeerAnswer.recognised()
    assert answers["white.example"].kind == "not_recognised"
    assert answers["down.example"].reason == "timed out"

    report = audit.report(answers)
    assert report.room_id == ROOM and report.server == "purple.example"
    assert report.unexplained == ["green.example"]
    assert report.explained == [("gray.example", "leave")]
    assert report.not_recognising == ["white.example"]
    assert report.failed == [("down.example", "timed out")]
    assert report.visible == []
    assert report.verdict == "hidden_branch_suspected" and report.hidden_branch_suspected
    assert report.asked == audit.peers
    as_json = json.loads(report.to_json())
    assert as_json["verdict"] == "hidden_branch_suspected"
    assert as_json["explained"] == [{"server": "gray.example", "membership": "leave"}]
    assert as_json["failed"] == [{"server": "down.example", "error": "timed out"}]
    assert "HIDDEN BRANCH SUSPECTED" in report.to_text()
    assert "green.example" in report.to_text()
    assert "hidden_branch_suspected" in repr(report)
    # Pairs work as well as a dict, and a planned peer without an answer has failed.
    partial = audit.report([("green.example", discovery.PeerAnswer.not_recognised())])
    assert partial.verdict == "consistent"
    assert ("gray.example", "no answer") in partial.failed


def test_audit_hostile_answers_are_failures() -> None:
    view = discovery.RoomView(ROOM, "purple.example", visible=["blue.example"])
    assert view.visible == ["blue.example"]
    audit = discovery.Audit.plan(view, ["evil.example"], 5)
    for body in [b"", b"[]", b'{"recognised_tags": ["nope"]}', b"\x00" * 100]:
        answer = audit.read_response("evil.example", body)
        assert answer.kind == "failed"
        assert answer.reason and answer.reason.startswith("malformed response")
    report = audit.report({"evil.example": audit.read_response("evil.example", b"[]")})
    assert report.verdict == "inconclusive"
    with pytest.raises(TypeError, match=r"history\[0\]"):
        discovery.RoomView(ROOM, "p.example", [("@a:b",)])
    with pytest.raises(TypeError, match=r"history\[1\]"):
        discovery.RoomView(ROOM, "p.example", [("@a:b", "join", "@a:b"), ("@a:b", "join")])
    with pytest.raises(TypeError, match=r"history\[0\]"):
        discovery.RoomView(ROOM, "p.example", ["@a:b join @a:b"])
    with pytest.raises(TypeError, match=r"history\[0\]\[2\]"):
        discovery.RoomView(ROOM, "p.example", [("@a:b", "join", 3)])
    with pytest.raises(TypeError, match="history"):
        discovery.RoomView(ROOM, "p.example", "@a:b")
    with pytest.raises(TypeError, match=r"answers\[0\]"):
        audit.report([("evil.example", "recognised")])


# --- the audit from the membership history --------------------------------------------------------

HISTORY = [
    ("@blue:blue.example", "join", "@blue:blue.example"),
    ("@purple:purple.example", "join", "@purple:purple.example"),
    # Left, then re-invited: was in the room.
    ("@gray:gray.example", "join", "@gray:gray.example"),
    ("@gray:gray.example", "leave", "@gray:gray.example"),
    ["@gray:gray.example", "invite", "@blue:blue.example"],  # lists work as well as tuples
    # Kicked by Blue's moderator.
    ("@green:green.example", "join", "@green:green.example"),
    ("@green:green.example", "leave", "@mod:blue.example"),
    # Banned by its own admin.
    ("@red:red.example", "join", "@red:red.example"),
    ("@red:red.example", "ban", "@admin:red.example"),
    # Knocked only; banned without a join.
    ("@k:knock.example", "knock", "@k:knock.example"),
    ("@b:black.example", "ban", "@blue:blue.example"),
    # Skipped: not user IDs, not a membership.
    ("nobody", "join", "@blue:blue.example"),
    ("@y:yellow.example", "dance", "@y:yellow.example"),
]


def test_room_view_from_history_classifies_each_server() -> None:
    view = discovery.RoomView(ROOM, "purple.example", HISTORY)
    assert view.visible == ["blue.example", "purple.example"]
    assert [view.standing(s) for s in ["blue.example", "gray.example", "green.example",
                                      "red.example", "knock.example", "black.example",
                                      "yellow.example"]] == [
        "visible", "explained", "removed_by_other", "explained", "unexplained", "unexplained",
        "unexplained",
    ]
    assert view.last_membership("gray.example") == "invite"
    assert view.departure("red.example") == "ban"
    assert view.departure("black.example") is None
    # The homeserver's list of joined servers wins.
    told = discovery.RoomView(ROOM, "purple.example", HISTORY, visible=["gray.example"])
    assert told.visible == ["gray.example"] and told.standing("blue.example") == "explained"
    assert "2 visible" in repr(view)


def test_report_names_who_removed_whom_and_ranks_verdicts() -> None:
    view = discovery.RoomView(ROOM, "purple.example", HISTORY)
    peers = ["gray.example", "green.example", "red.example", "knock.example", "white.example"]
    audit = discovery.Audit.plan(view, peers, 10)
    everyone = {p: discovery.PeerAnswer.recognised() for p in peers[:4]}
    everyone["white.example"] = discovery.PeerAnswer.not_recognised()
    report = audit.report(everyone)
    assert report.unexplained == ["knock.example"]
    assert report.removed == [("green.example", "leave", ["@mod:blue.example"])]
    assert report.explained == [("gray.example", "invite"), ("red.example", "ban")]
    assert report.verdict == "hidden_branch_suspected"
    as_json = json.loads(report.to_json())
    assert as_json["removed"] == [
        {"server": "green.example", "membership": "leave", "removed_by": ["@mod:blue.example"]}
    ]
    text = report.to_text()
    assert "REMOVED BY ANOTHER SERVER: green.example (kicked by @mod:blue.example)" in text
    assert "1 removed" in repr(report)
    # Without the unexplained peer the removal decides, and is never "consistent".
    del everyone["knock.example"]
    assert audit.report(everyone).verdict == "removed_by_other_server"
    del everyone["green.example"]
    assert audit.report(everyone).verdict == "consistent"
    assert audit.report({}).verdict == "inconclusive"


def test_choose_is_seeded_weighted_and_skips_the_room() -> None:
    view = discovery.RoomView(ROOM, "purple.example", HISTORY)
    candidates = {"blue.example": 50, "purple.example": 50, "green.example": 3,
                  "white.example": 0, "teal.example": 7}
    plan = discovery.Audit.choose(view, candidates, 10, 1234)
    assert sorted(plan.peers) == ["green.example", "teal.example", "white.example"]
    assert discovery.Audit.choose(view, candidates, 10, 1234).peers == plan.peers
    assert discovery.Audit.choose(view, list(candidates.items()), 10, 1234).peers == plan.peers
    firsts = [discovery.Audit.choose(view, candidates, 1, seed).peers[0] for seed in range(3000)]
    # Weights 4 : 1 : 8 (score + 1).
    assert firsts.count("teal.example") > firsts.count("green.example") > firsts.count(
        "white.example"
    )
    assert 0.55 < firsts.count("teal.example") / 3000 < 0.68
    assert discovery.Audit.choose(view, {}, 5, 1).peers == []
    with pytest.raises(servership.InvalidParamError, match=r"candidates\[0\]\[1\]"):
        discovery.Audit.choose(view, [("x.example", -1)], 5, 1)
    with pytest.raises(TypeError, match=r"candidates\[0\]"):
        discovery.Audit.choose(view, ["x.example"], 5, 1)
    with pytest.raises(servership.InvalidParamError):
        discovery.Audit.choose(view, candidates, 5, 2**64)


def test_one_room_one_call_helpers(tmp_path: pathlib.Path) -> None:
    store = servership.TagStore(tmp_path / "green.sqlite", "green.example")
    store.record_join(ROOM, 1)
    green = discovery.Responder(store)
    body = discovery.audit_request_body("green.example", ROOM)
    assert json.loads(body) == {"room_participation_tags": [hmac_tag("green.example", ROOM)]}
    answer = green.respond(body, "purple.example", 0)
    assert discovery.audit_read_response("green.example", ROOM, answer).is_recognised
    other = discovery.audit_request_body("green.example", "!other:x.example")
    nothing = green.respond(other, "purple.example", 0)
    assert discovery.audit_read_response("green.example", "!other:x.example", nothing).kind == (
        "not_recognised"
    )
    # An answer to another question names a tag that was not asked: a failure, not a "yes".
    wrong = discovery.audit_read_response("green.example", "!other:x.example", answer)
    assert wrong.kind == "failed" and "not asked" in (wrong.reason or "")


# --- budgets and the audit queue -------------------------------------------------------------------


def test_normalise_origin() -> None:
    for spelling in ["ASKER.example", "asker.example:8448", "asker.example.", "Asker.Example.:8448"]:
        assert discovery.normalise_origin(spelling) == "asker.example"
    assert discovery.normalise_origin("asker.example:443") == "asker.example:443"
    assert discovery.normalise_origin("[2001:DB8::1]:8448") == "[2001:db8::1]"


def test_spellings_share_a_budget(responder: Any) -> None:
    _, r = responder
    tags = [servership.participation_tag("a.example", f"!r{i}:x") for i in range(100)]
    for origin in ["asker.example", "ASKER.example", "asker.example.:8448"]:
        r.respond(request(*tags), origin, 0)
    with pytest.raises(servership.LimitExceededError):
        r.respond(request(tags[0]), "Asker.Example", 0)
    assert r.remaining_budget("asker.example:8448", 0) == 0


def test_shared_budget_is_one_budget_for_every_responder(tmp_path: pathlib.Path) -> None:
    store = servership.TagStore(tmp_path / "tags.sqlite", "a.example")
    other = servership.TagStore(tmp_path / "tags.sqlite", "a.example")
    a = discovery.Responder(store, max_tags_per_request=10, budget_tags=15, shared_budget=True)
    b = discovery.Responder(other, max_tags_per_request=10, budget_tags=15, shared_budget=True)
    assert a.shared_budget and "shared" in repr(a)
    tags = [servership.participation_tag("a.example", f"!r{i}:x") for i in range(10)]
    a.respond(request(*tags), "asker.example", 0)
    assert b.remaining_budget("ASKER.example", 0) == 5
    with pytest.raises(servership.LimitExceededError):
        b.respond(request(*tags), "asker.example", 0)
    # A restart continues the window; a responder without a shared budget has its own.
    c = discovery.Responder(servership.TagStore(tmp_path / "tags.sqlite", "a.example"),
                            max_tags_per_request=10, budget_tags=15, shared_budget=True)
    assert c.remaining_budget("asker.example", 1) == 5
    assert discovery.Responder(store, max_tags_per_request=10, budget_tags=15).remaining_budget(
        "asker.example", 1) == 15


def test_record_join_queues_the_audit_once(tmp_path: pathlib.Path) -> None:
    store = servership.TagStore(tmp_path / "tags.sqlite", "a.example")
    queue = discovery.AuditQueue(store.path)
    assert store.record_join("!old:a.example", 1) is True
    assert store.record_join("!old:a.example", 2, audit_due_ms=10) is False
    assert queue.state("!old:a.example") is None
    assert store.record_join(ROOM, 5, audit_due_ms=100) is True
    assert store.record_join(ROOM, 6, audit_due_ms=200) is False
    assert queue.pending() == [(ROOM, 100)]
    assert queue.due(99) == [] and queue.due(100) == [ROOM]
    assert queue.postpone(ROOM, 300) is True
    assert queue.due(200) == []
    assert queue.enqueue("!other:a.example", 250, 0) is True
    assert queue.enqueue("!other:a.example", 1, 0) is False
    assert queue.due(1000, limit=1) == ["!other:a.example"]
    assert queue.finish(ROOM, "consistent", 400) is True
    assert queue.finish(ROOM, "consistent", 500) is False
    assert queue.state(ROOM) == "done" and queue.outcome(ROOM) == ("consistent", 400)
    assert queue.finished_since(400) == 1 and queue.finished_since(401) == 0
    # Durable: a new handle (a restart) sees the same queue.
    again = discovery.AuditQueue(tmp_path / "tags.sqlite")
    assert again.pending() == [("!other:a.example", 250)]
    assert "1 pending" in repr(again)
    with pytest.raises(servership.InvalidParamError, match="room_id"):
        queue.enqueue("no-bang", 1)
    with pytest.raises(servership.InvalidParamError, match="verdict"):
        queue.finish("!other:a.example", "")


def test_discovery_submodule_reexports() -> None:
    for name in discovery.__all__:
        assert getattr(discovery, name) is getattr(servership._native, name), name
    assert discovery.Responder.__module__ == "servership.discovery"
    assert servership.TagStore.__module__ == "servership"


def test_example_script_runs(repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, str(repo / "examples" / "discovery.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "recognised_tags" in result.stdout
    assert "HIDDEN BRANCH SUSPECTED" in result.stdout
    assert "bob.example" in result.stdout


# --- the Synapse module's calls (python/servership/synapse/_core.py) -----------------------------


def load_core() -> Any:
    """``_core.py`` from the installed wheel, loaded on its own: it needs only the standard
    library and ``servership``, while its package needs Synapse."""
    import importlib.util

    path = pathlib.Path(servership.__file__).parent / "synapse" / "_core.py"
    spec = importlib.util.spec_from_file_location("servership_synapse_core_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    # `_core` refuses a core without every binding it will use (invites come from another
    # area); only the discovery calls are under test here.
    module._cached = servership
    return module


def test_synapse_core_discovery_calls(tmp_path: pathlib.Path) -> None:
    core = load_core()
    store = core.open_tag_store(str(tmp_path / "tags.sqlite"), "green.example")
    assert core.record_join(store, ROOM, 5) is True
    assert core.backfill_tags(store, [ROOM, "!lobby:green.example"], 6) == 1
    assert core.tag_count(store) == 2
    responder = core.make_responder(store, 10, 20, 60_000)

    history = [("@blue:blue.example", "join", "@blue:blue.example"),
               ("@gray:gray.example", "join", "@gray:gray.example"),
               ("@gray:gray.example", "leave", "@gray:gray.example")]
    peers = core.audit_choose(ROOM, "purple.example", history, ["blue.example"],
                              [("blue.example", 9), ("green.example", 3), ("gray.example", 1)],
                              5, seed=7)
    assert sorted(peers) == ["gray.example", "green.example"]  # blue is visible: never asked
    body = core.audit_request("green.example", ROOM)
    answer = core.respond_discovery(responder, json.dumps(body).encode(), "purple.example", 0)
    assert core.audit_read("green.example", ROOM, json.dumps(answer).encode()) is True
    assert core.audit_read("green.example", ROOM, b'{"recognised_tags": []}') is False
    with pytest.raises(core.CoreError) as bad:
        core.audit_read("green.example", ROOM, b'{"recognised_tags": ["x"]}')
    assert bad.value.errcode == "M_BAD_JSON"

    outcome = core.audit_report(
        ROOM,
        "purple.example",
        history,
        ["blue.example"],
        [("green.example", core.RECOGNISED), ("gray.example", core.RECOGNISED),
         ("white.example", core.NOT_RECOGNISED), ("black.example", core.FAILED_PREFIX + "timeout")],
    )
    assert outcome.verdict == "hidden_branch_suspected"
    assert outcome.unexplained == ["green.example"]
    assert outcome.explained == ["gray.example"]
    report = json.loads(outcome.report_json)
    assert report["not_recognising"] == ["white.example"]
    assert report["failed"] == [{"server": "black.example", "error": "timeout"}]
    assert "HIDDEN BRANCH SUSPECTED" in outcome.report_text

    with pytest.raises(core.CoreError) as info:
        core.respond_discovery(responder, b"[]", "purple.example", 0)
    assert (info.value.errcode, info.value.http_status) == ("M_BAD_JSON", 400)
    tag = json.dumps(body).encode()
    for _ in range(20):
        core.respond_discovery(responder, tag, "flood.example", 0)
    with pytest.raises(core.CoreError) as limited:
        core.respond_discovery(responder, tag, "flood.example", 1)
    assert limited.value.http_status == 429 and limited.value.retry_after_ms == 59_999
