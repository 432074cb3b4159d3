"""Operator actions: cancel a task; reset, resolve or complete a step; give up or resolve a task.

Each is one atomic store operation that changes the steps, then re-evaluates the task, so a
blocked task resumes (``steps_reset``) once its failed steps are dealt with and only the
affected part of the graph runs again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from tasker_trio.errors import InvalidTransition, StepNotFound
from tasker_trio.orchestration.services.evaluation import reevaluate
from tasker_trio.state_machine import StepEvent, TaskEvent
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import Store

Planner = Callable[[TaskView, float], Plan]


def plan_cancel(reason: str) -> Planner:
    """Cancel the task and every step not yet terminal."""

    def planner(view: TaskView, now: float) -> Plan:
        builder = PlanBuilder(view)
        if view.task.state.is_terminal:
            return builder.build()
        cancelled = []
        for step in view.steps:
            if not step.state.is_terminal:
                builder.step_event(
                    step.step_uuid,
                    StepEvent.CANCEL,
                    updates={"lease_expires_at": None},
                    metadata={"reason": reason},
                )
                cancelled.append(step.step_uuid)
        builder.task_event(TaskEvent.CANCEL, reason=reason)
        builder.outcome["cancelled_steps"] = cancelled
        return builder.build()

    return planner


def plan_step_action(
    step_uuid: str, event: StepEvent, *, updates: dict[str, Any] | None = None, note: str
) -> Planner:
    """Apply an operator ``event`` to one step, then re-evaluate the task."""

    def planner(view: TaskView, now: float) -> Plan:
        builder = PlanBuilder(view)
        if step_uuid not in builder.steps:
            raise StepNotFound(step_uuid, view.task.task_uuid)
        if view.task.state.is_terminal:
            raise InvalidTransition(
                "task",
                view.task.state.value,
                f"{event.value} of a step",
                "the task is terminal; its steps can no longer change",
            )
        builder.step_event(
            step_uuid, event, updates=updates, metadata={"operator": True, "note": note}
        )
        reevaluate(builder, now)
        return builder.build()

    return planner


def plan_task_action(event: TaskEvent, note: str) -> Planner:
    """Give up on (``give_up``) or resolve (``manual_resolution``) a blocked task."""

    def planner(view: TaskView, now: float) -> Plan:
        builder = PlanBuilder(view)
        builder.task_event(event, operator=True, note=note)
        return builder.build()

    return planner


@attrs.frozen
class OperatorService:
    """What operators (and `Engine`) do to tasks and steps by hand."""

    store: Store

    async def cancel_task(self, task_uuid: str, *, reason: str = "cancelled") -> list[str]:
        """Cancel the task; return the uuids of the steps cancelled."""
        plan, _ = await self.store.apply(task_uuid, plan_cancel(reason))
        return list(plan.outcome.get("cancelled_steps", []))

    async def reset_step(self, task_uuid: str, step_uuid: str, *, note: str = "") -> TaskView:
        """Reset a failed step to ``pending`` with its attempts back to 0."""
        updates = {"attempts": 0, "next_retry_at": None, "results": None}
        planner = plan_step_action(step_uuid, StepEvent.RESET, updates=updates, note=note)
        return (await self.store.apply(task_uuid, planner))[1]

    async def resolve_step(self, task_uuid: str, step_uuid: str, *, note: str = "") -> TaskView:
        """Declare a step resolved without a result; its dependants may run."""
        updates = {"next_retry_at": None, "lease_expires_at": None}
        planner = plan_step_action(
            step_uuid, StepEvent.RESOLVE_MANUALLY, updates=updates, note=note
        )
        return (await self.store.apply(task_uuid, planner))[1]

    async def complete_step(
        self, task_uuid: str, step_uuid: str, result: dict[str, Any], *, note: str = ""
    ) -> TaskView:
        """Complete a step with an operator-supplied result; its dependants may run."""
        updates = {"results": dict(result), "next_retry_at": None, "lease_expires_at": None}
        planner = plan_step_action(
            step_uuid, StepEvent.COMPLETE_MANUALLY, updates=updates, note=note
        )
        return (await self.store.apply(task_uuid, planner))[1]

    async def finish_blocked_task(self, task_uuid: str, event: TaskEvent, *, note: str) -> TaskView:
        """``give_up`` (-> error) or ``manual_resolution`` (-> resolved_manually)."""
        return (await self.store.apply(task_uuid, plan_task_action(event, note)))[1]
