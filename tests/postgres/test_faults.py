"""Faults: processes killed, connections terminated by the server, poison in the queues.

- ``kill -9`` of a worker in the middle of a step: the other worker reclaims the step once
  the visibility timeout has passed, and it completes exactly once.
- ``kill -9`` of one of two orchestrators mid-run: the other carries on; every task
  completes exactly once.
- The server terminating every connection of a running engine (``pg_terminate_backend``),
  several times: the engine reconnects and finishes every task exactly once.
- Poison messages put straight into the queues with SQL (``pgmq.send``): archived with a
  reason, counted, and the engine keeps going.

Real time throughout (subprocesses share only the wall clock).
"""

from __future__ import annotations

import json
import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import trio

from tasker_trio import StepContext, open_engine
from tasker_trio.db import Database, open_database
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    ORCHESTRATION_TASK_FINALIZATIONS,
    ORCHESTRATION_TASK_REQUESTS,
    worker_queue,
)
from tests.postgres._audit import (
    count_completed,
    exactly_once_violations,
    poll_until,
    wait_until_settled,
)
from tests.postgres._processes import open_cluster
from tests.postgres._workloads import (
    HERE,
    NAMESPACE,
    combine,
    expected_results,
    request_payload,
    write_templates,
)

SHAPES = ["linear", "diamond", "fanout"]
HANG_BOUND = 30
TERMINATE_ALL = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def _check_results(tasks: list[Any], shapes: dict[int, str]) -> None:
    for task in tasks:
        n = task.context["n"]
        assert task.values() == expected_results(shapes[n], n), task


async def test_a_worker_killed_mid_step_is_reclaimed_by_the_other_after_the_visibility_timeout(
    database: Database, tmp_path: Path
) -> None:
    visibility = 2.0
    marker = tmp_path / "held.pid"
    with trio.fail_after(60):
        async with open_cluster(database.dsn, tmp_path) as cluster:
            serve = await cluster.serve("serve")
            workers = [
                await cluster.worker(f"worker-{i}", "--visibility-timeout", str(visibility))
                for i in (1, 2)
            ]
            await cluster.wait_until_started(serve, *workers)
            broker = PgmqBroker(database)
            await broker.send(
                ORCHESTRATION_TASK_REQUESTS, request_payload("held", 0, marker=str(marker))
            )
            shapes = {0: "held"}
            for n in range(1, 7):
                shapes[n] = SHAPES[n % len(SHAPES)]
                await broker.send(ORCHESTRATION_TASK_REQUESTS, request_payload(shapes[n], n))

            async def announced() -> bool:
                return marker.exists() and bool(marker.read_text())

            await poll_until(announced, within=20)
            victim = next(p for p in workers if p.pid == int(marker.read_text()))
            survivor = next(p for p in workers if p is not victim)
            await trio.sleep(visibility / 2)  # its lease keeper has renewed the lease
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = trio.current_time()
            assert await victim.process.wait() == -signal.SIGKILL

            tasks = await wait_until_settled(database, len(shapes), within=20)
            reclaimed_within = trio.current_time() - killed_at
            codes = [await proc.stop() for proc in (serve, survivor)]
            logs = cluster.logs_text()

    assert codes == [0, 0], logs
    assert exactly_once_violations(tasks) == [], logs
    _check_results(tasks, shapes)
    held = next(s for t in tasks if t.name == "held" for s in t.steps if s.name == "held")
    assert (held.attempts, held.reclaims) == (2, 1), held
    assert held.results["pid"] == survivor.pid
    assert held.ignored == 0  # the killed attempt reported nothing
    # Not reclaimed before its lease (renewed half a timeout before the kill) ran out.
    assert visibility / 2 <= reclaimed_within < visibility + 10


async def test_the_other_orchestrator_carries_on_after_one_is_killed(
    database: Database, tmp_path: Path
) -> None:
    # `serve` consumes the orchestration queues with the default 30 s visibility timeout
    # (it has no option to change it), so messages the killed orchestrator had read but not
    # finished reappear only after 30 s: the bound allows for that.
    count = 60
    with trio.fail_after(75):
        async with open_cluster(database.dsn, tmp_path) as cluster:
            serves = [await cluster.serve(f"serve-{i}") for i in (1, 2)]
            worker = await cluster.worker("worker", "--concurrency", "16")
            await cluster.wait_until_started(*serves, worker)
            broker = PgmqBroker(database)
            shapes = {n: SHAPES[n % len(SHAPES)] for n in range(count)}
            for n, shape in shapes.items():
                await broker.send(ORCHESTRATION_TASK_REQUESTS, request_payload(shape, n))

            async def completed(at_least: int) -> bool:
                return await count_completed(database) >= at_least

            await poll_until(partial(completed, 5), within=30)
            os.kill(serves[0].pid, signal.SIGKILL)
            killed_at = trio.current_time()
            done_at_kill = await count_completed(database)
            assert await serves[0].process.wait() == -signal.SIGKILL
            # The survivor carries on at once (not only once the dead one's messages
            # reappear): tasks keep completing well within the visibility timeout.
            await poll_until(partial(completed, done_at_kill + 5), within=10)

            tasks = await wait_until_settled(database, count, within=50)
            finished_within = trio.current_time() - killed_at
            codes = [await proc.stop() for proc in (serves[1], worker)]
            logs = cluster.logs_text()

    assert codes == [0, 0], logs
    assert done_at_kill < count  # killed mid-run
    assert exactly_once_violations(tasks) == [], logs
    _check_results(tasks, shapes)
    print(f"{count - done_at_kill} tasks finished {finished_within:.2f}s after the kill")


