"""servership in two real Synapses: the seed's scenario, as far as two servers allow.

Run through ``./demo.sh --synapse`` (which builds and installs the wheel and Synapse first), or
directly with an interpreter that has both: ``python examples/synapse_demo.py [LAB_DIR]``.

1. Two Synapses, A and B, federate on loopback over TLS (their own CA), servership in each.
2. alice@A opens a lobby; bob@B joins it: A and B now know each other.
3. alice opens a council room and invites bob. A's module sends the invite with MSC4329 (the
   room's create event attached); B's module checks it before Synapse accepts it. bob joins,
   then leaves. B keeps its participation tag for the council: tags are permanent.
4. alice opens an attic room that B never hears of.
5. A's admin audits both rooms through A's module: A asks B (signed federation request) which
   of the rooms' tags it recognises, and classifies the answers against the rooms' history.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python" / "synapse"))

from lab import Lab, LabError, User  # noqa: E402


def step(text: str) -> None:
    print(f"\n== {text}")


def audit(admin: User, room: str) -> dict:
    return admin.ok("POST", "/_synapse/client/servership/v1/audit", {"room_id": room})


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/servership-synapse-demo")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    lab = Lab(root, per_server={"A": {"invites": {"send_msc4329": True}}, "B": {}})
    t0 = time.monotonic()
    try:
        step("starting two Synapses on loopback (TLS with a private CA, servership loaded)")
        lab.setup()
        lab.start()
        print(f"A = {lab.a.server_name}   B = {lab.b.server_name}   "
              f"({time.monotonic() - t0:.1f} s)")

        alice = lab.a.register("alice")
        admin = lab.a.register("admin", admin=True)
        bob = lab.b.register("bob")

        step("alice@A opens a lobby; bob@B joins it")
        lobby = alice.create_room(preset="public_chat", name="lobby")
        bob.join(lobby, via=lab.a.server_name)
        print(f"lobby   {lobby}")

        step("alice opens the council and invites bob (MSC4329); bob joins, then leaves")
        council = alice.create_room(preset="private_chat", name="council")
        alice.invite(council, bob.user_id)
        bob.wait_for(lambda s: council in s.get("rooms", {}).get("invite", {}), what="invite")
        sent = [ln for ln in lab.a.log_text().splitlines() if "sent MSC4329 invite" in ln]
        print(f"council {council}")
        print("A's log: " + (sent[-1].split(" - ")[-1] if sent else "(no MSC4329 line)"))
        bob.join(council, via=lab.a.server_name)
        bob.ok("POST", f"/_matrix/client/v3/rooms/{urllib.parse.quote(council)}/leave", {})

        step("alice opens the attic; B never hears of it")
        attic = alice.create_room(preset="private_chat", name="attic")
        print(f"attic   {attic}")

        step("A audits both rooms (asks B, signed, which tags it recognises)")
        time.sleep(0.5)  # B records its tags in the background after each join
        for name, room in (("council", council), ("attic", attic)):
            print(f"-- {name}")
            print(json.dumps(audit(admin, room), indent=2, sort_keys=True))
        print(f"\ndone in {time.monotonic() - t0:.1f} s; logs under {root}")
        return 0
    except LabError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for hs in lab.servers.values():
            print(hs.tail(30), file=sys.stderr)
        return 1
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
