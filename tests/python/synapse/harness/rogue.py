"""The rogue homeserver: our own federation server that real Synapses talk to, and that does
whatever a test scripts.

It is built on servership itself (event signing and hashes, event and room IDs, canonical JSON,
X-Matrix) and serves the federation API over TLS with the lab's certificate, so a real Synapse
of the lab federates with it as with any homeserver: it fetches its keys from
``/_matrix/key/v2/server``, joins its rooms with ``make_join``/``send_join``, sends it
transactions, and asks it for events, state, missing events and backfill.

What a test can script:

* **rooms and branches.** :meth:`RogueHomeserver.create_room` makes a room whose events live in
  one DAG; a *branch* is an ordered list of those events. Every room starts with the branch
  ``main``. :meth:`RogueRoom.fork` starts another branch from a point of ``main``,
  :meth:`RogueRoom.send` adds events (signed by the rogue, or as given) to a branch, and
  :meth:`RogueRoom.show` decides which branch a server sees: its ``make_join`` template, its
  ``send_join`` state and auth chain, and every ``event``, ``state``, ``state_ids``,
  ``get_missing_events`` and ``backfill`` answer come from that branch only. Joins accepted
  from a server go to the branch it is shown, and are forwarded (``/send``) only to the real
  servers joined on that branch. That is MSC4358's attack: a branch shown to newcomers only.
* **any answer.** ``hooks[name] = fn(request)`` replaces the answer to one endpoint (``keys``,
  ``version``, ``make_join``, ``send_join``, ``make_leave``, ``send_leave``, ``event``,
  ``state``, ``state_ids``, ``get_missing_events``, ``backfill``, ``send``, ``discover``,
  ``invite``); the hook returns ``(status, body)``, or ``None`` for the default answer.
  ``body`` may be ``bytes`` to send exact bytes.
* **what it sends.** :meth:`RogueHomeserver.request` sends any signed request,
  :meth:`RogueHomeserver.send_transaction` any PDUs and EDUs, :meth:`join_remote` joins a room on
  a real server with a join it builds itself (hand-built ``send_join``), and ``origin_name``
  on each picks the spelling of its own name it signs with.

Every request it receives is appended to :attr:`RogueHomeserver.received`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

import servership

from .federation import FederationPeer, signed_request

logger = logging.getLogger("servership.lab.rogue")

Json = dict[str, Any]
Hook = Callable[["RogueRequest"], "tuple[int, Any] | None"]

MAIN = "main"


def now_ms() -> int:
    return int(time.time() * 1000)


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@dataclass
class RogueRequest:
    """One request the rogue homeserver received."""

    method: str
    path: str
    query: dict[str, list[str]]
    origin: str | None
    body: Any
    raw: bytes
    params: dict[str, str] = field(default_factory=dict)
    host: str = ""


class _PeerByName:
    """A :class:`FederationPeer` for a lab server known only by its ``localhost:port`` name."""

    def __init__(self, server_name: str) -> None:
        self._name = server_name

    @property
    def server_name(self) -> str:
        return self._name

    @property
    def federation_url(self) -> str:
        return f"https://{self._name}"

    def federation_signing_key(self) -> servership.SigningKey:  # pragma: no cover - never signs
        raise RuntimeError("a remote peer's key is not ours")


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


class RogueRoom:
    """A room held by the rogue homeserver: one DAG of events, several branches over it."""

    def __init__(self, hs: "RogueHomeserver", room_id: str, version: str, create: Json) -> None:
        self.hs = hs
        self.room_id = room_id
        self.version = version
        self.events: dict[str, Json] = {}
        self.branches: dict[str, list[str]] = {MAIN: []}
        self.views: dict[str, str] = {}
        self._lock = threading.RLock()
        self.create_id = self._insert(create, MAIN)

    # -- the DAG --------------------------------------------------------------------------------

    def _insert(self, pdu: Json, branch: str) -> str:
        event_id = servership.event_id(pdu, self.version)
        with self._lock:
            self.events[event_id] = pdu
            if event_id not in self.branches[branch]:
                self.branches[branch].append(event_id)
        return event_id

    def event(self, event_id: str) -> Json:
        return self.events[event_id]

    def branch_of(self, server_name: str) -> str:
        """The branch ``server_name`` is shown (``main`` unless :meth:`show` said otherwise)."""
        return self.views.get(server_name, MAIN)

    def show(self, server_name: str, branch: str) -> None:
        """From now on, ``server_name`` sees ``branch`` and nothing else of the room."""
        if branch not in self.branches:
            raise KeyError(branch)
        self.views[server_name] = branch

    def fork(self, name: str, at: str | None = None) -> str:
        """A new branch with the events of ``main`` up to and including ``at`` (default: all
        of ``main`` so far)."""
        with self._lock:
            main = self.branches[MAIN]
            upto = len(main) if at is None else main.index(at) + 1
            self.branches[name] = list(main[:upto])
        return name

    def tips(self, branch: str) -> list[str]:
        """The branch's forward extremities: its events no later event of it points at."""
        ids = self.branches[branch]
        pointed = {p for e in ids for p in self.events[e].get("prev_events", [])}
        return [e for e in ids if e not in pointed] or ids[-1:]

    def state(self, branch: str, before: str | None = None) -> dict[tuple[str, str], str]:
        """The branch's state (``(type, state_key) -> event ID``), folded in branch order;
        ``before`` stops just before that event."""
        state: dict[tuple[str, str], str] = {}
        for event_id in self.branches[branch]:
            if event_id == before:
                break
            ev = self.events[event_id]
            if "state_key" in ev:
                state[(ev["type"], ev["state_key"])] = event_id
        return state

    def auth_chain(self, event_ids: Iterable[str]) -> list[str]:
        """Every auth event of these events, recursively (in v12, with the create event)."""
        seen: set[str] = set()
        stack = list(event_ids)
        while stack:
            for a in self.events[stack.pop()].get("auth_events", []):
                if a not in seen and a in self.events:
                    seen.add(a)
                    stack.append(a)
        if self.version == "12":
            seen.add(self.create_id)
        return sorted(seen, key=lambda e: self.events[e].get("depth", 0))

    def joined_servers(self, branch: str) -> set[str]:
        """Servers with a joined member in the branch's state."""
        return {
            server_of(key)
            for (etype, key), eid in self.state(branch).items()
            if etype == "m.room.member"
            and self.events[eid].get("content", {}).get("membership") == "join"
        }

    def auth_events_for(self, branch: str, etype: str, state_key: str | None, sender: str,
                        content: Json) -> list[str]:
        """Auth event selection as the spec's "Auth events selection" section gives it."""
        state = self.state(branch)
        wanted = [("m.room.power_levels", ""), ("m.room.member", sender)]
        if self.version != "12":
            wanted.insert(0, ("m.room.create", ""))
        if etype == "m.room.member" and state_key is not None:
            wanted.append(("m.room.member", state_key))
            if content.get("membership") in ("join", "invite", "knock"):
                wanted.append(("m.room.join_rules", ""))
        out: list[str] = []
        for key in wanted:
            eid = state.get(key)
            if eid is not None and eid not in out:
                out.append(eid)
        return out

    def build(self, etype: str, content: Json, *, sender: str | None = None,
              state_key: str | None = None, branch: str = MAIN,
              prev_events: list[str] | None = None,
              auth_events: list[str] | None = None) -> Json:
        """An unsigned event for ``branch`` (prev events: the branch's tips)."""
        sender = sender or self.hs.user_id("blue")
        prev = prev_events if prev_events is not None else self.tips(branch)
        depth = max((self.events[p].get("depth", 0) for p in prev if p in self.events),
                    default=0) + 1
        ev: Json = {
            "type": etype, "room_id": self.room_id, "sender": sender, "content": content,
            "origin_server_ts": now_ms(), "depth": depth, "prev_events": prev,
            "auth_events": (auth_events if auth_events is not None else
                            self.auth_events_for(branch, etype, state_key, sender, content)),
        }
        if state_key is not None:
            ev["state_key"] = state_key
        return ev

    def send(self, etype: str, content: Json, *, branch: str = MAIN, sender: str | None = None,
             state_key: str | None = None, signed_by: str | None = None,
             forward: bool = True, **overrides: Any) -> str:
        """Build, sign (as the rogue, under ``signed_by`` spelling if given) and add an event to
        ``branch``; forward it to the real servers joined on that branch unless told not to.
        ``overrides`` replace top-level fields before signing."""
        ev = self.build(etype, content, sender=sender, state_key=state_key, branch=branch)
        ev.update(overrides)
        signed = servership.sign_event(ev, signed_by or self.hs.server_name,
                                       self.hs.signing_key, self.version)
        event_id = self._insert(signed, branch)
        if forward:
            self.hs.forward(self, signed, branch, exclude={self.hs.server_name})
        return event_id

    def add(self, pdu: Json, branch: str = MAIN) -> str:
        """Add a PDU as it is (signed by someone else, forged, ...) to ``branch``."""
        return self._insert(pdu, branch)

    def members(self, branch: str = MAIN) -> dict[str, str]:
        """user ID -> membership in the branch's state."""
        return {key: self.events[eid]["content"].get("membership", "")
                for (etype, key), eid in self.state(branch).items() if etype == "m.room.member"}


