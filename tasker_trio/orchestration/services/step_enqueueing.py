"""Step enqueueing for retries: enqueue steps whose backoff has ended.

The enqueueing itself (viable steps -> ``enqueued`` + a worker message, in one plan) is
`tasker_trio.orchestration.services.enqueue_plan.enqueue_viable_steps`, shared with
evaluation.
"""

from __future__ import annotations

import attrs

from tasker_trio.orchestration.services.enqueue_plan import enqueue_viable_steps
from tasker_trio.orchestration.services.evaluation import current_snapshot, reevaluate
from tasker_trio.orchestration.support import viable_steps
from tasker_trio.state_machine import TaskEvent, TaskState
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import Store


def plan_retry_wakeup(view: TaskView, now: float) -> Plan:
    """Enqueue the task's steps whose backoff has ended.

    A task parked in ``waiting_for_retry`` is woken with ``retry_ready``; one resting in
    ``waiting_for_dependencies`` is re-evaluated; one in ``steps_in_process`` (other steps
    still running) just gets the due steps enqueued — it stays in process. A retry is thus
    never held back by an unrelated branch still in flight.
    """
    builder = PlanBuilder(view)
    state = view.task.state
    snapshot = current_snapshot(builder)
    if not viable_steps(snapshot, now):
        if state == TaskState.WAITING_FOR_RETRY:
            reevaluate(builder, now)
        return builder.build()
    if state == TaskState.WAITING_FOR_RETRY:
        builder.task_event(TaskEvent.RETRY_READY)
        enqueue_viable_steps(builder, snapshot, now)
        builder.task_event(TaskEvent.STEPS_ENQUEUED)
    elif state == TaskState.STEPS_IN_PROCESS:
        enqueue_viable_steps(builder, snapshot, now)
    elif state == TaskState.WAITING_FOR_DEPENDENCIES:
        reevaluate(builder, now)
    return builder.build()


@attrs.frozen
class StepEnqueueingService:
    """Enqueue the retries of a task whose backoff has passed."""

    store: Store

    async def call(self, task_uuid: str) -> list[str]:
        """Wake ``task_uuid`` if due; return the names of the steps enqueued."""
        plan, _ = await self.store.apply(task_uuid, plan_retry_wakeup, durable=False)
        enqueued: list[str] = list(plan.outcome.get("enqueued", []))
        return enqueued
