"""The `Broker` contract: what every backend's queues must do (PGMQ semantics).

Each test runs once per backend (see ``conftest.py``). Timing tests take ``autojump_clock``,
so waits for visibility timeouts and delays cost no real time.
"""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from tests.contracts._builders import Backend

QUEUE = "contract_queue"
OTHER = "contract_other_queue"
PAYLOAD = {"n": 1, "nested": {"list": [1, "two", None, True]}, "text": "héllo"}


async def test_read_returns_what_was_sent_once_and_hides_it(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    await backend.let_time_pass(5)
    sent_at = backend.now()
    msg_id = await broker.send(QUEUE, PAYLOAD)

    [message] = await broker.read(QUEUE, limit=10, visibility_timeout=30)

    assert message.queue == QUEUE
    assert message.msg_id == msg_id
    assert message.payload == PAYLOAD
    assert message.read_ct == 1
    assert message.enqueued_at == pytest.approx(sent_at)
    assert message.visible_at == pytest.approx(sent_at + 30)
    assert await broker.read(QUEUE, limit=10, visibility_timeout=30) == []


async def test_message_is_hidden_until_its_visibility_timeout_passes(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    msg_id = await broker.send(QUEUE, PAYLOAD)
    await broker.read(QUEUE, limit=1, visibility_timeout=10)

    await backend.let_time_pass(9.5)
    assert await broker.read(QUEUE, limit=1, visibility_timeout=10) == []

    await backend.let_time_pass(0.5)
    [again] = await broker.read(QUEUE, limit=1, visibility_timeout=10)
    assert again.msg_id == msg_id
    assert again.read_ct == 2
    assert again.payload == PAYLOAD


async def test_each_message_gets_its_own_id(backend: Backend) -> None:
    ids = [await backend.broker.send(QUEUE, {"i": i}) for i in range(5)]

    assert len(set(ids)) == 5


async def test_read_takes_at_most_limit_messages_oldest_first(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    ids = []
    for i in range(5):
        ids.append(await broker.send(QUEUE, {"i": i}))
        await backend.let_time_pass(0.01)

    first = await broker.read(QUEUE, limit=3, visibility_timeout=30)
    rest = await broker.read(QUEUE, limit=10, visibility_timeout=30)

    assert [m.payload["i"] for m in first] == [0, 1, 2]
    assert [m.payload["i"] for m in rest] == [3, 4]
    assert [m.msg_id for m in first + rest] == ids


async def test_read_returns_each_message_at_most_once_per_call(backend: Backend) -> None:
    broker = backend.broker
    first = await broker.send(QUEUE, {"i": 1})
    second = await broker.send(QUEUE, {"i": 2})

    # Even with no visibility timeout, one read hands out each message once (PGMQ: one
    # SELECT ... LIMIT n); a later read may hand it out again.
    messages = await broker.read(QUEUE, limit=10, visibility_timeout=0)

    assert [(m.msg_id, m.read_ct) for m in messages] == [(first, 1), (second, 1)]


async def test_read_hands_out_a_redelivered_message_before_newer_ones(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    older = await broker.send(QUEUE, {"i": "older"})
    await broker.read(QUEUE, limit=1, visibility_timeout=10)  # a worker takes it, then dies
    await backend.let_time_pass(5)
    newer = await broker.send(QUEUE, {"i": "newer"})
    await backend.let_time_pass(5)  # both visible now

    [first] = await broker.read(QUEUE, limit=1, visibility_timeout=10)
    [second] = await broker.read(QUEUE, limit=1, visibility_timeout=10)

    # Oldest first, by age (msg_id), as PGMQ orders its reads: a redelivered message is
    # not starved behind messages sent while it was hidden.
    assert (first.msg_id, first.read_ct) == (older, 2)
    assert (second.msg_id, second.read_ct) == (newer, 1)


async def test_delayed_send_becomes_visible_after_its_delay(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    msg_id = await broker.send(QUEUE, PAYLOAD, delay=5)

    assert await broker.read(QUEUE, limit=1, visibility_timeout=30) == []
    await backend.let_time_pass(4.9)
    assert await broker.read(QUEUE, limit=1, visibility_timeout=30) == []
    await backend.let_time_pass(0.1)
    [message] = await broker.read(QUEUE, limit=1, visibility_timeout=30)
    assert message.msg_id == msg_id
    assert message.read_ct == 1


async def test_extend_visibility_hides_the_message_longer(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    msg_id = await broker.send(QUEUE, PAYLOAD)
    await broker.read(QUEUE, limit=1, visibility_timeout=10)
    await backend.let_time_pass(5)

    assert await broker.extend_visibility(QUEUE, msg_id, visibility_timeout=10) is True

    await backend.let_time_pass(7)  # past the first timeout (10), before the new one (15)
    assert await broker.read(QUEUE, limit=1, visibility_timeout=10) == []
    await backend.let_time_pass(3)
    [again] = await broker.read(QUEUE, limit=1, visibility_timeout=10)
    assert again.msg_id == msg_id
    assert again.read_ct == 2


async def test_extend_visibility_of_a_deleted_or_unknown_message_is_false(backend: Backend) -> None:
    broker = backend.broker
    msg_id = await broker.send(QUEUE, PAYLOAD)
    await broker.delete(QUEUE, msg_id)

    assert await broker.extend_visibility(QUEUE, msg_id, visibility_timeout=10) is False
    assert await broker.extend_visibility(QUEUE, msg_id + 1000, visibility_timeout=10) is False


async def test_delete_removes_the_message_for_good(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    msg_id = await broker.send(QUEUE, PAYLOAD)
    await broker.read(QUEUE, limit=1, visibility_timeout=1)

    assert await broker.delete(QUEUE, msg_id) is True
    assert await broker.delete(QUEUE, msg_id) is False
    await backend.let_time_pass(2)
    assert await broker.read(QUEUE, limit=10, visibility_timeout=1) == []


async def test_archive_moves_the_message_out_of_the_queue_with_its_reason(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    first = await broker.send(QUEUE, {"i": 1})
    second = await broker.send(QUEUE, PAYLOAD)
    await broker.read(QUEUE, limit=10, visibility_timeout=1)
    await backend.let_time_pass(3)
    archived_at = backend.now()

    assert await broker.archive(QUEUE, second, reason="poison: no step_uuid") is True
    assert await broker.archive(QUEUE, first, reason="unknown task") is True
    assert await broker.archive(QUEUE, first, reason="again") is False

    [one, two] = await broker.archived(QUEUE)
    assert (one.msg_id, one.reason, one.payload) == (second, "poison: no step_uuid", PAYLOAD)
    assert (two.msg_id, two.reason) == (first, "unknown task")
    assert one.queue == QUEUE
    assert one.read_ct == 1
    assert one.archived_at == pytest.approx(archived_at)
    await backend.let_time_pass(2)
    assert await broker.read(QUEUE, limit=10, visibility_timeout=1) == []
    assert await broker.delete(QUEUE, second) is False


async def test_wait_for_messages_returns_promptly_on_a_send(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    woke_at: list[float] = []

    async def waiter() -> None:
        await broker.wait_for_messages(QUEUE, timeout=60)
        woke_at.append(backend.now())

    start = backend.now()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await backend.let_time_pass(2)
        await broker.send(QUEUE, PAYLOAD)

    assert woke_at == [pytest.approx(start + 2)]
    assert len(await broker.read(QUEUE, limit=1, visibility_timeout=30)) == 1


async def test_wait_for_messages_returns_at_once_when_one_is_visible(
    backend: Backend, autojump_clock: MockClock
) -> None:
    await backend.broker.send(QUEUE, PAYLOAD)
    start = backend.now()

    await backend.broker.wait_for_messages(QUEUE, timeout=60)

    assert backend.now() == pytest.approx(start)


async def test_wait_for_messages_times_out_when_nothing_comes(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    start = backend.now()

    async with trio.open_nursery() as nursery:
        # A send to another queue does not count.
        nursery.start_soon(broker.send, OTHER, PAYLOAD)
        await broker.wait_for_messages(QUEUE, timeout=7)

    assert backend.now() == pytest.approx(start + 7)


async def test_wait_for_messages_returns_when_a_hidden_message_turns_visible(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    msg_id = await broker.send(QUEUE, PAYLOAD)
    await broker.read(QUEUE, limit=1, visibility_timeout=3)
    start = backend.now()

    await broker.wait_for_messages(QUEUE, timeout=60)

    assert backend.now() == pytest.approx(start + 3)
    [again] = await broker.read(QUEUE, limit=1, visibility_timeout=3)
    assert again.msg_id == msg_id


async def test_wait_for_messages_returns_when_a_delayed_message_turns_visible(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    start = backend.now()
    await broker.send(QUEUE, PAYLOAD, delay=4)

    await broker.wait_for_messages(QUEUE, timeout=60)

    assert backend.now() == pytest.approx(start + 4)
    assert len(await broker.read(QUEUE, limit=1, visibility_timeout=3)) == 1


async def test_queue_statistics_count_depth_visible_archived_and_sent(
    backend: Backend, autojump_clock: MockClock
) -> None:
    broker = backend.broker
    ids = [await broker.send(QUEUE, {"i": i}) for i in range(4)]
    await broker.send(QUEUE, {"i": 4}, delay=10)
    await broker.read(QUEUE, limit=1, visibility_timeout=30)  # hides ids[0]
    await broker.delete(QUEUE, ids[1])
    await broker.archive(QUEUE, ids[2], reason="poison")

    stats = await broker.queue_statistics(QUEUE)

    assert stats.queue == QUEUE
    assert stats.sent_total == 5
    assert stats.depth == 3  # ids[0] (hidden), ids[3], the delayed one
    assert stats.visible == 1  # ids[3]
    assert stats.archived == 1
    await backend.let_time_pass(10)
    assert (await broker.queue_statistics(QUEUE)).visible == 2


async def test_queues_are_independent(backend: Backend) -> None:
    broker = backend.broker
    msg_id = await broker.send(QUEUE, PAYLOAD)

    assert await broker.read(OTHER, limit=10, visibility_timeout=30) == []
    assert await broker.delete(OTHER, msg_id) is False
    assert await broker.archive(OTHER, msg_id, reason="wrong queue") is False
    assert await broker.archived(OTHER) == []
    other = await broker.queue_statistics(OTHER)
    assert (other.depth, other.sent_total, other.archived) == (0, 0, 0)
    [message] = await broker.read(QUEUE, limit=10, visibility_timeout=30)
    assert message.msg_id == msg_id
