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


def test_synapse_extra_declares_the_tested_range() -> None:
    """``pip install 'servership[synapse]'`` accepts exactly the releases ``_compat`` was tested
    on (CI installs both ends through the extra), and the running Synapse is one of them."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement
    from packaging.version import Version

    from servership.synapse import _compat

    extra = [Requirement(r) for r in requires("servership") or []
             if Requirement(r).marker is not None
             and Requirement(r).marker.evaluate({"extra": "synapse"})
             and Requirement(r).name == "matrix-synapse"]
    assert len(extra) == 1, requires("servership")
    declared = extra[0].specifier
    assert declared == Requirement(_compat.TESTED_REQUIREMENT).specifier
    for inside in ("1.140.0", "1.150.0", "1.163.2"):
        assert Version(inside) in declared
    for outside in ("1.139.2", "1.164.0", "2.0.0"):
        assert Version(outside) not in declared
    assert Version(version("matrix-synapse")) in declared