async def test_the_engine_reconnects_after_the_server_terminates_its_connections(
    database: Database, tmp_path: Path
) -> None:
    """The engine runs in a thread of its own (its own `trio.run`) that the test abandons
    if it hangs: a hang here is not cancellable from Trio (it waits on asyncio futures that
    never complete), and would otherwise hang the whole test session."""
    templates = write_templates(tmp_path / "templates")
    count = 30
    shapes = {n: SHAPES[n % len(SHAPES)] for n in range(count)}
    run = partial(trio.run, _terminate_while_running, database.dsn, templates, shapes)
    with trio.move_on_after(HANG_BOUND):
        outcome = await trio.to_thread.run_sync(run, abandon_on_cancel=True)
        submitted, terminated, done_while_terminating, stats = outcome
        tasks = await wait_until_settled(database, count, within=5)
        assert done_while_terminating < count  # the connections went down mid-run
        assert terminated >= 4 * 2  # each time: at least the engine's pool and its listener
        assert {t.task_uuid for t in tasks} == set(submitted)
        assert exactly_once_violations(tasks) == []
        _check_results(tasks, shapes)
        assert stats.tasks_by_state == {"complete": count}
        assert stats.poison_messages == {}
        return
    states = await database.fetch("SELECT state, count(*) FROM tasker.tasks GROUP BY 1")
    raise AssertionError(
        f"the engine neither finished nor stopped within {HANG_BOUND} s (hung); tasks: {states}"
    )


async def _terminate_while_running(
    dsn: str, templates: Path, shapes: dict[int, str]
) -> tuple[list[str], int, int, Any]:
    """Run the tasks on an engine, terminating all its connections 4 times meanwhile."""

    async def slow(ctx: StepContext) -> dict[str, Any]:
        # Slow enough that the four terminations (0.6 s) land mid-run: with 0.02 s, the
        # engine once finished all 30 tasks before the last one.
        await trio.sleep(0.1)
        return await combine(ctx)

    terminated = 0
    async with (
        open_database(dsn, min_size=1, max_size=1, wakeups="poll") as killer,
        open_engine(
            templates,
            handlers={f"{HERE}:combine": slow},
            database=dsn,
            visibility_timeout=2.0,
            poll_interval=0.2,
            worker_concurrency=8,
        ) as engine,
    ):
        submitted = [
            (await engine.submit(NAMESPACE, shape, {"n": n})).task_uuid
            for n, shape in shapes.items()
        ]
        for _ in range(4):
            await trio.sleep(0.15)
            terminated += await killer.fetchval(TERMINATE_ALL)
        done = await killer.fetchval("SELECT count(*) FROM tasker.tasks WHERE state = 'complete'")
        for task_uuid in submitted:
            await engine.wait_for_task(task_uuid, timeout=40)
        stats = await engine.statistics()
    return submitted, terminated, done, stats


POISON = {
    ORCHESTRATION_STEP_RESULTS: [
        '{"garbage": true}',
        # Well formed, but about a task that does not exist.
        '{"task_uuid": "no-such-task", "step_uuid": "no-such-step", "attempt": 1,'
        ' "success": true, "correlation_id": "x"}',
    ],
    ORCHESTRATION_TASK_REQUESTS: [
        '{"request": 42}',
        # Well formed, but for a template nobody has.
        json.dumps(request_payload("no_such_template", 1)),
    ],
    ORCHESTRATION_TASK_FINALIZATIONS: ['"not even an object"'],
    worker_queue(NAMESPACE): ['{"step_uuid": 7}'],
}


async def test_poison_messages_sent_with_sql_are_archived_with_a_reason_and_counted(
    database: Database, tmp_path: Path
) -> None:
    templates = write_templates(tmp_path / "templates")
    broker = PgmqBroker(database)
    with trio.fail_after(30):
        async with open_engine(templates, database=database.dsn, poll_interval=0.2) as engine:
            first = await engine.submit(NAMESPACE, "diamond", {"n": 1})
            await engine.wait_for_task(first.task_uuid, timeout=10)  # every queue exists now
            for queue, payloads in POISON.items():
                await database.fetchval(f"SELECT pgmq.create('{queue}')")  # a no-op if there
                for payload in payloads:
                    await database.fetchval(
                        f"SELECT pgmq.send('{queue}', $1::text::jsonb)", payload
                    )
            archived: dict[str, list[Any]] = {}
            while any(len(archived.get(q, [])) < len(p) for q, p in POISON.items()):
                await trio.sleep(0.05)
                archived = {q: await broker.archived(q) for q in POISON}
            second = await engine.submit(NAMESPACE, "fanout", {"n": 2})
            task = await engine.wait_for_task(second.task_uuid, timeout=10)
            stats = await engine.statistics()
            results = await engine.get_results(second.task_uuid)

    for queue, payloads in POISON.items():
        assert len(archived[queue]) == len(payloads), archived[queue]
        for message in archived[queue]:
            assert message.reason, message
        assert (await broker.queue_statistics(queue)).depth == 0
    reasons = [m.reason for m in archived[ORCHESTRATION_TASK_REQUESTS]]
    assert any("no_such_template" in reason for reason in reasons), reasons
    assert stats.poison_messages == {
        ORCHESTRATION_STEP_RESULTS: 2,
        ORCHESTRATION_TASK_REQUESTS: 2,
        ORCHESTRATION_TASK_FINALIZATIONS: 1,
        "worker_queues": 1,
    }
    assert str(task.state) == "complete"
    assert {k: v["value"] for k, v in results.items() if v} == expected_results("fanout", 2)
