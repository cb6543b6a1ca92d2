"""`python -m servership verify` and `check-invite` on the fixtures of tests/fixtures_invite.rs."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import servership
from conftest import REPO

FIXTURES = REPO / "tests" / "c" / "fixtures"


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "servership", *args], capture_output=True, check=False
    )


def meta() -> dict[str, str]:
    return json.loads((FIXTURES / "invite_v12_meta.json").read_bytes())


def test_check_invite() -> None:
    m = meta()
    args = ["--room-id", m["room_id"], "--receiver", m["receiving_server"], "--origin", m["origin"]]
    keys = ["--keys", str(FIXTURES / "keys.json")]
    ok = run("check-invite", str(FIXTURES / "invite_v12.json"), *args, *keys)
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["event_id"] == m["event_id"] and result["signatures_checked"] is True
    bad = run("check-invite", str(FIXTURES / "invite_v12_tampered.json"), *args, *keys)
    assert bad.returncode == 1
    assert json.loads(bad.stderr)["errcode"] == "M_INVALID_PARAM"


def test_verify(tmp_path: pathlib.Path) -> None:
    body = json.loads((FIXTURES / "invite_v12.json").read_bytes())
    pdu = tmp_path / "pdu.json"
    pdu.write_text(json.dumps(body["event"]))
    keys = json.loads((FIXTURES / "keys.json").read_bytes())
    public = keys[meta()["origin"]]["ed25519:1"]["key"]
    common = ["--room-version", "12", "--server", meta()["origin"], "--key-id", "ed25519:1"]
    ok = run("verify", str(pdu), *common, "--public-key", public)
    assert ok.returncode == 0, ok.stderr
    other = servership.SigningKey.from_seed("ed25519:1", "E" * 43).public_key
    bad = run("verify", str(pdu), *common, "--public-key", other)
    assert bad.returncode == 1
    assert json.loads(bad.stderr)["errcode"] == "M_UNAUTHORIZED"
    body["event"]["content"]["membership"] = "invite"  # unchanged: still fine
    body["event"]["content"]["reason"] = "added after signing"
    pdu.write_text(json.dumps(body["event"]))
    changed = run("verify", str(pdu), *common, "--public-key", public)
    assert changed.returncode == 1 and b"content hash MISMATCH" in changed.stderr
