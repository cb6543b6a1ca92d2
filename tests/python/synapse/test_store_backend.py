"""``store: {backend: ...}``: the config, reusing Synapse's own PostgreSQL settings, the
start-up warning for SQLite beside a PostgreSQL Synapse, and ``migrate_store``.

The PostgreSQL tests use the server in SERVERSHIP_TEST_POSTGRES (a postgresql:// URL; .ci/run
starts one); without it they are skipped with that reason, and under CI=true they fail instead.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
import servership

from fake_api import FakeModuleApi
from servership.synapse import ServershipModule, _compat, migrate_store
from servership.synapse.config import dsn_from_synapse_args, parse

ConfigError = _compat.ConfigError
BASE = os.environ.get("SERVERSHIP_TEST_POSTGRES", "")


def _require_postgres() -> str:
    if BASE:
        return BASE
    if os.environ.get("CI") == "true":
        pytest.fail("SERVERSHIP_TEST_POSTGRES is unset under CI: the PostgreSQL tests cannot run")
    pytest.skip("NOT RUN: set SERVERSHIP_TEST_POSTGRES to a postgresql:// URL")


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh database on the test server (its URL), dropped afterwards."""
    base = _require_postgres()
    name = f"servership_syn_{uuid.uuid4().hex[:12]}"
    _psql(base, f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    finally:
        _psql(base, f"DROP DATABASE {name} WITH (FORCE)")


def synapse_args(url: str) -> dict[str, Any]:
    """The ``database.args`` a psycopg2 Synapse would have for ``url``, with Synapse's pool keys."""
    u = urlsplit(url)
    args: dict[str, Any] = {"user": unquote(u.username or "postgres"),
                            "database": u.path.lstrip("/"), "host": u.hostname,
                            "port": u.port or 5432, "cp_min": 5, "cp_max": 10}
    if u.password:
        args["password"] = unquote(u.password)
    return args


def api_on_postgres(args: dict[str, Any]) -> FakeModuleApi:
    api = FakeModuleApi()
    api._hs.config.database.databases = [
        SimpleNamespace(config={"name": "psycopg2", "args": args}, databases=["main", "state"])
    ]
    return api


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"store": "postgres"}, "servership.store must be a mapping"),
        ({"store": {"backend": "mysql"}}, "servership.store.backend must be sqlite or postgres"),
        ({"store": {"backend": "postgres", "host": "x"}}, "servership.store.host is not a known"),
        ({"store": {"dsn": "postgresql://x/y"}, "store_path": "/tmp/x.db"},
         "servership.store.dsn is only for store.backend: postgres"),
        ({"store": {"backend": "postgres", "dsn": "/var/lib/x.db"}},
         "servership.store.dsn must be a PostgreSQL connection string"),
        ({"store": {"backend": "postgres", "dsn": 5}}, "servership.store.dsn must be"),
        ({"store": {"backend": "postgres"}, "store_path": "/tmp/x.db"},
         "servership.store_path is for store.backend: sqlite"),
        ({"store": {"backend": "sqlite"}}, "servership.store_path is required"),
    ],
)
def test_bad_store_config_names_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse(raw)


def test_store_config_defaults_to_sqlite(tmp_path: Path) -> None:
    conf = parse({"store_path": str(tmp_path / "s.db")})
    assert (conf.store.backend, conf.store.dsn) == ("sqlite", None)
    pg = parse({"store": {"backend": "postgres", "dsn": " host=db dbname=s "}})
    assert (pg.store.backend, pg.store.dsn, pg.store_path) == ("postgres", "host=db dbname=s", None)
    assert parse({"store": {"backend": "postgres"}}).store.dsn is None


def test_synapse_database_args_become_a_connection_string() -> None:
    dsn = dsn_from_synapse_args({
        "user": "synapse", "password": "p'w\\ x", "database": "synapse", "host": "db.internal",
        "port": 5433, "cp_min": 5, "cp_max": 10, "keepalives_idle": 10, "sslmode": "prefer",
    })
    assert dsn == ("dbname='synapse' host='db.internal' keepalives_idle='10' "
                   "password='p\\'w\\\\ x' port='5433' user='synapse'")
    # The core reads it as a connection string (nothing listens there: a storage error, not a
    # parse error), and never shows the password.
    with pytest.raises(servership.StorageError) as info:
        servership.TagStore(dsn.replace("db.internal", "127.0.0.1").replace("5433", "1"),
                            "b.example")
    assert "p'w" not in str(info.value)
    assert "host='/var/run/postgresql'" in dsn_from_synapse_args({"database": "s", "user": "u"})
    with pytest.raises(ConfigError, match="sslmode=require"):
        dsn_from_synapse_args({"database": "s", "sslmode": "require"})
    with pytest.raises(ConfigError, match="no database name"):
        dsn_from_synapse_args({"user": "u"})


