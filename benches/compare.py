#!/usr/bin/env python3
"""servership against its anchors, in one run, on one machine: writes docs/performance.md.

    python3 benches/compare.py            # everything (takes a few minutes)
    python3 benches/compare.py --quick    # fewer samples, for trying the script out
    python3 benches/compare.py --no-rust  # skip the Rust criterion benches (ruma, tags)

The script installs its own comparison targets into a scratch venv (``target/bench-venv``):
PyPI ``matrix-synapse``, ``canonicaljson``, ``signedjson`` and ``maturin``, plus servership's wheel
built by ``maturin build --release`` from this checkout. It then re-runs itself inside that venv
and measures, with ``time.perf_counter_ns``, a warm-up, and many samples of many calls each:

- canonical JSON of a ~900-byte invite: servership (from a dict, from bytes) vs ``canonicaljson``;
- event IDs of a v11 invite, a v12 invite and a v12 create event: servership (from bytes, from a
  dict) vs Synapse's own ``make_event_from_json``/``make_event_from_dict(...).event_id`` and
  ``compute_event_reference_hash``;
- the MSC4329 invite check of a realistic body vs the Synapse work it replaces (parse the body,
  build every event and compute its ID);
- participation tags: the batch API vs Python's ``hmac`` (per tag);
- a 1,000-tag ``discover_common_rooms`` request against 1,000,000 stored tags, bytes in to bytes
  out, vs the obvious pure-Python implementation;
- the Rust side (criterion, ``cargo bench``): servership vs ruma, tags per second, and the
  hardware reference ``openssl speed -bytes 64 sha256``.

Every row reports the time of one operation: median, min and max over the samples, and the ratio
to its anchor (how many times faster than the anchor; > 1 means servership wins).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "target" / "bench-venv"
WHEELS = ROOT / "target" / "bench-wheels"
OUTPUT = ROOT / "docs" / "performance.md"
ANCHOR_PACKAGES = ["matrix-synapse", "canonicaljson", "signedjson", "maturin"]
NOT_AVAILABLE = "not available in this build"


# ---------------------------------------------------------------------------------------------
# Setup: the scratch venv and the release wheel
# ---------------------------------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def setup() -> None:
    """Creates the venv if needed, installs the anchors and a fresh release wheel."""
    if not venv_python().exists():
        run([sys.executable, "-m", "venv", str(VENV)])
        run([str(venv_python()), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([str(venv_python()), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES])
    shutil.rmtree(WHEELS, ignore_errors=True)
    run([str(VENV / "bin" / "maturin"), "build", "--release", "--out", str(WHEELS)], cwd=ROOT)
    wheels = sorted(WHEELS.glob("servership-*.whl"))
    if not wheels:
        sys.exit("maturin produced no wheel")
    run([str(venv_python()), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps",
         str(wheels[-1])])


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


class Timing:
    def __init__(self, per_op_ns: list[float]):
        self.median = statistics.median(per_op_ns)
        self.min = min(per_op_ns)
        self.max = max(per_op_ns)


def measure(fn, *, ops_per_call: int = 1, samples: int = 30, sample_ms: float = 20.0,
            warmup_ms: float = 200.0) -> Timing:
    """Times `fn()` (which performs `ops_per_call` operations): a warm-up, then `samples` samples
    of enough calls to last about `sample_ms` each. Returns nanoseconds per operation."""
    clock = time.perf_counter_ns
    end = clock() + warmup_ms * 1e6
    calls = 0
    start = clock()
    while clock() < end:
        fn()
        calls += 1
    per_call = max((clock() - start) / max(calls, 1), 1.0)
    n = max(1, int(sample_ms * 1e6 / per_call))
    rng = range(n)
    out = []
    for _ in range(samples):
        t0 = clock()
        for _ in rng:
            fn()
        out.append((clock() - t0) / n / ops_per_call)
    return Timing(out)


class Table:
    """Rows grouped in sections; each row may name the anchor row it is compared with."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, list[dict]]] = []
        self.notes: list[str] = []

    def section(self, title: str) -> None:
        self.sections.append((title, []))
        print(f"\n## {title}", flush=True)

    def row(self, name: str, timing: Timing | None, *, anchor: str | None = None,
            target: str = "", unit: str = "", note: str = "") -> None:
        rows = self.sections[-1][1]
        ratio = None
        if timing is not None and anchor is not None:
            base = next((r for r in rows if r["name"] == anchor), None)
            if base is not None and base["timing"] is not None:
                ratio = base["timing"].median / timing.median
        rows.append({"name": name, "timing": timing, "anchor": anchor, "ratio": ratio,
                     "target": target, "unit": unit, "note": note})
        shown = NOT_AVAILABLE if timing is None else fmt_ns(timing.median)
        extra = f"  ({ratio:.1f}x vs {anchor})" if ratio else ""
        print(f"  {name:70s} {shown}{extra}{('  ' + note) if note else ''}", flush=True)

    def markdown(self) -> str:
        lines = []
        for title, rows in self.sections:
            lines += [f"### {title}", "",
                      "| operation | median | min | max | vs anchor | target |",
                      "|---|---:|---:|---:|---:|---|"]
            for r in rows:
                t = r["timing"]
                if t is None:
                    cells = [r["note"] or NOT_AVAILABLE, "", ""]
                else:
                    cells = [fmt_ns(t.median), fmt_ns(t.min), fmt_ns(t.max)]
                if r["ratio"] is not None:
                    ratio = f"{r['ratio']:.1f}x"
                elif r["anchor"] is None and t is not None:
                    ratio = "anchor"
                else:
                    ratio = ""
                name = r["name"] + (f" ({r['note']})" if r["note"] and t is not None else "")
                lines.append(f"| {name} | {' | '.join(cells)} | {ratio} | {r['target']} |")
            lines.append("")
        return "\n".join(lines)


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


