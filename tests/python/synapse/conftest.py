"""Fixtures for the servership Synapse module tests.

``lab`` (session scope) starts two real Synapses on loopback with the module loaded and always
stops them. It needs ``matrix-synapse`` importable by this interpreter; nothing is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[2] / "python"))

from lab import Lab  # noqa: E402


def native_core_present() -> bool:
    """True if the servership native core is importable."""
    try:
        return importlib.util.find_spec("servership._native") is not None
    except ImportError:
        return False


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A (``localhost:<port>``) and B, federating over TLS with a private CA.

    A serves the stable paths too (``discovery.stable_path``, ``invites.stable_v3_path``); B
    keeps the defaults, so routing differences between them are observable.
    """
    root = tmp_path_factory.mktemp("synapse-lab")
    base = {"allow_missing_core": not native_core_present()}
    lab = Lab(
        root,
        base,
        per_server={
            "A": {"discovery": {"stable_path": True}, "invites": {"stable_v3_path": True}},
            "B": {},
        },
    )
    try:
        lab.setup()
        lab.start()
        yield lab
    finally:
        lab.stop()
    timings = ", ".join(f"{k}={v:.2f}s" for k, v in lab.timings.items())
    print(f"\nlab timings: {timings}")
