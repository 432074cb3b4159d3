"""Enqueueing inside a plan: viable steps -> ``enqueued`` + a message to their worker queue.

The transitions and the messages go into the same plan, so the store commits them together
(semantics §6: a step's transition to ``enqueued`` and its message are one atomic change).
"""

from __future__ import annotations

from tasker_trio.models import StepMessage, worker_queue
from tasker_trio.orchestration.support import TaskSnapshot, step_facts, viable_steps
from tasker_trio.state_machine import StepEvent
from tasker_trio.store.plan import PlanBuilder


def enqueue_viable_steps(builder: PlanBuilder, snapshot: TaskSnapshot, now: float) -> list[str]:
    """Enqueue every step ready at ``now``; return their names."""
    by_name = {s.name: s for s in builder.steps.values()}
    enqueued: list[str] = []
    for ready in viable_steps(snapshot, now):
        step = by_name[ready.name]
        builder.step_event(
            step.step_uuid,
            StepEvent.ENQUEUE,
            facts=step_facts(snapshot, ready.name, now),
            updates={"next_retry_at": None},
            metadata={"attempt": step.attempts + 1},
        )
        message = StepMessage(
            task_uuid=step.task_uuid,
            step_uuid=step.step_uuid,
            step_name=step.name,
            namespace=step.namespace,
            attempt=step.attempts + 1,
            correlation_id=builder.task.correlation_id,
        )
        builder.send(worker_queue(step.namespace), message.to_json())
        enqueued.append(step.name)
    builder.outcome.setdefault("enqueued", []).extend(enqueued)
    return enqueued
