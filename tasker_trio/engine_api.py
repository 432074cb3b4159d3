"""`Engine`: what `open_engine` yields — submit tasks, wait for them, inspect and operate.

Every method is a thin call into orchestration (through the command processor) or the
store; the engine holds no business logic of its own.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio

from tasker_trio.actors import ActorRegistry, RegistryStatistics
from tasker_trio.errors import ConfigurationError, StepNotFound, WaitTimeout
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    DeadLetterEntry,
    Task,
    TaskRequest,
    Transition,
    WorkflowStep,
)
from tasker_trio.orchestration.command_processor import CommandProcessor
from tasker_trio.orchestration.commands import InitializeTask
from tasker_trio.orchestration.context import OrchestrationContext
from tasker_trio.orchestration.services.operator_actions import OperatorService
from tasker_trio.state_machine import TaskEvent, TaskState
from tasker_trio.store.protocol import Store
from tasker_trio.templates import TemplateRegistry
from tasker_trio.worker.actor import WorkerContext

SETTLED_STATES = frozenset(
    {
        TaskState.COMPLETE,
        TaskState.ERROR,
        TaskState.CANCELLED,
        TaskState.RESOLVED_MANUALLY,
        TaskState.BLOCKED_BY_FAILURES,
    }
)
"""States `Engine.wait_for_task` returns on: terminal, or blocked until an operator acts."""


async def wait_settled(store: Store, task_uuid: str, *, deadline: float, limit: float) -> Task:
    """The task once it is in one of the `SETTLED_STATES` (`Engine.wait_for_task`).

    Raises `WaitTimeout` (saying ``limit`` seconds) at ``deadline`` (`trio.current_time`).
    """
    while True:
        changed = store.change_event(task_uuid)  # before the read: no change missed
        task = await store.get_task(task_uuid)
        if task.state in SETTLED_STATES:
            return task
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            raise WaitTimeout(task_uuid, limit, task.state.value)
        seen = await store.wait_for_change(task_uuid, timeout=min(remaining, 1.0), event=changed)
        # Settled as the change left it: no read. Anything else may have moved on since the
        # change; the next pass takes a new event and reads it again.
        if seen is not None and seen.state in SETTLED_STATES:
            return seen


@attrs.frozen(kw_only=True)
class Submission:
    """What `Engine.submit` returns: the task, and whether this call created it."""

    task_uuid: str
    created: bool
    task: Task


@attrs.frozen(kw_only=True)
class EngineStatistics:
    """A snapshot of the engine's figures."""

    tasks_by_state: dict[str, int]
    orchestration: RegistryStatistics | None
    workers: RegistryStatistics | None
    steps_executed: int
    poison_messages: dict[str, int]
    result_queue_depth: int
    steps_handed_over: int = 0
    """Steps claimed for this process's workers by the plan that enqueued them (PostgreSQL,
    orchestration and workers in one process; see `open_engine`'s ``handoffs``)."""
    results_handed_over: int = 0
    """Results this process's workers handed straight to its result processing (idem)."""


