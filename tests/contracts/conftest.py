"""The `backend` fixture: every contract test runs once per backend, so they cannot drift.

A backend is a `Store` and a `Broker` over the same state (DESIGN.md, "Backends"): a store
operation that implies a message sends it through the queues the broker reads. The suites
use only the protocols' methods; they read through ``backend.broker`` to observe the
messages a store operation sent.

Adding PostgreSQL: put ``"postgres"`` in `BACKENDS` and open it in `_open_backend` on a fresh
database (``TASKER_TEST_DATABASE_URL``, else 127.0.0.1:5432; skip with a clear reason when
none is reachable, unless ``CI`` is set). Timing tests let time pass with
``Backend.let_time_pass``; the PostgreSQL backend must make its store clock follow it (e.g. a
clock the test controls), since leases and visibility are compared with the store's ``now``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from tasker_trio.db.signals import Signals
from tasker_trio.messaging import MemoryQueues
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.store.memory import MemoryStore
from tasker_trio.store.postgres import PostgresStore
from tests.contracts._builders import Backend
from tests.postgres._database import fresh_database, skip_without_server

BACKENDS = ["memory", pytest.param("postgres", marks=skip_without_server())]
"""The backends every contract test runs against ("postgres" joins here)."""


async def _open_backend(name: str) -> AsyncIterator[Backend]:
    if name == "memory":
        queues = MemoryQueues()
        yield Backend(name=name, store=MemoryStore(queues), broker=queues)
        return
    if name == "postgres":
        # A fresh migrated database per test; the store and broker run on the Trio clock,
        # so `let_time_pass` (a sleep under the autojump MockClock) moves their time too.
        async with fresh_database() as db:
            signals = Signals()
            store = PostgresStore(db, signals=signals, clock=trio.current_time)
            broker = PgmqBroker(db, signals=signals, clock=trio.current_time)
            yield Backend(name=name, store=store, broker=broker)
        return
    raise AssertionError(f"no such backend in the contract suites: {name}")


@pytest.fixture(params=BACKENDS, ids=["memory", "postgres"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A fresh backend (empty store, empty queues) for one test."""
    async for opened in _open_backend(request.param):
        yield opened