# --- the module on a PostgreSQL Synapse ---------------------------------------------------------


def test_sqlite_store_beside_a_postgres_synapse_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = api_on_postgres({"database": "synapse", "user": "synapse", "password": "secret"})
    with caplog.at_level(logging.WARNING, logger="servership"):
        ServershipModule(parse({"store_path": str(tmp_path / "s.db")}), api)
    warned = [r.getMessage() for r in caplog.records if "runs on PostgreSQL" in r.getMessage()]
    assert len(warned) == 1 and "store: {backend: postgres}" in warned[0], warned
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="servership"):
        ServershipModule(parse({"store_path": str(tmp_path / "t.db")}), FakeModuleApi())
    assert not [r for r in caplog.records if "runs on PostgreSQL" in r.getMessage()]


def test_backend_postgres_needs_postgres_synapse_or_a_dsn() -> None:
    with pytest.raises(ConfigError, match="servership.store.backend: postgres needs Synapse"):
        ServershipModule(parse({"store": {"backend": "postgres"}}), FakeModuleApi())


def test_backend_postgres_reuses_synapse_database(
    pg_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    args = synapse_args(pg_db)
    api = api_on_postgres(args)
    with caplog.at_level(logging.INFO, logger="servership"):
        module = ServershipModule(parse({"store": {"backend": "postgres"}}), api)
    store, responder, knocks = module._stores()
    assert store.backend == "postgres" and knocks.backend == "postgres"
    assert store.record_join("!joined:b.example", 5)
    assert module._open_audit_queue().backend == "postgres"
    # The same tables, seen from outside the module.
    again = servership.TagStore(pg_db, api.server_name)
    assert "!joined:b.example" in again
    assert not [r for r in caplog.records if "runs on PostgreSQL" in r.getMessage()]
    if "password" in args:
        assert all(args["password"] not in r.getMessage() for r in caplog.records)


def test_backend_postgres_with_its_own_dsn(pg_db: str, tmp_path: Path) -> None:
    module = ServershipModule(parse({"store": {"backend": "postgres", "dsn": pg_db}}),
                              FakeModuleApi())
    store, _, _ = module._stores()
    assert store.backend == "postgres"
    assert store.record_join("!own:b.example", 5)


# --- migrate_store ------------------------------------------------------------------------------


def test_migrate_store_copies_once(
    pg_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "servership.db"
    sqlite = servership.TagStore(path, "b.example")
    sqlite.backfill([f"!r{i}:b.example" for i in range(50)], 3)
    sqlite.record_join("!audited:b.example", 4, audit_due_ms=10)
    del sqlite
    assert migrate_store.main(["--from", str(path), "--to", pg_db]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["tags_copied"], first["audits_copied"]) == (51, 1)
    hs_yaml = tmp_path / "homeserver.yaml"
    hs_yaml.write_text(json.dumps({"database": {"name": "psycopg2", "args": synapse_args(pg_db)}}))
    assert migrate_store.main(["--from", str(path), "--synapse-config", str(hs_yaml)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["tags_read"], second["tags_copied"], second["audits_copied"]) == (51, 0, 0)
    assert len(servership.TagStore(pg_db, "b.example")) == 51
    # As a command, with errors on stderr and exit code 1.
    done = subprocess.run(
        [sys.executable, "-m", "servership.synapse.migrate_store", "--from",
         str(tmp_path / "missing.db"), "--to", pg_db],
        capture_output=True, text=True,
    )
    assert done.returncode == 1 and "not an SQLite store file" in done.stderr, done.stderr
    sqlite_hs = tmp_path / "sqlite.yaml"
    sqlite_hs.write_text(json.dumps({"database": {"name": "sqlite3", "args": {}}}))
    assert migrate_store.main(["--from", str(path), "--synapse-config", str(sqlite_hs)]) == 1
    assert "does not run on PostgreSQL" in capsys.readouterr().err
