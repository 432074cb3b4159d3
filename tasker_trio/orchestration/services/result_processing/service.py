"""The result processing service: a worker's result -> step complete / retry / error.

A hydrated `StepResultMessage` names the step and the attempt. In one atomic operation the
step leaves ``enqueued_*_for_orchestration`` (complete, waiting_for_retry with its
``next_retry_at``, or error) and the task is re-evaluated, enqueueing whatever became ready.
Duplicates and superseded attempts change nothing (at-least-once delivery).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs

from tasker_trio.errors import StepNotFound
from tasker_trio.models import StepResultMessage
from tasker_trio.orchestration.services.evaluation import reevaluate
from tasker_trio.orchestration.services.result_processing.error_handling import handle_failure
from tasker_trio.state_machine import StepEvent, StepState
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import Store


def plan_result(
    notice: StepResultMessage, *, rng: random.Random | None
) -> Callable[[TaskView, float], Plan]:
    """The planner that processes ``notice`` against the task's current view."""

    def planner(view: TaskView, now: float) -> Plan:
        builder = PlanBuilder(view)
        step = builder.steps.get(notice.step_uuid)
        if step is None:
            raise StepNotFound(notice.step_uuid, notice.task_uuid)
        if step.attempts != notice.attempt:
            builder.outcome["ignored"] = "superseded_attempt"
            return builder.build()
        succeeded: bool | None
        if step.state == StepState.ENQUEUED_FOR_ORCHESTRATION:
            builder.step_event(
                step.step_uuid, StepEvent.COMPLETE, metadata={"attempt": step.attempts}
            )
            succeeded = True
        elif step.state == StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION:
            retrying = handle_failure(builder, step, now, rng=rng)
            builder.outcome["retry_scheduled"] = retrying
            succeeded = False if retrying else None
        else:
            builder.outcome["ignored"] = f"step is {step.state.value}"
            return builder.build()
        reevaluate(builder, now, step_succeeded=succeeded)
        return builder.build()

    return planner


@attrs.define
class ResultProcessingService:
    """Process step results; ``rng`` drives the backoff jitter (seed it in tests)."""

    store: Store
    rng: random.Random | None = attrs.field(factory=random.Random)

    async def call(self, notice: StepResultMessage) -> dict[str, Any]:
        """Process one result notice; return what happened (``status``, ``enqueued``...)."""
        plan, _ = await self.store.apply(notice.task_uuid, plan_result(notice, rng=self.rng))
        return dict(plan.outcome)
