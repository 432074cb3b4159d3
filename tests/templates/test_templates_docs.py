"""docs/templates.md stays true: its template examples load and its graph matches the code."""

from __future__ import annotations

import re
from pathlib import Path

from tasker_trio.templates import TaskTemplate, load_template, to_mermaid

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.DOTALL)


def test_full_template_examples_load_without_warnings() -> None:
    templates = [text for text in blocks("yaml") if text.startswith("name:")]
    assert templates
    for text in templates:
        assert TaskTemplate.from_yaml(text, file="docs/templates.md").warnings == ()


def test_mermaid_example_is_what_the_code_draws() -> None:
    (diagram,) = blocks("mermaid")
    assert diagram == to_mermaid(load_template(ROOT / "examples" / "templates" / "diamond.yaml"))
