"""Pure helpers of the PostgreSQL store: rows to views, and plans to SQL payloads.

Nothing here touches the database; the store calls these before and after its round trips.
"""

from __future__ import annotations

from typing import Any

import attrs

from tasker_trio.models import StepEdge, Task, WorkflowStep
from tasker_trio.models.codec import unstructure
from tasker_trio.store.plan import Plan, TaskView


def plan_effects(plan: Plan, after: TaskView, now: float, processor_id: str) -> dict[str, Any]:
    """The audit records, messages and dead letter of ``plan`` (`write_plan_effects`)."""
    dead_letter = None
    if plan.dead_letter is not None:
        dead_letter = {
            "reason": plan.dead_letter.reason,
            "details": unstructure(dict(plan.dead_letter.details)),
            "snapshot": {
                "task": after.task.to_json(),
                "steps": [s.to_json() for s in after.steps],
            },
        }
    return {
        "task_uuid": plan.task_uuid,
        "now": now,
        "processor_id": processor_id,
        "step_transitions": [
            {
                "step_uuid": c.step_uuid,
                "from_state": str(c.from_state),
                "to_state": str(c.to_state),
                "event": str(c.event),
                "metadata": unstructure(dict(c.metadata)),
            }
            for c in plan.step_changes
        ],
        "task_transitions": [
            {
                "from_state": str(c.from_state),
                "to_state": str(c.to_state),
                "event": str(c.event),
                "metadata": unstructure(dict(c.metadata)),
            }
            for c in plan.task_changes
        ],
        "messages": [
            {"queue": m.queue, "payload": m.payload, "delay": m.delay} for m in plan.messages
        ],
        "dead_letter": dead_letter,
    }


def view_from_row(row: dict[str, Any]) -> TaskView:
    return TaskView(
        task=Task.from_json(row["task"]),
        steps=tuple(WorkflowStep.from_json(s) for s in row["steps"]),
        edges=tuple(StepEdge.from_json(e) for e in row["edges"]),
    )


def view_after(view: TaskView, plan: Plan, now: float) -> tuple[TaskView, list[str]]:
    """The view once ``plan`` is applied at ``now``, and the uuids of the steps it changes.

    The same field rules as the memory store: one evolve per changed step (its updates, its
    last state, ``updated_at``); the task takes its last state, ``updated_at`` and, when
    terminal, ``completed_at``.
    """
    updates: dict[str, dict[str, Any]] = {}
    for change in plan.step_changes:
        fields = updates.setdefault(change.step_uuid, {})
        fields.update(change.updates)
        fields["state"] = change.to_state
    steps = tuple(
        attrs.evolve(s, updated_at=now, **updates[s.step_uuid]) if s.step_uuid in updates else s
        for s in view.steps
    )
    task = view.task
    if plan.task_changes:
        state = plan.task_changes[-1].to_state
        completed_at = now if state.is_terminal else task.completed_at
        task = attrs.evolve(task, state=state, updated_at=now, completed_at=completed_at)
    return TaskView(task=task, steps=steps, edges=view.edges), list(updates)
