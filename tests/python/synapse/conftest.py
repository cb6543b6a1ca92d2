"""Fixtures for the servership Synapse module tests.

``lab`` (session scope) starts two real Synapses on loopback with the module loaded and always
stops them. It needs ``matrix-synapse`` importable by this interpreter; nothing is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

HERE = Path(__file__).resolve().parent
# Only this directory (for lab.py, fake_api.py): the module under test is the installed wheel,
# never the source tree (test_installed_wheel.py checks this).
sys.path.insert(0, str(HERE))

from harness.lab import Lab  # noqa: E402
from harness.scenario import SeedScenario  # noqa: E402
from harness.releases import MSC4329_SENDING_PROBLEM  # noqa: E402


def native_core_present() -> bool:
    """True if the servership native core is importable."""
    from servership.synapse import _core

    return _core.native_available()


_labs: list[Lab] = []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    """When anything failed, show the end of every lab server's logs (CI has no other copy)."""
    if exitstatus == 0 or not _labs:
        return
    for lab in _labs:
        for hs in lab.servers.values():
            terminalreporter.section(f"Synapse {hs.name} ({hs.server_name}) log tail")
            terminalreporter.write_line(hs.tail(60))


@pytest.fixture(scope="session")
def lab_logs() -> list[Lab]:
    """Labs whose servers' log tails are printed when anything failed (append yours)."""
    return _labs


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A (``localhost:<port>``) and B, federating over TLS with a private CA.

    A serves the stable paths too (``discovery.stable_path``, ``invites.stable_v3_path``), sends
    its invites with MSC4329 (where Synapse allows: ``MSC4329_SENDING_PROBLEM``) and rejects spec invites that fail MSC4311; B keeps the defaults
    (warn) and audits rooms right after its first join. Routing and mode differences are
    therefore observable between them. A lobby room joins them from the start.
    """
    root = tmp_path_factory.mktemp("synapse-lab")
    lab = Lab(
        root,
        per_server={
            "A": {
                "discovery": {"stable_path": True},
                "invites": {"stable_v3_path": True, "mode": "reject",
                            "send_msc4329": MSC4329_SENDING_PROBLEM is None},
            },
            "B": {"audit": {"enabled": True, "spread_seconds": 0, "poll_seconds": 1}},
        },
    )
    _labs.append(lab)
    try:
        lab.setup()
        lab.start()
        # A and B share a room for the whole session, as federating servers do: discovery
        # answers only servers that share a room (discovery.require_shared_room).
        host, guest = lab.a.register("lobbyhost"), lab.b.register("lobbyguest")
        guest.join(host.create_room(preset="public_chat"), via=lab.a.server_name)
        yield lab
    finally:
        lab.stop()
    timings = ", ".join(f"{k}={v:.2f}s" for k, v in lab.timings.items())
    print(f"\nlab timings: {timings}")


@pytest.fixture(scope="session")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedScenario]:
    """MSC4358's seed scenario (``harness/scenario.py``): five real Synapses and two rogue
    homeservers, played up to Purple's joins of Blue's rooms."""
    scenario = SeedScenario(tmp_path_factory.mktemp("seed"))
    try:
        scenario.start()
        _labs.append(scenario.lab)
        scenario.run()
        yield scenario
    finally:
        scenario.stop()
    print(f"\nseed scenario timings: {scenario.timings}")
