"""The result processing service: workers' results -> steps complete / retry / error.

Hydrated `StepResultMessage`s name steps and attempts. In one atomic operation per task the
steps leave ``enqueued_*_for_orchestration`` (complete, waiting_for_retry with their
``next_retry_at``, or error) and the task is re-evaluated, enqueueing whatever became ready.
Duplicates and superseded attempts change nothing (at-least-once delivery).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from tasker_trio.models import StepResultMessage
from tasker_trio.orchestration.services.evaluation import reevaluate
from tasker_trio.orchestration.services.result_processing.error_handling import handle_failure
from tasker_trio.state_machine import StepEvent, StepState
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import MessageRef, Store


class UnknownSteps(Exception):
    """A strict `plan_results` planner met notices naming steps the task does not have."""

    def __init__(self, step_uuids: Sequence[str]) -> None:
        super().__init__(f"unknown steps: {', '.join(step_uuids)}")
        self.step_uuids = frozenset(step_uuids)


def plan_results(
    notices: Sequence[StepResultMessage],
    *,
    rng: random.Random | None,
    reject_unknown: bool = False,
) -> Callable[[TaskView, float], Plan]:
    """The planner that processes ``notices`` (all of one task) in one plan.

    Each notice moves its step out of ``enqueued_*_for_orchestration``; then the task is
    re-evaluated once. Batching the results of one task costs one store operation and one
    evaluation instead of one per result (a fan-out's results arrive together). Notices
    naming a step the task does not have are listed in ``outcome["unknown_steps"]`` — or,
    with ``reject_unknown``, make the planner raise `UnknownSteps` (so nothing is applied).
    """

    def planner(view: TaskView, now: float) -> Plan:
        builder = PlanBuilder(view)
        unknown: list[str] = [n.step_uuid for n in notices if n.step_uuid not in builder.steps]
        if unknown and reject_unknown:
            raise UnknownSteps(unknown)
        ignored: list[str] = []
        succeeded = retrying = changed = False
        for notice in notices:
            step = builder.steps.get(notice.step_uuid)
            if step is None:
                continue
            if step.attempts != notice.attempt:
                ignored.append(f"{step.name}: superseded attempt {notice.attempt}")
            elif step.state == StepState.ENQUEUED_FOR_ORCHESTRATION:
                builder.step_event(
                    step.step_uuid, StepEvent.COMPLETE, metadata={"attempt": step.attempts}
                )
                succeeded = changed = True
            elif step.state == StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION:
                retrying |= handle_failure(builder, step, now, rng=rng)
                changed = True
            else:
                ignored.append(f"{step.name}: step is {step.state.value}")
        builder.outcome.update(unknown_steps=unknown, ignored=ignored, retry_scheduled=retrying)
        if changed:
            outcome: bool | None = False if retrying else (True if succeeded else None)
            reevaluate(builder, now, step_succeeded=outcome)
        return builder.build()

    return planner


@attrs.define
class ResultProcessingService:
    """Process step results; ``rng`` drives the backoff jitter (seed it in tests)."""

    store: Store
    rng: random.Random | None = attrs.field(factory=random.Random)

    async def call(
        self,
        task_uuid: str,
        notices: Sequence[StepResultMessage],
        consumed: Sequence[MessageRef] = (),
    ) -> dict[str, Any]:
        """Process the result notices of one task; return what happened.

        ``consumed`` are the queue messages that carried ``notices`` (in the same order), or
        nothing: the store deletes them atomically with the plan — except the messages of
        notices naming a step the task does not have, which stay in the queue for the caller
        to archive as poison (this costs a second planning round, on that rare path only).

        The outcome has ``status`` (when the task was evaluated), ``enqueued``,
        ``retry_scheduled``, ``ignored`` (duplicates, superseded attempts) and
        ``unknown_steps``.
        """
        if consumed:
            if len(consumed) != len(notices):
                raise ValueError("consumed must pair one message with each notice")
            try:
                plan, _ = await self.store.apply(
                    task_uuid,
                    plan_results(notices, rng=self.rng, reject_unknown=True),
                    consumed=consumed,
                    durable=False,  # progress: a store may relax its commit (not an end)
                )
                return dict(plan.outcome)
            except UnknownSteps as exc:
                consumed = [
                    ref
                    for ref, notice in zip(consumed, notices, strict=True)
                    if notice.step_uuid not in exc.step_uuids
                ]
        plan, _ = await self.store.apply(
            task_uuid, plan_results(notices, rng=self.rng), consumed=consumed, durable=False
        )
        return dict(plan.outcome)
