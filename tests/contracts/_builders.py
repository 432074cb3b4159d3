"""Builders for the contract suites: tasks with step graphs, planners, and worker moves.

Everything here goes through the `Store` and `Broker` protocols only, so the same helpers
drive every backend. Planners are written with `PlanBuilder`, like the orchestration
services write theirs, so every plan they produce is legal by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

from tasker_trio.messaging import Broker, QueueMessage
from tasker_trio.models import (
    RetryPolicy,
    StepEdge,
    StepError,
    StepExecutionResult,
    StepMessage,
    Task,
    WorkflowStep,
    worker_queue,
)
from tasker_trio.models.task import new_uuid
from tasker_trio.state_machine import StepEvent, StepState, TaskEvent, TaskState
from tasker_trio.store.plan import Plan, PlanBuilder, TaskView
from tasker_trio.store.protocol import ClaimOutcome, MessageRef, Planner, RecordOutcome, Store


@attrs.frozen(kw_only=True)
class Backend:
    """A store and a broker sharing one state, as the engine opens them (see conftest.py)."""

    name: str
    store: Store
    broker: Broker

    def now(self) -> float:
        """The backend's clock (the store's ``now``)."""
        return self.store.now()

    async def let_time_pass(self, seconds: float) -> None:
        """Let ``seconds`` pass on the backend's clock.

        Memory: the Trio clock; tests that call this take the ``autojump_clock`` fixture,
        so no real time passes.
        """
        await trio.sleep(seconds)


NAMESPACE = "contracts"
WORKER_QUEUE = worker_queue(NAMESPACE)
RESULT_QUEUE = "contract_step_results"
"""Where the suites ask `record_result` to send its notice (any queue name must work)."""
LEASE = 30.0


@attrs.frozen(kw_only=True)
class Graph:
    """A task with its steps (in template order) and edges, ready for `create_task`."""

    task: Task
    steps: tuple[WorkflowStep, ...]
    edges: tuple[StepEdge, ...]

    def uuid(self, name: str) -> str:
        """The uuid of the step called ``name``."""
        return next(s.step_uuid for s in self.steps if s.name == name)


def make_graph(
    names: Sequence[str] = ("a",),
    edges: Sequence[tuple[str, str]] = (),
    *,
    identity_hash: str | None = None,
    max_attempts: int = 3,
    context: dict[str, Any] | None = None,
    now: float = 0.0,
) -> Graph:
    """A fresh pending task with steps ``names`` and ``(parent, child)`` edges by name.

    ``now`` is the creation time the task and steps carry (stores keep the caller's).
    """
    task = Task(
        task_uuid=new_uuid(),
        namespace=NAMESPACE,
        name="contract",
        version="1.0.0",
        context=dict(context or {"n": 6}),
        identity_hash=identity_hash or new_uuid(),
        correlation_id=new_uuid(),
        created_at=now,
        updated_at=now,
    )
    steps = tuple(
        WorkflowStep(
            step_uuid=new_uuid(),
            task_uuid=task.task_uuid,
            name=name,
            namespace=NAMESPACE,
            handler_callable=f"contracts:{name}",
            retry=RetryPolicy(max_attempts=max_attempts),
            created_at=now,
            updated_at=now,
        )
        for name in names
    )
    uuids = {s.name: s.step_uuid for s in steps}
    step_edges = tuple(
        StepEdge(task_uuid=task.task_uuid, from_step_uuid=uuids[p], to_step_uuid=uuids[c])
        for p, c in edges
    )
    return Graph(task=task, steps=steps, edges=step_edges)


# ---------------------------------------------------------------------------------- planners

Build = Callable[[PlanBuilder, TaskView, float], None]


def planner(build: Build) -> Planner:
    """A planner that lets ``build`` fill a `PlanBuilder` over the view it is given."""

    def run(view: TaskView, now: float) -> Plan:
        builder = PlanBuilder(view)
        build(builder, view, now)
        return builder.build()

    return run


def enqueue(builder: PlanBuilder, step_uuid: str) -> None:
    """Move a step to ``enqueued`` and send its message to the worker queue."""
    step = builder.step_event(step_uuid, StepEvent.ENQUEUE)
    message = StepMessage(
        task_uuid=step.task_uuid,
        step_uuid=step.step_uuid,
        step_name=step.name,
        namespace=step.namespace,
        attempt=step.attempts + 1,
        correlation_id=builder.task.correlation_id,
    )
    builder.send(worker_queue(step.namespace), message.to_json())


def start_and_enqueue_roots(builder: PlanBuilder, view: TaskView, now: float) -> None:
    """Start the task and enqueue the steps without parents (the task ends steps_in_process)."""
    children = {e.to_step_uuid for e in view.edges}
    builder.task_event(TaskEvent.START)
    builder.task_event(TaskEvent.READY_STEPS_FOUND)
    for step in view.steps:
        if step.step_uuid not in children:
            enqueue(builder, step.step_uuid)
    builder.task_event(TaskEvent.STEPS_ENQUEUED)


START = planner(start_and_enqueue_roots)
"""The usual creation planner: start, enqueue the roots (with their messages)."""


def only_start(builder: PlanBuilder, view: TaskView, now: float) -> None:
    """Start the task and nothing else."""
    builder.task_event(TaskEvent.START)


def complete_and_enqueue(graph: Graph, done: str, *then: str) -> Planner:
    """Accept ``done``'s success, then enqueue the steps ``then`` (the task's usual loop).

    The task goes through ``evaluating_results`` to ``steps_in_process`` when something is
    enqueued, ``complete`` when every step is, and ``waiting_for_dependencies`` otherwise.
    """

    def build(builder: PlanBuilder, view: TaskView, now: float) -> None:
        builder.step_event(graph.uuid(done), StepEvent.COMPLETE)
        if builder.task_state == TaskState.WAITING_FOR_DEPENDENCIES:
            builder.task_event(TaskEvent.DEPENDENCIES_READY)
        else:
            builder.task_event(TaskEvent.STEP_COMPLETED)
        if all(s.state == StepState.COMPLETE for s in builder.steps.values()):
            builder.task_event(TaskEvent.ALL_STEPS_SUCCESSFUL)
        elif then:
            builder.task_event(TaskEvent.READY_STEPS_FOUND)
            for name in then:
                enqueue(builder, graph.uuid(name))
            builder.task_event(TaskEvent.STEPS_ENQUEUED)
        else:
            builder.task_event(TaskEvent.NO_DEPENDENCIES_READY)

    return planner(build)


# ------------------------------------------------------------------------------ worker moves


async def read_step_messages(
    broker: Broker, *, visibility_timeout: float = LEASE
) -> dict[str, QueueMessage]:
    """Every visible message of the worker queue, by the step uuid it names."""
    messages = await broker.read(WORKER_QUEUE, limit=100, visibility_timeout=visibility_timeout)
    return {m.payload["step_uuid"]: m for m in messages}


def ref(message: QueueMessage) -> MessageRef:
    """The `MessageRef` of a message read from a queue."""
    return MessageRef(queue=message.queue, msg_id=message.msg_id)


async def claim(
    store: Store, message: QueueMessage, *, lease: float = LEASE, worker_id: str = "w1"
) -> ClaimOutcome:
    """Claim the step a worker-queue message names."""
    return await store.claim_step(
        message.payload["step_uuid"], lease_seconds=lease, worker_id=worker_id, message=ref(message)
    )


def success(graph: Graph, name: str, attempt: int, **result: Any) -> StepExecutionResult:
    """A successful result of step ``name``'s ``attempt``."""
    return StepExecutionResult.succeeded(
        task_uuid=graph.task.task_uuid,
        step_uuid=graph.uuid(name),
        attempt=attempt,
        result=dict(result),
        worker_id="w1",
    )


