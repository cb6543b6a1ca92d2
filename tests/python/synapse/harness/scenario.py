"""MSC4358's seed scenario, for real: a rogue homeserver shows a newcomer a branch of its room
without the members who are really there.

Cast (colours as in the seed):

* **Blue**: the rogue homeserver. It creates the rooms and controls who sees what.
* **Green, Yellow**: real Synapses with servership. Their users joined Blue's rooms and their
  participation tags are recorded.
* **Gray**: a real Synapse whose user joined Blue's first room and really left before Purple came.
* **White**: a real Synapse that was never in Blue's rooms.
* **Black**: a second rogue homeserver that shares a room with Purple and then goes away: it does
  not answer.
* **Purple**: a real Synapse with servership and audits on. It shares a lobby with Green,
  Yellow, Gray, White and Black, so it knows them, and then joins Blue's rooms through Blue.

Blue's rooms:

* ``hidden``: Gray joins and leaves and is invited back, then Green and Yellow join. Purple is
  shown the branch that forks before Green's join: Gray's history is there, Green and Yellow
  are not.
* ``removed``: Green and Yellow join. Purple is shown a branch where Blue kicked Green and banned
  Yellow; neither Green nor Yellow ever hears of it.

Purple's audit runs by itself after each first join. Used by the tests
(``test_seed_scenario.py``) and by ``./demo.sh --synapse``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import servership

from .federation import signed_request
from .lab import Homeserver, Lab, LabError, User, free_port
from .rogue import RogueHomeserver, RogueRoom

DISCOVER = "/_matrix/federation/v1/org.matrix.msc4358/discover_common_rooms"
AUDIT_API = "/_synapse/client/servership/v1/audit"

REAL = ("Purple", "Green", "Yellow", "Gray", "White")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class SeedScenario:
    """The running scenario: servers, users, rooms. :meth:`stop` stops everything it started."""

    root: Path
    lab: Lab = field(init=False)
    blue: RogueHomeserver = field(init=False)
    black: RogueHomeserver = field(init=False)
    users: dict[str, User] = field(default_factory=dict)
    lobby: str = ""
    hidden: RogueRoom | None = None
    removed: RogueRoom | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Homeserver:
        return self.lab[name]

    @property
    def purple(self) -> Homeserver:
        return self.lab["Purple"]

    @property
    def admin(self) -> User:
        return self.users["admin"]

    # -- the servers -------------------------------------------------------------------------

    def start(self) -> None:
        t0 = time.monotonic()
        quiet = {"audit": {"enabled": False}}
        self.lab = Lab(
            self.root,
            names=REAL,
            per_server={
                "Purple": {"audit": {
                    "enabled": True, "spread_seconds": 0, "poll_seconds": 1, "max_peers": 10,
                    "request_timeout_seconds": 5, "notify_admin": "@admin:PURPLE",
                }},
                **{name: quiet for name in REAL if name != "Purple"},
            },
            synapse_config={"Purple": {"server_notices": {
                "system_mxid_localpart": "notices", "system_mxid_display_name": "Server Notices",
                "room_name": "Server Notices"}}},
            metrics=("Purple",),
        )
        self.lab.prepare()
        purple_name = self.lab["Purple"].server_name
        self.lab.per_server["Purple"]["audit"]["notify_admin"] = f"@admin:{purple_name}"
        self.lab.setup()
        ca, cert, key = self.lab.certs or (None, None, None)
        assert ca is not None and cert is not None and key is not None
        self.blue = RogueHomeserver("Blue", cert, key, ca, free_port())
        self.black = RogueHomeserver("Black", cert, key, ca, free_port())
        self.blue.start()
        self.black.start()
        self.lab.start()
        self.timings["servers"] = time.monotonic() - t0

    def stop(self) -> None:
        for rogue in ("blue", "black"):
            if hasattr(self, rogue):
                getattr(self, rogue).stop()
        if hasattr(self, "lab"):
            self.lab.stop()

    # -- the story ---------------------------------------------------------------------------

    def register_users(self) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.users["admin"] = self.purple.register("admin", admin=True)
        self.users["purple"] = self.purple.register(f"purple{suffix}")
        for name in ("Green", "Yellow", "Gray", "White"):
            self.users[name.lower()] = self.lab[name].register(f"{name.lower()}{suffix}")

    def open_lobby(self) -> None:
        """Purple's public lobby, where Purple meets everyone it will later ask."""
        purple = self.users["purple"]
        self.lobby = purple.create_room(preset="public_chat", name="lobby")
        for name in ("green", "yellow", "gray", "white"):
            self.users[name].join(self.lobby, via=self.purple.server_name)
        status, answer = self.black.join_remote(self.purple, self.lobby, "black")
        if status != 200:
            raise LabError(f"Black could not join the lobby: {status} {answer}")
        wait_until(lambda: len(self.lobby_servers()) == 6, 30, "everyone in the lobby")

    def lobby_servers(self) -> set[str]:
        state = self.users["purple"].ok(
            "GET", f"/_matrix/client/v3/rooms/{self.lobby}/joined_members")["joined"]
        return {u.split(":", 1)[1] for u in state}

    def recognises(self, peer: Homeserver, room_id: str) -> bool:
        """Does ``peer`` hold its tag for ``room_id``? Asked over federation as Purple, which
        shares the lobby with every real server (so ``require_shared_room`` lets it ask)."""
        tag = servership.participation_tag(peer.server_name, room_id)
        status, answer = signed_request(self.purple, peer, "POST", DISCOVER,
                                        {"room_participation_tags": [tag]},
                                        ca_path=self.purple.ca_path)
        if status != 200:
            raise LabError(f"{peer.name} refused Purple's question: {status} {answer}")
        return tag in answer.get("recognised_tags", [])

    def build_hidden_room(self) -> RogueRoom:
        """Blue's room where Purple will be shown a branch without Green and Yellow."""
        room = self.blue.create_room("12", name="hidden")
        gray = self.users["gray"]
        gray.join(room.room_id, via=self.blue.server_name)
        gray.ok("POST", f"/_matrix/client/v3/rooms/{room.room_id}/leave", {})
        wait_until(lambda: room.members().get(gray.user_id) == "leave", 20, "Gray's leave")
        # Blue invites Gray back (Gray does not answer): Gray's current membership is now an
        # invite, yet Gray really was in the room. Only the history explains Gray.
        status, answer = self.blue.invite(room, gray.user_id)
        if status != 200:
            raise LabError(f"Blue could not re-invite Gray: {status} {answer}")
        gray_invite = room.state("main")[("m.room.member", gray.user_id)]
        for name in ("green", "yellow"):
            self.users[name].join(room.room_id, via=self.blue.server_name)
        for name in ("Green", "Yellow", "Gray"):
            wait_until(lambda n=name: self.recognises(self.lab[n], room.room_id), 20,
                       f"{name}'s tag for the hidden room")
        # The branch shown to newcomers forks right after Gray's re-invite.
        room.fork("newcomers", at=gray_invite)
        room.show(self.purple.server_name, "newcomers")
        self.hidden = room
        return room

    def build_removed_room(self) -> RogueRoom:
        """Blue's room where Purple is shown Green kicked and Yellow banned by Blue."""
        room = self.blue.create_room("12", name="removed")
        for name in ("green", "yellow"):
            self.users[name].join(room.room_id, via=self.blue.server_name)
        for name in ("Green", "Yellow"):
            wait_until(lambda n=name: self.recognises(self.lab[n], room.room_id), 20,
                       f"{name}'s tag for the removed room")
        room.fork("newcomers")
        blue = self.blue.user_id("blue")
        room.send("m.room.member", {"membership": "leave", "reason": "spam"}, branch="newcomers",
                  sender=blue, state_key=self.users["green"].user_id, forward=False)
        room.send("m.room.member", {"membership": "ban", "reason": "spam"}, branch="newcomers",
                  sender=blue, state_key=self.users["yellow"].user_id, forward=False)
        room.show(self.purple.server_name, "newcomers")
        self.removed = room
        return room

    def black_goes_away(self) -> None:
        """Black stops answering (its port closes): it will not answer Purple's audit."""
        self.black.stop()

    def purple_joins(self, room: RogueRoom) -> None:
        self.users["purple"].join(room.room_id, via=self.blue.server_name)

    def audit_report(self, room_id: str, timeout: float = 60.0) -> dict:
        """The report of Purple's own audit of ``room_id`` (the admin API, once it is done)."""

        def done() -> dict | None:
            status, body = self.admin.call("GET", f"{AUDIT_API}?room_id={room_id}")
            if status == 200 and body.get("state") == "done":
                return body
            return None

        return wait_until(done, timeout, f"Purple's audit of {room_id}", interval=0.5)["report"]

    def run(self) -> None:
        """Everything up to Purple's joins (the audits then run by themselves)."""
        t0 = time.monotonic()
        self.register_users()
        self.open_lobby()
        self.timings["lobby"] = time.monotonic() - t0
        t1 = time.monotonic()
        self.build_hidden_room()
        self.build_removed_room()
        self.timings["blue_rooms"] = time.monotonic() - t1
        self.black_goes_away()
        assert self.hidden is not None and self.removed is not None
        self.purple_joins(self.hidden)
        self.purple_joins(self.removed)
