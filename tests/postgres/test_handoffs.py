"""Handoffs inside one process (`PostgresStore.hand_off`, migration 0010).

A plan claims its ready steps for the process's own worker in its own transaction, and a
recorded result goes straight to the process's own result processing — while every other
process sees exactly what it would have seen: nothing until a lease or a hold runs out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import attrs
import pytest
import trio
from trio.testing import MockClock

from tasker_trio.db import Database
from tasker_trio.db.signals import Signals
from tasker_trio.messaging import QueueMessage
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.models import StepResultMessage
from tasker_trio.orchestration.services.result_processing.service import plan_results
from tasker_trio.state_machine import StepState, TaskState
from tasker_trio.store.postgres import PostgresStore
from tasker_trio.store.protocol import MessageRef, QueuedClaim, SupportsHandoff
from tests.contracts._builders import (
    LEASE,
    RESULT_QUEUE,
    START,
    WORKER_QUEUE,
    complete_and_enqueue,
    make_graph,
    record,
    success,
)
from tests.postgres._database import count_crossings, fresh_database


@attrs.define
class FakeWorker:
    """A `LocalWorker` with ``slots`` free slots that keeps what it is handed."""

    slots: int
    worker_id: str = "local-worker"
    lease_seconds: float = LEASE
    queues: frozenset[str] = frozenset({WORKER_QUEUE})
    handed: list[QueuedClaim] = attrs.field(factory=list)

    def serves(self, queue: str) -> bool:
        return queue in self.queues

    def reserve(self, wanted: int) -> int:
        taken = min(wanted, self.slots)
        self.slots -= taken
        return taken

    def release(self, count: int) -> None:
        self.slots += count

    def deliver(self, claims: Sequence[QueuedClaim]) -> None:
        self.handed.extend(claims)


@attrs.define
class FakeResults:
    """A `LocalResults` that keeps the notices it is handed and processes none.

    A notice handed over before its result is recorded (a stand-in, with a negative id:
    `tasker_trio.store.postgres._fused`) is then recorded by its worker after half the
    hold, and handed over again, for real: `recorded` lists those.
    """

    hold_seconds: float = 60.0
    handed: list[QueueMessage] = attrs.field(factory=list)

    def deliver(self, message: QueueMessage) -> None:
        self.handed.append(message)

    @property
    def recorded(self) -> list[QueueMessage]:
        return [m for m in self.handed if m.msg_id > 0]


@attrs.define
class ProcessingResults:
    """A `LocalResults` that processes each notice at once, as result processing does."""

    store: PostgresStore
    nursery: trio.Nursery
    hold_seconds: float = 60.0
    handed: list[QueueMessage] = attrs.field(factory=list)

    def deliver(self, message: QueueMessage) -> None:
        self.handed.append(message)

        async def process() -> None:
            await self.store.apply(
                message.payload["task_uuid"],
                plan_results([StepResultMessage.from_json(message.payload)], rng=None),
                consumed=[MessageRef(queue=message.queue, msg_id=message.msg_id)],
            )

        self.nursery.start_soon(process)


@attrs.define
class Counted:
    """A store and broker on one database, counting the database's crossings by label."""

    store: PostgresStore
    broker: PgmqBroker
    crossings: list[str]

    def operations(self) -> list[str]:
        """The crossings so far, but the background notifications to other processes."""
        return [c for c in self.crossings if c != "notifying other processes"]


@pytest.fixture
async def counted() -> AsyncIterator[Counted]:
    async with fresh_database() as db:
        crossings = count_crossings(db)
        signals = Signals()
        yield Counted(
            store=PostgresStore(db, signals=signals, clock=trio.current_time),
            broker=PgmqBroker(db, signals=signals, clock=trio.current_time),
            crossings=crossings,
        )


async def test_the_postgres_store_supports_handoffs(database: Database) -> None:
    assert isinstance(PostgresStore(database), SupportsHandoff)


