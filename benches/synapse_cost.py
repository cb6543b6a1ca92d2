#!/usr/bin/env python3
"""What the servership module costs a real Synapse: the same work on a Synapse with the module
and on one without, in one run on one machine; writes the "with and without the module" part of
docs/performance.md.

    python benches/synapse_cost.py                 # the full run (about ten minutes)
    python benches/synapse_cost.py --quick         # fewer events, for trying the script out
    python benches/synapse_cost.py --no-write      # print, leave the docs alone
    python benches/synapse_cost.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
                                                   # B and C on PostgreSQL, B's store too

Run it with an interpreter that has ``matrix-synapse`` and the servership wheel installed (as
``.ci/run``'s venv has). It starts a lab of three Synapses on loopback (``tests/python/synapse/
harness``): A, which signs the discovery requests; B, with the module (its defaults, plus a store
of ``--tags`` participation tags); C, the same Synapse without the module. Then, in rounds that
alternate which of B and C goes first (so drift in the machine's load hits both alike):

- room events: one user sends ``--events`` messages into a room, one after the other, through
  the client API; events per second, and the latency of each send at p50 and p99;
- joins: ``--joins`` users each join a public room (the module records a participation tag for
  each local join); the latency of each join at p50 and p99;
- ``discover_common_rooms``: A asks B about 1,000 tags (10 of them known) against the stored
  tags, from ``--clients`` persistent connections for ``--seconds``; requests per second and the
  latency of each. The anchor is a signed request that does the same X-Matrix work and one
  database lookup in Synapse (``GET /_matrix/federation/v1/query/directory``), and the share of
  servership's core is the in-process time of ``Responder.respond`` on the same body and store.

With ``--postgres URL`` (a role that may create databases), B and C run on PostgreSQL, each in
a new database dropped at the end, and B's servership store is the PostgreSQL backend in B's own
database (``store: {backend: postgres}``). Each backend gets its own section in the docs.

Medians and percentiles are over all samples of all rounds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python" / "synapse"))

from harness.lab import Homeserver, Lab, x_matrix_header  # noqa: E402
from harness.workers import Services  # noqa: E402

import servership  # noqa: E402

OUTPUT = ROOT / "docs" / "performance.md"
# compare.py keeps everything from this line on when it rewrites the file.
MARKER = "<!-- benches/synapse_cost.py writes from here on; compare.py keeps it -->"
# Each backend's part starts with one of these, so a run replaces only its own.
SECTION = "<!-- synapse_cost.py: {backend} -->"
DISCOVER = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


class Connection:
    """One persistent HTTP(S) connection, so each request costs a request, not a handshake."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        parsed = urllib.parse.urlsplit(url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port
        self._conn: http.client.HTTPConnection = (
            http.client.HTTPSConnection(host, port, context=context, timeout=60)
            if parsed.scheme == "https" else http.client.HTTPConnection(host, port, timeout=60))

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        self._conn.request(method, path, body=body, headers=hdrs)
        response = self._conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._conn.close()


def timed(fn: Callable[[], tuple[int, bytes]], what: str) -> float:
    t0 = time.perf_counter()
    status, body = fn()
    elapsed = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"{what}: {status} {body[:300]!r}")
    return elapsed


def send_events(hs: Homeserver, count: int) -> list[float]:
    user = hs.register(f"sender{uuid.uuid4().hex[:8]}")
    room = user.create_room(preset="public_chat")
    conn = Connection(hs.client_url)
    auth = {"Authorization": f"Bearer {user.token}"}
    path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/send/m.room.message/"
    body = json.dumps({"msgtype": "m.text", "body": "servership cost benchmark"}).encode()
    try:
        return [timed(lambda i=i: conn.request("PUT", path + f"t{i}", body, auth), "send")
                for i in range(count)]
    finally:
        conn.close()


def joins(hs: Homeserver, count: int) -> list[float]:
    host = hs.register(f"host{uuid.uuid4().hex[:8]}")
    room = host.create_room(preset="public_chat")
    users = [hs.register(f"joiner{uuid.uuid4().hex[:8]}") for _ in range(count)]
    conn = Connection(hs.client_url)
    path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/join"
    try:
        return [timed(lambda u=u: conn.request("POST", path, b"{}",
                                               {"Authorization": f"Bearer {u.token}"}), "join")
                for u in users]
    finally:
        conn.close()


def signed_load(lab: Lab, origin: Homeserver, destination: Homeserver, method: str, path: str,
                body: Any, clients: int, seconds: float,
                expect: tuple[int, ...] = (200,)) -> list[float]:
    """Requests from ``clients`` persistent connections for ``seconds``; each request's latency.
    X-Matrix signs no timestamp, so one header serves every identical request."""
    raw = None if body is None else json.dumps(body).encode()
    header = x_matrix_header(origin.signing_key(), origin.server_name, destination.server_name,
                             method, path, body)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        conn = Connection(destination.federation_url, lab.ssl_context())
        mine: list[float] = []
        try:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                status, answer = conn.request(method, path, raw, {"Authorization": header})
                mine.append(time.perf_counter() - t0)
                if status not in expect:
                    raise RuntimeError(f"{status} {answer[:300]!r}")
        except Exception as exc:  # noqa: BLE001 - reported below, the run is then worthless
            errors.append(repr(exc))
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    return latencies


