"""The queues' static sends, reads and deletes (migrations 0012, 0019, 0022 and 0025,
``tasker.q_prepare``).

Whoever created a queue — this engine, PGMQ itself, another tool, or a database migrated
before 0012 — the engine's sends and deletes work on it, and processes creating the same
queue at once do not trip over each other.
"""

from __future__ import annotations

import pytest
import trio

from tasker_trio.db import Database, migrations
from tasker_trio.messaging.pgmq import PgmqBroker

_PREPARED = "SELECT EXISTS (SELECT 1 FROM tasker.prepared_queues WHERE queue_name = $1)"
_DISPATCHES = """
SELECT bool_and(position(quote_literal($1) IN prosrc) > 0) FROM pg_proc
WHERE oid IN ('tasker.q_send_prepared'::regproc, 'tasker.q_send_rows'::regproc,
              'tasker.q_read_prepared'::regproc, 'tasker.q_delete_prepared'::regproc)
"""


async def _prepared(db: Database, queue: str) -> bool:
    """Whether ``queue`` is registered and every dispatcher (sends, reads, deletes) names
    it."""
    registered = await db.fetchval(_PREPARED, queue, where="test")
    written = await db.fetchval(_DISPATCHES, queue, where="test")
    assert registered == written
    return bool(registered)


async def test_a_queue_the_engine_creates_gets_its_statements(database: Database) -> None:
    broker = PgmqBroker(database)

    first = await broker.send("fresh_queue", {"n": 1})
    second = await broker.send("fresh_queue", {"n": 2})
    [message, _] = await broker.read("fresh_queue", limit=5, visibility_timeout=30)

    assert second == first + 1
    assert message.payload == {"n": 1}
    assert await broker.delete("fresh_queue", first)
    assert not await broker.delete("fresh_queue", first)  # gone already
    assert await _prepared(database, "fresh_queue")


async def test_a_queue_pgmq_created_itself_is_used_as_it_is(database: Database) -> None:
    await database.fetchval("SELECT pgmq.create('made_elsewhere')", where="test")
    await database.fetchval(
        "SELECT pgmq.send('made_elsewhere', '{\"from\": \"pgmq\"}'::jsonb)", where="test"
    )
    broker = PgmqBroker(database)

    sent = await broker.send("made_elsewhere", {"from": "engine"})
    messages = await broker.read("made_elsewhere", limit=5, visibility_timeout=30)

    assert [m.payload for m in messages] == [{"from": "pgmq"}, {"from": "engine"}]
    assert await _prepared(database, "made_elsewhere")
    assert await broker.delete("made_elsewhere", sent)


async def test_a_queue_pgmq_created_is_read_before_the_engine_sends_to_it(
    database: Database,
) -> None:
    await database.fetchval("SELECT pgmq.create('read_first')", where="test")
    for n in (1, 2):
        await database.fetchval(f"SELECT pgmq.send('read_first', '{{\"n\": {n}}}')", where="test")
    broker = PgmqBroker(database)

    first = await broker.read("read_first", limit=1, visibility_timeout=30)
    rest = await broker.read("read_first", limit=5, visibility_timeout=30)

    assert [m.payload for m in first + rest] == [{"n": 1}, {"n": 2}]
    assert [m.read_ct for m in first + rest] == [1, 1]
    assert await broker.read("read_first", limit=5, visibility_timeout=30) == []  # hidden
    assert await _prepared(database, "read_first")


async def test_a_queue_nobody_created_reads_and_deletes_nothing(database: Database) -> None:
    assert not await PgmqBroker(database).delete("never_created", 1)
    assert await PgmqBroker(database).read("never_created", limit=5, visibility_timeout=30) == []
    assert not await _prepared(database, "never_created")


@pytest.mark.parametrize("queues", [1, 6])
async def test_processes_sending_to_a_new_queue_at_once_all_succeed(
    database: Database, queues: int
) -> None:
    # Each connection may have read the dispatchers before another one prepared the queue.
    broker = PgmqBroker(database)  # the pool's connections stand for the processes
    names = [f"raced_queue_{q}" for q in range(queues)]
    ids: dict[str, list[int]] = {name: [] for name in names}

    async def send(name: str, n: int) -> None:
        ids[name].append(await broker.send(name, {"n": n}))

    async with trio.open_nursery() as nursery:
        for n in range(8):
            for name in names:
                nursery.start_soon(send, name, n)

    for name in names:
        assert sorted(ids[name]) == list(range(min(ids[name]), min(ids[name]) + 8))
        messages = await broker.read(name, limit=20, visibility_timeout=30)
        assert sorted(m.payload["n"] for m in messages) == list(range(8))


async def test_queues_of_a_database_migrated_before_their_statements_get_them(
    empty_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = migrations.load_migrations()
    monkeypatch.setattr(
        migrations, "load_migrations", lambda: tuple(m for m in every if m.version < 12)
    )
    await migrations.migrate(empty_database)
    await empty_database.fetchval(
        "SELECT tasker.q_send('older_queue', '{}'::jsonb, 0, 0)", where="test"
    )
    monkeypatch.undo()

    await migrations.migrate(empty_database)

    assert await _prepared(empty_database, "older_queue")
    [message] = await PgmqBroker(empty_database).read("older_queue", limit=5, visibility_timeout=9)
    assert await PgmqBroker(empty_database).delete("older_queue", message.msg_id)


async def test_a_queue_dropped_with_pgmq_is_created_again_on_its_next_send(
    database: Database,
) -> None:
    broker = PgmqBroker(database)
    first = await broker.send("dropped_queue", {"n": 1})
    await database.fetchval("SELECT pgmq.drop_queue('dropped_queue')", where="test")
    assert not await broker.delete("dropped_queue", first)  # no queue: nothing to delete

    again = await broker.send("dropped_queue", {"n": 2})

    [message] = await broker.read("dropped_queue", limit=5, visibility_timeout=30)
    assert (message.msg_id, message.payload) == (again, {"n": 2})
    assert await broker.delete("dropped_queue", again)
