"""The installed package: it is the wheel, not the source tree, and its surface is complete."""

from __future__ import annotations

import pathlib

import servership
import servership._native


def test_imports_the_installed_wheel(repo: pathlib.Path) -> None:
    package = pathlib.Path(servership.__file__).resolve()
    assert repo / "python" not in package.parents, package
    assert "site-packages" in package.parts


def test_flat_namespace_reexports_native() -> None:
    for name in servership.__all__:
        assert getattr(servership, name) is getattr(servership._native, name), name
    assert servership.__version__.count(".") == 2


def test_stub_and_marker_are_installed() -> None:
    package = pathlib.Path(servership.__file__).parent
    assert (package / "_native.pyi").is_file()
    assert (package / "py.typed").is_file()


def test_exception_hierarchy_and_modules() -> None:
    subclasses = [
        servership.BadJsonError,
        servership.InvalidParamError,
        servership.TooLargeError,
        servership.LimitExceededError,
        servership.ForbiddenError,
        servership.UnauthorizedError,
        servership.IncompatibleRoomVersionError,
        servership.NotFoundError,
        servership.InternalError,
        servership.StorageError,
    ]
    for cls in subclasses:
        assert issubclass(cls, servership.ServershipError)
        assert cls.__module__ == "servership"
        assert cls.__doc__
    assert issubclass(servership.StorageError, servership.InternalError)
    assert issubclass(servership.ServershipError, Exception)
    # Class-level defaults, so exceptions raised from Python code have them too.
    assert servership.BadJsonError.errcode == "M_BAD_JSON"
    assert servership.LimitExceededError.http_status == 429
    assert servership.UnauthorizedError("x").http_status == 401