async def test_a_new_task_claims_its_roots_for_the_local_worker_as_far_as_it_has_slots(
    counted: Counted, autojump_clock: MockClock
) -> None:
    store, broker = counted.store, counted.broker
    worker = FakeWorker(slots=2)
    store.hand_off(worker=worker)
    graph = make_graph(["a", "b", "c"])  # three roots

    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)

    assert counted.operations() == ["creating a task"]  # one crossing, claims included
    assert len(worker.handed) == 2
    assert worker.slots == 0
    for claim in worker.handed:
        assert claim.outcome is not None
        assert claim.outcome.claimed is not None
        step = claim.outcome.claimed.step
        assert claim.message.payload["step_uuid"] == step.step_uuid
        assert (step.state, step.attempts) == (StepState.IN_PROGRESS, 1)
        assert step.lease_expires_at == pytest.approx(store.now() + LEASE)
        trail = await store.transitions(step.step_uuid)
        assert [(t.from_state, t.to_state) for t in trail] == [
            (StepState.PENDING, StepState.ENQUEUED),
            (StepState.ENQUEUED, StepState.IN_PROGRESS),
        ]
        assert trail[-1].metadata["worker_id"] == "local-worker"
    # Only the step left over is in the queue for anyone to read; the claimed ones are
    # hidden for their lease, like any read message.
    visible = await broker.read(WORKER_QUEUE, limit=10, visibility_timeout=LEASE)
    claimed = {c.message.payload["step_uuid"] for c in worker.handed}
    assert [m.payload["step_uuid"] for m in visible] == [
        s.step_uuid for s in graph.steps if s.step_uuid not in claimed
    ]


async def test_a_claimed_step_whose_worker_died_is_reclaimed_when_its_lease_runs_out(
    counted: Counted, autojump_clock: MockClock
) -> None:
    store = counted.store
    worker = FakeWorker(slots=1)
    store.hand_off(worker=worker)
    graph = make_graph(["a"])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    store.hand_off()  # that worker is gone
    assert (
        await store.claim_from_queue(
            WORKER_QUEUE, limit=5, visibility_timeout=LEASE, lease_seconds=LEASE, worker_id="w2"
        )
        == []
    )

    await trio.sleep(LEASE + 1)
    [again] = await store.claim_from_queue(
        WORKER_QUEUE, limit=5, visibility_timeout=LEASE, lease_seconds=LEASE, worker_id="w2"
    )

    assert again.outcome is not None
    assert again.outcome.claimed is not None
    assert again.outcome.claimed.step.attempts == 2


async def test_a_worker_without_free_slots_leaves_the_steps_in_the_queue(
    counted: Counted, autojump_clock: MockClock
) -> None:
    store, broker = counted.store, counted.broker
    worker = FakeWorker(slots=0)
    store.hand_off(worker=worker)
    graph = make_graph(["a"])

    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)

    assert worker.handed == []
    [message] = await broker.read(WORKER_QUEUE, limit=10, visibility_timeout=LEASE)
    assert message.payload["step_uuid"] == graph.uuid("a")
    assert (await store.get_step(graph.uuid("a"))).state == StepState.ENQUEUED


