"""MSC4358's attack and its detection, on five real Synapses and a rogue homeserver.

Run through ``./demo.sh --synapse`` (which builds and installs the wheel and Synapse first), or
directly with an interpreter that has both: ``python examples/synapse_demo.py [LAB_DIR]``.

Blue is a rogue homeserver (our own program, ``tests/python/synapse/harness/rogue.py``) that
creates rooms and decides who sees what. Green and Yellow (real Synapses with servership) are
in Blue's rooms. Purple (a real Synapse with servership and audits on) knows them from a lobby,
joins Blue's rooms through Blue, and is shown branches without them. Purple's audit runs by
itself after each first join and reports what it finds: this script prints those reports.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python" / "synapse"))

from harness.lab import LabError  # noqa: E402
from harness.scenario import SeedScenario  # noqa: E402


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/servership-synapse-demo")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    scenario = SeedScenario(root)
    t0 = time.monotonic()
    try:
        step("Starting Purple, Green, Yellow, Gray and White (real Synapses with servership) "
             "and the rogue homeservers Blue and Black, all on 127.0.0.1")
        scenario.start()
        for name in ("Purple", "Green", "Yellow", "Gray", "White"):
            print(f"   {name:<7} {scenario[name].server_name}")
        print(f"   {'Blue':<7} {scenario.blue.server_name}  (rogue)")
        print(f"   {'Black':<7} {scenario.black.server_name}  (rogue, goes away later)")
        step("Purple opens a lobby; everyone joins it, so Purple knows them all")
        scenario.register_users()
        scenario.open_lobby()
        step("Blue's room 'hidden': Gray joins and leaves (and is invited back), then Green and "
             "Yellow join and record their participation tags")
        hidden = scenario.build_hidden_room()
        step("Blue's room 'removed': Green and Yellow join; Blue then writes, on a branch only "
             "newcomers will see, that it kicked Green and banned Yellow")
        removed = scenario.build_removed_room()
        step("Black goes away; Purple joins both rooms through Blue and is shown the newcomers' "
             "branches")
        scenario.black_goes_away()
        scenario.purple_joins(hidden)
        scenario.purple_joins(removed)
        print(f"   what Purple sees of 'hidden':  {sorted(hidden.members('newcomers'))}")
        print(f"   what is really there:          {sorted(hidden.members('main'))}")
        names = {scenario[n].server_name: n for n in ("Purple", "Green", "Yellow", "Gray", "White")}
        names[scenario.blue.server_name] = "Blue"
        names[scenario.black.server_name] = "Black"
        for label, room in (("hidden", hidden), ("removed", removed)):
            step(f"Purple's own audit of '{label}' ({room.room_id}), from the admin audit API "
                 "(server names replaced by colours)")
            text = json.dumps(scenario.audit_report(room.room_id), indent=2, sort_keys=True)
            for server, name in names.items():
                text = text.replace(f'"{server}"', f'"{name}"').replace(f":{server}", f":{name}")
            print(text)
        step("The same findings in Purple's log")
        for line in scenario.purple.log_text().splitlines():
            if "found unexplained participants" in line or "removed by another server" in line:
                print("   " + line.split(" - ", 4)[-1][:200] + " ...")
        step("... and in its metrics")
        for line in scenario.purple.metrics_text().splitlines():
            if line.startswith(("servership_audits_total", "servership_audit_unexplained_total",
                                "servership_audit_removed_by_other_total")):
                print("   " + line)
        print(f"\nDone in {time.monotonic() - t0:.1f} s. The admin also got each report as a "
              "server notice. See docs/discovery.md for what an operator does next.")
        return 0
    except LabError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for hs in scenario.lab.servers.values() if hasattr(scenario, "lab") else []:
            print(hs.tail(20), file=sys.stderr)
        return 1
    finally:
        scenario.stop()


if __name__ == "__main__":
    sys.exit(main())