class RogueHomeserver:
    """A scripted homeserver on ``localhost:<port>``, TLS with the lab's certificate."""

    def __init__(self, label: str, cert: Path, key: Path, ca: Path, port: int) -> None:
        self.label = label
        self.port = port
        self.ca_path = ca
        self._cert, self._key = cert, key
        seed = base64.b64encode(os.urandom(32)).decode().rstrip("=")
        self.signing_key = servership.SigningKey.from_seed("ed25519:rogue", seed)
        self.rooms: dict[str, RogueRoom] = {}
        #: Rooms on other servers this server joined (room ID -> room version).
        self.remote_rooms: dict[str, str] = {}
        self.hooks: dict[str, Hook] = {}
        self.received: list[RogueRequest] = []
        #: PDUs received in ``/send`` for rooms we do not hold.
        self.foreign_pdus: list[Json] = []
        self.edus: list[Json] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._txn = 0
        self._lock = threading.Lock()
        self._connections: set[Any] = set()

    # -- identity (the FederationPeer shape) ------------------------------------------------------

    @property
    def server_name(self) -> str:
        return f"localhost:{self.port}"

    @property
    def federation_url(self) -> str:
        return f"https://localhost:{self.port}"

    def federation_signing_key(self) -> servership.SigningKey:
        return self.signing_key

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def spellings(self) -> list[str]:
        """Other spellings of this server's name that reach it: case and a trailing dot."""
        return [f"LOCALHOST:{self.port}", f"LocalHost:{self.port}", f"localhost.:{self.port}",
                f"LOCALHOST.:{self.port}"]

    def _is_our_spelling(self, name: str) -> bool:
        host, _, port = name.rpartition(":")
        return port == str(self.port) and host.rstrip(".").lower() == "localhost"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        rogue = self

        class Handler(_Handler):
            server_rogue = rogue

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self._cert), str(self._key))
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"rogue-{self.label}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering: the port is closed and every open connection is cut (a server that
        went away; kept-alive connections would otherwise still be served)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    # -- rooms --------------------------------------------------------------------------------

    def create_room(self, version: str = "12", *, creator: str = "blue",
                    join_rule: str = "public", name: str | None = None,
                    create_content: Json | None = None) -> RogueRoom:
        """A room created by ``@creator:rogue`` with the usual initial state on ``main``;
        ``create_content`` adds keys to the create event's content (a marker, a flag)."""
        sender = self.user_id(creator)
        content: Json = {**(create_content or {}), "room_version": version}
        create: Json = {"type": "m.room.create", "state_key": "", "sender": sender,
                        "content": content, "origin_server_ts": now_ms(), "depth": 1,
                        "prev_events": [], "auth_events": []}
        if version in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10"):
            content["creator"] = sender
        if version == "12":
            signed = servership.sign_event(create, self.server_name, self.signing_key, version)
            room_id = servership.room_id_from_create_event(signed)
        else:
            room_id = f"!{base64.urlsafe_b64encode(os.urandom(12)).decode()}:{self.server_name}"
            create["room_id"] = room_id
            signed = servership.sign_event(create, self.server_name, self.signing_key, version)
        room = RogueRoom(self, room_id, version, signed)
        self.rooms[room_id] = room
        room.send("m.room.member", {"membership": "join"}, sender=sender, state_key=sender)
        users = {} if version == "12" else {sender: 100}
        room.send("m.room.power_levels", {
            "users": users, "users_default": 0, "events_default": 0, "state_default": 50,
            "ban": 50, "kick": 50, "redact": 50, "invite": 0,
            "events": {"m.room.name": 50, "m.room.power_levels": 100,
                       "m.room.history_visibility": 100, "m.room.tombstone": 100},
        }, sender=sender, state_key="")
        room.send("m.room.join_rules", {"join_rule": join_rule}, sender=sender, state_key="")
        room.send("m.room.history_visibility", {"history_visibility": "shared"},
                  sender=sender, state_key="")
        if name:
            room.send("m.room.name", {"name": name}, sender=sender, state_key="")
        return room

    # -- outbound -----------------------------------------------------------------------------

    def request(self, destination: FederationPeer | str, method: str, path: str,
                body: Any = None, *, origin_name: str | None = None, raw: bytes | None = None,
                timeout: float = 15.0) -> tuple[int, Any]:
        """A request signed by this server (as ``origin_name`` if given)."""
        peer = _PeerByName(destination) if isinstance(destination, str) else destination
        return signed_request(self, peer, method, path, body, ca_path=self.ca_path, raw=raw,
                              origin_name=origin_name, timeout=timeout)

    def send_transaction(self, destination: FederationPeer | str, pdus: list[Json],
                         edus: list[Json] | None = None, *,
                         origin_name: str | None = None) -> tuple[int, Any]:
        """``PUT /send/{txnId}`` with exactly these PDUs and EDUs."""
        with self._lock:
            self._txn += 1
            txn = f"{now_ms()}-{self._txn}"
        body = {"origin": origin_name or self.server_name, "origin_server_ts": now_ms(),
                "pdus": pdus, "edus": edus or []}
        return self.request(destination, "PUT", f"/_matrix/federation/v1/send/{txn}", body,
                            origin_name=origin_name)

    def forward(self, room: RogueRoom, pdu: Json, branch: str, exclude: set[str]) -> None:
        """Send ``pdu`` to every server joined on ``branch`` that is shown that branch, in the
        background (as a resident server forwards a join it accepted)."""
        targets = [s for s in room.joined_servers(branch)
                   if s not in exclude and s != self.server_name and room.branch_of(s) == branch]

        def send_all() -> None:
            for server in targets:
                try:
                    status, answer = self.send_transaction(server, [pdu])
                    if status != 200:
                        logger.warning("rogue %s: /send to %s: %s %s", self.label, server,
                                       status, answer)
                except OSError as exc:
                    logger.warning("rogue %s: /send to %s failed: %s", self.label, server, exc)

        if targets:
            threading.Thread(target=send_all, daemon=True).start()

    def join_remote(self, via: FederationPeer | str, room_id: str, localpart: str = "rogue",
                    *, origin_name: str | None = None,
                    edit: Callable[[Json], None] | None = None) -> tuple[int, Any]:
        """Join ``room_id`` on ``via`` as ``@localpart:us``: ``make_join``, then a join signed
        here (``edit`` may change it first: a hand-built ``send_join``), then ``send_join``.
        Returns send_join's (status, body)."""
        user = self.user_id(localpart)
        vers = "&".join(f"ver={v}" for v in ("10", "11", "12"))
        status, made = self.request(
            via, "GET", f"/_matrix/federation/v1/make_join/{q(room_id)}/{q(user)}?{vers}",
            origin_name=origin_name)
        if status != 200:
            return status, made
        version = made.get("room_version", "1")
        event = dict(made["event"])
        event["origin_server_ts"] = now_ms()
        if edit is not None:
            edit(event)
        signed = servership.sign_event(event, self.server_name, self.signing_key, version)
        event_id = servership.event_id(signed, version)
        status, answer = self.request(
            via, "PUT", f"/_matrix/federation/v2/send_join/{q(room_id)}/{q(event_id)}", signed,
            origin_name=origin_name)
        if status == 200:
            self.remote_rooms[room_id] = version
        return status, answer

    def invite(self, room: RogueRoom, user_id: str, *, sender: str | None = None,
               branch: str = MAIN) -> tuple[int, Any]:
        """Invite ``user_id`` (on a real server) to ``room``: ``PUT /v2/invite`` with the full
        create PDU in ``invite_room_state`` (MSC4311); the co-signed invite joins ``branch``."""
        sender = sender or self.user_id("blue")
        ev = room.build("m.room.member", {"membership": "invite"}, sender=sender,
                        state_key=user_id, branch=branch)
        signed = servership.sign_event(ev, self.server_name, self.signing_key, room.version)
        event_id = servership.event_id(signed, room.version)
        stripped = [room.event(room.create_id)]
        for (etype, key), eid in room.state(branch).items():
            if etype in ("m.room.join_rules", "m.room.name") or (
                    etype == "m.room.member" and key == sender):
                e = room.event(eid)
                stripped.append({"type": e["type"], "state_key": e["state_key"],
                                 "sender": e["sender"], "content": e["content"]})
        body = {"room_version": room.version, "event": signed, "invite_room_state": stripped}
        status, answer = self.request(
            server_of(user_id), "PUT",
            f"/_matrix/federation/v2/invite/{q(room.room_id)}/{q(event_id)}", body)
        if status == 200 and isinstance(answer, dict) and isinstance(answer.get("event"), dict):
            room.add(answer["event"], branch)
        return status, answer

    def invite_msc4329(self, room: RogueRoom, user_id: str, *, extra_state: list[Json],
                       sender: str | None = None, branch: str = MAIN) -> tuple[int, Any]:
        """Invite ``user_id`` with MSC4329 (``PUT .../org.matrix.msc4329/invite/{roomId}``):
        the room's create event plus ``extra_state`` (full PDUs, forged or not) in ``state``."""
        sender = sender or self.user_id("blue")
        ev = room.build("m.room.member", {"membership": "invite"}, sender=sender,
                        state_key=user_id, branch=branch)
        signed = servership.sign_event(ev, self.server_name, self.signing_key, room.version)
        path, body = servership.build_invite_request(signed, room.event(room.create_id),
                                                     extra_state, [])
        return self.request(server_of(user_id), "PUT", path, raw=body)

    def forge(self, room: RogueRoom, etype: str, content: Json, *, sender: str,
              state_key: str = "", auth_events: list[str] | None = None,
              signature_server: str | None = None) -> Json:
        """A PDU that claims ``sender`` but carries a garbage signature under
        ``signature_server`` (default: the sender's server)."""
        ev = room.build(etype, content, sender=sender, state_key=state_key,
                        auth_events=auth_events)
        ev["hashes"] = {"sha256": servership.content_hash(ev)}
        name = signature_server or server_of(sender)
        ev["signatures"] = {name: {"ed25519:auto": base64.b64encode(os.urandom(64))
                                   .decode().rstrip("=")}}
        return ev

    # -- inbound ------------------------------------------------------------------------------

    def key_response(self, name: str | None = None) -> Json:
        """``/_matrix/key/v2/server``, signed under ``name`` (a spelling of ours)."""
        name = name or self.server_name
        body = {"server_name": name,
                "verify_keys": {self.signing_key.key_id: {"key": self.signing_key.public_key}},
                "old_verify_keys": {}, "valid_until_ts": now_ms() + 24 * 3600 * 1000}
        return servership.sign_json(body, name, self.signing_key)

    def tag_answer(self, body: Any) -> Json:
        """The default ``discover_common_rooms`` answer: the tags of the rooms we hold."""
        ours = set(servership.participation_tags(self.server_name, list(self.rooms)))
        asked = body.get("room_participation_tags", []) if isinstance(body, dict) else []
        return {"recognised_tags": [t for t in asked if isinstance(t, str) and t in ours]}