# ---------------------------------------------------------------------------------------------
# Realistic inputs, signed by Synapse's own code
# ---------------------------------------------------------------------------------------------

ORIGIN = "matrix.example.org"
RECEIVER = "remote.example.com"


def build_inputs():
    from signedjson.key import decode_signing_key_base64
    from synapse.api.room_versions import RoomVersions
    from synapse.crypto.event_signing import add_hashes_and_signatures
    from synapse.events import make_event_from_dict

    key = decode_signing_key_base64(
        "ed25519", "a_bench", base64.b64encode(bytes([42] * 32)).decode().rstrip("="))

    def signed(event: dict, version) -> dict:
        add_hashes_and_signatures(version, event, ORIGIN, key)
        return event

    def event_id(event: dict, version) -> str:
        return make_event_from_dict(dict(event), version).event_id

    create = signed({
        "type": "m.room.create", "state_key": "", "sender": f"@alice:{ORIGIN}",
        "origin_server_ts": 1767225600123, "depth": 1, "auth_events": [], "prev_events": [],
        "content": {"room_version": "12", "additional_creators": ["@bob:chat.example.net"],
                    "m.federate": True, "fi.mau.randomness": "nA8Wm2nXq6V0Kc1zTnP4bQ"},
    }, RoomVersions.V12)
    create_id = event_id(create, RoomVersions.V12)
    room_v12 = "!" + create_id[1:]

    def invite(room_id: str, version, extra_content: dict | None = None, auth=None) -> dict:
        content = {
            "membership": "invite", "displayname": "Carol Example",
            "avatar_url": "mxc://remote.example.com/AbCdEfGhIjKlMnOpQrStUvWx",
            "is_direct": False,
            "reason": "Join us in the planning room for the spring release",
        }
        content.update(extra_content or {})
        return signed({
            "type": "m.room.member", "state_key": f"@carol:{RECEIVER}",
            "sender": f"@alice:{ORIGIN}", "room_id": room_id,
            "origin_server_ts": 1767225712456, "depth": 7,
            "auth_events": auth or ["$Qm1sU0Jc3fWkTrbF9n2hRz8YtXoLpA6vEdGiKuNyM0c",
                                    "$hTn3Vr8xWq0LsJb5mYdPz2gKfAuCeOi7RkXtBl9NaZs"],
            "prev_events": ["$Zp4Lk9Qw2Rt7Yx1Nm5Bv8Cs3Df6Gh0Jk2Lz4Xc7Vb9M"],
            "content": content,
        }, version)

    invite_v11 = invite(f"!PlanningRoomAbCdEf:{ORIGIN}", RoomVersions.V11)
    invite_v12 = invite(room_v12, RoomVersions.V12, {"create_event_id": create_id})

    # The MSC4329 body: the invite, the create event and four more signed state events.
    def state(kind: str, state_key: str, content: dict, auth: list[str], depth: int) -> dict:
        return signed({
            "type": kind, "state_key": state_key, "sender": f"@alice:{ORIGIN}",
            "room_id": room_v12, "origin_server_ts": 1767225600000 + depth, "depth": depth,
            "auth_events": auth, "prev_events": [], "content": content,
        }, RoomVersions.V12)

    join = state("m.room.member", f"@alice:{ORIGIN}",
                 {"membership": "join", "displayname": "Alice"}, [], 2)
    join_id = event_id(join, RoomVersions.V12)
    pl = state("m.room.power_levels", "", {
        "users": {"@carol:chat.example.net": 50}, "users_default": 0, "events_default": 0,
        "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
        "events": {"m.room.name": 50, "m.room.power_levels": 100}}, [join_id], 3)
    pl_id = event_id(pl, RoomVersions.V12)
    jr = state("m.room.join_rules", "", {"join_rule": "invite"}, [join_id, pl_id], 4)
    hv = state("m.room.history_visibility", "", {"history_visibility": "shared"},
               [join_id, pl_id], 5)
    body_invite = state("m.room.member", f"@carol:{RECEIVER}",
                        {"membership": "invite", "displayname": "Carol Example",
                         "reason": "Join us in the planning room"},
                        [join_id, pl_id, event_id(jr, RoomVersions.V12)], 6)
    body = {
        "event": body_invite,
        "invite_room_state": [
            {"type": "m.room.name", "state_key": "", "sender": f"@alice:{ORIGIN}",
             "content": {"name": "Spring planning"}},
            {"type": "m.room.join_rules", "state_key": "", "sender": f"@alice:{ORIGIN}",
             "content": {"join_rule": "invite"}},
        ],
        "state": [create, join, pl, jr, hv],
    }
    return {"create": create, "invite_v11": invite_v11, "invite_v12": invite_v12,
            "room_v12": room_v12, "invite_body": body}