class Engine:
    """A running tasker_trio engine (use `open_engine` to get one)."""

    def __init__(
        self,
        *,
        context: OrchestrationContext,
        commands: CommandProcessor | None,
        orchestration: ActorRegistry[OrchestrationContext] | None,
        worker: WorkerContext | None,
        worker_registry: ActorRegistry[WorkerContext] | None,
        backend: str = "memory",
    ) -> None:
        self.backend = backend
        """``"memory"`` or ``"postgres"``."""
        self._context = context
        self._store = context.store
        self._commands = commands
        self._orchestration = orchestration
        self._worker = worker
        self._worker_registry = worker_registry
        self._operator = OperatorService(context.store)

    @property
    def templates(self) -> TemplateRegistry:
        """The `TemplateRegistry` of the engine."""
        return self._context.templates

    def now(self) -> float:
        """The store's clock: the time scale of the audit trail and of every task's times."""
        return self._store.now()

    async def submit(
        self,
        namespace: str,
        name: str,
        context: dict[str, Any] | None = None,
        *,
        version: str | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        **options: Any,
    ) -> Submission:
        """Request a task of ``namespace/name`` (latest version unless ``version``).

        ``options`` are the other `TaskRequest` fields (tags, initiator, source_system,
        reason, correlation_id).

        Raises:
            UnknownTemplate: no such template (or version).
            InvalidContext: ``context`` fails the template's ``input_schema``; nothing is
                created.
            InvalidTaskRequest: e.g. a ``caller_provided`` template without idempotency key.
        """
        request = TaskRequest.create(
            namespace,
            name,
            context,
            version=version,
            idempotency_key=idempotency_key,
            priority=priority,
            **options,
        )
        return await self.submit_request(request)

    async def submit_request(self, request: TaskRequest) -> Submission:
        """Like `submit`, with a ready-made `TaskRequest`.

        Raises:
            ConfigurationError: this engine runs workers only (``orchestration=False``).
        """
        if self._commands is None:
            raise ConfigurationError(
                "this engine runs workers only (orchestration=False); submit tasks through "
                "an engine that runs orchestration on the same database"
            )
        outcome = await self._commands.process(InitializeTask(request=request))
        return Submission(
            task_uuid=outcome.task.task_uuid, created=outcome.created, task=outcome.task
        )

    async def wait_for_task(self, task_uuid: str, timeout: float | None = None) -> Task:  # noqa: ASYNC109
        """Wait until the task is terminal or blocked by failures, and return it.

        Raises:
            TaskNotFound: no such task.
            WaitTimeout: it did not settle within ``timeout`` seconds.
        """
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        return await wait_settled(self._store, task_uuid, deadline=deadline, limit=timeout or 0.0)

    async def get_task(self, task_uuid: str) -> Task:
        """The task (raises `TaskNotFound`)."""
        return await self._store.get_task(task_uuid)

    async def get_steps(self, task_uuid: str) -> list[WorkflowStep]:
        """The task's steps, in template order."""
        return list((await self._store.get_view(task_uuid)).steps)

    async def get_step(self, task_uuid: str, step: str) -> WorkflowStep:
        """One step of the task, by uuid or by name (raises `StepNotFound`)."""
        for candidate in await self.get_steps(task_uuid):
            if step in (candidate.step_uuid, candidate.name):
                return candidate
        raise StepNotFound(step, task_uuid)

    async def get_transitions(self, entity_id: str) -> list[Transition]:
        """The audit trail of a task or a step (``sort_key`` order)."""
        return await self._store.transitions(entity_id)

    async def get_results(self, task_uuid: str) -> dict[str, dict[str, Any] | None]:
        """Each step's result by step name (``None`` for steps without one)."""
        return {s.name: s.results for s in await self.get_steps(task_uuid)}

    async def cancel_task(self, task_uuid: str, *, reason: str = "cancelled") -> Task:
        """Cancel the task; handlers of its running steps are cancelled through their scopes."""
        cancelled = await self._operator.cancel_task(task_uuid, reason=reason)
        if self._worker is not None:
            self._worker.cancel_steps(cancelled)
        return await self.get_task(task_uuid)

    async def reset_step(self, task_uuid: str, step: str, *, note: str = "") -> Task:
        """Reset a failed step (by uuid or name) so it runs again from attempt 1."""
        target = await self.get_step(task_uuid, step)
        view = await self._operator.reset_step(task_uuid, target.step_uuid, note=note)
        return view.task

    async def resolve_step(self, task_uuid: str, step: str, *, note: str = "") -> Task:
        """Declare a step resolved without a result; its dependants may run."""
        target = await self.get_step(task_uuid, step)
        view = await self._operator.resolve_step(task_uuid, target.step_uuid, note=note)
        self._cancel_running([target.step_uuid])
        return view.task

    async def complete_step(
        self, task_uuid: str, step: str, result: dict[str, Any], *, note: str = ""
    ) -> Task:
        """Complete a step with ``result`` supplied by an operator; its dependants may run."""
        target = await self.get_step(task_uuid, step)
        view = await self._operator.complete_step(task_uuid, target.step_uuid, result, note=note)
        self._cancel_running([target.step_uuid])
        return view.task

    async def give_up_task(self, task_uuid: str, *, note: str = "") -> Task:
        """Abandon a blocked task (``blocked_by_failures -> error``)."""
        view = await self._operator.finish_blocked_task(task_uuid, TaskEvent.GIVE_UP, note=note)
        return view.task

    async def resolve_task(self, task_uuid: str, *, note: str = "") -> Task:
        """Declare a blocked task resolved (``blocked_by_failures -> resolved_manually``)."""
        view = await self._operator.finish_blocked_task(
            task_uuid, TaskEvent.MANUAL_RESOLUTION, note=note
        )
        return view.task

    async def dead_letters(self, *, include_resolved: bool = False) -> list[DeadLetterEntry]:
        """Dead-letter entries, oldest first."""
        return await self._store.dead_letters(include_resolved=include_resolved)

    async def resolve_dead_letter(self, entry_id: str, *, resolution: str) -> DeadLetterEntry:
        """Mark a dead-letter entry resolved (raises `DeadLetterNotFound`)."""
        return await self._store.resolve_dead_letter(entry_id, resolution=resolution)

    async def statistics(self) -> EngineStatistics:
        """A snapshot of tasks by state, actors, workers, poison messages and queues."""
        counts: dict[str, int] = {}
        for task in await self._store.list_tasks():
            counts[task.state.value] = counts.get(task.state.value, 0) + 1
        queue = await self._context.broker.queue_statistics(ORCHESTRATION_STEP_RESULTS)
        poison = dict(self._context.poison_count)
        if self._worker is not None and self._worker.poisoned:
            poison["worker_queues"] = self._worker.poisoned
        return EngineStatistics(
            tasks_by_state=counts,
            orchestration=self._orchestration.statistics() if self._orchestration else None,
            workers=self._worker_registry.statistics() if self._worker_registry else None,
            steps_executed=self._worker.executed if self._worker else 0,
            poison_messages=poison,
            result_queue_depth=queue.depth,
            steps_handed_over=self._worker.steps_handed_over if self._worker else 0,
            results_handed_over=self._worker.results_handed_over if self._worker else 0,
        )

    def _cancel_running(self, step_uuids: list[str]) -> None:
        if self._worker is not None:
            self._worker.cancel_steps(step_uuids)
