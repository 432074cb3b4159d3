"""The `Store` protocol: coarse, atomic, domain-level operations on tasks and steps.

Each operation is one atomic unit (one transaction in PostgreSQL, one uninterrupted stretch
of code in memory): it changes state, appends the audit records (``sort_key`` 1, 2, 3, … and
one ``most_recent`` per entity), and sends the messages the change implies — together, or not
at all. Orchestration decides changes in pure services and passes them as a planner
``(view, now) -> Plan`` that the store runs under the task's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    DeadLetterEntry,
    StepEdge,
    StepExecutionResult,
    Task,
    Transition,
    WorkflowStep,
)
from tasker_trio.models.codec import copy_json
from tasker_trio.state_machine import TaskState
from tasker_trio.store.plan import Plan, TaskView

Planner = Callable[[TaskView, float], Plan]
"""Decides a plan from a snapshot and the store's current time; must be pure and quick."""


@attrs.frozen(kw_only=True)
class MessageRef:
    """Which queue message an operation consumes (deleted in the same atomic operation)."""

    queue: str
    msg_id: int


@attrs.frozen(kw_only=True)
class ClaimedStep:
    """A step a worker claimed, with everything its handler sees (semantics §10)."""

    step: WorkflowStep
    task: Task
    dependency_results: dict[str, dict[str, Any]]

    @classmethod
    def from_view(cls, view: TaskView, step: WorkflowStep) -> ClaimedStep:
        """``step`` (as claimed) of the task ``view`` shows, with its ancestors' results.

        Handlers get copies of the JSON data: what they do to their context never reaches
        the store, nor the view (as with a database, where every read is a copy).
        """
        return cls(
            step=attrs.evolve(step, step_config=copy_json(step.step_config)),
            task=attrs.evolve(view.task, context=copy_json(view.task.context)),
            dependency_results=copy_json(view.dependency_results(step.step_uuid)),
        )


@attrs.frozen(kw_only=True)
class ClaimOutcome:
    """What a claim did: ``claimed`` is set when the worker should run the handler.

    ``reason`` says why not otherwise: ``not_enqueued`` (a duplicate or stale message, which
    the store deleted when the step is past it), ``lease_alive`` (another worker holds it),
    ``exhausted`` (the lease expired on the last attempt: recorded as a failure),
    ``unknown_step``.
    """

    claimed: ClaimedStep | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class QueuedClaim:
    """A worker-queue message read by `Store.claim_from_queue`, and its step's claim.

    ``outcome`` is None when the message is not a step message: the worker hydrates it,
    which names what is wrong, and archives it as poison.
    """

    message: QueueMessage
    outcome: ClaimOutcome | None


@attrs.frozen(kw_only=True)
class RecordOutcome:
    """What recording a result did: ``accepted`` when it was the step's current attempt.

    ``handed_over``: its notice went straight to result processing in this process
    (`SupportsHandoff`) rather than through the result queue.
    """

    accepted: bool
    reason: str | None = None
    handed_over: bool = False