def wire(event: dict) -> bytes:
    """JSON as another server might send it: compact, keys in insertion order."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------------------------


def python_rows(table: Table, args) -> None:
    import canonicaljson
    import servership
    from synapse.api.room_versions import RoomVersions
    from synapse.crypto.event_signing import compute_event_reference_hash
    from synapse.events import make_event_from_dict, make_event_from_json

    m = dict(samples=args.samples, sample_ms=args.sample_ms)
    inputs = build_inputs()
    invite = inputs["invite_v12"]
    invite_wire = wire(invite)
    canonical = canonicaljson.encode_canonical_json(invite)
    assert servership.canonical_json(invite) == canonical
    assert servership.canonicalize(invite_wire) == canonical

    table.section(f"Canonical JSON of a {len(canonical)}-byte v12 invite (Python)")
    table.row("canonicaljson.encode_canonical_json(dict)",
              measure(lambda: canonicaljson.encode_canonical_json(invite), **m))
    table.row("servership.canonical_json(dict)",
              measure(lambda: servership.canonical_json(invite), **m),
              anchor="canonicaljson.encode_canonical_json(dict)", target=">= 5x")
    table.row("json.loads + canonicaljson.encode_canonical_json(bytes)",
              measure(lambda: canonicaljson.encode_canonical_json(json.loads(invite_wire)), **m))
    table.row("servership.canonicalize(bytes)",
              measure(lambda: servership.canonicalize(invite_wire), **m),
              anchor="json.loads + canonicaljson.encode_canonical_json(bytes)", target=">= 5x")

    cases = [("v11 invite", inputs["invite_v11"], RoomVersions.V11, "11"),
             ("v12 invite", inputs["invite_v12"], RoomVersions.V12, "12"),
             ("v12 create event", inputs["create"], RoomVersions.V12, "12")]
    for label, event, version, vid in cases:
        data = wire(event)
        text = data.decode()
        synapse_event = make_event_from_dict(dict(event), version)
        expected = synapse_event.event_id
        assert servership.event_id(data, vid) == expected, label
        assert servership.event_id(event, vid) == expected, label
        table.section(f"Event ID of a {label} ({len(canonicaljson.encode_canonical_json(event))} "
                      "bytes canonical, Python)")
        table.row("synapse make_event_from_json(str).event_id",
                  measure(lambda: make_event_from_json(text, version).event_id, **m))
        table.row("synapse json.loads + make_event_from_dict.event_id",
                  measure(lambda: make_event_from_dict(json.loads(data), version).event_id, **m))
        table.row("synapse make_event_from_dict(dict).event_id",
                  measure(lambda: make_event_from_dict(event, version).event_id, **m))
        table.row("synapse compute_event_reference_hash(built event)",
                  measure(lambda: compute_event_reference_hash(synapse_event), **m))
        table.row("servership.event_id(bytes)",
                  measure(lambda: servership.event_id(data, vid), **m),
                  anchor="synapse make_event_from_json(str).event_id", target=">= 3x")
        table.row("servership.event_id(dict)",
                  measure(lambda: servership.event_id(event, vid), **m),
                  anchor="synapse make_event_from_dict(dict).event_id")
        if vid == "12" and label.endswith("create event"):
            assert servership.room_id_from_create_event(data) == inputs["room_v12"]
            table.row("servership.room_id_from_create_event(bytes)",
                      measure(lambda: servership.room_id_from_create_event(data), **m),
                      anchor="synapse make_event_from_json(str).event_id")

    body = inputs["invite_body"]
    body_bytes = wire(body)
    table.section(f"MSC4329 invite check of a {len(body_bytes)}-byte v12 body "
                  "(invite + create + 4 state events, Python)")

    def synapse_invite_work():
        parsed = json.loads(body_bytes)
        ids = [make_event_from_dict(parsed["event"], RoomVersions.V12).event_id]
        for e in parsed["state"]:
            ids.append(make_event_from_dict(e, RoomVersions.V12).event_id)
        return "!" + ids[1][1:]

    assert synapse_invite_work() == inputs["room_v12"]
    table.row("synapse: json.loads + make_event_from_dict(...).event_id of 6 events",
              measure(synapse_invite_work, **m))
    check = getattr(servership, "check_invite", None)
    if check is None:
        table.row("servership.check_invite(room_id, body, receiver, origin)", None)
    else:
        room = inputs["room_v12"]
        check(room, body_bytes, RECEIVER, ORIGIN)
        table.row("servership.check_invite(room_id, body, receiver, origin)",
                  measure(lambda: check(room, body_bytes, RECEIVER, ORIGIN), **m),
                  anchor="synapse: json.loads + make_event_from_dict(...).event_id of 6 events")

    tag_rows(table, m)
    discovery_rows(table, args, m)


SERVER = "bench.example.org"


def room(i: int) -> str:
    return f"!r{i:08d}abcdefghij:example.org"


def py_tag(key: bytes, room_id: str) -> str:
    mac = hmac.new(key, room_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode().rstrip("=")


def tag_rows(table: Table, m: dict) -> None:
    import servership

    rooms = [room(i) for i in range(1000)]
    key = SERVER.encode()
    table.section("Participation tags, per tag (batches of 1,000 room IDs, Python)")
    table.row("python hmac.new(...).digest() + base64, per tag",
              measure(lambda: [py_tag(key, r) for r in rooms], ops_per_call=1000, **m))
    table.row("python hmac.digest(...) one-shot (no base64), per tag",
              measure(lambda: [hmac.digest(key, r.encode(), "sha256") for r in rooms],
                      ops_per_call=1000, **m))
    tags = getattr(servership, "participation_tags", None)
    if tags is None:
        table.row("servership.participation_tags(server, rooms), per tag", None)
        return
    assert tags(SERVER, rooms[:3]) == [py_tag(key, r) for r in rooms[:3]]
    table.row("servership.participation_tags(server, rooms), per tag",
              measure(lambda: tags(SERVER, rooms), ops_per_call=1000, **m),
              anchor="python hmac.new(...).digest() + base64, per tag", target=">= 15x")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PurePythonResponder:
    """The obvious pure-Python discover_common_rooms: json, base64 and a set of raw tags."""

    def __init__(self, tags: set[bytes]):
        self.tags = tags

    def respond(self, body: bytes) -> bytes:
        request = json.loads(body)
        asked = request.get("room_participation_tags")
        if not isinstance(asked, list) or len(asked) > 1000:
            raise ValueError("bad request")
        seen = set()
        out = []
        for text in asked:
            if not isinstance(text, str):
                raise ValueError("tags must be strings")
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            if len(raw) != 32:
                raise ValueError("tags are 32 bytes")
            if raw in self.tags and raw not in seen:
                seen.add(raw)
                out.append(text)
        return json.dumps({"recognised_tags": out}, separators=(",", ":")).encode()


def discovery_rows(table: Table, args, m: dict) -> None:
    import servership

    n = args.store_tags
    table.section(f"discover_common_rooms: 1,000 asked tags against {n:,} stored "
                  "(bytes in, bytes out, Python)")
    rooms = [room(i) for i in range(n)]
    key = SERVER.encode()
    asked_rooms = [room(i * 997) if i % 2 == 0 else f"!unknown{i}:elsewhere.org"
                   for i in range(1000)]
    body = json.dumps({"room_participation_tags": [py_tag(key, r) for r in asked_rooms]}).encode()

    before = rss_bytes()
    pure = PurePythonResponder({hmac.digest(key, r.encode(), "sha256") for r in rooms})
    pure_bytes = rss_bytes() - before
    expected = pure.respond(body)
    known = sum(1 for i in range(0, 1000, 2) if i * 997 < n)
    assert len(json.loads(expected)["recognised_tags"]) == known
    table.row("pure Python (json + base64 + set of raw tags)",
              measure(lambda: pure.respond(body), **m),
              note=f"set memory ~{pure_bytes / n:.0f} B/tag (RSS growth)")
    del pure

    store_cls = getattr(servership, "TagStore", None)
    discovery = getattr(servership, "discovery", None)
    responder_cls = getattr(discovery, "Responder", getattr(servership, "Responder", None))
    name = "servership TagStore + discovery.Responder.respond(body)"
    if store_cls is None or responder_cls is None:
        table.row(name, None)
        return
    with tempfile.TemporaryDirectory(prefix="servership-bench-") as tmp:
        store = store_cls(os.path.join(tmp, "tags.sqlite"), SERVER)
        t0 = time.perf_counter()
        store.backfill(rooms, 1)
        print(f"  backfill of {n:,} rooms: {time.perf_counter() - t0:.2f} s", flush=True)
        responder = responder_cls(store, max_tags_per_request=1000,
                                  budget_tags=2**62, budget_window_ms=60_000)
        answer = responder.respond(body, "peer.example", 0)
        assert json.loads(answer) == json.loads(expected), "answers differ"
        note = ""
        index_bytes = getattr(store, "index_bytes", None)
        if callable(index_bytes):
            index_bytes = index_bytes()
        if isinstance(index_bytes, int):
            per_tag = index_bytes / n
            note = f"index {per_tag:.1f} B/tag, target <= 16"
            RESULTS["python_index_bytes_per_tag"] = per_tag
        table.row(name, measure(lambda: responder.respond(body, "peer.example", 0), **m),
                  anchor="pure Python (json + base64 + set of raw tags)", target=">= 10x",
                  note=note)


RESULTS: dict = {}


# ---------------------------------------------------------------------------------------------
# Rust: criterion benches and openssl
# ---------------------------------------------------------------------------------------------


def criterion_estimate(group: str, bench: str) -> Timing | None:
    """Reads criterion's saved estimates (ns per iteration) for one benchmark."""
    def slug(s: str) -> str:
        return re.sub(r'[\\/:*?"<>|]', "_", s)  # criterion's directory names
    base = ROOT / "target" / "criterion" / slug(group) / slug(bench) / "new"
    try:
        est = json.loads((base / "estimates.json").read_text())
        sample = json.loads((base / "sample.json").read_text())
    except (OSError, ValueError):
        return None
    per_iter = [t / n for t, n in zip(sample["times"], sample["iters"])]
    t = Timing(per_iter)
    t.median = est["median"]["point_estimate"]
    return t


def openssl_sha256_per_second() -> float | None:
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", "3", "-bytes", "64", "sha256"],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    found = re.search(r"(\d+) sha256's in ([\d.]+)s", out.stdout + out.stderr)
    if not found:
        return None
    return int(found.group(1)) / float(found.group(2))


def rust_rows(table: Table, args) -> None:
    quick = ["--", "--warm-up-time", "1", "--measurement-time", "3"]
    run(["cargo", "bench", "--bench", "ruma", *quick], cwd=ROOT)
    table.section("Rust: servership vs ruma (criterion, same inputs as benches/foundation.rs)")
    for label, group, ours, theirs in [
        ("canonical JSON of the v12 invite (bytes in, canonical out)", "ruma_canonical_json",
         "servership invite bytes to canonical bytes", "ruma invite bytes to canonical string"),
        ("event ID of the v12 invite from bytes", "ruma_event_id",
         "servership v12 invite from bytes", "ruma v12 invite from bytes"),
        ("event ID of the v12 create event from bytes", "ruma_event_id",
         "servership v12 create from bytes", "ruma v12 create from bytes"),
        ("event ID of the v12 invite from a parsed object", "ruma_event_id",
         "servership v12 invite from parsed object", "ruma v12 invite from parsed object"),
    ]:
        table.row(f"ruma: {label}", criterion_estimate(group, theirs))
        table.row(f"servership: {label}", criterion_estimate(group, ours),
                  anchor=f"ruma: {label}", target=">= 1x")

    out = subprocess.run(["cargo", "bench", "--bench", "discovery", *quick],
                         cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(out.stdout[-3000:])
    table.section("Rust: participation tags and the tag index (criterion)")
    per_sec = openssl_sha256_per_second()
    if per_sec:
        ref = Timing([1e9 / per_sec])
        table.row("hardware reference: openssl speed -bytes 64 sha256, per hash", ref,
                  note=f"{per_sec / 1e6:.2f} M hashes/s")
    tag = criterion_estimate("tags", "tag_all 1000 rooms (one core)")
    if tag is not None:
        per_tag = Timing([tag.median / 1000, tag.min / 1000, tag.max / 1000])
        per_tag.median = tag.median / 1000
        table.row("servership Tagger::tag_all, per tag", per_tag,
                  anchor="hardware reference: openssl speed -bytes 64 sha256, per hash" if per_sec else None,
                  target=">= 0.5x", note=f"{1e9 / per_tag.median / 1e6:.2f} M tags/s")
    respond = criterion_estimate("store of 1,000,000 tags", "respond to 1000 tags (bytes in, bytes out)")
    table.row("servership Responder::respond, 1,000 tags vs 1,000,000 stored", respond)
    found = re.search(r"= ([\d.]+) bytes per tag", out.stdout)
    if found:
        RESULTS["rust_index_bytes_per_tag"] = float(found.group(1))

    # The MSC4329 check with keys, where promotion runs the auth rules on every state event, and
    # the hostile body of issue 11 against an honest history, per byte (benches/invite.rs).
    out = subprocess.run(["cargo", "bench", "--bench", "invite", *quick],
                         cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(out.stdout[-2000:])
    sizes = {m.group(1): int(m.group(2)) for m in
             re.finditer(r"(invite body|honest history|hostile body): (\d+) bytes", out.stdout)}
    table.section("Rust: MSC4329 check_invite, promotion with the auth rules (criterion)")
    body = sizes.get("invite body")
    table.row("check_invite of the v12 body without keys (nothing promoted)",
              criterion_estimate("invite_check_v12", "without_keys"),
              note=f"{body} bytes" if body else "")
    table.row("check_invite of the v12 body with keys (4 events promoted, auth rules run)",
              criterion_estimate("invite_check_v12", "with_signatures"))
    for label, bench, key in [("honest history", "honest_733k", "honest history"),
                              ("hostile body of issue 11", "hostile_878k", "hostile body")]:
        timing = criterion_estimate("invite_state_per_byte", bench)
        size = sizes.get(key)
        if timing is not None and size:
            per_byte = Timing([t / size for t in (timing.median, timing.min, timing.max)])
            per_byte.median = timing.median / size
            table.row(f"check_invite with keys, {label}, per byte", per_byte,
                      anchor=None if key == "honest history" else
                      "check_invite with keys, honest history, per byte",
                      target="" if key == "honest history" else ">= 1x",
                      note=f"{size:,} bytes, {size / timing.median * 1e9 / 2**20:.0f} MiB/s")
        else:
            table.row(f"check_invite with keys, {label}, per byte", None)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def environment() -> list[str]:
    from importlib import metadata

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    osname = platform.platform()
    try:
        pretty = next(line.split("=", 1)[1].strip().strip('"') for line in open("/etc/os-release")
                      if line.startswith("PRETTY_NAME="))
        osname = f"{pretty} ({platform.release()})"
    except (OSError, StopIteration):
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    versions = []
    for pkg in ["servership", "matrix-synapse", "canonicaljson", "signedjson"]:
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    lock = (ROOT / "Cargo.lock").read_text()
    for crate in ["ruma-common", "ruma-signatures", "sha2", "hmac"]:
        found = re.search(rf'name = "{crate}"\nversion = "([^"]+)"', lock)
        if found:
            versions.append(f"{crate} {found.group(1)} (Rust)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return [
        f"- Machine: {cpu}, {os.cpu_count()} logical cores (shared; other jobs were running)",
        f"- OS: {osname}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- Rust: {rustc}; servership built with `maturin build --release` at commit {commit}",
        f"- Packages: {', '.join(versions)}",
    ]


def report(table: Table, args) -> str:
    lines = [
        "# Performance",
        "",
        "Generated by `python3 benches/compare.py` (do not edit by hand; re-run it). Every time is",
        "per operation; median, min and max over the samples; \"vs anchor\" is how many times faster",
        "than the row it is compared with (the first row of the section unless stated), in the same",
        "run on the same inputs.",
        "",
        *environment(),
        "",
    ]
    idx = []
    if "rust_index_bytes_per_tag" in RESULTS:
        idx.append(f"{RESULTS['rust_index_bytes_per_tag']:.1f} B/tag (Rust `TagStore::index_bytes`,"
                   " 1,000,000 tags)")
    if "python_index_bytes_per_tag" in RESULTS:
        idx.append(f"{RESULTS['python_index_bytes_per_tag']:.1f} B/tag (through Python)")
    lines.append("- In-memory tag index: " + ("; ".join(idx) if idx else NOT_AVAILABLE)
                 + "; target at most 64 B/tag.")
    lines += ["", table.markdown()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    parser.add_argument("--no-rust", action="store_true", help="skip the cargo benches")
    parser.add_argument("--no-setup", action="store_true",
                        help="use the venv and wheel as they are")
    parser.add_argument("--store-tags", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--in-venv", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.samples, args.sample_ms = (10, 10.0) if args.quick else (30, 25.0)

    if not args.in_venv:
        if not args.no_setup:
            setup()
        os.execv(str(venv_python()),
                 [str(venv_python()), __file__, *sys.argv[1:], "--in-venv"])

    table = Table()
    python_rows(table, args)
    if not args.no_rust:
        rust_rows(table, args)
    text = report(table, args)
    # Sections other tools write (benches/synapse_cost.py, the examples/store_scale.rs figures)
    # follow a marker comment saying "compare.py keeps": keep everything from the first one.
    if args.output.exists():
        old = args.output.read_text()
        kept = re.search(r"^<!--[^\n]*compare\.py keeps", old, flags=re.M)
        if kept:
            text = text.rstrip("\n") + "\n\n" + old[kept.start():]
    args.output.write_text(text)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
