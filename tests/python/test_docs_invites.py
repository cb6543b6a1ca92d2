"""Every Python session in docs/invites.md really works (doctest against the installed wheel)."""

from __future__ import annotations

import doctest
import pathlib
import re

import pytest


def test_invites_doc_python_sessions(repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)  # the sessions open tests/c/fixtures/... relative to the repository
    text = (repo / "docs" / "invites.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 4, "docs/invites.md lost its Python sessions"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, block in enumerate(blocks):
        test = parser.get_doctest(block, {}, f"docs/invites.md block {i}", "docs/invites.md", 0)
        assert test.examples
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0
    assert results.attempted >= 15
