"""`OrchestrationCommand`s: the messages the command processor routes to actors."""

from __future__ import annotations

from typing import Any

import attrs

from tasker_trio.actors import Message
from tasker_trio.models import StepResultMessage, Task, TaskRequest
from tasker_trio.orchestration.services.task_initialization.service import InitializationResult
from tasker_trio.store.protocol import MessageRef


@attrs.frozen(kw_only=True)
class InitializeTask(Message[InitializationResult]):
    """Create (or find) the task for a request.

    ``consumed`` is the queue message that carried the request, deleted by the store
    operation that creates (or finds) the task — or empty when the caller deletes it.
    """

    request: TaskRequest
    consumed: tuple[MessageRef, ...] = ()


@attrs.frozen(kw_only=True)
class ProcessStepResults(Message[dict[str, Any]]):
    """Process workers' result notices, all for one task, in one store operation.

    ``consumed`` are the queue messages that carried the notices (same order), deleted by
    that store operation — or empty when the caller deletes its messages itself.
    """

    task_uuid: str
    notices: tuple[StepResultMessage, ...]
    consumed: tuple[MessageRef, ...] = ()


@attrs.frozen(kw_only=True)
class EnqueueReadySteps(Message[list[str]]):
    """Wake a task parked for a retry and enqueue what is due."""

    task_uuid: str


@attrs.frozen(kw_only=True)
class FinalizeTask(Message[Task]):
    """Re-evaluate a task and finalize it if nothing is left to run."""

    task_uuid: str


OrchestrationCommand = InitializeTask | ProcessStepResults | EnqueueReadySteps | FinalizeTask
"""Every command orchestration accepts."""