class _Handler(BaseHTTPRequestHandler):
    server_rogue: RogueHomeserver
    protocol_version = "HTTP/1.1"

    ROUTES: list[tuple[str, str, str]] = [
        ("GET", r"/_matrix/key/v2/server(?:/(?P<key_id>[^/]+))?", "keys"),
        ("GET", r"/_matrix/federation/v1/version", "version"),
        ("GET", r"/_matrix/federation/v1/make_join/(?P<room_id>[^/]+)/(?P<user_id>[^/]+)",
         "make_join"),
        ("PUT", r"/_matrix/federation/v(?P<v>[12])/send_join/(?P<room_id>[^/]+)/"
                r"(?P<event_id>[^/]+)", "send_join"),
        ("GET", r"/_matrix/federation/v1/make_leave/(?P<room_id>[^/]+)/(?P<user_id>[^/]+)",
         "make_leave"),
        ("PUT", r"/_matrix/federation/v(?P<v>[12])/send_leave/(?P<room_id>[^/]+)/"
                r"(?P<event_id>[^/]+)", "send_leave"),
        ("GET", r"/_matrix/federation/v1/event/(?P<event_id>[^/]+)", "event"),
        ("GET", r"/_matrix/federation/v1/state/(?P<room_id>[^/]+)", "state"),
        ("GET", r"/_matrix/federation/v1/state_ids/(?P<room_id>[^/]+)", "state_ids"),
        ("GET", r"/_matrix/federation/v1/event_auth/(?P<room_id>[^/]+)/(?P<event_id>[^/]+)",
         "event_auth"),
        ("POST", r"/_matrix/federation/v1/get_missing_events/(?P<room_id>[^/]+)",
         "get_missing_events"),
        ("GET", r"/_matrix/federation/v1/backfill/(?P<room_id>[^/]+)", "backfill"),
        ("PUT", r"/_matrix/federation/v1/send/(?P<txn>[^/]+)", "send"),
        ("POST", r"/_matrix/federation/v1/(?:org\.matrix\.msc4358/)?discover_common_rooms",
         "discover"),
        ("PUT", r"/_matrix/federation/v2/invite/(?P<room_id>[^/]+)/(?P<event_id>[^/]+)",
         "invite"),
    ]

    def setup(self) -> None:
        super().setup()
        rogue = self.server_rogue
        with rogue._lock:
            rogue._connections.add(self.connection)

    def finish(self) -> None:
        rogue = self.server_rogue
        with rogue._lock:
            rogue._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("rogue %s: " + format, self.server_rogue.label, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _reply(self, status: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        rogue = self.server_rogue
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        origin = None
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("X-Matrix"):
            try:
                origin = servership.parse_x_matrix(auth).origin
            except servership.ServershipError:
                origin = None
        for route_method, pattern, name in self.ROUTES:
            if route_method != method:
                continue
            m = re.fullmatch(pattern, parsed.path)
            if m is None:
                continue
            params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()
                      if v is not None}
            req = RogueRequest(method, parsed.path, urllib.parse.parse_qs(parsed.query),
                               origin, body, raw, params, self.headers.get("Host") or "")
            rogue.received.append(req)
            try:
                hook = rogue.hooks.get(name)
                answer = hook(req) if hook is not None else None
                if answer is None:
                    answer = getattr(_Defaults, name)(rogue, req)
            except Exception as exc:  # noqa: BLE001 - a scripted server answers, never dies
                logger.exception("rogue %s: %s failed", rogue.label, name)
                answer = (500, {"errcode": "M_UNKNOWN", "error": f"rogue: {exc}"})
            self._reply(*answer)
            return
        rogue.received.append(RogueRequest(method, parsed.path,
                                           urllib.parse.parse_qs(parsed.query), origin, body,
                                           raw, {}, self.headers.get("Host") or ""))
        self._reply(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})


