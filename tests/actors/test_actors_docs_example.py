"""The example in docs/actors.md runs and prints what the page says it prints."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "actors.md"
MARKER = "<!-- tested: tests/actors/test_actors_docs_example.py runs this block -->"


def _example() -> tuple[str, list[str]]:
    """The tested code block of the page, and the output the page promises."""
    text = DOC.read_text()
    after = text.split(MARKER, 1)[1]
    code = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    promised = re.search(r"Running it prints `(.*?)`\.", after, re.DOTALL)
    assert code is not None
    assert promised is not None
    return code.group(1), ast.literal_eval(" ".join(promised.group(1).split("\n")))


async def test_docs_example_runs_as_documented() -> None:
    code, promised = _example()
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    assert await namespace["main"]() == promised
