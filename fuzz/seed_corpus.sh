#!/bin/sh
# Builds a small seed corpus for every fuzz target from tests/vectors/*.json, into
# fuzz/corpus/<target>/ (ignored by git; only the small minimised fuzz/corpus-min/ is
# committed). Run from anywhere; re-running adds nothing new (files are named by content hash).
# Needs python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
vectors="$here/../tests/vectors"
corpus="$here/corpus"
mkdir -p "$corpus"
python3 - "$vectors" "$corpus" <<'PY'
import base64, hashlib, json, os, sys

vectors, corpus = sys.argv[1], sys.argv[2]

def load(name):
    with open(os.path.join(vectors, name), "rb") as f:
        return json.load(f)

def canon(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

counts = {}
def seed(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
    counts[target] = counts.get(target, 0) + 1

# json_parse: every canonical JSON vector input (raw bytes where the vector gives hex), and a
# few events.
for v in load("canonical_json.json"):
    if "input_hex" in v:
        seed("json_parse", bytes.fromhex(v["input_hex"]))
    elif "input" in v:
        seed("json_parse", v["input"])
for v in load("event_ids.json")[:3]:
    seed("json_parse", json.dumps(v["event"], indent=1))

# identifiers: every identifier vector, and the same without its sigil (the target adds them).
for v in load("identifiers.json"):
    seed("identifiers", v["value"])
    if v["value"][:1] in "@!$":
        seed("identifiers", v["value"][1:])
seed("identifiers", "%21abc%3Aexample.org")

# x_matrix_header: every header vector; and signed requests as "header\nbody".
x = load("x_matrix.json")
for v in x["parse"]:
    seed("x_matrix_header", v["header"])
for v in x["signed_requests"]:
    header = v.get("expect_header")
    if header is None:
        continue
    content = v["request"].get("content")
    body = b"" if content is None else b"\n" + canon(content)
    seed("x_matrix_header", header.encode() + body)

# event_id / redact / invite / knock: event JSON from the event ID, redaction and v12 vectors.
for v in load("event_ids.json"):
    seed("event_id", canon(v["event"]))
for v in load("redaction.json")[:40]:
    seed("event_id", canon(v["input"]))
v12 = load("v12_room_ids.json")
for v in v12["create_events"]:
    for key in ("event", "create_event"):
        if isinstance(v, dict) and key in v:
            seed("event_id", canon(v[key]))
# invite_check: the v12 invite scenarios as request bodies.
for v in v12["invite_scenarios"]:
    invite = {"type": "m.room.member", "state_key": "@bob:receiver.example",
              "sender": "@alice:alpha.example", "content": {"membership": "invite"},
              "origin_server_ts": 1, "depth": 3, "prev_events": [], "auth_events": [],
              "room_id": v["path_room_id"]}
    # The content hash, so the checks get past "event.hashes is required" (no signature: the
    # target's run without keys does not look at them).
    digest = hashlib.sha256(canon(invite)).digest()
    invite["hashes"] = {"sha256": base64.b64encode(digest).decode().rstrip("=")}
    state = [v["state_create_event"]] if v.get("state_create_event") else []
    seed("invite_check", canon({"event": invite, "state": state,
                                "room_version": v["room_version"]}))
    seed("invite_check", v["path_room_id"].encode() + b"\n" + canon({"event": invite, "state": state}))

# knock_edu: the EDU, its bare content, and both room ID forms.
for room in ["!abc:example.org", "!" + "A" * 43, "!a:[::1]:8448"]:
    seed("knock_edu", canon({"edu_type": "m.server.knock", "content": {"room_id": room}}))
    seed("knock_edu", canon({"room_id": room}))

import hmac
def tag(server, room):
    mac = hmac.new(server.encode(), room.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode().rstrip("=")

# discover_common_rooms: requests over the target's two-room store (fuzz.example).
known, other = tag("fuzz.example", "!a:fuzz.example"), tag("fuzz.example", "!b:other.example")
for tags in ([], [known], [known, other + "=", tag("x.example", "!a:fuzz.example")]):
    seed("discover_common_rooms", canon({"room_participation_tags": tags}))
seed("discover_common_rooms", b' { "room_participation_tags" : [ "%s" ] , "x": 1 } ' % known.encode())

# audit_response: the peer's answers (right, empty, foreign, malformed) and membership
# histories, one "user membership sender" a line.
asked = tag("peer.example", "!audit:fuzz.example")
for tags in ([asked], [], [asked, asked + "="], ["x" * 43], [1]):
    seed("audit_response", canon({"recognised_tags": tags}))
seed("audit_response", "\n".join([
    "@a:blue.example join @a:blue.example",
    "@g:peer.example join @g:peer.example",
    "@g:peer.example leave @mallory:blue.example",
    "@h:peer.example ban @eve:cyan.example",
    "@k:knock.example knock @k:knock.example",
    "@:gray.example join @:gray.example",
    "@:gray.example leave @:gray.example",
    "@i:white.example invite @a:blue.example",
    "@x:black.example ban @a:blue.example",
]))

# invite_promotion: byte programs (the target turns them into signed histories; the first byte
# picks the room version), and the invite_check bodies for its raw-body mode.
import random
rng = random.Random(4329)
for version in range(10):
    for _ in range(3):
        seed("invite_promotion", bytes([version, 0, 12]) + bytes(rng.randrange(256) for _ in range(100)))
# The creator's join, power levels and join rules, properly signed, in the target's encoding:
# sender, type, [type fields], auth mask, prev, signing.
seed("invite_promotion", bytes([9, 0, 3,  0, 0, 0, 0, 0, 0, 2,  0, 2, 0, 0, 0, 0, 0, 1, 0, 2,
                                0, 3, 1, 3, 1, 2]))

# spec_invite: the MSC4329 fixture as a /v2 body (the create event in invite_room_state), and
# the v1 shape.
fixtures = os.path.join(vectors, "..", "c", "fixtures")
with open(os.path.join(fixtures, "invite_v12.json"), "rb") as f:
    v3 = json.load(f)
v2 = {"room_version": "12", "event": v3["event"],
      "invite_room_state": v3["invite_room_state"] + v3["state"]}
seed("spec_invite", canon(v2))
seed("spec_invite", canon({**v3["event"], "unsigned": {"invite_room_state": v3["state"]}}))
# Programs (first byte below 0x20): a signed room of each version with good and bad entries.
for version in range(12):
    for shape in ([6, 5, 1, 0, 0, 5, 2], [3, 3, 0, 4, 1, 5, 0], [2, 1, 0, 2, 1, 0, 0]):
        seed("spec_invite", bytes([1, version] + shape + [0, 5, 1, 5, 2, 0]))

for target, n in sorted(counts.items()):
    print(f"{target}: {n} seeds")
PY
