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

# s2s_negotiation (no vectors: built here; layout in fuzz/src/checks.rs). Versions are indexes
# into NEG_VERSIONS ("1" 0, "01" 1, "9" 3, "10" 4, "11" 7, "12" 8, "org.example.1" 10); a rating
# byte b >= 4 is b % 8 - 2 (12 -> 2, 15 -> 5), 0-3 are the i64 extremes. A policy is
# [count, (version, rating)*count, flags (1 most-preferred-only, 2 floor follows, 4/8/16 vendor
# methods), floor?].
def policy(offers, flags=0, floor=None):
    out = [len(offers)]
    for v, r in offers:
        out += [v, r]
    out.append(flags)
    if floor is not None:
        out.append(floor)
    return out

# Two machines (first byte odd): names, both policies, twins, openers, echo mask, losses,
# duplicates, early ticks, then the schedule.
def two(names, a, b, twins=0, openers=0, echo=0, losses=0, dups=0, early=0, schedule=()):
    return bytes([1, *names, *a, *b, twins, openers, echo, losses, dups, early, *schedule])

doc_a = policy([(4, 15), (7, 12)])                     # 10*5, 11*2
doc_b = policy([(7, 10), (8, 15), (4, 15)])            # 11*0, 12*5, 10*5
seed("s2s_negotiation", two([0, 0], doc_a, doc_b))
seed("s2s_negotiation", two([0, 0], doc_a, doc_a))     # equal lists: accept straight away
seed("s2s_negotiation", two([3, 1], policy([(0, 13), (1, 13)]), policy([]), twins=1, openers=1))
seed("s2s_negotiation", two([1, 2], doc_a, policy([(4, 5)], flags=4), openers=2))  # vendor, supported
seed("s2s_negotiation", two([1, 2], doc_a, policy([(4, 5)], flags=8), openers=2 | 1 | 4))
seed("s2s_negotiation", two([2, 0], policy([(4, 0), (7, 1), (8, 2)], flags=3, floor=7),
                            policy([(7, 3), (8, 1)], flags=1), echo=0xff, losses=4, dups=4, early=3,
                            schedule=[0x80, 0xa1, 0xc0, 0xe3, 0x01, 0x82, 0xa0, 0x00, 0xe0]))
seed("s2s_negotiation", two([4, 0], doc_a, policy([(4, 15)], flags=2, floor=8)))  # nothing to offer

# One machine against a hostile b.example (first byte even): a header line (byte 0: bits 1-2 the
# role, 0 initiator, 2 vendor initiator, 3 responder; bit 3 own name c.example), then one
# operation a line.
def one(config, pol, *lines, extra=()):
    header = bytes([config, *pol, *extra])
    assert b"\n" not in header
    return header + b"".join(b"\n" + l.encode() for l in lines)

def offers(*vr):
    return json.dumps({"versions": [{"version": v, "rating": r} for v, r in vr]}, separators=(",", ":"))

seed("s2s_negotiation", one(0, doc_a, "R" + offers(("10", 9), ("12", 1)), "K{}", "t"))
seed("s2s_negotiation", one(0, doc_a, 'A{"version":"10"}', "K{}"))
seed("s2s_negotiation", one(0, doc_a, "R" + offers(("12", 1)), "d0", "t"))
seed("s2s_negotiation", one(0, doc_a, 'F{"error":"the cat sat on it"}'))
seed("s2s_negotiation", one(0, doc_a, "R" + offers(), "t"))
proposal = {"event_id": "$p1", "type": "m.s2s.upgrade.proposal", "sender": "@p:b.example",
            "content": json.loads(offers(("10", 5), ("11", 2)))}
seed("s2s_negotiation", one(6, doc_a, canon(proposal).decode(), "K{}"))
proposal["content"] = json.loads(offers(("10", 1), ("9", 4)))
seed("s2s_negotiation", one(6, doc_a, canon(proposal).decode(), 'A{"version":"10"}', "K{}", "e", "x"))
seed("s2s_negotiation", one(4, policy([]), 'A{"method":"org.example.fast"}', extra=[0]))
seed("s2s_negotiation", one(6, policy([], flags=4), 'V{"method":"org.example.fast"}', "d0"))
seed("s2s_negotiation", one(8, doc_a, "P" + offers(("10", 1)), 'A{"version":"10"}', "K{}"))
seed("s2s_negotiation", one(0, doc_a, "m", "R" + offers(("10", 9)), "t", "m", "t", "s$o2", "K{}"))
seed("s2s_negotiation", one(0, doc_a, canon({"event_id": "$z", "type": "m.s2s.upgrade.reply",
                                             "sender": "@m:evil.example", "content": {}}).decode(),
                            "x", "t", "t"))