async def test_a_recorded_result_is_handed_over_hidden_and_processed_without_reading(
    counted: Counted, autojump_clock: MockClock
) -> None:
    store, broker = counted.store, counted.broker
    worker, results = FakeWorker(slots=5), FakeResults(hold_seconds=60.0)
    store.hand_off(worker=worker, results=results)
    graph = make_graph(["a", "b"], [("a", "b")])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    [claim] = worker.handed

    outcome = await record(store, success(graph, "a", 1, answer=42), claim.message)

    assert outcome.accepted
    [notice] = results.recorded
    assert notice.queue == RESULT_QUEUE
    assert notice.payload["step_uuid"] == graph.uuid("a")
    assert notice.payload["correlation_id"] == graph.task.correlation_id
    # Hidden from every other reader while this process processes it.
    assert await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=LEASE) == []
    counted.crossings.clear()

    await store.apply(
        graph.task.task_uuid,
        complete_and_enqueue(graph, "a", "b"),
        consumed=[MessageRef(queue=notice.queue, msg_id=notice.msg_id)],
    )

    # Planned on the view this process knows, with the recorded step patched in: one
    # crossing, which also claimed "b" for the local worker.
    assert counted.operations() == ["applying a plan"]
    a = await store.get_step(graph.uuid("a"))
    assert (a.state, a.results) == (StepState.COMPLETE, {"answer": 42})
    [_, second] = worker.handed
    assert second.outcome is not None
    assert second.outcome.claimed is not None
    assert second.outcome.claimed.dependency_results == {"a": {"answer": 42}}
    assert (await store.get_task(graph.task.task_uuid)).state == TaskState.STEPS_IN_PROCESS
    await trio.sleep(120)  # consumed with the plan: it never shows
    assert await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=LEASE) == []


async def test_a_held_result_nobody_processed_shows_after_the_hold(
    counted: Counted, autojump_clock: MockClock
) -> None:
    store, broker = counted.store, counted.broker
    worker, results = FakeWorker(slots=5), FakeResults(hold_seconds=20.0)
    store.hand_off(worker=worker, results=results)
    graph = make_graph(["a"])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    [claim] = worker.handed
    await record(store, success(graph, "a", 1), claim.message)
    [notice] = results.recorded  # ...and then this process dies before processing it

    await trio.sleep(21)
    [read] = await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=LEASE)

    assert read.msg_id == notice.msg_id
    assert read.payload == notice.payload


async def test_a_stale_known_view_is_read_again(
    counted: Counted, autojump_clock: MockClock
) -> None:
    # Another process changes the task between this process's plan and its next one: the
    # plan made on the known view is refused, and the store reads the task and plans again.
    store, broker = counted.store, counted.broker
    worker, results = FakeWorker(slots=5), FakeResults()
    store.hand_off(worker=worker, results=results)
    graph = make_graph(["a", "b"])
    await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    claim_a, claim_b = worker.handed
    await record(store, success(graph, "a", 1), claim_a.message)
    await record(store, success(graph, "b", 1), claim_b.message)
    notice_a, notice_b = results.recorded
    elsewhere = PostgresStore(store.db, clock=trio.current_time)
    await elsewhere.apply(
        graph.task.task_uuid,
        complete_and_enqueue(graph, "b"),
        consumed=[MessageRef(queue=notice_b.queue, msg_id=notice_b.msg_id)],
    )
    counted.crossings.clear()

    await store.apply(
        graph.task.task_uuid,
        complete_and_enqueue(graph, "a"),
        consumed=[MessageRef(queue=notice_a.queue, msg_id=notice_a.msg_id)],
    )

    assert counted.operations() == ["applying a plan", "reading a task", "applying a plan"]
    assert (await store.get_task(graph.task.task_uuid)).state == TaskState.COMPLETE
    assert await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=LEASE) == []


async def test_a_result_is_recorded_by_the_plan_that_processes_it(
    counted: Counted, autojump_clock: MockClock
) -> None:
    store, broker = counted.store, counted.broker
    worker = FakeWorker(slots=5)
    graph = make_graph(["a", "b"], [("a", "b")])
    async with trio.open_nursery() as nursery:
        results = ProcessingResults(store=store, nursery=nursery)
        store.hand_off(worker=worker, results=results)
        await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
        [claim] = worker.handed
        counted.crossings.clear()

        outcome = await record(store, success(graph, "a", 1, answer=7), claim.message)

    assert (outcome.accepted, outcome.handed_over) == (True, True)
    assert counted.operations() == ["applying a plan"]  # record and plan: one transaction
    [stand_in] = results.handed
    assert stand_in.msg_id < 0  # no queue ever held it
    a = await store.get_step(graph.uuid("a"))
    assert (a.state, a.results) == (StepState.COMPLETE, {"answer": 7})
    trail = [(t.from_state, t.to_state) for t in await store.transitions(a.step_uuid)]
    assert trail[-2:] == [
        (StepState.IN_PROGRESS, StepState.ENQUEUED_FOR_ORCHESTRATION),
        (StepState.ENQUEUED_FOR_ORCHESTRATION, StepState.COMPLETE),
    ]
    [kept] = await store.results_of(a.step_uuid)
    assert kept.result == {"answer": 7}
    [_, second] = worker.handed  # "b", claimed by the same plan
    assert second.outcome is not None
    assert second.outcome.claimed is not None
    assert second.outcome.claimed.dependency_results == {"a": {"answer": 7}}
    await trio.sleep(120)
    assert await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=LEASE) == []


