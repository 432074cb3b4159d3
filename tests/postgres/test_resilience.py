"""Lost connections: operations retry (without applying twice), the listener reconnects.

Real time, short retry timeouts. The server drops connections by ``pg_terminate_backend``;
"unreachable" is a TCP proxy in front of the server that a test cuts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import asyncpg  # type: ignore[import-untyped]
import pytest
import trio

from tasker_trio.db import Database, DatabaseUnavailable, open_database
from tasker_trio.db.errors import DatabaseConflict, DatabaseError, translate
from tasker_trio.db.retry import Failure, RetryPolicy, retrying
from tests.contracts._builders import START, make_graph
from tests.postgres._database import open_process
from tests.postgres._proxy import open_proxy

QUEUE = "resilience_test"
PAYLOAD = {"n": 1}
TERMINATE_ALL = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
FAST = RetryPolicy(timeout=0.5, initial_backoff=0.01, max_backoff=0.1)


async def _wait_for(condition: Callable[[], bool], *, within: float = 3.0) -> None:
    with trio.fail_after(within):
        # Statistics have no event to wait on; a short poll is fine in a test.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_operations_recover_and_the_listener_reconnects_after_termination(
    database: Database,
) -> None:
    async with (
        open_process(database.dsn, wakeups="event") as a,
        open_process(database.dsn, wakeups="poll", max_size=1) as killer,
    ):
        listener = a.db.listener
        assert listener is not None
        graph = make_graph(["a"])
        await a.store.create_task(graph.task, graph.steps, graph.edges, planner=START)
        woke = trio.Event()

        async def waiter() -> None:  # waits "forever" on a notification that never comes
            await a.broker.wait_for_messages("silent_queue", timeout=60)
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.1)
            assert await killer.db.fetchval(TERMINATE_ALL) >= 2  # A's pool and listener
            with trio.fail_after(3):
                await woke.wait()  # woken once the listener is back
        await _wait_for(lambda: listener.statistics().reconnects >= 1)
        assert listener.statistics().connected

        # The pool reconnects: reads, idempotent writes and sends all work again.
        task, created = await a.store.create_task(
            graph.task, graph.steps, graph.edges, planner=START
        )
        assert (task.task_uuid, created) == (graph.task.task_uuid, True)
        assert (await a.store.get_task(graph.task.task_uuid)).task_uuid == graph.task.task_uuid
        await a.broker.send(QUEUE, PAYLOAD)

        # And notifications flow again: a send by another process wakes A promptly.
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(a.broker.wait_for_messages, "later", timeout=5))
            await trio.sleep(0.05)
            await killer.broker.send("later", PAYLOAD)
        assert trio.current_time() - start < 1.0


async def test_a_retried_create_task_reports_our_own_commit_as_created(database: Database) -> None:
    async with open_process(database.dsn) as a:
        graph = make_graph(["a"])
        first = await a.store.create_task(graph.task, graph.steps, graph.edges, planner=START)
        # The same call again is what a retry after a lost commit acknowledgement sends.
        again = await a.store.create_task(graph.task, graph.steps, graph.edges, planner=START)
        assert first[1]
        assert again[1]
        assert (
            len(await a.broker.read("worker_contracts_queue", limit=10, visibility_timeout=60)) == 1
        )
        twin = make_graph(["a"], identity_hash=graph.task.identity_hash)
        _, created = await a.store.create_task(twin.task, twin.steps, twin.edges, planner=START)
        assert not created


async def test_an_unreachable_server_gives_a_clear_database_unavailable(
    database: Database,
) -> None:
    async with (
        open_proxy(database.dsn) as proxy,
        open_database(proxy.url(database.dsn), max_size=2, retry=FAST, wakeups="poll") as db,
    ):
        assert await db.fetchval("SELECT 1") == 1
        proxy.cut()
        start = trio.current_time()
        with pytest.raises(DatabaseUnavailable, match="stayed unavailable") as caught:
            await db.fetchval("SELECT 1", where="probing", idempotent=True)
        assert trio.current_time() - start < 2.0
        assert "probing" in str(caught.value)


async def test_opening_an_unreachable_server_fails_at_once() -> None:
    with trio.fail_after(5), pytest.raises(DatabaseUnavailable, match="connecting to"):
        async with open_database("postgresql://postgres@127.0.0.1:1/nowhere"):
            pass


async def test_only_idempotent_operations_retry_after_the_statement_was_sent() -> None:
    calls = 0
    lost = DatabaseUnavailable("op: connection lost")

    async def sent_then_lost() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Failure(lost, sent=True)
        return calls

    with pytest.raises(DatabaseUnavailable, match="may have committed"):
        await retrying(sent_then_lost, FAST, idempotent=False, where="op")
    calls = 0
    assert await retrying(sent_then_lost, FAST, idempotent=True, where="op") == 2

    async def not_sent_then_ok() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Failure(lost, sent=False)
        return calls

    calls = 0
    assert await retrying(not_sent_then_ok, FAST, idempotent=False, where="op") == 2

    async def refused() -> int:
        raise Failure(DatabaseError("op: unique violation", sqlstate="23505"), sent=True)

    with pytest.raises(DatabaseError, match="unique violation"):
        await retrying(refused, FAST, idempotent=True, where="op")


async def test_deadlock_victims_are_retried_whatever_the_operation() -> None:
    """A deadlock (or serialization) victim was rolled back whole: running it again is safe."""
    calls = 0

    async def deadlocked_once() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            error = DatabaseConflict("op: deadlock detected", sqlstate="40P01")
            raise Failure(error, sent=True)
        return calls

    assert await retrying(deadlocked_once, FAST, idempotent=False, where="op") == 2


async def test_a_server_deadlock_is_translated_as_a_retryable_conflict() -> None:
    class Deadlock(asyncpg.exceptions.DeadlockDetectedError):  # type: ignore[misc]
        pass

    error = translate(Deadlock("deadlock detected"), where="applying a plan")
    assert isinstance(error, DatabaseConflict)
    assert error.sqlstate == "40P01"
    assert Failure(error, sent=True).retryable(idempotent=False)
