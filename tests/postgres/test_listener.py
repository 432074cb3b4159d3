"""Wake-ups across processes: NOTIFY from one database reaches the waiters of another.

"Process B" is a second `open_database` on the same database (its own pool, listener and
signals), so only PostgreSQL connects it to "process A". Real time, short timeouts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import trio

from tasker_trio.db import Database
from tasker_trio.db.signals import queue_key
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.store.postgres import PostgresStore
from tests.contracts._builders import START, make_graph, planner
from tests.postgres._database import count_crossings, open_process

QUEUE = "listener_test"
PAYLOAD = {"n": 1}
LONG = 5.0
"""A waiter's timeout (its poll interval): every prompt wake-up must come well before it."""
PROMPT = 1.0


async def test_a_send_in_another_process_wakes_wait_for_messages(database: Database) -> None:
    broker_a = PgmqBroker(database)
    async with open_process(database.dsn) as b:
        await b.broker.send(QUEUE, PAYLOAD)  # creates the queue
        assert len(await broker_a.read(QUEUE, limit=1, visibility_timeout=60)) == 1
        # B notifies after its commit: let that notification arrive before A waits.
        assert database.listener is not None
        await _until(lambda: database.listener.statistics().notifications >= 1)
        woke_after: list[float] = []

        async def waiter() -> None:
            start = trio.current_time()
            await broker_a.wait_for_messages(QUEUE, timeout=LONG)
            woke_after.append(trio.current_time() - start)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.2)  # A is waiting: nothing is visible
            assert not woke_after
            await b.broker.send(QUEUE, PAYLOAD)

    assert woke_after[0] < PROMPT
    assert len(await broker_a.read(QUEUE, limit=1, visibility_timeout=60)) == 1
    assert database.listener is not None
    statistics = database.listener.statistics()
    assert statistics.connected
    assert statistics.notifications >= 2


async def test_a_task_transition_in_another_process_wakes_wait_for_change(
    database: Database,
) -> None:
    store_a = PostgresStore(database)
    graph = make_graph(["a"])
    await store_a.create_task(graph.task, graph.steps, graph.edges, planner=planner(_nothing))
    woke_after: list[float] = []

    async def waiter() -> None:
        start = trio.current_time()
        seen = await store_a.wait_for_change(graph.task.task_uuid, timeout=LONG)
        woke_after.append(trio.current_time() - start)
        assert seen is None  # another process's change: the waiter reads the task itself

    async with open_process(database.dsn) as b, trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.2)
        assert not woke_after
        seen = count_crossings(b.db)
        published = b.db.publisher.sent
        await b.store.apply(graph.task.task_uuid, START)
        await trio.sleep(0.2)  # a publisher batch would have gone by now

    assert woke_after[0] < PROMPT
    # A plan alone (one step at a time) is announced by its own transaction (migration
    # 0016): B read the task it had never seen, applied the plan, and sent nothing after.
    assert seen == ["reading a task", "applying a plan"]
    assert b.db.publisher.sent == published


async def test_poll_mode_opens_no_listener_and_waits_return_at_the_poll_interval(
    database: Database,
) -> None:
    async with (
        open_process(database.dsn, wakeups="poll", poll_interval=0.3) as a,
        open_process(database.dsn) as b,
    ):
        assert a.db.listener is None
        await b.broker.send(QUEUE, PAYLOAD)
        assert len(await a.broker.read(QUEUE, limit=1, visibility_timeout=60)) == 1
        await b.broker.send(QUEUE, PAYLOAD)  # visible before A waits: A returns at once
        with trio.fail_after(PROMPT):
            await a.broker.wait_for_messages(QUEUE, timeout=LONG)
        await a.broker.read(QUEUE, limit=10, visibility_timeout=60)

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(a.broker.wait_for_messages, QUEUE, timeout=LONG))
            await trio.sleep(0.05)
            await b.broker.send(QUEUE, PAYLOAD)  # no NOTIFY reaches A: it polls
        waited = trio.current_time() - start
        assert 0.25 <= waited < PROMPT
        assert len(await a.broker.read(QUEUE, limit=1, visibility_timeout=60)) == 1


async def test_event_mode_waits_for_the_notification_not_the_poll_interval(
    database: Database,
) -> None:
    async with (
        open_process(database.dsn, wakeups="event", poll_interval=0.05) as a,
        open_process(database.dsn) as b,
    ):
        assert a.db.wait_bound(LONG) == LONG
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(a.broker.wait_for_messages, QUEUE, timeout=LONG))
            await trio.sleep(0.3)  # several poll intervals: the waiter still waits
            await b.broker.send(QUEUE, PAYLOAD)
        assert 0.3 <= trio.current_time() - start < PROMPT


