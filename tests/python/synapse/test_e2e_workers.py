"""End-to-end on a worker deployment: A is Synapse on PostgreSQL with Redis, run as the main
process, a federation ``generic_worker`` (which every other server's federation requests reach)
and an event persister (``harness/workers.py``); B is a plain single-process Synapse.

What it proves (issue 13, item 3): joins are recorded, and audits run, once per homeserver, on
the main process (Synapse's background-tasks process); the federation worker answers with what
the main process recorded and does nothing else; the discovery budget is one per homeserver,
whichever process answers.

Needs ``SERVERSHIP_TEST_POSTGRES`` and ``SERVERSHIP_TEST_REDIS`` (``.ci/run`` starts both) and
``psycopg2``; without them the test is skipped, and under ``CI=true`` it fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.lab import client_request
from harness.lab import uid as _uid
from harness.lab import eventually as _eventually
from harness.workers import FEDERATION, MAIN, PERSISTER, Services, WorkerHomeserver, WorkerLab

DISCOVER = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"
ADMIN_KNOCK = "/_synapse/client/servership/v1/knock"
PROCESSES = (MAIN, FEDERATION, PERSISTER)
#: The discovery budget of A per origin (small, so that two processes can exhaust it).
BUDGET_TAGS = 10


def store_config(directory: Path, on_postgres: bool) -> dict:
    """servership's store for every process of a deployment: on a Synapse that runs on
    PostgreSQL, the PostgreSQL backend in Synapse's own database (``store: {backend: postgres}``
    reuses its ``database:`` settings, so no process shares a file); else an SQLite file."""
    if on_postgres:
        # ``store_path: None`` drops the lab's default SQLite path.
        return {"store": {"backend": "postgres"}, "store_path": None}
    return {"store_path": str(directory / "servership.db")}


def _services() -> Services:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        services = None
    else:
        services = Services.from_env()
    if services is None:
        why = ("needs psycopg2, SERVERSHIP_TEST_POSTGRES and SERVERSHIP_TEST_REDIS "
               "(.ci/run starts PostgreSQL and Redis)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"the worker test {why}")
        pytest.skip(f"the worker test {why}")
    return services


@pytest.fixture(scope="module")
def wlab(tmp_path_factory: pytest.TempPathFactory, lab_logs: list) -> Iterator[WorkerLab]:
    services = _services()
    root = tmp_path_factory.mktemp("worker-lab")
    lab = WorkerLab(root, services, per_server={
        "A": {"audit": {"enabled": True, "spread_seconds": 0, "poll_seconds": 1},
              "discovery": {"max_tags_per_request": BUDGET_TAGS, "budget_tags": BUDGET_TAGS}},
    })
    lab.prepare()
    a = lab.a
    assert isinstance(a, WorkerHomeserver)
    lab.per_server["A"].update(store_config(a.directory, on_postgres=True))
    lab.per_server.setdefault("B", {}).update(store_config(lab.b.directory, on_postgres=False))
    lab_logs.append(lab)
    try:
        lab.setup()
        lab.start()
        yield lab
    finally:
        lab.stop()


def _a(lab: WorkerLab) -> WorkerHomeserver:
    assert isinstance(lab.a, WorkerHomeserver)
    return lab.a


def _tag(server_name: str, room_id: str) -> str:
    mac = hmac.new(server_name.encode(), room_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode().rstrip("=")


def _metric(text: str, name: str, labels: str = "") -> float:
    """The sum of ``name``'s samples whose labels contain ``labels`` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if labels in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def _per_process(a: WorkerHomeserver, name: str, labels: str = "") -> dict[str, float]:
    return {p: _metric(a.process_metrics_text(p), name, labels) for p in PROCESSES}


def test_a_tag_recorded_by_the_main_process_is_answered_by_the_worker(wlab: WorkerLab) -> None:
    a = _a(wlab)
    recorded_before = _per_process(a, "servership_tags_recorded_total", 'source="join"')
    alice, bob = a.register(_uid("alice")), wlab.b.register(_uid("bob"))
    room = alice.create_room(preset="public_chat")
    # bob@B's join goes through A's federation worker (make_join, send_join): A and B now share
    # a room, as discovery.require_shared_room asks.
    bob.join(room, via=a.server_name)
    tag = _tag(a.server_name, room)
    body = {"room_participation_tags": [tag]}

    def answered() -> Any:
        status, answer = wlab.federation_request(wlab.b, a, "POST", DISCOVER, body)
        return (status, answer) if status != 200 or answer["recognised_tags"] else None

    status, answer = _eventually(answered, what="A's worker to recognise the tag")
    assert (status, answer) == (200, {"recognised_tags": [tag]})
    # Recorded by the main process only; answered by the worker only.
    recorded = _per_process(a, "servership_tags_recorded_total", 'source="join"')
    assert recorded[MAIN] - recorded_before[MAIN] == 1, recorded
    assert recorded[FEDERATION] == recorded[PERSISTER] == 0, recorded
    answered_by = _per_process(a, "servership_discovery_requests_total", 'outcome="ok"')
    assert answered_by[FEDERATION] >= 1 and answered_by[MAIN] == 0, answered_by
    # Synapse writes its access log in batches: poll.
    _eventually(lambda: re.search(r"Processed request: .* 200 \"POST " + re.escape(DISCOVER),
                                  a.process_log_text(FEDERATION)), what="the worker's access log")
    assert not re.search(re.escape(DISCOVER), a.process_log_text(MAIN))
    assert "servership loaded" in a.process_log_text(FEDERATION)
    assert "servership loaded" in a.process_log_text(PERSISTER)
    # The tag lives in Synapse's own PostgreSQL database, in servership's table: no process
    # shares a file.
    assert _stored_rooms(wlab, a).count(room) == 1
    assert not list(a.directory.glob("servership*.db"))


