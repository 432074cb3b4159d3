"""Fresh PostgreSQL databases for tests: one uniquely named, migrated database per test.

The server is ``TASKER_TEST_DATABASE_URL`` (a DSN whose database is used only to create and
drop the test databases), else ``postgresql://postgres@127.0.0.1:5432/postgres``. When it
cannot be reached the test is skipped with the reason — unless ``CI`` is set, where it fails.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import pytest
import trio
from trio.testing import MockClock

from tasker_trio.db import Database, DatabaseUnavailable, migrate, open_database
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.store.postgres import PostgresStore

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The DSN of the test server's maintenance database."""
    return os.environ.get("TASKER_TEST_DATABASE_URL", DEFAULT_URL)


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` instead."""
    base, _, query = dsn.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{query}" if query else "")


@functools.cache
def unreachable_reason() -> str | None:
    """Why the test server cannot be reached (a TCP probe), or None; always None under CI.

    Checked at collection so the skip carries its reason (pytest-trio 0.8 drops the message
    of a skip raised inside Trio); `fresh_database` still skips (or fails) at run time when
    the server is up but refuses the connection.
    """
    if os.environ.get("CI"):
        return None
    from urllib.parse import urlsplit

    url = urlsplit(server_url())
    host, port = url.hostname or "127.0.0.1", url.port or 5432
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return f"no PostgreSQL server for the tests at {host}:{port} ({exc})"


def skip_without_server() -> pytest.MarkDecorator:
    """A mark that skips a test when the test server is unreachable (see above)."""
    reason = unreachable_reason()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


class HoldMockClock:
    """A bridge guard: no autojump of a `MockClock` while the database works.

    Real I/O looks idle to Trio, so under ``autojump_threshold=0`` the clock would jump to
    the next deadline (a waiter's timeout) in the middle of every query. While any crossing
    is in flight the threshold is infinite; the mock clock (``rate=0``) then stands still, so
    a database operation takes no time on it, as a memory operation takes none.
    """

    def __init__(self) -> None:
        self._depth = 0
        self._saved = 0.0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        clock = trio.lowlevel.current_clock()
        if not isinstance(clock, MockClock):
            yield
            return
        if self._depth == 0:
            self._saved = clock.autojump_threshold
            clock.autojump_threshold = math.inf
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                clock.autojump_threshold = self._saved


async def _admin(sql: str, guard: HoldMockClock) -> None:
    try:
        async with open_database(
            server_url(), min_size=1, max_size=1, wakeups="poll", guard=guard
        ) as admin:
            await admin.fetchval(sql)
    except DatabaseUnavailable as exc:
        reason = f"no PostgreSQL server for the tests at {server_url()}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@asynccontextmanager
async def fresh_database(*, migrated: bool = True, **options: Any) -> AsyncIterator[Database]:
    """A new database on the test server (migrated unless told not to), dropped afterwards.

    ``options`` go to `open_database` (``wakeups``, ``poll_interval``, ``retry``...).
    """
    guard = HoldMockClock()
    name = f"tasker_test_{uuid.uuid4().hex[:16]}"
    await _admin(f'CREATE DATABASE "{name}"', guard)
    try:
        async with open_database(
            with_database(server_url(), name), min_size=1, max_size=8, guard=guard, **options
        ) as db:
            if migrated:
                await migrate(db)
            yield db
    finally:
        with trio.CancelScope(shield=True):
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', guard)


def count_crossings(db: Database) -> list[str]:
    """The labels of ``db``'s round trips from now on, in order (a list that grows): its
    crossings (`Database.run`) and the statements of operations that hold their connection
    (`Database.crossed`: the batches of plans)."""
    crossings: list[str] = []
    run = db.run
    crossed = db.crossed

    async def counting(operation: Any, *, where: str = "", idempotent: bool = False) -> Any:
        crossings.append(where)
        return await run(operation, where=where, idempotent=idempotent)

    def counting_held(where: str, seconds: float) -> None:
        crossings.append(where)
        crossed(where, seconds)

    db.run = counting  # type: ignore[method-assign]
    db.crossed = counting_held  # type: ignore[method-assign]
    return crossings


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped when the block ends.

    For synchronous code that opens the database itself, for a whole session — e.g. the
    engine's Hypothesis state machine, which migrates it and empties it before every example
    (`tasker_trio.testing.database`). Skips (or fails under ``CI``) like `fresh_database`.
    """
    guard = HoldMockClock()
    name = f"tasker_test_{uuid.uuid4().hex[:16]}"
    trio.run(_admin, f'CREATE DATABASE "{name}"', guard)
    try:
        yield with_database(server_url(), name)
    finally:
        trio.run(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', guard)


@attrs.frozen(kw_only=True)
class Process:
    """What one engine process holds: its own database (pool and listener), store, broker."""

    db: Database
    store: PostgresStore
    broker: PgmqBroker


@asynccontextmanager
async def open_process(dsn: str, **options: Any) -> AsyncIterator[Process]:
    """Another "process" on the database at ``dsn``: its own `open_database`, store, broker.

    Nothing in-process is shared with other openers, so only the database (NOTIFY included)
    connects them, as between real processes. ``options`` go to `open_database`.
    """
    options.setdefault("min_size", 1)
    options.setdefault("max_size", 4)
    async with open_database(dsn, **options) as db:
        yield Process(db=db, store=PostgresStore(db), broker=PgmqBroker(db))
