"""``tasks show``: print a task of a database, its steps and its dead-letter entries.

Readable lines (`describe_task`: the task's state, times, priority and context, then one line
per step with its state, attempts and result or last error), or with ``--json`` the stored
task, steps and dead-letter entries as one JSON object.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tasker_trio.cli.common import open_client
from tasker_trio.store.plan import TaskView


async def show_task(url: str, task_uuid: str, as_json: bool) -> int:
    """Print the task, its steps and its dead-letter entries (``--json``: as JSON)."""
    async with open_client(url) as backend:
        view = await backend.store.get_view(task_uuid)
        letters = [
            entry
            for entry in await backend.store.dead_letters(include_resolved=True)
            if entry.task_uuid == task_uuid
        ]
    if as_json:
        data = {
            "task": view.task.to_json(),
            "steps": [step.to_json() for step in view.steps],
            "dead_letters": [entry.to_json() for entry in letters],
        }
        print(json.dumps(data, indent=2))
        return 0
    for line in describe_task(view):
        print(line)
    for entry in letters:
        print(f"dead-letter entry {entry.entry_id}: {entry.reason} ({entry.status})")
    return 0


def describe_task(view: TaskView) -> list[str]:
    """The task and its steps as readable lines."""
    task = view.task
    lines = [
        f"task {task.task_uuid}  {task.namespace}/{task.name}@{task.version}  {task.state}",
        f"  created    {_when(task.created_at)}",
        f"  updated    {_when(task.updated_at)}",
    ]
    if task.completed_at is not None:
        lines.append(f"  completed  {_when(task.completed_at)}")
    lines += [
        f"  priority   {task.priority}",
        f"  context    {_short(task.context)}",
        f"steps ({len(view.steps)}):",
    ]
    width = max((len(step.name) for step in view.steps), default=0)
    states = max((len(step.state) for step in view.steps), default=0)
    for step in view.steps:
        line = (
            f"  {step.name:<{width}}  {step.state:<{states}}  "
            f"attempts {step.attempts}/{step.retry.max_attempts}"
        )
        if step.results is not None:
            line += f"  result {_short(step.results)}"
        elif step.last_error is not None:
            line += f"  {step.last_error.error_type}: {step.last_error.message}"
            if step.next_retry_at is not None:
                line += f" (retry at {_when(step.next_retry_at)})"
        lines.append(line.rstrip())
    return lines


def _when(seconds: float) -> str:
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
