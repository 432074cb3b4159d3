"""How the e2e bench runs tasks: through an engine in this process, or as a client of
separate ``serve`` and ``worker`` processes (the task-request queue and the tasks table).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from _e2e_meter import BENCH_OWN
from _e2e_workloads import NAMESPACE, templates

import tasker_trio

SETTLED = ("complete", "error", "cancelled", "resolved_manually", "blocked_by_failures")


class EngineDriver:
    """Submits and waits through an engine that runs orchestration in this process."""

    def __init__(self, engine: tasker_trio.Engine, *, submitters: int = 1) -> None:
        self.engine = engine
        self.submitters = submitters

    async def _wait(self, task_uuid: str, seconds: float) -> Any:
        # The engine's orchestration runs in its own Trio tasks; only this task's reads
        # (the client polling the task's state) are the bench's own.
        token = BENCH_OWN.set(True)
        try:
            return await self.engine.wait_for_task(task_uuid, timeout=seconds)
        finally:
            BENCH_OWN.reset(token)

    async def one(self, shape: str, i: int) -> float:
        started = time.perf_counter()
        sub = await self.engine.submit(NAMESPACE, shape, {"i": i})
        task = await self._wait(sub.task_uuid, 60)
        if task.state != tasker_trio.TaskState.COMPLETE:
            raise RuntimeError(f"{shape} ended {task.state}")
        return (time.perf_counter() - started) * 1000.0

    async def many(self, shape: str, n: int) -> float:
        started = time.perf_counter()
        uuids: list[str] = [""] * n
        batch = uuid.uuid4().hex[:8]  # new tasks: not twins (same identity) of earlier ones

        async def submitter(first: int) -> None:
            for i in range(first, n, self.submitters):
                submitted = await self.engine.submit(NAMESPACE, shape, {"batch": batch, "n": i})
                if not submitted.created:  # a twin's work was done before: it would not count
                    raise RuntimeError(f"{shape} task {i} of the batch was not new")
                uuids[i] = submitted.task_uuid

        # Like an application's request handlers: several submit at once.
        async with trio.open_nursery() as nursery:
            for first in range(min(self.submitters, n)):
                nursery.start_soon(submitter, first)
        for task_uuid in uuids:
            task = await self._wait(task_uuid, 300)
            if task.state != tasker_trio.TaskState.COMPLETE:
                raise RuntimeError(f"{shape} ended {task.state}")
        return time.perf_counter() - started


class QueueDriver:
    """A client of separate processes: sends task requests to the task-request queue and
    watches the tasks table (woken by the ``tasker_tasks`` notifications) through its
    indexes: a task by its identity hash, a batch by the count of settled tasks."""

    def __init__(self, db: Any) -> None:
        from tasker_trio.db.signals import Signals
        from tasker_trio.messaging.pgmq import PgmqBroker

        class TaskWatch(Signals):
            """Signals that also wake `changed` waiters on any task's change."""

            changed = trio.Event()

            def fire(self, key: str, carrying: object = None) -> None:
                super().fire(key, carrying)
                if key.startswith("task:"):
                    TaskWatch.changed.set()
                    TaskWatch.changed = trio.Event()

        self.watch = TaskWatch
        db.attach(TaskWatch())
        self.db = db
        self.broker = PgmqBroker(db)
        self.run_id = uuid.uuid4().hex[:8]
        self.identifiers = {template.name: template.identifier for template in templates()}

    async def _send(self, shape: str, key: str) -> str:
        """Request a ``shape`` task with idempotency ``key``; return its identity hash, which
        the tasks table indexes (what a client watching its tasks would use)."""
        from tasker_trio.models import ORCHESTRATION_TASK_REQUESTS, TaskRequest, identity_hash
        from tasker_trio.models.messages import TaskRequestMessage

        request = TaskRequest.create(NAMESPACE, shape, {"run": self.run_id}, idempotency_key=key)
        message = TaskRequestMessage(request=request).to_json()
        await self.broker.send(ORCHESTRATION_TASK_REQUESTS, message)
        return identity_hash(self.identifiers[shape], key=key)

    async def _until(self, check: Callable[[], Awaitable[bool]], seconds: float) -> None:
        with trio.fail_after(seconds):
            while True:
                changed = self.watch.changed
                if await check():
                    return
                with trio.move_on_after(0.25):  # hybrid: a lost NOTIFY costs this much
                    await changed.wait()

    async def one(self, shape: str, i: int) -> float:
        started = time.perf_counter()
        identity = await self._send(shape, f"{self.run_id}-{shape}-{i}")

        async def done() -> bool:
            state = await self.db.fetchval(
                "SELECT state FROM tasker.tasks WHERE identity_hash = $1",
                identity,
                where="bench: watching a task",
            )
            if state in SETTLED and state != "complete":
                raise RuntimeError(f"{shape} ended {state}")
            return bool(state == "complete")

        await self._until(done, 60)
        return (time.perf_counter() - started) * 1000.0

    async def _settled(self) -> tuple[int, int]:
        """How many tasks have completed, and settled otherwise (only the bench submits)."""
        row = await self.db.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'complete') AS complete,"
            " count(*) FILTER (WHERE state <> 'complete') AS failed"
            " FROM tasker.tasks WHERE state = ANY($1::text[])",
            list(SETTLED),
            where="bench: watching a batch",
        )
        return int(row["complete"]), int(row["failed"])

    async def many(self, shape: str, n: int) -> float:
        complete0, failed0 = await self._settled()
        started = time.perf_counter()
        batch = uuid.uuid4().hex[:8]
        for i in range(n):
            await self._send(shape, f"{batch}-{i}")

        async def done() -> bool:
            await trio.sleep(0.01)  # coalesce the notifications of a busy moment
            complete, failed = await self._settled()
            if failed > failed0:
                raise RuntimeError(f"{failed - failed0} tasks did not complete")
            return complete - complete0 >= n

        await self._until(done, 300)
        return time.perf_counter() - started
