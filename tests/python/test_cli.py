"""`python -m servership` end to end, as a subprocess of the installed package."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "servership", *args], input=stdin, capture_output=True, check=False
    )


def test_canonical() -> None:
    done = run("canonical", stdin=b'{"b": 1, "a": "\\u00e9"}')
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"a":"é","b":1}\n'.encode()
    done = run("canonical", stdin=b'{"a": 1, "a": 1}')
    assert done.returncode == 1
    assert json.loads(done.stderr)["errcode"] == "M_BAD_JSON"


def test_sign_then_verify(tmp_path: pathlib.Path) -> None:
    key_file = tmp_path / "signing.key"
    key_file.write_text("ed25519 a_1 " + "A" * 43 + "\n")
    doc = tmp_path / "doc.json"
    doc.write_text('{"server_name": "example.org", "n": 1}')
    signed = run("sign-json", str(doc), "--server", "example.org", "--key-file", str(key_file))
    assert signed.returncode == 0, signed.stderr
    (tmp_path / "signed.json").write_bytes(signed.stdout)

    import servership

    public = servership.SigningKey.from_seed("ed25519:a_1", "A" * 43).public_key
    ok = run("verify-json", str(tmp_path / "signed.json"), "--server", "example.org",
             "--key-id", "ed25519:a_1", "--public-key", public)
    assert ok.returncode == 0, ok.stderr
    bad = run("verify-json", str(doc), "--server", "example.org",
              "--key-id", "ed25519:a_1", "--public-key", public)
    assert bad.returncode == 1
    assert json.loads(bad.stderr)["errcode"] == "M_UNAUTHORIZED"


def test_event_id_and_room_id(tmp_path: pathlib.Path) -> None:
    from conftest import load_vectors

    case = next(c for c in load_vectors("v12_room_ids.json")["create_events"] if c["expect"] == "accept")
    pdu = tmp_path / "create.json"
    pdu.write_text(json.dumps(case["event"]))
    done = run("event-id", str(pdu), "--room-version", "12")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == case["expect_event_id"]
    done = run("room-id", str(pdu))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == case["expect_room_id"]
    done = run("event-id", str(pdu), "--room-version", "99")
    assert done.returncode == 1
    assert json.loads(done.stderr)["room_version"] == "99"


def test_missing_file() -> None:
    done = run("verify-json", "/nonexistent", "--server", "a", "--key-id", "ed25519:1",
               "--public-key", "x")
    assert done.returncode == 2
