"""TaskRequestActor, ResultProcessorActor, StepEnqueuerActor, TaskFinalizerActor.

Each actor builds its service in ``started()`` from the shared `OrchestrationContext` and
handles one command type by calling the service. No business logic lives here.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tasker_trio.actors import Actor, handles
from tasker_trio.models import Task
from tasker_trio.orchestration.commands import (
    EnqueueReadySteps,
    FinalizeTask,
    InitializeTask,
    ProcessStepResults,
)
from tasker_trio.orchestration.context import OrchestrationContext
from tasker_trio.orchestration.services.result_processing.service import (
    ResultProcessingService,
)
from tasker_trio.orchestration.services.step_enqueueing import StepEnqueueingService
from tasker_trio.orchestration.services.task_finalization.service import (
    TaskFinalizationService,
)
from tasker_trio.orchestration.services.task_initialization.service import (
    InitializationResult,
    TaskInitializationService,
)


class TaskRequestActor(Actor[OrchestrationContext]):
    """Creates tasks from requests (task initialization service)."""

    concurrency: ClassVar[int] = 4
    mailbox_capacity: ClassVar[int] = 256

    async def started(self) -> None:
        """Build the service."""
        self.service = TaskInitializationService(self.context.store, self.context.templates)

    @handles(InitializeTask)
    async def initialize(self, command: InitializeTask) -> InitializationResult:
        """Create (or find) the task."""
        return await self.service.call(command.request, consumed=command.consumed)


class ResultProcessorActor(Actor[OrchestrationContext]):
    """Processes step results (result processing service).

    Up to 32 tasks' results at once: on PostgreSQL each waits for its plan's round trip, and
    the plans waiting together go in one batch (`tasker_trio.store.postgres._batches`); 8
    at once made batches of ~3 plans for 500 linear tasks on 32 worker slots, 32 make ~9,
    and ~18% more steps per second.
    """

    concurrency: ClassVar[int] = 32
    mailbox_capacity: ClassVar[int] = 1024

    async def started(self) -> None:
        """Build the service."""
        self.service = ResultProcessingService(self.context.store, self.context.rng)

    @handles(ProcessStepResults)
    async def process(self, command: ProcessStepResults) -> dict[str, Any]:
        """Process one task's result notices; kick the retry timer when a retry was scheduled."""
        outcome = await self.service.call(command.task_uuid, command.notices, command.consumed)
        if outcome.get("status") == "waiting_for_retry" or outcome.get("retry_scheduled"):
            self.context.kick_retry_timer()
        return outcome


class StepEnqueuerActor(Actor[OrchestrationContext]):
    """Enqueues retries whose backoff has passed (step enqueueing service)."""

    concurrency: ClassVar[int] = 2
    mailbox_capacity: ClassVar[int] = 256

    async def started(self) -> None:
        """Build the service."""
        self.service = StepEnqueueingService(self.context.store)

    @handles(EnqueueReadySteps)
    async def enqueue(self, command: EnqueueReadySteps) -> list[str]:
        """Wake the task and enqueue what is due."""
        return await self.service.call(command.task_uuid)


class TaskFinalizerActor(Actor[OrchestrationContext]):
    """Finalizes tasks on request (task finalization service)."""

    concurrency: ClassVar[int] = 2
    mailbox_capacity: ClassVar[int] = 256

    async def started(self) -> None:
        """Build the service."""
        self.service = TaskFinalizationService(self.context.store)

    @handles(FinalizeTask)
    async def finalize(self, command: FinalizeTask) -> Task:
        """Re-evaluate and, if done, finalize."""
        return await self.service.call(command.task_uuid)


ORCHESTRATION_ACTORS = (
    TaskRequestActor,
    ResultProcessorActor,
    StepEnqueuerActor,
    TaskFinalizerActor,
)
"""The orchestration actors in start order (stopped in reverse)."""
