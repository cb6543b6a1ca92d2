"""The Synapse suite tests the installed wheel, never the source tree (as the main suite does)."""

from __future__ import annotations

import pathlib

import servership
import servership.synapse

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_module_comes_from_the_installed_wheel() -> None:
    for mod in (servership, servership.synapse):
        path = pathlib.Path(mod.__file__ or "").resolve()
        assert REPO / "python" not in path.parents, path
        assert "site-packages" in path.parts, path
