"""Fixtures of the end-to-end engine tests (both backends, Trio's MockClock).

Every test runs twice: on the memory backend and on PostgreSQL + PGMQ (a fresh migrated
database per test; skipped with the reason when no server is reachable, failed under
``CI``). On PostgreSQL the store runs on the Trio clock, and the database guard holds the
mock clock still while a query is in flight, so database work takes no mock time, as memory
work takes none.

Most tests take ``autojump_clock`` so that backoffs, timeouts and visibility timeouts pass
instantly while `trio.current_time()` still shows them. Tests with sync handlers run on the
real clock: a handler running in a thread looks idle to the autojump clock, which would
jump straight past the step's timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio

from tests.engine._support import POSTGRES_POLL_INTERVAL, Recorder, use_database
from tests.postgres._database import fresh_database, skip_without_server

BACKENDS = [
    "memory",
    pytest.param("postgres", marks=skip_without_server()),
    pytest.param("postgres-queues", marks=skip_without_server()),
]
"""``postgres-queues``: PostgreSQL with the in-process handoffs off (``handoffs=False``),
so every step and result goes through the queues, as between separate processes."""


@pytest.fixture(autouse=True, params=BACKENDS, ids=["memory", "postgres", "postgres-queues"])
def engine_backend(request: pytest.FixtureRequest) -> str:
    """The backend of this run of the test (see `pytest_collection_modifyitems`)."""
    backend: str = request.param
    return backend


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run each PostgreSQL test inside a fresh database that outlives its engines.

    The database is opened by the test's Trio runner rather than by an async fixture:
    pytest-trio runs only the async fixtures a test names, and an autouse one would be
    skipped silently (the test would run on memory twice). Opening it around the whole
    test also lets a test read the store after its engine has closed.
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("engine_backend") if callspec is not None else None
        if backend in ("postgres", "postgres-queues"):
            run = partial(_run_in_fresh_database, handoffs=backend == "postgres")
            item.add_marker(pytest.mark.trio(run=run), append=False)


def _run_in_fresh_database(
    test: Callable[[], Awaitable[Any]],
    *,
    clock: trio.abc.Clock | None,
    instruments: Any,
    handoffs: bool,
) -> Any:
    async def main() -> Any:
        async with fresh_database(poll_interval=POSTGRES_POLL_INTERVAL) as db:
            with use_database(db, handoffs=handoffs):
                return await test()

    return trio.run(main, clock=clock, instruments=instruments)


@pytest.fixture
def recorder() -> Recorder:
    """A fresh handler-call recorder."""
    return Recorder()