def _stored_rooms(lab: WorkerLab, a: WorkerHomeserver) -> list[str]:
    conn = lab.services._connect(a.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT room_id FROM servership_participation_tags")
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def test_an_audit_after_a_join_runs_exactly_once(wlab: WorkerLab) -> None:
    """alice@A joins a room of B's: A's first join of it is recorded once and audited once, by
    the main process; no other process of A audits it (log lines and metrics of each)."""
    a = _a(wlab)
    before = _per_process(a, "servership_audits_total")
    carol, alice = wlab.b.register(_uid("carol")), a.register(_uid("alice"))
    room = carol.create_room(preset="public_chat")
    alice.join(room, via=wlab.b.server_name)
    pattern = re.compile(r"servership audit of " + re.escape(room) + r": asking \d+ peer")
    _eventually(lambda: pattern.search(a.process_log_text(MAIN)), what="the audit on main")
    # Give a second run every chance to happen (the queue is polled every second), and the
    # logs time to be flushed.
    time.sleep(5)
    runs = {p: len(pattern.findall(a.process_log_text(p))) for p in PROCESSES}
    assert runs == {MAIN: 1, FEDERATION: 0, PERSISTER: 0}, runs
    # The counter has no room label (and earlier tests' own rooms are audited too): the main
    # process counted it, the others never count any.
    after = _per_process(a, "servership_audits_total")
    assert after[MAIN] - before[MAIN] >= 1, (before, after)
    assert after[FEDERATION] == after[PERSISTER] == 0, after


def test_the_discovery_budget_is_shared_between_processes(wlab: WorkerLab) -> None:
    """B spends A's budget through the main process's federation listener, then asks the worker:
    one budget per homeserver, so the worker refuses what one per process would have allowed."""
    a = _a(wlab)
    alice, bob = a.register(_uid("alice")), wlab.b.register(_uid("bob"))
    room = alice.create_room(preset="public_chat")
    bob.join(room, via=a.server_name)  # shares a room: discovery answers B
    tags = [_tag(a.server_name, f"!budget{i}:{a.server_name}") for i in range(6)]
    body = {"room_participation_tags": tags}
    status, answer = a.request_main(wlab.b, "POST", DISCOVER, body, wlab.ssl_context())
    assert status == 200, answer
    # At most BUDGET_TAGS - 6 tags are left for B, whichever process it asks.
    status, answer = wlab.federation_request(wlab.b, a, "POST", DISCOVER, body)
    assert status == 429 and answer["errcode"] == "M_LIMIT_EXCEEDED", answer
    refused = _per_process(a, "servership_discovery_requests_total",
                           'outcome="M_LIMIT_EXCEEDED"')
    assert refused[FEDERATION] == 1 and refused[MAIN] == 0, refused
    status, answer = a.request_main(wlab.b, "POST", DISCOVER, body, wlab.ssl_context())
    assert status == 429, answer  # and the main process sees the worker's spending too


def test_the_workers_run_no_background_work(wlab: WorkerLab) -> None:
    """The federation worker runs no background work: no start-up backfill, no audit queue, no
    knock purge (their log lines and metrics appear on the main process only)."""
    a = _a(wlab)
    assert "servership: backfilled" in a.process_log_text(MAIN)
    for process in (FEDERATION, PERSISTER):
        log = a.process_log_text(process)
        assert "servership loaded" in log, process
        assert "servership: backfilled" not in log, process
        assert "servership audit of" not in log, process
        assert "servership: first join of" not in log, process


def test_a_worker_asked_to_send_a_knock_refuses_cleanly(wlab: WorkerLab) -> None:
    """The admin knock API is served on every listener (module resources are), but only the
    main process sends federation traffic: the worker answers 503 with where to go, and the
    main process sends it."""
    a = _a(wlab)
    admin = a.register(_uid("admin"), admin=True)
    room = admin.create_room(preset="public_chat")
    body = {"room_id": room, "destination": wlab.b.server_name}
    status, answer = client_request("POST", a.federation_url + ADMIN_KNOCK, body, admin.token,
                                    ssl_context=wlab.ssl_context())
    assert status == 503 and answer["errcode"] == "M_UNKNOWN", answer
    assert "does not send federation traffic" in answer["error"], answer
    assert admin.ok("POST", ADMIN_KNOCK, body) == {"sent": True}
