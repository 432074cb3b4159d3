"""docs/state-machines.md draws exactly the transitions (and guards) of the tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tasker_trio.state_machine import STEP_MACHINE, TASK_MACHINE, MachineSpec

DOC = Path(__file__).parents[2] / "docs" / "state-machines.md"
EDGE = re.compile(r"^\s*(\w+) --> (\w+) : ([\w /]+?)(?: \[(\w+)\])?\s*$")


def diagram_after(heading: str) -> list[str]:
    """The lines of the first Mermaid block after ``heading``."""
    text = DOC.read_text()
    section = text.split(heading, 1)[1]
    block = section.split("```mermaid\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def drawn(lines: list[str]) -> tuple[set[tuple[str, str, str]], dict[tuple[str, str], str]]:
    edges: set[tuple[str, str, str]] = set()
    guards: dict[tuple[str, str], str] = {}
    for line in lines:
        match = EDGE.match(line)
        if match is None:
            continue
        src, dst, events, guard = match.groups()
        for event in events.split(" / "):
            edges.add((src, event.strip(), dst))
            if guard:
                guards[(src, event.strip())] = guard
    return edges, guards


@pytest.mark.parametrize(
    ("heading", "spec"),
    [("## Task state machine", TASK_MACHINE), ("## Step state machine", STEP_MACHINE)],
    ids=["task", "step"],
)
def test_diagram_lists_exactly_the_table(heading: str, spec: MachineSpec[Any, Any, Any]) -> None:
    edges, guards = drawn(diagram_after(heading))
    table = {(s.value, e.value, t.value) for s, e, t in spec.edges()}
    assert edges - table == set(), "drawn but not in the table"
    assert table - edges == set(), "in the table but not drawn"
    assert guards == {(s.value, e.value): g for (s, e), g in spec.guards.items()}


@pytest.mark.parametrize("spec", [TASK_MACHINE, STEP_MACHINE], ids=["task", "step"])
def test_diagram_marks_every_terminal_state(spec: MachineSpec[Any, Any, Any]) -> None:
    heading = "## Task state machine" if spec is TASK_MACHINE else "## Step state machine"
    lines = diagram_after(heading)
    finals = {line.split(" --> ")[0].strip() for line in lines if line.endswith("--> [*]")}
    assert finals == {s.value for s in spec.terminal}
