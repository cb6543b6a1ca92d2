"""Canonical JSON from Python: the shared vectors, and strict conversion of Python values."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import servership
from conftest import load_vectors


def _input(case: dict[str, Any]) -> bytes:
    if "input" in case:
        return str(case["input"]).encode("utf-8")
    return bytes.fromhex(case["input_hex"])


def test_canonical_json_vectors() -> None:
    cases = load_vectors("canonical_json.json")
    assert len(cases) > 100
    failures = []
    for case in cases:
        data = _input(case)
        try:
            got: bytes | None = servership.canonicalize(data)
        except servership.BadJsonError:
            got = None
        want = None if case["expect"] == "reject" else case["expect"].encode("utf-8")
        if got != want:
            failures.append(f"{case['name']}: got {got!r}, want {want!r}")
    assert not failures, "\n".join(failures)


def test_canonicalize_accepts_bytes_bytearray_and_str() -> None:
    want = b'{"a":1,"b":[true,null]}'
    assert servership.canonicalize(b'{"b":[true,null],"a":1}') == want
    assert servership.canonicalize(bytearray(b'{"b":[true,null],"a":1}')) == want
    assert servership.canonicalize('{"b":[true,null],"a":1}') == want
    with pytest.raises(servership.BadJsonError):
        servership.canonicalize({"a": 1})  # type: ignore[arg-type]


def test_errors_carry_errcode_status_and_body() -> None:
    with pytest.raises(servership.BadJsonError) as info:
        servership.canonicalize(b'{"a":1,"a":2}')
    e = info.value
    assert e.errcode == "M_BAD_JSON"
    assert e.http_status == 400
    assert e.matrix_error == {"errcode": "M_BAD_JSON", "error": str(e)}
    assert "a" in str(e)
    with pytest.raises(servership.BadJsonError) as info:
        servership.canonicalize(b"{")
    assert info.value.errcode == "M_NOT_JSON"


def test_canonical_json_of_python_values() -> None:
    value = {"b": 1, "a": [True, False, None, "\u00e9", -0, ("t",)], "": {}}
    assert servership.canonical_json(value) == '{"":{},"a":[true,false,null,"é",0,["t"]],"b":1}'.encode()
    # A str is a JSON string, never parsed as JSON text.
    assert servership.canonical_json('{"a":1}') == b'"{\\"a\\":1}"'
    big = 2**53 - 1
    assert servership.canonical_json([big, -big]) == f"[{big},{-big}]".encode()


@pytest.mark.parametrize(
    ("value", "place"),
    [
        (1.5, "value"),
        ({"content": {"body": [1, 2, float("nan")]}}, 'value["content"]["body"][2]'),
        (2**53, "value"),
        (-(2**53), "value"),
        (2**80, "value"),
        ({1: "a"}, "value"),
        ({"a": "\ud800"}, 'value["a"]'),
        ({"\udfff": 1}, "value"),
        ({"s": {1, 2}}, 'value["s"]'),
        (b"{}", "value"),
        (object(), "value"),
    ],
)
def test_values_canonical_json_cannot_carry(value: Any, place: str) -> None:
    with pytest.raises(servership.BadJsonError) as info:
        servership.canonical_json(value)
    assert str(info.value).startswith(place + ":"), str(info.value)


def test_depth_limit_instead_of_recursion_error() -> None:
    deep: Any = []
    for _ in range(servership.MAX_DEPTH - 1):
        deep = [deep]
    assert servership.canonical_json(deep).count(b"[") == servership.MAX_DEPTH
    with pytest.raises(servership.BadJsonError, match="nested deeper"):
        servership.canonical_json([deep])
    very_deep: Any = {}
    for _ in range(100_000):
        very_deep = {"a": very_deep}
    with pytest.raises(servership.BadJsonError):
        servership.canonical_json(very_deep)
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(servership.BadJsonError):
        servership.canonical_json(cycle)
    with pytest.raises(servership.BadJsonError):
        servership.canonicalize(b"[" * 100_000 + b"]" * 100_000)


def test_parse_json_round_trip() -> None:
    assert servership.parse_json(b'{"a":[1,"x",null,true]}') == {"a": [1, "x", None, True]}
    with pytest.raises(servership.BadJsonError):
        servership.parse_json(b'{"a":1.0}')


def test_large_input_and_threads() -> None:
    # 10 MB of JSON canonicalized from several threads at once (the interpreter is released).
    text = b'["' + b"x" * (10 * 1024 * 1024) + b'"]'
    results: list[bytes] = []

    def work() -> None:
        results.append(servership.canonicalize(text))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [text] * 4