def fill_store(location: str, server_name: str, count: int) -> list[str]:
    """``count`` rooms recorded as joined in B's store before B starts; returns 10 of them."""
    store = servership.TagStore(location, server_name)
    known: list[str] = []
    batch = 100_000
    now = int(time.time() * 1000)
    for start in range(0, count, batch):
        rooms = [f"!bench{i:08d}:elsewhere.example" for i in range(start, min(count, start + batch))]
        store.backfill(rooms, now)
        if not known:
            known = rooms[:10]
    return known


def core_respond_seconds(location: str, server_name: str, body: bytes, repeat: int) -> float:
    """servership's own share: ``Responder.respond`` on the same body and store, in process."""
    store = servership.TagStore(location, server_name)
    responder = servership.Responder(store, max_tags_per_request=1000, budget_tags=2**62,
                                     budget_window_ms=60_000)
    responder.respond(body, "peer.example", 0)
    t0 = time.perf_counter()
    for _ in range(repeat):
        responder.respond(body, "peer.example", 0)
    return (time.perf_counter() - t0) / repeat


def postgres_services(url: str | None) -> Services | None:
    """The PostgreSQL server of ``--postgres`` (Redis is not used here)."""
    if url is None:
        return None
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("postgresql", "postgres") or not parsed.hostname:
        raise SystemExit("--postgres must be postgresql://user[:password]@host:port/db")
    return Services(parsed.hostname, parsed.port or 5432, parsed.username or "postgres",
                    parsed.password, "127.0.0.1", 0)