class Store(Protocol):
    """Tasks, steps, edges, transitions, results and dead letters."""

    def now(self) -> float:
        """The store's clock (the Trio clock in memory, wall-clock time in PostgreSQL)."""
        ...

    async def create_task(
        self,
        task: Task,
        steps: Sequence[WorkflowStep],
        edges: Sequence[StepEdge],
        *,
        planner: Planner,
        consumed: Sequence[MessageRef] = (),
    ) -> tuple[Task, bool]:
        """Create a task and its graph, then apply ``planner`` to it, atomically.

        When a task with the same ``identity_hash`` exists, nothing is created and that task
        is returned with ``False``. ``consumed`` are the queue messages that asked for it (a
        task request): deleted in the same atomic operation, also when the task existed
        already, and not at all when the planner raises.
        """
        ...

    async def apply(
        self,
        task_uuid: str,
        planner: Planner,
        *,
        consumed: Sequence[MessageRef] = (),
        durable: bool = True,
    ) -> tuple[Plan, TaskView]:
        """Run ``planner`` on the task's current view under its lock and apply the plan.

        ``consumed`` are the queue messages the plan processes (e.g. step result notices):
        they are deleted in the same atomic operation — also when the plan changes nothing
        (a duplicate) — and not at all when the planner raises or the task is unknown.
        ``durable=False`` marks a plan that only moves its task along, which a store may
        commit without waiting for the disk (PostgreSQL with ``durability="outcomes"``).

        Returns the plan applied and the view after it. Raises `TaskNotFound`.
        """
        ...

    async def claim_step(
        self, step_uuid: str, *, lease_seconds: float, worker_id: str, message: MessageRef
    ) -> ClaimOutcome:
        """Claim an enqueued step (or reclaim one whose lease expired) for a worker."""
        ...

    async def claim_from_queue(
        self,
        queue: str,
        *,
        limit: int,
        visibility_timeout: float,
        lease_seconds: float,
        worker_id: str,
    ) -> list[QueuedClaim]:
        """Read up to ``limit`` messages of a worker queue and claim each one's step.

        The same as `Broker.read` followed by `claim_step` for every message that is a step
        message, in one atomic operation where the backend can (one round trip in
        PostgreSQL). Oldest message first.
        """
        ...

    async def read_for_processing(
        self, queue: str, *, limit: int, visibility_timeout: float
    ) -> list[QueueMessage]:
        """`Broker.read` for an orchestration consumer whose messages name a task.

        A backend may read each message's task with it, so that the `apply` that processes
        the message needs no read of its own (PostgreSQL); `apply` still re-reads and
        re-plans when the task changed since.
        """
        ...

    async def extend_lease(self, step_uuid: str, attempt: int, *, lease_seconds: float) -> bool:
        """Push the lease of the step's current attempt; False if the attempt is superseded."""
        ...

    async def record_result(
        self, result: StepExecutionResult, *, message: MessageRef | None, result_queue: str
    ) -> RecordOutcome:
        """Record an attempt's result, notify orchestration, delete the step message.

        Fenced: only the step's current attempt, while in progress, is accepted; any other
        result is kept in the audit (`results_of`) and ignored.
        """
        ...

    async def get_task(self, task_uuid: str) -> Task:
        """The task (raises `TaskNotFound`)."""
        ...

    async def get_view(self, task_uuid: str) -> TaskView:
        """The task with its steps and edges (raises `TaskNotFound`)."""
        ...

    async def get_step(self, step_uuid: str) -> WorkflowStep:
        """One step (raises `StepNotFound`)."""
        ...

    async def list_tasks(self, states: Sequence[TaskState] | None = None) -> list[Task]:
        """Tasks, optionally only those in ``states``, oldest first."""
        ...

    async def transitions(self, entity_id: str) -> list[Transition]:
        """The audit trail of a task or a step, in ``sort_key`` order."""
        ...

    async def results_of(self, step_uuid: str) -> list[StepExecutionResult]:
        """Every result reported for a step, accepted or not, in arrival order."""
        ...

    async def tasks_due_for_retry(self, now: float) -> list[str]:
        """Non-terminal tasks with a step waiting for a retry whose backoff has passed."""
        ...

    async def earliest_retry_at(self) -> float | None:
        """The earliest ``next_retry_at`` among steps waiting for a retry (live tasks)."""
        ...

    async def dead_letters(self, *, include_resolved: bool = False) -> list[DeadLetterEntry]:
        """Dead-letter entries, oldest first."""
        ...

    async def resolve_dead_letter(self, entry_id: str, *, resolution: str) -> DeadLetterEntry:
        """Mark an entry resolved with the operator's note (raises `DeadLetterNotFound`)."""
        ...

    # A timeout parameter, not a cancel scope: the PostgreSQL side waits with a server-side
    # timeout (PGMQ's read_with_poll, LISTEN), and the protocol mirrors it.
    def change_event(self, task_uuid: str) -> trio.Event:
        """The event the task's next state change sets (as `wait_for_change` wakes).

        Take it *before* reading the task, then wait on it: a change that lands between
        the read and the wait still wakes the waiter.
        """
        ...

    async def wait_for_change(
        self,
        task_uuid: str,
        *,
        timeout: float,  # noqa: ASYNC109
        event: trio.Event | None = None,
    ) -> Task | None:
        """Return when the task's state changes (a task transition), or after ``timeout``.

        With ``event`` (from `change_event`), on the change that sets it. Returns the task
        as that change left it when the store has it at hand (the memory store; on
        PostgreSQL, a change this process committed), else None: read it (`get_task`).

        Step-level changes alone (a claim, a recorded result) do not wake it: waiters care
        about where the task stands, and a wake-up per step change would cost every step.
        A store may also leave it asleep through transitions that end in the state they
        started from (PostgreSQL does: there a wake-up costs the waiter a read).
        """
        ...


class LocalWorker(Protocol):
    """A worker in the store's own process, which takes steps as plans enqueue them.

    A store that supports handoffs (`SupportsHandoff`) claims a plan's ready steps for it in
    the plan's own atomic operation, while it has free slots, instead of leaving them for a
    read of the queue.
    """

    worker_id: str
    lease_seconds: float

    def serves(self, queue: str) -> bool:
        """Whether this worker runs the steps of ``queue``."""
        ...

    def reserve(self, wanted: int) -> int:
        """Take up to ``wanted`` free slots at once (none once it stops); return how many."""
        ...

    def release(self, count: int) -> None:
        """Give back reserved slots that no claim used."""
        ...

    def deliver(self, claims: Sequence[QueuedClaim]) -> None:
        """Run these claimed steps, one reserved slot each (never blocks)."""
        ...


class LocalResults(Protocol):
    """Result processing in the store's own process, which takes results as workers record them."""

    @property
    def hold_seconds(self) -> float:
        """How long a handed-over notice stays hidden from every other reader of its queue."""
        ...

    def deliver(self, message: QueueMessage) -> None:
        """Process this result notice as if it had been read from its queue (never blocks)."""
        ...


@runtime_checkable
class SupportsHandoff(Protocol):
    """A store that can skip queue round trips between the orchestration and the workers of
    one process (the PostgreSQL store; in memory a queue is as cheap as a handoff)."""

    def hand_off(
        self, *, worker: LocalWorker | None = None, results: LocalResults | None = None
    ) -> None:
        """Hand ready steps to ``worker`` and recorded results to ``results`` from now on."""
        ...
