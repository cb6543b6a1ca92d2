"""One lab homeserver as a worker deployment: Synapse on PostgreSQL with Redis, the main process,
a federation ``generic_worker`` and an event persister (Synapse's ``docs/workers.md``).

- The server's name is ``localhost:<the federation worker's TLS port>``, so every other server's
  federation requests reach the worker; the main process has no listener on that port.
- The main process serves the client API, replication, and a second federation listener of its
  own (``main_federation_url``) that only the tests use, to ask the main process directly.
- The event persister writes the ``events`` stream; the main process keeps the federation
  sender and the background tasks (Synapse's defaults).
- Every process has a Prometheus listener (``metrics_text(process)``) and its own log file.

PostgreSQL and Redis are not started here: ``Services.from_env`` reads where they are from
``SERVERSHIP_TEST_POSTGRES`` (a ``postgresql://user@host:port/db`` URL of a role that may
create databases) and ``SERVERSHIP_TEST_REDIS`` (``host:port``); ``.ci/run`` starts both on
loopback. Each deployment gets a database of its own, dropped by ``drop_database``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .lab import (
    START_TIMEOUT,
    Homeserver,
    Lab,
    LabError,
    _die_with_parent,
    client_request,
    free_port,
    x_matrix_header,
)

#: The processes of a deployment, by the name the tests use.
MAIN, FEDERATION, PERSISTER = "main", "federation1", "persister1"


@dataclass(frozen=True)
class Services:
    """Where the PostgreSQL server and the Redis server are."""

    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str | None
    redis_host: str
    redis_port: int

    @classmethod
    def from_env(cls) -> "Services | None":
        pg, redis = os.environ.get("SERVERSHIP_TEST_POSTGRES"), os.environ.get(
            "SERVERSHIP_TEST_REDIS")
        if not pg or not redis:
            return None
        url = urllib.parse.urlsplit(pg)
        host, _, port = redis.rpartition(":")
        if url.scheme not in ("postgresql", "postgres") or not url.hostname or not host:
            raise LabError("SERVERSHIP_TEST_POSTGRES must be postgresql://user@host:port/db and "
                           "SERVERSHIP_TEST_REDIS host:port")
        return cls(url.hostname, url.port or 5432, url.username or "postgres", url.password,
                   host, int(port))

    def _connect(self, database: str = "postgres") -> Any:
        import psycopg2

        conn = psycopg2.connect(host=self.pg_host, port=self.pg_port, user=self.pg_user,
                                password=self.pg_password, dbname=database)
        conn.autocommit = True
        return conn

    def create_database(self) -> str:
        """A new, empty database as Synapse wants it (UTF-8, C collation)."""
        name = f"synapse_lab_{uuid.uuid4().hex[:12]}"
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C' "
                            "LC_CTYPE 'C' TEMPLATE template0")
        finally:
            conn.close()
        return name

    def drop_database(self, name: str) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            conn.close()


@dataclass
class WorkerHomeserver(Homeserver):
    """A lab homeserver run as three Synapse processes (see the module docstring)."""

    services: Services | None = None
    database: str | None = None
    main_federation_port: int = field(default_factory=free_port)
    main_replication_port: int = field(default_factory=free_port)
    persister_replication_port: int = field(default_factory=free_port)
    process_metrics_ports: dict[str, int] = field(
        default_factory=lambda: {p: free_port() for p in (MAIN, FEDERATION, PERSISTER)})
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def main_federation_url(self) -> str:
        return f"https://localhost:{self.main_federation_port}"

    def process_log_path(self, process: str) -> Path:
        return self.log_path if process == MAIN else self.directory / f"{process}.log"

    def process_log_text(self, process: str) -> str:
        path = self.process_log_path(process)
        return path.read_text(errors="replace") if path.exists() else ""

    def process_metrics_text(self, process: str) -> str:
        url = f"http://127.0.0.1:{self.process_metrics_ports[process]}/_synapse/metrics"
        status, body = client_request("GET", url)
        if status != 200:
            raise LabError(f"{self.name}/{process} metrics: {status} {body}")
        return str(body)

    # -- config -----------------------------------------------------------------------------

    def generate(self, cert: Path, key: Path, module_config: dict,
                 extra: dict | None = None) -> None:
        if self.services is None:
            raise LabError("a worker deployment needs PostgreSQL and Redis (Services)")
        super().generate(cert, key, module_config, extra)
        self.database = self.services.create_database()
        conf = self.config
        s = self.services
        conf["database"] = {"name": "psycopg2", "args": {
            "host": s.pg_host, "port": s.pg_port, "user": s.pg_user, "password": s.pg_password,
            "dbname": self.database, "cp_min": 1, "cp_max": 5}}
        conf["redis"] = {"enabled": True, "host": s.redis_host, "port": s.redis_port}
        conf["instance_map"] = {
            "main": {"host": "127.0.0.1", "port": self.main_replication_port},
            PERSISTER: {"host": "127.0.0.1", "port": self.persister_replication_port},
        }
        conf["stream_writers"] = {"events": PERSISTER}
        conf["enable_metrics"] = True
        conf["listeners"] = [
            {"port": self.client_port, "bind_addresses": ["127.0.0.1"], "type": "http",
             "tls": False, "x_forwarded": False,
             "resources": [{"names": ["client"], "compress": False}]},
            {"port": self.main_replication_port, "bind_addresses": ["127.0.0.1"],
             "type": "http", "tls": False, "resources": [{"names": ["replication"]}]},
            {"port": self.main_federation_port, "bind_addresses": ["127.0.0.1"], "type": "http",
             "tls": True, "resources": [{"names": ["federation"], "compress": False}]},
            {"port": self.process_metrics_ports[MAIN], "type": "metrics",
             "bind_addresses": ["127.0.0.1"]},
        ]
        self.config_path.write_text(yaml.safe_dump(conf, sort_keys=False))
        base_log = yaml.safe_load(Path(conf["log_config"]).read_text())
        workers = {
            FEDERATION: [{"port": self.federation_port, "bind_addresses": ["127.0.0.1"],
                          "type": "http", "tls": True,
                          "resources": [{"names": ["federation"], "compress": False}]}],
            PERSISTER: [{"port": self.persister_replication_port,
                         "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                         "resources": [{"names": ["replication"]}]}],
        }
        for name, listeners in workers.items():
            log = dict(base_log)
            log["handlers"] = {k: dict(v) for k, v in base_log["handlers"].items()}
            for handler in log["handlers"].values():
                if "filename" in handler:
                    handler["filename"] = str(self.process_log_path(name))
            log_path = self.directory / f"{name}.log.config"
            log_path.write_text(yaml.safe_dump(log, sort_keys=False))
            listeners = listeners + [{"port": self.process_metrics_ports[name],
                                      "type": "metrics", "bind_addresses": ["127.0.0.1"]}]
            (self.directory / f"{name}.yaml").write_text(yaml.safe_dump({
                "worker_app": "synapse.app.generic_worker",
                "worker_name": name,
                "worker_listeners": listeners,
                "worker_log_config": str(log_path),
            }, sort_keys=False))

    # -- processes --------------------------------------------------------------------------

    def _spawn(self, argv: list[str], out_name: str) -> subprocess.Popen:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        out = open(self.directory / out_name, "ab")
        try:
            return subprocess.Popen(argv, cwd=self.directory, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent)
        finally:
            out.close()

    def start(self) -> None:
        ports = [self.client_port, self.federation_port, self.main_federation_port,
                 self.main_replication_port, self.persister_replication_port,
                 *self.process_metrics_ports.values()]
        import socket

        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    raise LabError(f"port {port} is taken; refusing to start {self.name}")
        self.process = self._spawn(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            "stdout.log")
        (self.directory / "run.pid").write_text(str(self.process.pid))
        # The workers need the main process's schema: wait for it before starting them.
        super().wait_healthy()
        for name in (PERSISTER, FEDERATION):
            self.workers[name] = self._spawn(
                [sys.executable, "-m", "synapse.app.generic_worker", "-c", str(self.config_path),
                 "-c", str(self.directory / f"{name}.yaml")], f"{name}.stdout.log")
            (self.directory / f"{name}.pid").write_text(str(self.workers[name].pid))

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        super().wait_healthy(timeout)
        import ssl

        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        urls = {FEDERATION: f"{self.federation_url}/health",
                PERSISTER: f"http://127.0.0.1:{self.persister_replication_port}/health"}
        deadline = time.monotonic() + timeout
        for name, url in urls.items():
            while True:
                proc = self.workers.get(name)
                if proc is None or proc.poll() is not None:
                    raise LabError(f"{self.name}/{name} is not running\n{self.tail()}")
                try:
                    with opener.open(url, timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise LabError(f"{self.name}/{name} not healthy after {timeout}s\n"
                                   f"{self.tail()}")
                time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each of our own PIDs (workers first), SIGKILL any that does not exit."""
        for proc in list(self.workers.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in list(self.workers.values()):
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        super().stop(timeout)

    def tail(self, lines: int = 40) -> str:
        text = super().tail(lines)
        for name in (FEDERATION, PERSISTER):
            for p in (self.directory / f"{name}.stdout.log", self.process_log_path(name)):
                if p.exists():
                    text += f"\n--- {p}\n" + "\n".join(
                        p.read_text(errors="replace").splitlines()[-lines:])
        return text

    def request_main(self, origin: Homeserver, method: str, path: str, body: Any,
                     ssl_context: Any) -> tuple[int, Any]:
        """A server-server request signed as ``origin``, sent to the main process's own
        federation listener (not the worker the server's name points at)."""
        headers = {"Authorization": x_matrix_header(origin.signing_key(), origin.server_name,
                                                    self.server_name, method, path, body)}
        return client_request(method, self.main_federation_url + path, body, headers=headers,
                              ssl_context=ssl_context)


class WorkerLab(Lab):
    """A :class:`Lab` whose server ``A`` is a :class:`WorkerHomeserver` (the others are the
    usual single-process SQLite servers)."""

    def __init__(self, root: Path, services: Services, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.services = services

    def prepare(self) -> None:
        if self.certs is not None:
            return
        super().prepare()
        plain = self.servers["A"]
        self.servers["A"] = WorkerHomeserver(plain.name, plain.directory, plain.client_port,
                                             plain.federation_port, plain.ca_path,
                                             services=self.services)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            a = self.servers.get("A")
            if isinstance(a, WorkerHomeserver) and a.database:
                self.services.drop_database(a.database)
