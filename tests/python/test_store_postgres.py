"""Every store on PostgreSQL through the Python bindings, and copying an SQLite store into it.

The database server comes from SERVERSHIP_TEST_POSTGRES (a postgresql:// URL; .ci/run starts
one). Without it these tests are skipped with that reason, and under CI=true they fail instead.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

import servership

BASE = os.environ.get("SERVERSHIP_TEST_POSTGRES", "")


def _require_postgres() -> str:
    if BASE:
        return BASE
    if os.environ.get("CI") == "true":
        pytest.fail("SERVERSHIP_TEST_POSTGRES is unset under CI: the PostgreSQL tests cannot run")
    pytest.skip("NOT RUN: set SERVERSHIP_TEST_POSTGRES to a postgresql:// URL")


def _psql(url: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture
def dsn() -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    base = _require_postgres()
    name = f"servership_py_{uuid.uuid4().hex[:12]}"
    _psql(base, f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        _psql(base, f"DROP DATABASE {name} WITH (FORCE)")


def test_tag_store_on_postgres_is_shared_and_permanent(dsn: str) -> None:
    store = servership.TagStore(dsn, "py.example")
    assert store.backend == "postgres"
    assert store.path.startswith("postgresql://")
    assert store.record_join("!a:py.example", 1000)
    assert not store.record_join("!a:py.example", 2000)
    other = servership.TagStore(dsn, "py.example")
    assert other.record_join("!b'); DROP TABLE servership_participation_tags; --:x", 5)
    assert "!b'); DROP TABLE servership_participation_tags; --:x" in store
    assert len(store) == 2
    assert store.rooms() == [
        ("!a:py.example", 1000),
        ("!b'); DROP TABLE servership_participation_tags; --:x", 5),
    ]
    tags = servership.participation_tags("py.example", ["!a:py.example", "!nope:x"])
    assert store.recognise(tags) == [True, False]
    with pytest.raises(servership.InvalidParamError, match="belongs to server"):
        servership.TagStore(dsn, "other.example")
    responder = servership.Responder(store, shared_budget=True, budget_tags=1000)
    assert responder is not None


def test_knocks_and_audits_on_postgres(dsn: str) -> None:
    knocks = servership.KnockStore(dsn, 3_600_000)
    assert knocks.backend == "postgres"
    assert knocks.record("!r:x", "k.example", 5)["times"] == 1
    assert knocks.record("!r:x", "k.example", 6)["times"] == 2
    assert len(knocks) == 1
    with pytest.raises(servership.InvalidParamError):
        knocks.record("!r:x", "nul\0.example", 7)
    queue = servership.AuditQueue(dsn)
    assert queue.backend == "postgres"
    assert queue.enqueue("!r:x", 10, 1)
    assert queue.due(10, 10) == ["!r:x"]
    assert queue.finish("!r:x", "consistent", 11)
    assert queue.outcome("!r:x") == ("consistent", 11)


def test_copy_store_to_postgres_is_idempotent(dsn: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "servership.sqlite"
    sqlite = servership.TagStore(path, "py.example")
    assert sqlite.backend == "sqlite"
    sqlite.backfill([f"!r{i}:x" for i in range(300)], 7)
    sqlite.record_join("!queued:x", 8, audit_due_ms=99)
    servership.KnockStore(path, 3_600_000).record("!r1:x", "k.example", 1)
    first = servership.copy_store_to_postgres(path, dsn)
    assert first == {
        "tags_read": 301,
        "tags_copied": 301,
        "audits_read": 1,
        "audits_copied": 1,
        "knocks_read": 1,
        "knocks_copied": 1,
    }
    again = servership.copy_store_to_postgres(str(path), dsn)
    assert again["tags_copied"] == again["audits_copied"] == again["knocks_copied"] == 0
    pg = servership.TagStore(dsn, "py.example")
    assert len(pg) == 301
    assert pg.rooms()[-1] == ("!queued:x", 8)
    assert servership.AuditQueue(dsn).pending() == [("!queued:x", 99)]
    with pytest.raises(servership.InvalidParamError):
        servership.copy_store_to_postgres(dsn, dsn)
    with pytest.raises(servership.InvalidParamError):
        servership.copy_store_to_postgres(path, str(tmp_path / "not-a-dsn.sqlite"))


def test_a_dead_postgres_is_a_storage_error_without_the_password() -> None:
    # Nothing listens on port 1; no server needed.
    with pytest.raises(servership.StorageError) as info:
        servership.TagStore("postgresql://u:hunter2@127.0.0.1:1/db", "py.example")
    assert "hunter2" not in str(info.value)
    with pytest.raises(servership.InvalidParamError):
        servership.KnockStore("postgresql://h:notaport/db", 1000)
