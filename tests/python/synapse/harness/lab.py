"""Two real Synapse homeservers on loopback, federating over TLS, with the servership module.

Used by the pytest fixtures in ``conftest.py``; also runnable by hand::

    python tests/python/synapse/harness/lab.py /tmp/lab   # start both, print URLs, Ctrl-C stops them

Installs nothing: Synapse must already be importable by ``sys.executable`` (CI installs the
pinned ``matrix-synapse``). Every socket is on 127.0.0.1. Processes are started in the
foreground, tracked by PID, and stopped by that PID only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from concurrent.futures import ThreadPoolExecutor

import yaml  # PyYAML ships with Synapse

try:
    from .federation import http_request
except ImportError:  # run as a script: python tests/python/synapse/harness/lab.py DIR
    from federation import http_request  # type: ignore[no-redef]

START_TIMEOUT = 60.0
HTTP_TIMEOUT = 15.0


class LabError(RuntimeError):
    """The lab could not be set up or a server misbehaved."""


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition",
               interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something true (returned), or raise ``LabError`` after
    ``timeout`` seconds. Synapse flushes log lines and federation traffic in batches: tests poll."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError(f"timed out waiting for {what}")
        time.sleep(interval)


def uid(prefix: str) -> str:
    """A unique name (users, rooms) for one test, so tests sharing a lab never collide."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when the test process dies, so a
    killed or timed-out pytest never leaves a Synapse running."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 60.0) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and one leaf cert for localhost / 127.0.0.1; returns (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt, ext = (directory / n for n in ("server.key", "server.csr", "server.crt",
                                                  "server.ext"))
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
          "-keyout", str(ca_key), "-out", str(ca_crt), "-subj", "/CN=servership-lab-ca",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
          "-out", str(csr), "-subj", "/CN=localhost"])
    ext.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-days", "30", "-out", str(crt), "-extfile", str(ext)])
    return ca_crt, crt, key


_RATE_UNLIMITED = {"per_second": 10000, "burst_count": 100000}