async def test_the_echo_of_this_process_s_own_notification_wakes_nobody(
    database: Database,
) -> None:
    # This process woke its waiters itself when its change committed; the notification
    # its publisher sends for the other processes comes back through the LISTEN connection
    # and must not wake waiters that started since (they would return before a delayed
    # message is visible). Sent with raw SQL, so only the notification could fire the event.
    assert database.listener is not None
    event = database.signals.event(queue_key(QUEUE))
    before = database.listener.statistics().notifications
    await database.fetchval(
        "SELECT pg_notify('tasker_queues', $1 || '|' || $2)",
        QUEUE,
        database.origin,
        where="notifying raw",
    )
    await _until(lambda: database.listener.statistics().notifications > before)
    assert not event.is_set()

    async with open_process(database.dsn) as b:  # the same send from another process wakes
        await b.broker.send(QUEUE, PAYLOAD)
        await _until(event.is_set)


async def test_a_send_notifies_after_its_commit_not_inside_it(database: Database) -> None:
    # NOTIFY inside a transaction serialises its commit with every other notifying
    # commit; the statements leave it to the publisher, one batch per burst of commits
    # (plans sent alone are the exception: see the tests below).
    broker = PgmqBroker(database)
    sent, batches = database.publisher.sent, database.publisher.batches
    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(partial(broker.send, f"{QUEUE}_{i % 3}", PAYLOAD))
    await _until(lambda: database.publisher.sent >= sent + 3)
    assert database.publisher.batches - batches < 20  # coalesced
    inline = await database.fetchval(
        "SELECT current_setting('tasker.notify', true)", where="reading the notify mode"
    )
    assert inline == "deferred"

    # On such a connection the SQL functions do not notify; elsewhere they still do.
    async with open_process(database.dsn) as b:
        assert b.db.listener is not None
        heard = b.db.listener.statistics().notifications
        await database.fetchval("SELECT tasker.notify('tasker_queues', 'x')", where="inline")
        await trio.sleep(0.3)
        assert b.db.listener.statistics().notifications == heard
        await database.fetchval(
            "SELECT set_config('tasker.notify', '', true), tasker.notify('tasker_queues', 'x')",
            where="inline, as a tool",
        )
        await _until(lambda: b.db.listener.statistics().notifications > heard)


async def test_plans_in_a_batch_leave_their_announcements_to_the_publisher(
    database: Database,
) -> None:
    # Under load the batches are what limits throughput: their notifications go by the
    # publisher, in a transaction beside the next batch, and still wake the other process.
    store_a = PostgresStore(database)
    graphs = [make_graph(["a"]) for _ in range(4)]
    for graph in graphs:
        await store_a.create_task(graph.task, graph.steps, graph.edges, planner=planner(_nothing))
    woken: set[str] = set()

    async def waiter(task_uuid: str) -> None:
        await store_a.wait_for_change(task_uuid, timeout=LONG)
        woken.add(task_uuid)

    async with open_process(database.dsn) as b:
        seen = count_crossings(b.db)
        with trio.fail_after(PROMPT):
            async with trio.open_nursery() as nursery:
                for graph in graphs:
                    nursery.start_soon(waiter, graph.task.task_uuid)
                await trio.sleep(0.2)
                for graph in graphs:
                    nursery.start_soon(b.store.apply, graph.task.task_uuid, START)

    assert woken == {graph.task.task_uuid for graph in graphs}
    assert "applying a batch of plans" in seen
    assert "notifying other processes" in seen


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a listener's counter has no event to wait on) for `PROMPT` s."""
    for _ in range(int(PROMPT / 0.01)):
        if condition():
            return
        await trio.sleep(0.01)
    raise AssertionError(f"not within {PROMPT} s: {condition}")


async def test_a_notification_without_an_origin_wakes_every_waiter(database: Database) -> None:
    # psql or another tool: `tasker.notify` on a connection without tasker_trio's settings
    # notifies inline, with the bare queue name.
    broker = PgmqBroker(database)
    await broker.send(QUEUE, PAYLOAD)
    await broker.read(QUEUE, limit=1, visibility_timeout=60)
    async with open_process(database.dsn) as tool:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(broker.wait_for_messages, QUEUE, timeout=LONG))
            await trio.sleep(0.2)
            await tool.db.fetchval(
                "SELECT set_config('tasker.origin', '', true),"
                " set_config('tasker.notify', '', true),"
                " tasker.notify('tasker_queues', $1)",
                QUEUE,
                where="notifying like a tool",
            )
        assert trio.current_time() - start < PROMPT


def _nothing(*_: object) -> None:
    """A creation planner that leaves the task pending."""
