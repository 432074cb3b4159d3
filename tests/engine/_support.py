"""Helpers for the engine tests: templates from small dicts, a call recorder, audit checks.

`running_engine` opens the engine on the backend of the running test: for a PostgreSQL run,
the test's Trio runner (``conftest.py``) opens a fresh database around the whole test and
hands it over through `use_database`; for a memory run there is none.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import trio
import yaml

import tasker_trio
from tasker_trio import Engine, StepContext, TaskTemplate, Transition
from tasker_trio.db import Database
from tasker_trio.state_machine import StepEvent, StepState, TaskEvent, TaskState, transition

NAMESPACE = "eng"


def step(
    name: str,
    handler: str,
    *deps: str,
    retry: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One template step as its YAML mapping."""
    spec: dict[str, Any] = {"name": name, "handler": {"callable": handler}}
    if config is not None:
        spec["handler"]["initialization"] = dict(config)
    if deps:
        spec["dependencies"] = list(deps)
    if retry is not None:
        spec["retry"] = dict(retry)
    if timeout is not None:
        spec["timeout_seconds"] = timeout
    return spec


def template(
    name: str,
    steps: list[dict[str, Any]],
    *,
    namespace: str = NAMESPACE,
    version: str = "1.0.0",
    **extra: Any,
) -> TaskTemplate:
    """A template built through YAML text, as a user's file would be."""
    doc = {"name": name, "namespace_name": namespace, "version": version, **extra, "steps": steps}
    return TaskTemplate.from_yaml(yaml.safe_dump(doc, sort_keys=False))


@attrs.define
class Call:
    """One handler invocation as the handler saw it."""

    step: str
    attempt: int
    at: float
    ctx: StepContext


@attrs.define
class Recorder:
    """Records every handler call (step name, attempt, Trio time, context)."""

    calls: list[Call] = attrs.field(factory=list)

    def record(self, ctx: StepContext) -> None:
        self.calls.append(Call(ctx.step_name, ctx.attempt, trio.current_time(), ctx))

    def of(self, step_name: str) -> list[Call]:
        return [c for c in self.calls if c.step == step_name]

    def names(self) -> list[str]:
        return [c.step for c in self.calls]


POSTGRES_POLL_INTERVAL = 5.0
"""The polling fallback of PostgreSQL test engines and databases (see `running_engine`)."""

_database: Database | None = None
"""The running test's PostgreSQL database (None: the memory backend)."""
_handoffs = True
"""Whether engines on that database hand steps and results over in-process."""


@contextmanager
def use_database(database: Database | None, *, handoffs: bool = True) -> Iterator[None]:
    """Run the engines `running_engine` opens on ``database`` until the block ends.

    ``handoffs=False`` makes them pass every step and result through the queues, as
    separate processes do (`open_engine`'s ``handoffs``).
    """
    global _database, _handoffs  # one test at a time; read below
    _database, _handoffs = database, handoffs
    try:
        yield
    finally:
        _database, _handoffs = None, True


@asynccontextmanager
async def running_engine(
    templates: Any,
    handlers: Mapping[str, Callable[..., Any]],
    *,
    seed: int = 7,
    visibility_timeout: float = 30.0,
    poll_interval: float | None = None,
    worker_concurrency: int = 8,
) -> AsyncIterator[Engine]:
    """`open_engine` with test defaults (seeded jitter, short polling), on the test's backend.

    On PostgreSQL the store runs on the Trio clock (the test's `MockClock`), and the
    database — open for the whole test, with its mock-clock guard — outlives the engine, so
    a test may still read the store after the engine closed.

    ``poll_interval`` defaults to 0.5 s on memory and 5 s on PostgreSQL: polling is only the
    fallback (in one process every send and state change wakes its waiters at once), but on
    PostgreSQL each poll is real queries, and a test that lets minutes of mock time pass
    would spend its real time polling.
    """
    async with tasker_trio.open_engine(
        templates,
        database=_database,
        clock=None if _database is None else trio.current_time,
        handlers=handlers,
        worker_concurrency=worker_concurrency,
        visibility_timeout=visibility_timeout,
        poll_interval=poll_interval or (0.5 if _database is None else POSTGRES_POLL_INTERVAL),
        rng=random.Random(seed),
        handoffs=_handoffs,
    ) as engine:
        yield engine


async def run_task(
    engine: Engine, name: str, context: dict[str, Any] | None = None, *, limit: float = 600
) -> tasker_trio.Task:
    """Submit ``name`` and wait (at most ``limit`` seconds) until it settles."""
    submission = await engine.submit(NAMESPACE, name, context or {})
    return await engine.wait_for_task(submission.task_uuid, timeout=limit)


async def step_states(engine: Engine, task_uuid: str) -> dict[str, StepState]:
    return {s.name: s.state for s in await engine.get_steps(task_uuid)}


def check_trail(trail: list[Transition], *, kind: str) -> None:
    """sort_key 1..n, one most_recent (the last), and a legal replay from pending."""
    assert trail, "an entity that moved has at least one record"
    assert [t.sort_key for t in trail] == list(range(1, len(trail) + 1))
    assert [t.most_recent for t in trail] == [False] * (len(trail) - 1) + [True]
    state: Any = TaskState.PENDING if kind == "task" else StepState.PENDING
    for record in trail:
        assert record.from_state == str(state), (record, state)
        if kind == "task":
            state = transition(state, TaskEvent(record.event))
        else:
            state = transition(state, StepEvent(record.event))
        assert record.to_state == str(state), record


# Handlers referenced by import path or registered name in `test_engine_handlers.py`
# (registered once, at import: `step_handler` refuses a second object under a name).


@tasker_trio.step_handler("tests_engine_registered")
async def registered_handler(ctx: StepContext) -> dict[str, Any]:
    """Registered as ``tests_engine_registered``."""
    return {"how": "registered"}


@tasker_trio.step_handler("tests_engine_shadowed")
async def shadowed_handler(ctx: StepContext) -> dict[str, Any]:
    """Registered as ``tests_engine_shadowed``; the engine's own handlers= take precedence."""
    return {"from": "registry"}


def import_path_handler(ctx: StepContext) -> dict[str, Any]:
    """Referenced as ``tests.engine._support:import_path_handler``."""
    return {"how": "function", "n": ctx.get_input("n")}


class ClassHandler:
    """Referenced as ``tests.engine._support.ClassHandler`` (instantiated once per worker)."""

    instances = 0

    def __init__(self) -> None:
        type(self).instances += 1
        self.calls = 0

    async def call(self, ctx: StepContext) -> dict[str, Any]:
        self.calls += 1
        return {"how": "class", "calls": self.calls}
