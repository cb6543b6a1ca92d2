"""The Synapse release range, on a real Synapse: a release or a feature the module cannot run
on is refused at start-up as a clean config error that names the key (one message, no
traceback), and a feature whose internals are absent is detected, not guessed from the version.

Each case starts a real ``synapse.app.homeserver`` with a copy of A's config; it stops while
parsing the config, before it opens a port or a database.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from harness.lab import Lab
from harness.releases import MSC4329_SENDING_PROBLEM, S2S_PROBLEM, SYNAPSE_VERSION


def _start_with(lab: Lab, tmp_path: Path, module_config: dict, prelude: str = "") -> str:
    """Start Synapse with A's config but ``module_config``; ``prelude`` runs first in the same
    interpreter (to stand in for another release). Returns everything it printed; it must
    have exited 1 (Synapse's answer to a config error)."""
    conf = dict(lab.a.config)
    conf["modules"] = [{"module": "servership.synapse.ServershipModule",
                        "config": dict(module_config, store_path=str(tmp_path / "s.db"))}]
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    code = textwrap.dedent(prelude) + "\nfrom synapse.app.homeserver import main\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", code, "-c", str(path)], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    return out


def _assert_clean_config_error(out: str, key: str) -> None:
    assert "Error in configuration" in out, out
    assert key in out, out
    assert "Traceback" not in out, out


def test_release_outside_the_tested_range_is_refused_naming_the_key(lab: Lab,
                                                                    tmp_path: Path) -> None:
    # Synapse 1.139.0 stands in for any release below the range (and 1.164.0 above it).
    for version in ("1.139.0", "1.164.0"):
        out = _start_with(lab, tmp_path, {},
                          f"import synapse\nsynapse.__version__ = {version!r}\n")
        _assert_clean_config_error(out, "servership.allow_untested_synapse")
        assert f"this is Synapse {version}, outside the tested range" in out


def test_send_msc4329_is_refused_cleanly_where_synapse_lacks_its_internals(
        lab: Lab, tmp_path: Path) -> None:
    if MSC4329_SENDING_PROBLEM is None:
        # A release that has them: take one away, as 1.140-1.157 lack it (three arguments).
        prelude = """
            from synapse.federation.federation_client import FederationClient
            async def _do_send_invite(self, destination, pdu, room_version): ...
            FederationClient._do_send_invite = _do_send_invite
        """
        expected = "_do_send_invite takes (destination, pdu, room_version)"
    else:
        # The real thing, detected on this release.
        prelude, expected = "", MSC4329_SENDING_PROBLEM
    out = _start_with(lab, tmp_path, {"invites": {"send_msc4329": True}}, prelude)
    _assert_clean_config_error(out, "servership.invites.send_msc4329")
    assert expected in out, (SYNAPSE_VERSION, out)


def test_s2s_is_refused_cleanly_where_synapse_lacks_its_internals(lab: Lab,
                                                                   tmp_path: Path) -> None:
    if S2S_PROBLEM is None:
        # A release that has them: take the upgrade's creation-content step away.
        prelude = """
            from synapse.handlers.room import RoomCreationHandler
            del RoomCreationHandler._calculate_upgraded_room_creation_content
        """
        expected = "RoomCreationHandler has no _calculate_upgraded_room_creation_content"
    else:
        # The real thing, detected on this release (1.140: frozen events).
        prelude, expected = "", S2S_PROBLEM
    out = _start_with(lab, tmp_path, {"members_room_version": {"enabled": True},
                                      "s2s": {"enabled": True}}, prelude)
    _assert_clean_config_error(out, "servership.s2s.enabled")
    assert expected in out, (SYNAPSE_VERSION, out)


def test_allow_untested_synapse_does_not_override_a_missing_feature(lab: Lab,
                                                                    tmp_path: Path) -> None:
    """Outside the range with ``allow_untested_synapse``, a feature whose internals are gone
    still refuses by its own key."""
    prelude = """
        import synapse
        synapse.__version__ = "1.999.0"
        from synapse.storage.databases.main import DataStore
        from synapse.storage.databases.main.events_worker import EventsWorkerStore
        for cls in (DataStore, EventsWorkerStore):
            cls.get_stripped_room_state_ids_from_event_context = None
    """
    out = _start_with(lab, tmp_path, {"allow_untested_synapse": True,
                                      "invites": {"send_msc4329": True}}, prelude)
    _assert_clean_config_error(out, "servership.invites.send_msc4329")
    assert "outside the tested range" in out  # the warning was logged first