def database_url(url: str, database: str) -> str:
    """``url`` with its database replaced by ``database``."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{database}"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="servership-cost-"))
    # B answers any signed origin (the shared-room check is one query; the anchor has one too)
    # and its budget never runs out during the run.
    module = {"discovery": {"require_shared_room": False, "budget_tags": 10**9}}
    synapse_config: dict[str, dict] = {"B": {}, "C": {"modules": []}}
    per_server: dict[str, dict] = {}
    services, databases = postgres_services(args.postgres), {}
    if services is not None:
        for name in ("B", "C"):
            databases[name] = services.create_database()
            synapse_config[name]["database"] = {"name": "psycopg2", "args": {
                "host": services.pg_host, "port": services.pg_port, "user": services.pg_user,
                "password": services.pg_password, "dbname": databases[name],
                "cp_min": 1, "cp_max": 10}}
        per_server["B"] = {"store": {"backend": "postgres"}, "store_path": None}
    lab = Lab(root, names=("A", "B", "C"), module_config=module, per_server=per_server,
              synapse_config=synapse_config)
    results: dict[str, Any] = {"events": {"B": [], "C": []}, "joins": {"B": [], "C": []},
                               "rates": {"B": [], "C": []}}
    try:
        lab.setup()
        b = lab["B"]
        location = (str(b.module_config["store_path"]) if services is None
                    else database_url(args.postgres, databases["B"]))
        t0 = time.monotonic()
        known = fill_store(location, b.server_name, args.tags)
        results["fill_seconds"] = time.monotonic() - t0
        lab.start()
        a, c = lab["A"], lab["C"]
        rng = random.Random(4358)
        asked = [f"!{rng.getrandbits(128):032x}:nowhere.example" for _ in range(990)] + known
        tags = servership.participation_tags(b.server_name, asked)
        rng.shuffle(tags)
        body = {"room_participation_tags": tags}
        # Warm both up (first requests compile templates, fill caches).
        send_events(b, 20)
        send_events(c, 20)
        for r in range(args.rounds):
            for name in (("B", "C") if r % 2 == 0 else ("C", "B")):
                hs = lab[name]
                t0 = time.perf_counter()
                lat = send_events(hs, args.events)
                results["rates"][name].append(args.events / (time.perf_counter() - t0))
                results["events"][name] += lat
                results["joins"][name] += joins(hs, args.joins)
                print(f"round {r + 1} {name}: {results['rates'][name][-1]:.1f} events/s, "
                      f"send p50 {ms(percentile(lat, 50))}", flush=True)
        status, answer = lab.federation_request(a, b, "POST", DISCOVER, body)
        if status != 200 or len(answer.get("recognised_tags", [])) != len(known):
            raise RuntimeError(f"discovery answered {status} {str(answer)[:300]}")
        results["discover"] = signed_load(lab, a, b, "POST", DISCOVER, body, args.clients,
                                          args.seconds)
        # An alias nobody has: 404 after the signature check and one lookup.
        alias = urllib.parse.quote(f"#nothing:{b.server_name}")
        directory = f"/_matrix/federation/v1/query/directory?room_alias={alias}"
        results["anchor"] = signed_load(lab, a, b, "GET", directory, None, args.clients,
                                        args.seconds, expect=(200, 404))
        results["core"] = core_respond_seconds(location, b.server_name,
                                               json.dumps(body).encode(), 200)
    finally:
        lab.stop()
        for name in databases.values():
            if services is not None:
                services.drop_database(name)
    results["seconds"] = args.seconds
    return results


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    from importlib import metadata

    ev, jn, rates = results["events"], results["joins"], results["rates"]
    with_rate, without_rate = statistics.median(rates["B"]), statistics.median(rates["C"])
    drop = (1 - with_rate / without_rate) * 100
    disc, anchor = results["discover"], results["anchor"]
    disc_rps = len(disc) / results["seconds"]
    anchor_rps = len(anchor) / results["seconds"]
    core = results["core"]
    share = core / statistics.median(disc) * 100
    backend = "PostgreSQL" if args.postgres else "SQLite"
    store = ("B's servership store is the PostgreSQL backend in B's database"
             if args.postgres else "B's servership store is an SQLite file")
    lines = [
        SECTION.format(backend=backend),
        "",
        f"### {backend}",
        "",
        "Generated by `benches/synapse_cost.py"
        + (" --postgres" if args.postgres else "")
        + "` (do not edit by hand; re-run it). Three Synapse "
        f"{metadata.version('matrix-synapse')} servers on loopback, {backend} ({store}), on the "
        "machine above "
        f"({os.cpu_count()} cores, shared with other jobs: compare rows, not runs): B with the "
        "module (defaults; discovery without the shared-room check), C without it, A signing "
        f"the discovery requests. {args.rounds} rounds alternating B and C; each round sends "
        f"{args.events} messages one after the other and makes {args.joins} users join a public "
        f"room. Python {platform.python_version()}.",
        "",
        "| workload | without the module (C) | with the module (B) | change | target |",
        "|---|---:|---:|---:|---|",
        f"| room events per second (median of rounds) | {without_rate:.1f} | {with_rate:.1f} | "
        f"{-drop:+.1f}% | at most 5% lower |",
        f"| send latency p50 | {ms(percentile(ev['C'], 50))} | {ms(percentile(ev['B'], 50))} | | |",
        f"| send latency p99 | {ms(percentile(ev['C'], 99))} | {ms(percentile(ev['B'], 99))} | | |",
        f"| join latency p50 | {ms(percentile(jn['C'], 50))} | {ms(percentile(jn['B'], 50))} | | |",
        f"| join latency p99 | {ms(percentile(jn['C'], 99))} | {ms(percentile(jn['B'], 99))} | | |",
        "",
        f"`discover_common_rooms` through B's federation listener: 1,000 tags (10 known) against "
        f"{args.tags:,} stored tags, {args.clients} persistent TLS connections for "
        f"{args.seconds:.0f} s:",
        "",
        "| request | requests per second | p50 | p99 |",
        "|---|---:|---:|---:|",
        f"| anchor: signed `GET /query/directory` (X-Matrix check + one lookup, no module) | "
        f"{anchor_rps:.0f} | {ms(percentile(anchor, 50))} | {ms(percentile(anchor, 99))} |",
        f"| signed `POST discover_common_rooms` (1,000 tags, about 48 KB) | {disc_rps:.0f} | "
        f"{ms(percentile(disc, 50))} | {ms(percentile(disc, 99))} |",
        "",
        f"servership's core (`Responder.respond`, same body, same store, in process) takes "
        f"{core * 1e6:.0f} µs of the {ms(statistics.median(disc))} median request: "
        f"**{share:.1f}%**. The rest is Synapse's HTTP stack: TLS, reading and parsing the "
        "48 KB body as JSON, the X-Matrix signature check, and writing the answer; the module's "
        "own Python (the budget charge, the call into the core) is in that rest too. Filling the "
        f"store with {args.tags:,} tags took {results['fill_seconds']:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--joins", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tags", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--postgres", metavar="URL",
                        help="run B and C (and B's store) on this PostgreSQL server")
    args = parser.parse_args()
    if args.quick:
        args.events, args.joins, args.rounds, args.tags, args.seconds = 60, 5, 2, 100_000, 5.0
    results = run(args)
    text = report(results, args)
    print(text)
    if not args.no_write:
        OUTPUT.write_text(merge_into(OUTPUT.read_text() if OUTPUT.exists() else "", text,
                                     "PostgreSQL" if args.postgres else "SQLite"))
        print(f"wrote {OUTPUT}")


def merge_into(current: str, text: str, backend: str) -> str:
    """``current`` with this backend's section replaced by ``text`` (the other backend's kept),
    under the marker and the heading every run shares."""
    head, _, ours = current.partition(MARKER)
    sections: dict[str, str] = {}
    for name in ("SQLite", "PostgreSQL"):
        start = ours.find(SECTION.format(backend=name))
        if start >= 0:
            ends = [i for other in ("SQLite", "PostgreSQL") if other != name
                    for i in [ours.find(SECTION.format(backend=other), start + 1)] if i > start]
            sections[name] = ours[start:min(ends) if ends else len(ours)].strip("\n")
    sections[backend] = text.strip("\n")
    parts = [head.rstrip("\n"), "", MARKER, "",
             "## The module's cost to Synapse: with and without the module", ""]
    for name in ("SQLite", "PostgreSQL"):
        if name in sections:
            parts += [sections[name], ""]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
