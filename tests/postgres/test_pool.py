"""The bridge's Trio-side connection pool (`tasker_trio.db.pool`): bounded, reused, and
never handing out a connection an operation left in doubt."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tasker_trio.db import Database, DatabaseError, DatabaseUnavailable, open_database
from tasker_trio.db.pool import TrioPool
from tests.postgres._database import fresh_database


async def backend_pid(db: Database) -> int:
    pid: int = await db.fetchval("SELECT pg_backend_pid()")
    return pid


async def test_one_operation_at_a_time_keeps_using_one_connection(database: Database) -> None:
    pids = {await backend_pid(database) for _ in range(20)}

    assert len(pids) == 1


async def test_the_pool_never_opens_more_than_its_size(database: Database) -> None:
    size = database.pool.max_size
    running = peak = 0

    async def busy(conn: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await conn.execute("SELECT pg_sleep(0.05)")
        finally:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(3 * size):
            nursery.start_soon(database.run, busy)

    assert peak == size
    assert database.pool.size <= size


async def test_a_refused_statement_leaves_its_connection_in_the_pool(database: Database) -> None:
    pid = await backend_pid(database)
    with pytest.raises(DatabaseError, match="DivisionByZero"):
        await database.fetchval("SELECT 1 / 0")

    assert await backend_pid(database) == pid
    assert database.pool.discarded == 0


async def test_a_connection_cut_by_the_server_is_replaced(database: Database) -> None:
    pid = await backend_pid(database)
    async with open_database(database.dsn, wakeups="poll") as other:
        await other.fetchval("SELECT pg_terminate_backend($1)", pid)

    # The idle connection looks fine until used: the read fails, is retried (a read is
    # idempotent), and runs on a new connection.
    after: int = await database.fetchval("SELECT pg_backend_pid()", idempotent=True)

    assert after != pid
    assert database.pool.discarded == 0  # the server closed it: nothing left to terminate
    assert database.pool.size == 1


async def test_a_cancelled_operation_does_not_return_its_connection(database: Database) -> None:
    pid = await backend_pid(database)
    with trio.move_on_after(0.05):
        await database.fetchval("SELECT pg_sleep(5)")

    assert await backend_pid(database) != pid
    assert database.pool.discarded == 1


def test_a_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TrioPool(lambda: None, None, max_size=0)  # type: ignore[arg-type,return-value]


async def test_operations_on_a_closing_or_closed_database_fail_with_database_unavailable() -> None:
    outcome: list[BaseException] = []

    async def sleeping(db: Database) -> None:
        try:
            await db.fetchval("SELECT pg_sleep(30)", where="sleeping")
        except DatabaseUnavailable as exc:
            outcome.append(exc)

    with trio.fail_after(20):
        async with trio.open_nursery() as callers, fresh_database() as db:
            callers.start_soon(sleeping, db)
            while not await db.fetchval(  # noqa: ASYNC110  # the server is polled
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
            ):
                await trio.sleep(0.01)

    # In flight when it closed, then started after it closed: neither hangs, neither leaks
    # an asyncio error.
    assert [str(exc) for exc in outcome] == [
        "sleeping: the database closed while this was on its way"
    ]
    with pytest.raises(DatabaseUnavailable, match=r"^reading: the database is closed$"):
        await db.fetchval("SELECT 1", where="reading", idempotent=True)