def _walk_back(room: RogueRoom, branch: set[str], frontier: list[str], seen: set[str],
               limit: int) -> list[str]:
    """Up to ``limit`` ancestors of ``frontier`` in ``branch`` (breadth first through
    ``prev_events``), none of ``seen``."""
    out: list[str] = []
    while frontier and len(out) < limit:
        nxt = []
        for eid in frontier:
            for p in room.event(eid).get("prev_events", []):
                if p not in seen and p in branch:
                    seen.add(p)
                    out.append(p)
                    nxt.append(p)
        frontier = nxt
    return out[:max(0, limit)]


def _not_found(what: str) -> tuple[int, Json]:
    return 404, {"errcode": "M_NOT_FOUND", "error": f"{what} not found"}


class _Defaults:
    """What the rogue answers when no hook says otherwise: an honest server, per branch."""

    @staticmethod
    def keys(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        host = req.host
        return 200, rogue.key_response(host if host and rogue._is_our_spelling(host) else None)

    @staticmethod
    def version(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        return 200, {"server": {"name": "servership-rogue", "version": "0"}}

    @staticmethod
    def _room(rogue: RogueHomeserver, req: RogueRequest) -> RogueRoom | None:
        return rogue.rooms.get(req.params.get("room_id", ""))

    @staticmethod
    def make_join(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        return _Defaults._make_membership(rogue, req, "join")

    @staticmethod
    def make_leave(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        return _Defaults._make_membership(rogue, req, "leave")

    @staticmethod
    def _make_membership(rogue: RogueHomeserver, req: RogueRequest,
                         membership: str) -> tuple[int, Any]:
        room = _Defaults._room(rogue, req)
        if room is None:
            return _not_found("room")
        user = req.params["user_id"]
        branch = room.branch_of(req.origin or server_of(user))
        template = room.build("m.room.member", {"membership": membership}, sender=user,
                              state_key=user, branch=branch)
        return 200, {"room_version": room.version, "event": template}

    @staticmethod
    def send_join(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        room = _Defaults._room(rogue, req)
        if room is None or not isinstance(req.body, dict):
            return _not_found("room")
        pdu = req.body
        branch = room.branch_of(req.origin or server_of(pdu.get("sender", "")))
        state = room.state(branch)
        event_id = room.add(pdu, branch)
        state_ids = list(state.values())
        body: Json = {
            "origin": rogue.server_name,
            "state": [room.event(e) for e in state_ids],
            "auth_chain": [room.event(e) for e in room.auth_chain(state_ids)],
            "event": pdu,
            "members_omitted": False,
        }
        if req.params.get("v") == "1":
            answer: Any = [200, body]
        else:
            answer = body
        rogue.forward(room, pdu, branch, exclude={req.origin or ""})
        logger.info("rogue %s: %s joined %s on branch %s as %s", rogue.label, req.origin,
                    room.room_id, branch, event_id)
        return 200, answer

    @staticmethod
    def send_leave(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        room = _Defaults._room(rogue, req)
        if room is None or not isinstance(req.body, dict):
            return _not_found("room")
        branch = room.branch_of(req.origin or "")
        room.add(req.body, branch)
        rogue.forward(room, req.body, branch, exclude={req.origin or ""})
        return 200, ([200, {}] if req.params.get("v") == "1" else {})

    @staticmethod
    def _visible(rogue: RogueHomeserver, req: RogueRequest,
                 event_id: str) -> tuple[RogueRoom, str] | None:
        for room in rogue.rooms.values():
            if event_id in room.events:
                branch = room.branch_of(req.origin or "")
                if event_id in room.branches[branch]:
                    return room, branch
        return None

    @staticmethod
    def event(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        found = _Defaults._visible(rogue, req, req.params["event_id"])
        if found is None:
            return _not_found("event")
        room, _ = found
        return 200, {"origin": rogue.server_name, "origin_server_ts": now_ms(),
                     "pdus": [room.event(req.params["event_id"])]}

    @staticmethod
    def _state_at(rogue: RogueHomeserver, req: RogueRequest) -> tuple[RogueRoom, list[str]] | None:
        room = _Defaults._room(rogue, req)
        at = (req.query.get("event_id") or [""])[0]
        if room is None:
            return None
        found = _Defaults._visible(rogue, req, at)
        if found is None or found[0] is not room:
            return None
        state = room.state(found[1], before=at)
        ev = room.event(at)
        if "state_key" in ev:
            # The state *at* the event includes the event itself (spec: after the event).
            state[(ev["type"], ev["state_key"])] = at
        return room, list(state.values())

    @staticmethod
    def state(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        found = _Defaults._state_at(rogue, req)
        if found is None:
            return _not_found("event")
        room, ids = found
        return 200, {"pdus": [room.event(e) for e in ids],
                     "auth_chain": [room.event(e) for e in room.auth_chain(ids)]}

    @staticmethod
    def state_ids(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        found = _Defaults._state_at(rogue, req)
        if found is None:
            return _not_found("event")
        room, ids = found
        return 200, {"pdu_ids": ids, "auth_chain_ids": room.auth_chain(ids)}

    @staticmethod
    def event_auth(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        found = _Defaults._visible(rogue, req, req.params["event_id"])
        if found is None:
            return _not_found("event")
        room, _ = found
        return 200, {"auth_chain": [room.event(e)
                                    for e in room.auth_chain([req.params["event_id"]])]}

    @staticmethod
    def get_missing_events(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        room = _Defaults._room(rogue, req)
        body = req.body if isinstance(req.body, dict) else {}
        if room is None:
            return _not_found("room")
        branch = set(room.branches[room.branch_of(req.origin or "")])
        earliest = set(body.get("earliest_events") or [])
        limit = int(body.get("limit") or 10)
        latest = [e for e in body.get("latest_events") or [] if e in room.events]
        out = _walk_back(room, branch, latest, seen=set(latest) | earliest, limit=limit)
        out.sort(key=lambda e: room.event(e).get("depth", 0))
        return 200, {"events": [room.event(e) for e in out]}

    @staticmethod
    def backfill(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        room = _Defaults._room(rogue, req)
        if room is None:
            return _not_found("room")
        branch = set(room.branches[room.branch_of(req.origin or "")])
        limit = int((req.query.get("limit") or ["10"])[0])
        start = [e for e in req.query.get("v", []) if e in branch]
        out = start + _walk_back(room, branch, start, seen=set(start),
                                 limit=limit - len(start))
        return 200, {"origin": rogue.server_name, "origin_server_ts": now_ms(),
                     "pdus": [room.event(e) for e in out[:limit]]}

    @staticmethod
    def send(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        results: Json = {}
        for pdu in body.get("pdus") or []:
            if not isinstance(pdu, dict):
                continue
            room = rogue.rooms.get(pdu.get("room_id", ""))
            if room is None:
                rogue.foreign_pdus.append(pdu)
                version = rogue.remote_rooms.get(pdu.get("room_id", ""), "10")
                try:
                    results[servership.event_id(pdu, version)] = {}
                except servership.ServershipError:
                    pass
                continue
            branch = room.branch_of(req.origin or "")
            results[room.add(pdu, branch)] = {}
        rogue.edus.extend(e for e in body.get("edus") or [] if isinstance(e, dict))
        return 200, {"pdus": results}

    @staticmethod
    def discover(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        return 200, rogue.tag_answer(req.body)

    @staticmethod
    def invite(rogue: RogueHomeserver, req: RogueRequest) -> tuple[int, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        event = body.get("event")
        if not isinstance(event, dict):
            return 400, {"errcode": "M_BAD_JSON", "error": "no event"}
        version = str(body.get("room_version", "1"))
        return 200, {"event": servership.sign_event(event, rogue.server_name,
                                                    rogue.signing_key, version)}


def start_rogue(lab: Any, name: str) -> RogueHomeserver:
    """A rogue homeserver named ``name`` with ``lab``'s certificate, started (stop it yourself)."""
    from .lab import free_port

    ca, cert, key = lab.certs or (None, None, None)
    if ca is None or cert is None or key is None:
        raise RuntimeError("the lab has no certificates yet (call lab.prepare() first)")
    rogue = RogueHomeserver(name, cert, key, ca, free_port())
    rogue.start()
    return rogue
