"""The engine side of `EngineStateMachine`: its engine, snapshots of it, and time until it rests.

`EngineSide` is the machine's base for everything that touches the running engine rather
than deciding what to do or what must hold: opening the example's engine on the machine's
`TrioThread` (embedded, or on the scratch PostgreSQL database), taking the
`tasker_trio.testing.invariants.EngineSnapshot` the invariants read after every rule,
running one of those checks against it, finding the failed steps an operator could reset,
and at teardown letting time pass until every task settled. It keeps no state of its own:
the attributes it declares are the machine's configuration and state.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import trio

from tasker_trio.engine import open_engine
from tasker_trio.engine_api import SETTLED_STATES, Engine
from tasker_trio.models import Task
from tasker_trio.state_machine import StepState
from tasker_trio.templates import TaskTemplate
from tasker_trio.testing import invariants as inv
from tasker_trio.testing.database import open_scratch_database
from tasker_trio.testing.strategies import Workload
from tasker_trio.testing.trio_thread import TrioThread
from tasker_trio.worker.handlers import HandlerFn

__all__ = ["EngineSide"]


class EngineSide:
    """The engine of one example and the snapshots of it (a base of `EngineStateMachine`).

    The configuration (see `EngineStateMachine`) and the state are the machine's.
    """

    database: ClassVar[str | None]
    visibility_timeout: ClassVar[float]
    poll_interval: ClassVar[float]
    drain_step: ClassVar[float]
    horizon: ClassVar[float]
    worker_concurrency: ClassVar[int]

    runner: TrioThread
    engine: Engine | None
    workload: Workload
    templates: dict[tuple[str, str, str], TaskTemplate]
    submitted: Mapping[str, object]
    snapshot: inv.EngineSnapshot | None
    _broken: bool

    # ------------------------------------------------------------------ the engine side

    async def _serve(
        self, handlers: Mapping[str, HandlerFn], *, task_status: trio.TaskStatus[Engine]
    ) -> None:
        async with self._open_engine(handlers) as engine:
            task_status.started(engine)
            await trio.sleep_forever()

    @asynccontextmanager
    async def _open_engine(self, handlers: Mapping[str, HandlerFn]) -> AsyncIterator[Engine]:
        """The engine of this example, on the memory backend or on the scratch database.

        On PostgreSQL the store and broker run on the Trio clock (the runner's mock clock),
        and every round trip is inside `TrioThread.io_guard`, so settling waits for the
        database and a query takes no mock time, as a memory operation takes none.
        """
        options: dict[str, Any] = {
            "handlers": handlers,
            "rng": random.Random(0),
            "visibility_timeout": self.visibility_timeout,
            "poll_interval": self.poll_interval,
            "worker_concurrency": self.worker_concurrency,
        }
        if self.database is None:
            async with open_engine(self.workload.templates, **options) as engine:
                yield engine
            return
        async with (
            open_scratch_database(
                self.database, guard=self.runner.io_guard, poll_interval=self.poll_interval
            ) as db,
            open_engine(
                self.workload.templates, database=db, clock=trio.current_time, **options
            ) as engine,
        ):
            yield engine

    # ------------------------------------------------------------------ helpers

    def _engine(self) -> Engine:
        assert self.engine is not None, "the engine is not open"
        return self.engine

    def _parents(self, task: Task) -> dict[str, tuple[str, ...]]:
        template = self.templates[(task.namespace, task.name, task.version)]
        return {s.name: tuple(s.dependencies) for s in template.steps}

    def _refresh(self) -> None:
        engine = self._engine()
        self._broken = True  # until the snapshot is taken: a failed call skips teardown checks
        self.snapshot = self.runner.call(
            inv.take_snapshot, engine, list(self.submitted), self._parents, self.runner.now()
        )
        self._broken = False

    def _check(self, check: Any) -> None:
        if self.snapshot is None:
            return
        self._broken = True
        problems = check(self.snapshot)
        assert not problems, "\n".join(problems)
        self._broken = False

    def _failed_steps(self) -> list[tuple[str, str]]:
        if self.snapshot is None:
            return []
        return [
            (uuid, step.name)
            for uuid, record in self.snapshot.tasks.items()  # submission order: reproducible
            for step in record.steps
            if step.state == StepState.ERROR
        ]

    def _drain(self) -> None:
        """Jump ``drain_step`` at a time until every task settled (or ``horizon`` passed),
        then one visibility timeout more, so that redelivered messages would show."""
        elapsed = 0.0
        while elapsed < self.horizon:
            self._refresh()
            assert self.snapshot is not None
            if all(r.task.state in SETTLED_STATES for r in self.snapshot.tasks.values()):
                break
            self.runner.jump(self.drain_step)
            elapsed += self.drain_step
        quiet = 0.0
        while quiet <= self.visibility_timeout:
            self.runner.jump(self.drain_step)
            quiet += self.drain_step
        self._refresh()