@dataclass
class Homeserver:
    """One Synapse process of the lab."""

    name: str  # "A", "B", "Purple", ...
    directory: Path
    client_port: int
    federation_port: int
    ca_path: Path
    process: subprocess.Popen | None = None
    config: dict = field(default_factory=dict)
    #: A Prometheus listener on this port when set (``enable_metrics``).
    metrics_port: int | None = None

    @property
    def server_name(self) -> str:
        return f"localhost:{self.federation_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def federation_url(self) -> str:
        return f"https://localhost:{self.federation_port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.directory / "homeserver.log"

    # -- config -----------------------------------------------------------------------------

    @property
    def metrics_url(self) -> str:
        if self.metrics_port is None:
            raise LabError(f"{self.name} has no metrics listener")
        return f"http://127.0.0.1:{self.metrics_port}/_synapse/metrics"

    def metrics_text(self) -> str:
        """The Prometheus exposition text of this server."""
        status, body = client_request("GET", self.metrics_url)
        if status != 200:
            raise LabError(f"{self.name} metrics: {status} {body}")
        return body if isinstance(body, str) else json.dumps(body)

    def generate(self, cert: Path, key: Path, module_config: dict,
                 extra: dict | None = None) -> None:
        """``--generate-config``, then the loopback overrides, ``extra`` (top-level Synapse
        settings) and our module."""
        self.directory.mkdir(parents=True, exist_ok=True)
        generated = self.directory / "generated.yaml"
        _run([sys.executable, "-m", "synapse.app.homeserver", "--server-name", self.server_name,
              "--config-path", str(generated), "--generate-config", "--report-stats=no",
              "--data-directory", str(self.directory)], cwd=self.directory, timeout=120)
        conf = yaml.safe_load(generated.read_text())
        conf.update({
            "listeners": [
                {"port": self.client_port, "bind_addresses": ["127.0.0.1"], "type": "http",
                 "tls": False, "x_forwarded": False,
                 "resources": [{"names": ["client"], "compress": False}]},
                {"port": self.federation_port, "bind_addresses": ["127.0.0.1"], "type": "http",
                 "tls": True, "resources": [{"names": ["federation"], "compress": False}]},
            ],
            "public_baseurl": f"{self.client_url}/",
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "federation_verify_certificates": True,
            "federation_custom_ca_list": [str(self.ca_path)],
            "ip_range_whitelist": ["127.0.0.1"],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "enable_registration": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "bcrypt_rounds": 4,
            "rc_message": _RATE_UNLIMITED,
            "rc_registration": _RATE_UNLIMITED,
            "rc_joins_per_room": _RATE_UNLIMITED,
            "rc_login": {"address": _RATE_UNLIMITED, "account": _RATE_UNLIMITED,
                         "failed_attempts": _RATE_UNLIMITED},
            "rc_joins": {"local": _RATE_UNLIMITED, "remote": _RATE_UNLIMITED},
            "rc_invites": {"per_room": _RATE_UNLIMITED, "per_user": _RATE_UNLIMITED,
                           "per_issuer": _RATE_UNLIMITED},
            "rc_room_creation": _RATE_UNLIMITED,
            "rc_federation": {"window_size": 1000, "sleep_limit": 10000, "sleep_delay": 0,
                              "reject_limit": 100000, "concurrent": 1000},
            "modules": [{"module": "servership.synapse.ServershipModule",
                         "config": module_config}],
        })
        if self.metrics_port is not None:
            conf["enable_metrics"] = True
            conf["listeners"].append({"port": self.metrics_port, "type": "metrics",
                                      "bind_addresses": ["127.0.0.1"]})
        conf.update(extra or {})
        self.config = conf
        self.config_path.write_text(yaml.safe_dump(conf, sort_keys=False))

    def signing_key(self) -> Any:
        """This server's signing key (signedjson SigningKey) from its key file."""
        import signedjson.key

        with open(self.config["signing_key_path"]) as f:
            keys = signedjson.key.read_signing_keys(f)
        if not keys:
            raise LabError(f"no signing key in {self.config['signing_key_path']}")
        return keys[0]

    def federation_signing_key(self) -> Any:
        """The same key as a ``servership.SigningKey`` (the :class:`FederationPeer` shape)."""
        import servership

        line = Path(self.config["signing_key_path"]).read_text().splitlines()[0]
        return servership.SigningKey.from_synapse_key_line(line)

    # -- process ------------------------------------------------------------------------------

    def start(self) -> None:
        for port in (self.client_port, self.federation_port):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    raise LabError(f"port {port} is taken; refusing to start {self.name}")
        env = dict(os.environ)
        # The servers import servership from the interpreter's site-packages (the wheel).
        env.pop("PYTHONPATH", None)
        out = open(self.directory / "stdout.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.directory, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        out.close()
        (self.directory / "run.pid").write_text(str(self.process.pid))

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise LabError(f"{self.name} exited with {self.process.returncode}; "
                               f"see {self.directory / 'stdout.log'}\n{self.tail()}")
            try:
                with _opener().open(f"{self.client_url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise LabError(f"{self.name} not healthy after {timeout}s\n{self.tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM our own PID, then SIGKILL that PID if it does not exit."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self) -> float:
        """Stop this server (by PID) and start it again on the same ports and files; returns
        the seconds until it was healthy again."""
        t0 = time.monotonic()
        self.stop()
        self.start()
        self.wait_healthy()
        return time.monotonic() - t0

    @property
    def module_config(self) -> dict:
        """The servership ``config:`` block this server runs with."""
        return self.config["modules"][0]["config"]

    def reconfigure(self, **changes: Any) -> float:
        """Change top-level keys of the module's config, rewrite ``homeserver.yaml`` and
        restart; returns the restart's seconds."""
        self.module_config.update(changes)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.restart()

    def tail(self, lines: int = 40) -> str:
        text = ""
        for p in (self.directory / "stdout.log", self.log_path):
            if p.exists():
                text += f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
        return text

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- client API -----------------------------------------------------------------------------

    def register(self, username: str, password: str = "lab-password", admin: bool = False) -> "User":
        """Register through the shared-secret admin API; returns a logged-in user."""
        secret = self.config["registration_shared_secret"]
        nonce = client_request("GET", f"{self.client_url}/_synapse/admin/v1/register")[1]["nonce"]
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), username.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        status, body = client_request(
            "POST", f"{self.client_url}/_synapse/admin/v1/register",
            {"nonce": nonce, "username": username, "password": password, "admin": admin,
             "mac": mac.hexdigest()})
        if status != 200:
            raise LabError(f"register {username} on {self.name}: {status} {body}")
        return User(self, body["user_id"], body["access_token"])


def _opener() -> urllib.request.OpenerDirector:
    # No proxies, ever: all lab traffic is loopback.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def client_request(method: str, url: str, body: Any = None, token: str | None = None,
                   headers: dict | None = None, ssl_context: ssl.SSLContext | None = None,
                   raw: bytes | None = None) -> tuple[int, Any]:
    """One HTTP request; returns (status, parsed JSON or text). Never raises on HTTP errors."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    return http_request(method, url, raw=data, headers=all_headers, ssl_context=ssl_context,
                        timeout=HTTP_TIMEOUT)


@dataclass
class User:
    """A user on one lab server, with helpers for the client-server API."""

    server: Homeserver
    user_id: str
    token: str

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return client_request(method, self.server.client_url + path, body, self.token)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        if status != 200:
            raise LabError(f"{self.user_id} {method} {path}: {status} {answer}")
        return answer

    def create_room(self, **body: Any) -> str:
        return self.ok("POST", "/_matrix/client/v3/createRoom", body or {"preset": "private_chat"})["room_id"]

    def invite(self, room_id: str, user_id: str) -> None:
        self.ok("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/invite", {"user_id": user_id})

    def join(self, room_id: str, via: str | None = None) -> None:
        path = f"/_matrix/client/v3/join/{q(room_id)}"
        if via:
            path += f"?server_name={q(via)}"
        self.ok("POST", path, {})

    def sync(self, since: str | None = None, timeout_ms: int = 0) -> dict:
        path = f"/_matrix/client/v3/sync?timeout={timeout_ms}"
        if since:
            path += f"&since={q(since)}"
        return self.ok("GET", path)

    def wait_for(self, predicate: Any, timeout: float = 15.0, what: str = "condition") -> dict:
        """Sync (initial, then incremental long-polls) until ``predicate(sync_body)`` is true
        for one response. Incremental, because Synapse caches identical initial syncs."""
        deadline = time.monotonic() + timeout
        last = self.sync()
        while not predicate(last):
            if time.monotonic() > deadline:
                raise LabError(f"{self.user_id}: timed out waiting for {what}; last sync {last}")
            last = self.sync(since=last.get("next_batch"), timeout_ms=500)
        return last


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Lab:
    """Real homeservers (by default two, A and B) that trust the same private CA.

    ``per_server`` adds module settings per server name, ``synapse_config`` top-level Synapse
    settings per server name, and servers named in ``metrics`` get a Prometheus listener.
    """

    def __init__(self, root: Path, module_config: dict | None = None,
                 per_server: dict[str, dict] | None = None,
                 names: tuple[str, ...] = ("A", "B"),
                 synapse_config: dict[str, dict] | None = None,
                 metrics: tuple[str, ...] = ()) -> None:
        self.root = root
        self.module_config = module_config or {}
        self.per_server = per_server or {}
        self.names = names
        self.synapse_config = synapse_config or {}
        self.metrics = metrics
        self.servers: dict[str, Homeserver] = {}
        self.timings: dict[str, float] = {}
        self.certs: tuple[Path, Path, Path] | None = None

    def _module_config(self, name: str, hs: Homeserver) -> dict:
        conf = {"store_path": str(hs.directory / "servership.db")}
        conf.update(self.module_config)
        conf.update(self.per_server.get(name, {}))
        return conf

    def prepare(self) -> None:
        """Make the CA and certificate and pick every server's ports (so names are known
        before the configs are written)."""
        if self.certs is not None:
            return
        t0 = time.monotonic()
        ca, cert, key = make_certs(self.root / "certs")
        self.certs = (ca, cert, key)
        self.timings["certs"] = time.monotonic() - t0
        for name in self.names:
            self.servers[name] = Homeserver(
                name, self.root / f"hs{name}", free_port(), free_port(), ca,
                metrics_port=free_port() if name in self.metrics else None)

    def setup(self) -> None:
        self.prepare()
        assert self.certs is not None
        ca, cert, key = self.certs
        t1 = time.monotonic()
        # Two at a time (the machine has two cores): each is a Python start-up importing Synapse.
        with ThreadPoolExecutor(max_workers=2) as pool:
            for done in [pool.submit(hs.generate, cert, key, self._module_config(name, hs),
                                     self.synapse_config.get(name))
                         for name, hs in self.servers.items()]:
                done.result()
        self.timings["generate"] = time.monotonic() - t1

    def start(self) -> None:
        t0 = time.monotonic()
        for hs in self.servers.values():
            hs.start()
        for hs in self.servers.values():
            hs.wait_healthy()
        self.timings["start"] = time.monotonic() - t0

    def stop(self) -> None:
        for hs in self.servers.values():
            hs.stop()

    def __getitem__(self, name: str) -> Homeserver:
        return self.servers[name]

    @property
    def a(self) -> Homeserver:
        return self.servers["A"]

    @property
    def b(self) -> Homeserver:
        return self.servers["B"]

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.a.ca_path))
        return ctx

    def federation_request(self, origin: Homeserver | None, destination: Homeserver,
                           method: str, path: str, body: Any = None,
                           raw: bytes | None = None) -> tuple[int, Any]:
        """A server-server request to ``destination``, signed with X-Matrix as ``origin``
        (unsigned if ``origin`` is None). ``raw`` sends exact bytes (signed as the JSON they
        parse to, as the spec signs the parsed content)."""
        headers = {}
        if origin is not None:
            headers["Authorization"] = x_matrix_header(
                origin.signing_key(), origin.server_name, destination.server_name, method, path,
                body if raw is None else json.loads(raw))
        return client_request(method, destination.federation_url + path, body, headers=headers,
                              ssl_context=self.ssl_context(), raw=raw)


def x_matrix_header(signing_key: Any, origin: str, destination: str, method: str, uri: str,
                    content: Any) -> str:
    """The ``Authorization: X-Matrix ...`` header for a request (our own signing, per spec)."""
    import signedjson.sign

    request: dict = {"method": method, "uri": uri, "origin": origin, "destination": destination}
    if content is not None:
        request["content"] = content
    signed = signedjson.sign.sign_json(request, origin, signing_key)
    key_id = f"{signing_key.alg}:{signing_key.version}"
    sig = signed["signatures"][origin][key_id]
    return (f'X-Matrix origin="{origin}",destination="{destination}",'
            f'key="{key_id}",sig="{sig}"')


def unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


if __name__ == "__main__":  # pragma: no cover - manual use
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/servership-lab")
    lab = Lab(root)
    lab.setup()
    lab.start()
    print(f"A: {lab.a.server_name} client {lab.a.client_url}")
    print(f"B: {lab.b.server_name} client {lab.b.client_url}")
    print(f"timings: {lab.timings}")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        lab.stop()
