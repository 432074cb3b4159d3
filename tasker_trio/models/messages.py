"""The small queue messages of semantics §6 ("database as API": ids, not data).

Queues: `ORCHESTRATION_TASK_REQUESTS`, `ORCHESTRATION_STEP_RESULTS`,
`ORCHESTRATION_TASK_FINALIZATIONS`, and one `worker_queue(namespace)` per namespace.
"""

from __future__ import annotations

import attrs

from tasker_trio.models.base import JsonModel
from tasker_trio.models.task import TaskRequest

ORCHESTRATION_TASK_REQUESTS = "orchestration_task_requests"
"""Task requests submitted through the queue."""
ORCHESTRATION_STEP_RESULTS = "orchestration_step_results"
"""Workers' notices that a step result was recorded."""
ORCHESTRATION_TASK_FINALIZATIONS = "orchestration_task_finalizations"
"""Requests to finalize a task."""


def worker_queue(namespace: str) -> str:
    """The worker queue of a namespace: ``worker_{namespace}_queue``."""
    return f"worker_{namespace}_queue"


@attrs.frozen(kw_only=True)
class StepMessage(JsonModel):
    """Tells a worker of ``namespace`` that a step is enqueued for ``attempt``."""

    task_uuid: str
    step_uuid: str
    step_name: str
    namespace: str
    attempt: int
    correlation_id: str


@attrs.frozen(kw_only=True)
class StepResultMessage(JsonModel):
    """Tells orchestration that a step's result for ``attempt`` is in the store."""

    task_uuid: str
    step_uuid: str
    attempt: int
    success: bool
    correlation_id: str


@attrs.frozen(kw_only=True)
class TaskRequestMessage(JsonModel):
    """Asks orchestration to create a task (the request travels whole: it is the input)."""

    request: TaskRequest


@attrs.frozen(kw_only=True)
class TaskFinalizationMessage(JsonModel):
    """Asks orchestration to finalize a task."""

    task_uuid: str
    correlation_id: str
