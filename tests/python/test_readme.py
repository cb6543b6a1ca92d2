"""The Python session in README.md really works (run as a doctest against the installed wheel)."""

from __future__ import annotations

import doctest
import pathlib
import re


def test_readme_python_session(repo: pathlib.Path) -> None:
    readme = (repo / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no Python session"
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for i, block in enumerate(blocks):
        test = parser.get_doctest(block, {}, f"README.md python block {i}", "README.md", 0)
        assert test.examples
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0
    assert results.attempted >= 5