# membership_decisions: a subject line (server name or user ID), state events one a line, and an
# optional "#" line of knock-store operations.
def room(subject, *events, knocks=None):
    lines = [subject.encode()] + [canon(e) for e in events]
    if knocks is not None:
        assert b"\n" not in bytes(knocks)
        lines.append(b"#" + bytes(knocks))
    return b"\n".join(lines)

def ev(t, key, content, sender="@admin:fuzz.example"):
    return {"type": t, "state_key": key, "content": content, "sender": sender}

def create(version="11", **extra):
    return ev("m.room.create", "", {"room_version": version, **extra})

def rules(rule):
    return ev("m.room.join_rules", "", {"join_rule": rule})

def member(user, m):
    return ev("m.room.member", user, {"membership": m}, sender=user)

acl = ev("m.room.server_acl", "", {"allow": ["*"], "deny": ["EVIL.example", "*.bad.example", "1.2.3.4"],
                                    "allow_ip_literals": False})
ban = ev("m.policy.rule.server", "rule1", {"entity": "*.evil.example", "recommendation": "m.ban",
                                          "reason": "spam"})
able = ev("m.server.is_able_to_subscribe", "good.example", {"is_able_to_subscribe": True})
sub = ev("m.server.subscription", "good.example", {}, sender="@a:good.example")
seed("membership_decisions", room("evil.example", create(), rules("public"), acl, member("@bob:evil.example", "join")))
seed("membership_decisions", room("Evil.Example:8448", create(), rules("public"), acl))
seed("membership_decisions", room("X.EVIL.example", create(), rules("knock"), ban, knocks=[0, 1, 2, 3, 8, 9, 0x80, 0x41]))
seed("membership_decisions", room("good.example", create(), rules("public"),
                                  ev("m.room.server_acl", "", {"allow": ["*.GOOD.example", "good.example"]}),
                                  able, sub, member("@a:good.example", "invite")))
seed("membership_decisions", room("@:b.example", create(type="m.s2s"), rules("invite"),
                                  member("@:b.example", "invite"), member("@bob:b.example", "join")))
seed("membership_decisions", room("@:b.example", create("10", type="support.feline.s2s"), rules("knock_restricted"),
                                  member("@:b.example", "ban")))
seed("membership_decisions", room("@:b.example", create(**{"m.federate": False}), rules("invite"),
                                  member("@bob:b.example", "join")))
seed("membership_decisions", room("b.example", create("6"), rules("peekable"), member("@bob:b.example", "invite")))
seed("membership_decisions", room("[::1]:8448", create("12"), rules("public"), acl, member("@x:[::1]:8448", "join")))
# Hostile state is up to 64 KiB: long join rules, policy reasons, ACL entries and state keys.
long = "x" * 5000
seed("membership_decisions", room("@:b.example", create(type="m.s2s"), rules(long),
                                  member("@bob:b.example", "join")))
seed("membership_decisions", room("@:b.example", create(type="m.s2s"),
                                  ev("m.room.join_rules", "", {"join_rule": {"k": [long]}})))
seed("membership_decisions", room("x.evil.example", create(), rules("knock"),
                                  ev("m.policy.rule.server", "r", {"entity": "*.evil.example",
                                     "recommendation": "m.ban", "reason": long}),
                                  ev("m.room.server_acl", "", {"allow": ["*" + long, "*"], "deny": [long + "*"]}),
                                  ev("m.server.subscription", long, {}, sender="@a:good.example")))
seed("membership_decisions", room("1.2.3.4", create(), rules("private"), acl,
                                  knocks=[0, 8, 16, 0, 1, 2, 3, 4, 0xbf, 0x40, 0x41, 0xc0, 0xc1, 0x43]))

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

# members_rules: the room version line, the event, then its auth events, one a line; every case of
# the members room version's vectors, and each again with the version picked by a digit.
with open(os.path.join(vectors, "auth_members_room_version.json"), encoding="utf-8") as f:
    members_cases = json.load(f)["cases"]
for case in members_cases:
    body = [canon(case["event"])] + [canon(e) for e in case["auth_events"]]
    seed("members_rules", b"\n".join([case["room_version"].encode()] + body))
    # "2": version 12 with the marker put on the create event (by the target).
    auth = json.loads(json.dumps(case["auth_events"]))
    for e in auth:
        if e.get("type") == "m.room.create" and e.get("content", {}).get("room_version", "").startswith("org."):
            e["content"]["room_version"] = "12"
    seed("members_rules", b"\n".join([b"2", canon(case["event"])] + [canon(e) for e in auth]))

for target, n in sorted(counts.items()):
    print(f"{target}: {n} seeds")
PY
