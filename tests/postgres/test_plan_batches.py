"""Plans written in batches (`tasker_trio.store.postgres._batches`, migrations 0011, 0014).

Plans (and a worker's step results) made while others are on their way to the database go
together, in one round trip and one transaction; each still answers as it would alone, and
an error in one reaches its own caller alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from tasker_trio.db import Database
from tasker_trio.db.bridge import Connection
from tasker_trio.db.errors import DatabaseError, DatabaseUnavailable
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.state_machine import StepState, TaskState
from tasker_trio.store.postgres import PostgresStore
from tasker_trio.store.postgres._batches import PlanWriter
from tests.contracts._builders import (
    RESULT_QUEUE,
    START,
    WORKER_QUEUE,
    claim,
    make_graph,
    read_step_messages,
    record,
    success,
)
from tests.postgres._database import count_crossings, fresh_database


@pytest.fixture
async def crossings() -> AsyncIterator[tuple[Database, list[str]]]:
    """A fresh database counting its crossings by label."""
    async with fresh_database() as db:
        yield db, count_crossings(db)


def _missing_task_plan(n: int) -> dict[str, Any]:
    """A plan for a task that does not exist: the database answers ``applied: null``."""
    return {
        "task_uuid": f"missing-{n}",
        "version": 0,
        "now": 0.0,
        "processor_id": "test",
        "step_transitions": [],
        "task_transitions": [],
        "messages": [],
        "steps": [],
        "expect": [],
        "consumed": [],
    }


TASKS_LOCKED = (
    "SELECT count(*) FROM pg_locks WHERE relation = 'tasker.tasks'::regclass"
    " AND mode = 'AccessExclusiveLock' AND granted"
)
PLAN_WAITS_FOR_THE_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND query LIKE '%apply_many%'"
)


async def _until(db: Database, query: str) -> None:
    while not await db.fetchval(query):  # noqa: ASYNC110  # the server is polled
        await trio.sleep(0.01)


async def _lock_tasks(conn: Connection) -> None:
    await conn.execute("BEGIN; LOCK TABLE tasker.tasks IN ACCESS EXCLUSIVE MODE")
    await asyncio.sleep(60)  # until cancelled, or the database closes and cuts it


async def _lock_the_tasks(nursery: trio.Nursery, db: Database) -> trio.CancelScope:
    """Lock ``tasker.tasks`` from another connection of ``db`` until the scope returned is
    cancelled (or the database closes): a plan sent meanwhile waits on the server, on its
    way for as long as the test needs. (A round trip in flight looks blocked to
    `wait_all_tasks_blocked` too, but under load it may be over by then.)"""
    held = trio.CancelScope()

    async def hold() -> None:
        with held, contextlib.suppress(DatabaseUnavailable):
            await db.run(_lock_tasks, where="locking the tasks")

    nursery.start_soon(hold)
    await _until(db, TASKS_LOCKED)
    return held


async def test_tasks_created_at_once_are_written_in_fewer_round_trips(
    crossings: tuple[Database, list[str]],
) -> None:
    db, seen = crossings
    store = PostgresStore(db)
    graphs = [make_graph(["a", "b"], [("a", "b")]) for _ in range(6)]

    async with trio.open_nursery() as nursery:
        for graph in graphs:
            nursery.start_soon(
                lambda g=graph: store.create_task(g.task, g.steps, g.edges, planner=START)
            )

    # Together (the first may go alone, if its round trip leaves before the others are
    # made), and the notifications to other processes.
    writes = [label for label in seen if label != "notifying other processes"]
    assert writes in (
        ["applying a batch of plans"],
        ["creating a task", "applying a batch of plans"],
    )
    # Each task as if created alone: started, its root enqueued, its audit trail whole.
    for graph in graphs:
        task = await store.get_task(graph.task.task_uuid)
        assert task.state == TaskState.STEPS_IN_PROCESS
        a = await store.get_step(graph.uuid("a"))
        b = await store.get_step(graph.uuid("b"))
        assert (a.state, b.state) == (StepState.ENQUEUED, StepState.PENDING)
        trail = await store.transitions(graph.task.task_uuid)
        assert [t.sort_key for t in trail] == list(range(1, len(trail) + 1))
        assert [t.most_recent for t in trail] == [False] * (len(trail) - 1) + [True]


async def test_a_plan_the_server_refuses_fails_alone_and_the_others_are_applied(
    crossings: tuple[Database, list[str]],
) -> None:
    db, _ = crossings
    writer = PlanWriter(db)
    answers: dict[int, Any] = {}

    async def write(n: int, kind: str) -> None:
        try:
            answers[n] = await writer.write(kind, _missing_task_plan(n), where="applying a plan")
        except DatabaseError as exc:
            answers[n] = exc

    async with trio.open_nursery() as nursery:
        for n, kind in enumerate(["claim", "claim", "no-such-kind", "claim", "record"]):
            nursery.start_soon(write, n, kind)

    refused = answers.pop(2)
    assert isinstance(refused, DatabaseError)
    assert "unknown kind" in str(refused)
    # (Nothing to announce: none of them says its transaction announced it.)
    missing = {"applied": None, "claims": [], "announced": False}
    assert answers == dict.fromkeys((0, 1, 3), missing) | {4: missing | {"records": []}}


async def test_a_caller_cancelled_while_its_plan_waits_takes_the_plan_back(
    crossings: tuple[Database, list[str]],
) -> None:
    db, seen = crossings
    writer = PlanWriter(db)
    first: list[Any] = []

    async def send_first() -> None:
        first.append(await writer.write("claim", _missing_task_plan(1), where="first"))

    second = trio.CancelScope()

    async def send_second() -> None:
        with second:
            await writer.write("claim", _missing_task_plan(2), where="2nd")

    async with trio.open_nursery() as nursery:
        lock = await _lock_the_tasks(nursery, db)
        nursery.start_soon(send_first)
        await _until(db, PLAN_WAITS_FOR_THE_LOCK)  # the first plan is on its way
        nursery.start_soon(send_second)
        await trio.testing.wait_all_tasks_blocked()  # the second waits for it
        second.cancel()
        lock.cancel()

    await writer.write("claim", _missing_task_plan(3), where="third")

    assert first == [{"applied": None, "claims": [], "announced": False}]
    assert "2nd" not in seen
    assert (writer.batches, writer.plans) == (2, 2)  # nor sent with the third


async def test_results_recorded_at_once_by_a_worker_share_round_trips(
    crossings: tuple[Database, list[str]],
) -> None:
    # A worker process: no orchestration here, so each result is recorded on its own
    # (`tasker.record_result`), batched with the others finished meanwhile.
    db, seen = crossings
    store = PostgresStore(db)
    broker = PgmqBroker(db, clock=store.now)
    graphs = [make_graph(["a", "b"], [("a", "b")]) for _ in range(5)]
    for graph in graphs:
        await store.create_task(graph.task, graph.steps, graph.edges, planner=START)
    messages = await read_step_messages(broker)
    attempts = {}
    for graph in graphs:
        outcome = await claim(store, messages[graph.uuid("a")])
        assert outcome.claimed is not None
        attempts[graph.uuid("a")] = outcome.claimed.step.attempts
    # One stale result among them: recorded in the audit only, the others accepted.
    stale = graphs[0]
    outcomes = {}
    seen.clear()

    async def finish(graph: Any, attempt: int, key: str) -> None:
        result = success(graph, "a", attempt, value=key)
        outcomes[key] = await record(store, result, messages[graph.uuid("a")])

    async with trio.open_nursery() as nursery:
        for n, graph in enumerate(graphs):
            nursery.start_soon(finish, graph, attempts[graph.uuid("a")], f"g{n}")
        nursery.start_soon(finish, stale, attempts[stale.uuid("a")] + 1, "stale")

    writes = [label for label in seen if label != "notifying other processes"]
    assert writes in (
        ["recording a batch of step results"],
        ["recording a step result", "recording a batch of step results"],
    )
    assert {key: o.accepted for key, o in outcomes.items()} == {
        **{f"g{n}": True for n in range(5)},
        "stale": False,
    }
    assert outcomes["stale"].reason == "superseded"
    for n, graph in enumerate(graphs):
        step = await store.get_step(graph.uuid("a"))
        assert step.state == StepState.ENQUEUED_FOR_ORCHESTRATION
        assert step.results == {"value": f"g{n}"}
    # One notice per accepted result, and the step messages gone.
    notices = await broker.read(RESULT_QUEUE, limit=100, visibility_timeout=30)
    assert sorted(m.payload["step_uuid"] for m in notices) == sorted(g.uuid("a") for g in graphs)
    assert (await broker.queue_statistics(WORKER_QUEUE)).depth == 0


async def test_plans_made_while_a_callers_batch_is_out_go_on_without_that_caller(
    crossings: tuple[Database, list[str]],
) -> None:
    # The first caller sends its plan itself; the plans made meanwhile are sent by the
    # database's own pump once it has its answer, so it does not wait for their batch.
    db, seen = crossings
    writer = PlanWriter(db)
    done: list[tuple[int, int]] = []  # (plan, batches sent when its caller had the answer)

    async def send(n: int) -> None:
        answer = await writer.write("claim", _missing_task_plan(n), where=f"plan {n}")
        assert answer == {"applied": None, "claims": [], "announced": False}
        done.append((n, writer.batches))

    with trio.fail_after(10):  # a plan nobody sends would wait for good
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, 1)
            await trio.testing.wait_all_tasks_blocked()  # plan 1 is on its way
            for n in (2, 3, 4):
                nursery.start_soon(send, n)

    assert done[0] == (1, 1)
    assert sorted(done[1:]) == [(2, 2), (3, 2), (4, 2)]
    assert seen == ["plan 1", "applying a batch of plans"]


async def test_a_caller_cancelled_while_its_plan_is_out_leaves_the_others_theirs(
    crossings: tuple[Database, list[str]],
) -> None:
    db, seen = crossings
    writer = PlanWriter(db)
    first = trio.CancelScope()
    answers: list[Any] = []

    async def send_first() -> None:
        with first:
            await writer.write("claim", _missing_task_plan(1), where="first")
        assert first.cancelled_caught

    async def send_second() -> None:
        answers.append(await writer.write("claim", _missing_task_plan(2), where="second"))

    with trio.fail_after(10):  # a plan nobody sends would wait for good
        async with trio.open_nursery() as nursery:
            lock = await _lock_the_tasks(nursery, db)
            nursery.start_soon(send_first)
            await _until(db, PLAN_WAITS_FOR_THE_LOCK)  # the first plan is on its way
            nursery.start_soon(send_second)
            await trio.testing.wait_all_tasks_blocked()  # the second waits for it
            first.cancel()
            lock.cancel()

    assert answers == [{"applied": None, "claims": [], "announced": False}]
    assert seen[-1] == "second"  # sent alone, after the first's cancelled round trip


async def test_plans_still_waiting_when_the_database_closes_fail_with_a_clear_error() -> None:
    outcomes: dict[int, Any] = {}

    async def send(writer: PlanWriter, n: int) -> None:
        try:
            outcomes[n] = await writer.write("claim", _missing_task_plan(n), where=f"plan {n}")
        except DatabaseError as exc:
            outcomes[n] = exc

    # Plan 1 waits on the server for a lock that another connection holds, so it is still
    # on its way, with plans 2 and 3 waiting behind it, when the database closes.
    with trio.fail_after(20):  # none is left waiting for good
        async with trio.open_nursery() as callers, fresh_database() as db:
            await _lock_the_tasks(callers, db)  # held until the database closes
            writer = PlanWriter(db)
            callers.start_soon(send, writer, 1)
            await _until(db, PLAN_WAITS_FOR_THE_LOCK)
            for n in (2, 3):
                callers.start_soon(send, writer, n)
            await trio.testing.wait_all_tasks_blocked()  # 2 and 3 wait for plan 1

    assert set(outcomes) == {1, 2, 3}
    for n in (1, 2, 3):
        assert isinstance(outcomes[n], DatabaseUnavailable), outcomes[n]
        assert str(outcomes[n]) == "writing plans: the database closed while this was on its way"


async def test_background_work_needs_an_open_database() -> None:
    async with fresh_database() as db:
        pass

    with pytest.raises(RuntimeError, match="is not open"):
        db.start_soon(trio.sleep_forever, name="writing plans")