def failure(
    graph: Graph, name: str, attempt: int, *, retryable: bool = True
) -> StepExecutionResult:
    """A failed result of step ``name``'s ``attempt``."""
    error = StepError(
        error_type="RuntimeError", message="boom", retryable=retryable, attempt=attempt
    )
    return StepExecutionResult.failed(
        task_uuid=graph.task.task_uuid, step_uuid=graph.uuid(name), error=error, worker_id="w1"
    )


async def record(
    store: Store, result: StepExecutionResult, message: QueueMessage | None
) -> RecordOutcome:
    """Record ``result``, consuming ``message``, notifying `RESULT_QUEUE`."""
    return await store.record_result(
        result, message=None if message is None else ref(message), result_queue=RESULT_QUEUE
    )


async def run_to_complete(
    store: Store,
    broker: Broker,
    graph: Graph,
    order: Sequence[str],
    *,
    then_enqueue: Sequence[str] = (),
) -> None:
    """Run the steps ``order`` one by one: claim, succeed, complete, enqueue the next.

    The first step must be enqueued already; after each one completes, the next in ``order``
    (``then_enqueue`` after the last) is enqueued unless it already is. Each step's result is
    ``{"step": name}``.
    """
    view = await store.get_view(graph.task.task_uuid)
    enqueued = {s.name for s in view.steps if s.state == StepState.ENQUEUED}
    seen: dict[str, QueueMessage] = {}
    for i, name in enumerate(order):
        seen.update(await read_step_messages(broker))
        message = seen.pop(graph.uuid(name))
        outcome = await claim(store, message)
        assert outcome.claimed is not None, outcome.reason
        attempt = outcome.claimed.step.attempts
        await record(store, success(graph, name, attempt, step=name), message)
        after = order[i + 1 : i + 2] if i + 1 < len(order) else then_enqueue
        later = [n for n in after if n not in enqueued]
        enqueued.update(later)
        await store.apply(graph.task.task_uuid, complete_and_enqueue(graph, name, *later))
