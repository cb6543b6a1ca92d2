"""servership's server ACL evaluation against Synapse's own (``synapse.synapse_rust.acl``).

Pure Python, no servers: random ACL contents and server names (mixed case, ports, IP literals,
long entries) are judged by both, and must get the same verdict. Synapse's evaluator takes the
host without its port (its callers strip it), so it is given exactly that.

Run: ``pytest tests/python/synapse/test_acl_differential.py`` (needs matrix-synapse importable
and the servership wheel installed).
"""

from __future__ import annotations

import random

import pytest

acl_mod = pytest.importorskip("synapse.synapse_rust.acl")
servership = pytest.importorskip("servership")

LABELS = ["evil", "good", "a", "b", "Example", "EXAMPLE", "org", "x-y", "0", "127"]


def host_without_port(name: str) -> str:
    """The port removed as Synapse's ``parse_server_name`` does (``[v6]`` kept whole)."""
    if name.endswith("]"):
        return name
    head, sep, port = name.rpartition(":")
    return head if sep and port.isdigit() else name


def random_case(rng: random.Random, s: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)


def random_name(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        host = ".".join(str(rng.randrange(0, 300)) for _ in range(rng.choice([3, 4, 4])))
    elif kind < 0.15:
        host = rng.choice(["[::1]", "[2001:db8::1]"])
    else:
        host = ".".join(rng.choice(LABELS) for _ in range(rng.randrange(1, 4)))
        host = random_case(rng, host)
    if rng.random() < 0.3:
        host += f":{rng.randrange(1, 65536)}"
    return host


def random_glob(rng: random.Random, near: str) -> str:
    base = host_without_port(near) if rng.random() < 0.6 else random_name(rng)
    out = []
    for c in random_case(rng, base):
        r = rng.random()
        if r < 0.1:
            out.append("*")
        elif r < 0.15:
            out.append("?")
        else:
            out.append(c)
    if rng.random() < 0.2:
        out.insert(0, "*")
    if rng.random() < 0.05:
        out.insert(0, "*" * 1100)  # long entries count in both
    return "".join(out)


def synapse_allows(content: dict, host: str) -> bool:
    allow_ip = content.get("allow_ip_literals", True)
    evaluator = acl_mod.ServerAclEvaluator(
        allow_ip if isinstance(allow_ip, bool) else True,
        [s for s in content.get("allow", []) if isinstance(s, str)],
        [s for s in content.get("deny", []) if isinstance(s, str)],
    )
    return bool(evaluator.server_matches_acl_event(host))


def test_same_verdict_as_synapse_on_random_acls() -> None:
    rng = random.Random(1777)
    checked = denied = 0
    for _ in range(3000):
        name = random_name(rng)
        content: dict = {
            "allow": [random_glob(rng, name) for _ in range(rng.randrange(0, 3))],
            "deny": [random_glob(rng, name) for _ in range(rng.randrange(0, 3))],
        }
        if rng.random() < 0.5:
            content["allow"].append("*")
        if rng.random() < 0.3:
            content["allow_ip_literals"] = False
        ours = servership.ServerAcl(content).check(name).allowed
        theirs = synapse_allows(content, host_without_port(name))
        assert ours == theirs, (content, name)
        checked += 1
        denied += not ours
    # The sample exercises both answers.
    assert 0.1 * checked < denied < 0.9 * checked


@pytest.mark.parametrize(
    ("content", "name"),
    [
        ({"allow": ["*"], "deny": ["evil.example"]}, "EVIL.example"),
        ({"allow": ["*"], "deny": ["evil.example"]}, "Evil.Example:8448"),
        ({"allow": ["*.good.example"]}, "A.GOOD.EXAMPLE"),
        ({"allow": ["*"], "deny": ["*" * 1100 + "evil.example"]}, "X.EVIL.example"),
        ({"allow": ["*"], "allow_ip_literals": False}, "1.2.3.4:8448"),
        ({"allow": ["*"], "allow_ip_literals": False}, "[::1]:8448"),
        ({"allow": ["*"], "allow_ip_literals": False}, "01.2.3.4"),
    ],
)
def test_same_verdict_as_synapse_on_the_issue_cases(content: dict, name: str) -> None:
    ours = servership.ServerAcl(content).check(name).allowed
    assert ours == synapse_allows(content, host_without_port(name))
