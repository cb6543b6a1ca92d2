"""Signing keys and JSON signatures from Python, against tests/vectors/signing.json."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import servership
from conftest import load_vectors


@pytest.fixture(scope="module")
def vectors() -> Any:
    return load_vectors("signing.json")


def _key(vectors: Any, name: str) -> tuple[str, servership.SigningKey]:
    k = vectors["keys"][name]
    key = servership.SigningKey.from_seed(k["key_id"], k["seed"])
    assert key.public_key == k["public_key"]
    assert key.key_id == k["key_id"]
    return k["server_name"], key


def test_json_signing_vectors(vectors: Any) -> None:
    cases = vectors["json_signing"]
    assert cases
    for case in cases:
        server, key = _key(vectors, case["key"])
        original = copy.deepcopy(case["input"])
        assert servership.canonical_json({k: v for k, v in case["input"].items() if k not in ("signatures", "unsigned")}) == case["expect_canonical"].encode()
        signed = servership.sign_json(case["input"], server, key)
        assert signed == case["expect_signed"], case["name"]
        assert case["input"] == original, "sign_json must not change its input"
        servership.verify_json(signed, server, key.verify_key())
        # JSON text works too.
        text = servership.canonical_json(case["input"])
        assert servership.sign_json(text, server, key) == case["expect_signed"]


def test_json_verification_vectors(vectors: Any) -> None:
    seen = 0
    for case in vectors["verification"]:
        if case["kind"] != "json":
            continue
        seen += 1
        k = vectors["keys"][case["key"]]
        verify_key = servership.VerifyKey(k["key_id"], k["public_key"])
        obj = case["json"]
        if case["expect_valid"]:
            servership.verify_json(obj, k["server_name"], verify_key)
        else:
            # Malformed signatures are BadJsonError, wrong ones UnauthorizedError.
            with pytest.raises((servership.UnauthorizedError, servership.BadJsonError)):
                servership.verify_json(obj, k["server_name"], verify_key)
    assert seen > 0


def test_verify_failures_are_unauthorized() -> None:
    key = servership.SigningKey.from_seed("ed25519:a", "A" * 43)
    signed = servership.sign_json({"x": 1}, "example.org", key)
    with pytest.raises(servership.UnauthorizedError) as info:
        servership.verify_json(signed, "other.org", key.verify_key())
    assert info.value.errcode == "M_UNAUTHORIZED"
    assert info.value.http_status == 401
    tampered = dict(signed, x=2)
    with pytest.raises(servership.UnauthorizedError):
        servership.verify_json(tampered, "example.org", key.verify_key())
    # A list of keys: unknown key IDs are ignored, a known one must be present.
    other = servership.SigningKey.from_seed("ed25519:b", "B" * 43)
    servership.verify_json(signed, "example.org", [other.verify_key(), key.verify_key()])
    with pytest.raises(servership.UnauthorizedError):
        servership.verify_json(signed, "example.org", [other.verify_key()])


def test_keys() -> None:
    seed = "A" * 43
    key = servership.SigningKey.from_synapse_key_line(f"ed25519 a_1 {seed}\n")
    assert key.key_id == "ed25519:a_1"
    assert repr(key) == f'SigningKey(key_id="ed25519:a_1", public_key="{key.public_key}")'
    assert seed not in repr(key)
    vk = key.verify_key()
    assert vk == servership.VerifyKey("ed25519:a_1", key.public_key)
    assert "VerifyKey(" in repr(vk)
    vk.verify(b"hello", key.sign(b"hello"))
    with pytest.raises(servership.UnauthorizedError):
        vk.verify(b"hellO", key.sign(b"hello"))
    for bad in [("rsa:1", seed), ("ed25519:1", "short"), ("ed25519:bad id", seed)]:
        with pytest.raises(servership.InvalidParamError) as info:
            servership.SigningKey.from_seed(*bad)
        assert info.value.errcode == "M_INVALID_PARAM"
    with pytest.raises(servership.InvalidParamError):
        servership.SigningKey.from_synapse_key_line("ed25519 1")
    with pytest.raises(servership.InvalidParamError):
        servership.sign_json({}, "", key)
    with pytest.raises(servership.BadJsonError):
        servership.sign_json({"signatures": 1}, "a", key)
    with pytest.raises(servership.BadJsonError):
        servership.sign_json(b"[1]", "a", key)
