"""X-Matrix from Python against tests/vectors/x_matrix.json."""

from __future__ import annotations

import json
from typing import Any

import pytest

import servership
from conftest import load_vectors

VECTORS = load_vectors("x_matrix.json")


def spec_key() -> servership.SigningKey:
    key = VECTORS["keys"]["spec"]
    signing_key = servership.SigningKey.from_seed(key["key_id"], key["seed"])
    assert signing_key.public_key == key["public_key"]
    return signing_key


def test_every_parse_vector() -> None:
    assert len(VECTORS["parse"]) >= 15
    for case in VECTORS["parse"]:
        if case["expect"] == "reject":
            with pytest.raises(servership.UnauthorizedError) as info:
                servership.parse_x_matrix(case["header"])
            assert info.value.http_status == 401, case["name"]
            continue
        got = servership.parse_x_matrix(case["header"])
        want = case["expect"]
        assert (got.origin, got.destination, got.key_id, got.signature) == (
            want["origin"],
            want["destination"],
            want["key"],
            want["sig"],
        ), case["name"]
        assert servership.parse_x_matrix(got.to_header()) == got


def test_every_signed_request_vector() -> None:
    key = spec_key()
    cases = VECTORS["signed_requests"]
    assert cases
    for case in cases:
        r: dict[str, Any] = case["request"]
        content = r.get("content")
        header = servership.sign_request(
            r["method"], r["uri"], r["origin"], r["destination"], content, key
        )
        assert header == case["expect_header"], case["name"]
        # Verified from raw body bytes, from a dict and (no body) from None.
        body = None if content is None else json.dumps(content).encode()
        for given in (body, content):
            got = servership.verify_request(
                header, r["method"], r["uri"], r["destination"], given, [key.verify_key()]
            )
            assert got.origin == r["origin"]
            assert got.signature == case["expect_signature"]


def test_verification_refuses_anything_changed() -> None:
    key = spec_key()
    content = {"room_version": "12"}
    header = servership.sign_request("PUT", "/p", "domain", "remote.example", content, key)
    keys = [key.verify_key()]
    good = json.dumps(content).encode()
    servership.verify_request(header, "PUT", "/p", "remote.example", good, keys)
    for args in [
        ("POST", "/p", "remote.example", good, keys),
        ("PUT", "/q", "remote.example", good, keys),
        ("PUT", "/p", "other.example", good, keys),
        ("PUT", "/p", "remote.example", b'{"room_version":"11"}', keys),
        ("PUT", "/p", "remote.example", None, keys),
        ("PUT", "/p", "remote.example", good, []),
    ]:
        with pytest.raises(servership.UnauthorizedError) as info:
            servership.verify_request(header, *args)
        assert info.value.errcode == "M_UNAUTHORIZED"
        assert info.value.http_status == 401
    with pytest.raises(servership.UnauthorizedError):
        servership.verify_request("Bearer x", "PUT", "/p", "remote.example", good, keys)
    with pytest.raises(servership.BadJsonError):
        servership.verify_request(header, "PUT", "/p", "remote.example", b"{nope", keys)


def test_sign_request_refuses_bad_input() -> None:
    key = spec_key()
    with pytest.raises(servership.BadJsonError):
        servership.sign_request("PUT", "/p", "domain", "remote.example", {"a": 1.5}, key)
    with pytest.raises(servership.InvalidParamError):
        servership.sign_request("PUT", "/p", "bad origin", "remote.example", None, key)
