"""Out-of-room server discovery (MSC4358) in one page: copy this to start.

Two servers keep tag stores; one asks the other about a room with one ``discover_common_rooms``
request; then it audits a room it just joined and prints the report.

Run: ``python examples/discovery.py`` (after ``pip install servership``).
"""

import json
import secrets
import tempfile
from pathlib import Path

import servership
from servership import discovery

ROOM = "!council:alice.example"

with tempfile.TemporaryDirectory() as tmp:
    # Each server keeps its own store: one SQLite file, a tag for every room it ever joined.
    alice = servership.TagStore(Path(tmp) / "alice.sqlite", "alice.example")
    bob = servership.TagStore(Path(tmp) / "bob.sqlite", "bob.example")
    alice.record_join(ROOM)
    bob.backfill([ROOM, "!lobby:bob.example"])  # rooms joined before servership was installed
    print(alice, bob, sep="\n")

    # Bob serves POST /_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms.
    bob_endpoint = discovery.Responder(bob)

    # Alice asks Bob which of her rooms he has been in (tags are keyed by *Bob's* name).
    ask = discovery.Requester("bob.example", [ROOM, "!secret:alice.example"])
    body = ask.bodies[0]
    print("request: ", body.decode())
    answer = bob_endpoint.respond(body, origin="alice.example")
    print("answer:  ", answer.decode())
    print("Bob has been in:", ask.map_response(0, answer))

    # A bad request gets a Matrix error to send back as-is.
    try:
        bob_endpoint.respond(b'{"room_participation_tags": ["short"]}', "alice.example")
    except servership.ServershipError as exc:
        print("error:   ", exc.http_status, json.dumps(exc.matrix_error))

    # Carol joins the council, but the room she is shown has only Alice in it. She audits it
    # from the membership history she received, (user, membership, sender) in order: Bob
    # recognises the room although no user of his ever joined it in her view.
    history = [("@alice:alice.example", "join", "@alice:alice.example"),
               ("@carol:carol.example", "join", "@carol:carol.example")]
    view = discovery.RoomView(ROOM, "carol.example", history)
    # Peers weighted by rooms shared with them; a fresh seed per audit keeps the choice secret.
    audit = discovery.Audit.choose(view, {"bob.example": 3, "alice.example": 9}, max_peers=10,
                                   seed=secrets.randbits(64))
    answers = {}
    for peer in audit.peers:  # in a homeserver: POST over federation, with a timeout
        reply = bob_endpoint.respond(audit.request_body(peer), origin="carol.example")
        answers[peer] = audit.read_response(peer, reply)
    report = audit.report(answers)
    print(report.to_text())
    print(report.to_json().decode())