async def test_a_superseded_result_recorded_with_its_plan_applies_nothing(
    counted: Counted, autojump_clock: MockClock
) -> None:
    # The step's lease ran out and another worker reclaimed it before this worker's result
    # was processed: the record is refused, and so is the plan made on it.
    store = counted.store
    worker = FakeWorker(slots=5)
    graph = make_graph(["a"])
    async with trio.open_nursery() as nursery:
        results = ProcessingResults(store=store, nursery=nursery)
        store.hand_off(worker=worker, results=results)
        await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
        [claim] = worker.handed
        await trio.sleep(LEASE + 1)
        elsewhere = PostgresStore(store.db, clock=trio.current_time)
        [again] = await elsewhere.claim_from_queue(
            WORKER_QUEUE, limit=1, visibility_timeout=LEASE, lease_seconds=LEASE, worker_id="w2"
        )
        assert again.outcome is not None
        assert again.outcome.claimed is not None

        outcome = await record(store, success(graph, "a", 1), claim.message)

    assert (outcome.accepted, outcome.reason) == (False, "superseded")
    a = await store.get_step(graph.uuid("a"))
    assert (a.state, a.attempts) == (StepState.IN_PROGRESS, 2)
    assert (await store.get_task(graph.task.task_uuid)).state == TaskState.STEPS_IN_PROCESS


async def test_a_result_whose_plan_is_refused_is_kept_and_processed_by_the_next_plan(
    counted: Counted, autojump_clock: MockClock
) -> None:
    # Another process completes "b" after this one last wrote the task: the plan made on
    # this process's view is refused, but "a"'s record stands, its notice goes out held,
    # and the plan made on the task as read again consumes it.
    store, broker = counted.store, counted.broker
    worker = FakeWorker(slots=5)
    graph = make_graph(["a", "b"])
    elsewhere = PostgresStore(store.db, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        store.hand_off(worker=worker, results=ProcessingResults(store=store, nursery=nursery))
        await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
        claim_a, claim_b = worker.handed
        await elsewhere.record_result(
            success(graph, "b", 1),
            message=MessageRef(queue=claim_b.message.queue, msg_id=claim_b.message.msg_id),
            result_queue=RESULT_QUEUE,
        )
        [notice_b] = await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=LEASE)
        await elsewhere.apply(
            graph.task.task_uuid,
            complete_and_enqueue(graph, "b"),
            consumed=[MessageRef(queue=notice_b.queue, msg_id=notice_b.msg_id)],
        )
        counted.crossings.clear()

        outcome = await record(store, success(graph, "a", 1, answer=1), claim_a.message)

    assert (outcome.accepted, outcome.handed_over) == (True, True)
    assert counted.operations() == ["applying a plan", "reading a task", "applying a plan"]
    assert (await store.get_task(graph.task.task_uuid)).state == TaskState.COMPLETE
    a = await store.get_step(graph.uuid("a"))
    assert (a.state, a.results) == (StepState.COMPLETE, {"answer": 1})
    [kept] = await store.results_of(a.step_uuid)
    assert kept.result == {"answer": 1}
    await trio.sleep(120)
    assert await broker.read(RESULT_QUEUE, limit=10, visibility_timeout=LEASE) == []
