"""Scale-out: two ``serve`` and two ``worker`` processes on one database run 200 tasks.

The processes are real subprocesses (``python -m tasker_trio serve|worker``) that share
nothing but the database. The test plays a client: it puts 200 `TaskRequestMessage`s of
three shapes (linear, diamond, fan-out 1 -> 5 -> 1) in ``orchestration_task_requests`` and
reads the results from the ``tasker`` tables. Every task must complete with the right
results; the transition tables must show no step with two successful attempts and no task
finalized twice; both orchestrators and both workers must have taken part; and each
process must stop with exit code 0 on SIGTERM.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tasker_trio.db import Database
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.models import ORCHESTRATION_TASK_REQUESTS
from tests.postgres._audit import exactly_once_violations, wait_until_settled
from tests.postgres._processes import open_cluster
from tests.postgres._workloads import STEP_COUNTS, expected_results, request_payload

TASKS = 200
SHAPES = ["linear", "diamond", "fanout"]


async def test_two_orchestrators_and_two_workers_run_200_tasks_exactly_once(
    database: Database, tmp_path: Path
) -> None:
    with trio.fail_after(80):
        async with open_cluster(database.dsn, tmp_path) as cluster:
            serves = [await cluster.serve(f"serve-{i}") for i in (1, 2)]
            workers = [await cluster.worker(f"worker-{i}", "--concurrency", "16") for i in (1, 2)]
            await cluster.wait_until_started(*serves, *workers)

            broker = PgmqBroker(database)
            requested = {n: SHAPES[n % len(SHAPES)] for n in range(TASKS)}
            started = trio.current_time()
            for n, shape in requested.items():
                await broker.send(ORCHESTRATION_TASK_REQUESTS, request_payload(shape, n))
            tasks = await wait_until_settled(database, TASKS, within=45)
            elapsed = trio.current_time() - started

            codes = [await proc.stop() for proc in (*serves, *workers)]
            logs = cluster.logs_text()

    assert codes == [0, 0, 0, 0], logs
    assert "Traceback" not in logs, logs
    assert exactly_once_violations(tasks) == [], logs
    assert len(tasks) == TASKS
    for task in tasks:
        shape = requested[task.context["n"]]
        assert task.name == shape
        assert len(task.steps) == STEP_COUNTS[shape]
        assert task.values() == expected_results(shape, task.context["n"])
    steps = [step for task in tasks for step in task.steps]
    assert len(steps) == sum(STEP_COUNTS[shape] for shape in requested.values())
    # Both workers ran steps; both orchestrators moved tasks.
    ran_by = {step.results["pid"] for step in steps}
    assert ran_by == {proc.pid for proc in workers}
    orchestrators = await database.fetchval(
        "SELECT count(DISTINCT processor_id) FROM tasker.task_transitions", idempotent=True
    )
    assert orchestrators == 2
    # No request lost or handled twice: one task per request, nothing left in the queues.
    depth = await broker.queue_statistics(ORCHESTRATION_TASK_REQUESTS)
    assert (depth.depth, depth.archived) == (0, 0)
    print(f"{TASKS} tasks, {len(steps)} steps in {elapsed:.2f}s")
