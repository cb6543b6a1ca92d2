"""Shared fixtures: the test vectors from tests/vectors/ (read as data, never copied)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def load_vectors(name: str) -> Any:
    with open(REPO / "tests" / "vectors" / name, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO
