"""Draw a template's DAG as a Mermaid ``flowchart TD`` (``python -m tasker_trio templates graph``).

One node per step, labelled with its name — and its type when it is not ``standard``
(decision steps are drawn as rhombi) — and one edge ``parent --> child`` per dependency.
Node ids are derived from step names (``step_<name>``) because a bare name like ``end`` is a
Mermaid keyword.
"""

from __future__ import annotations

import re

from tasker_trio.models.policy import StepType
from tasker_trio.templates.task_template import TaskTemplate

_NOT_ID = re.compile(r"[^A-Za-z0-9_]")


def _node_ids(names: list[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    used: set[str] = set()
    for index, name in enumerate(names):
        node_id = "step_" + _NOT_ID.sub("_", name)
        if node_id in used:
            node_id = f"{node_id}_{index}"
        used.add(node_id)
        ids[name] = node_id
    return ids


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(template: TaskTemplate) -> str:
    """The template's DAG as Mermaid flowchart source (ends with a newline).

    Example:
        >>> print(to_mermaid(template))  # doctest: +SKIP
        flowchart TD
            %% examples/diamond_workflow@1.0.0
            step_start["start"]
            ...
            step_start --> step_branch_b
    """
    ids = _node_ids([step.name for step in template.steps])
    lines = ["flowchart TD", f"    %% {template.identifier}"]
    for step in template.steps:
        node_id = ids[step.name]
        if step.step_type is StepType.STANDARD:
            lines.append(f"    {node_id}[{_label(step.name)}]")
        elif step.step_type is StepType.DECISION:
            lines.append(f"    {node_id}{{{_label(f'{step.name} (decision)')}}}")
        else:
            lines.append(f"    {node_id}[{_label(f'{step.name} ({step.step_type.value})')}]")
    for step in template.steps:
        for parent in step.dependencies:
            if parent in ids:
                lines.append(f"    {ids[parent]} --> {ids[step.name]}")
    return "\n".join(lines) + "\n"
