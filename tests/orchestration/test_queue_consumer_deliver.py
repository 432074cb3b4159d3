"""`QueueConsumer.deliver`: messages handed over in-process, processed as if read."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from tasker_trio.messaging import MemoryQueues, QueueMessage
from tasker_trio.orchestration.event_systems.queue_consumer import (
    ConsumerSettings,
    GroupDispatch,
    QueueConsumer,
)

QUEUE = "results"


def message(msg_id: int, task: str) -> QueueMessage:
    return QueueMessage(
        queue=QUEUE,
        msg_id=msg_id,
        read_ct=1,
        enqueued_at=0.0,
        visible_at=30.0,
        payload={"task_uuid": task},
    )


async def test_handed_over_messages_of_one_key_are_processed_together_and_in_turn(
    autojump_clock: MockClock,
) -> None:
    batches: list[tuple[str, list[int]]] = []
    running: set[str] = set()

    async def dispatch(unit: list[QueueMessage]) -> dict[int, str]:
        key = str(unit[0].payload["task_uuid"])
        assert key not in running  # one batch of a key at a time
        running.add(key)
        batches.append((key, [m.msg_id for m in unit]))
        await trio.sleep(1)
        running.discard(key)
        return {}

    async def single(message: QueueMessage) -> None:
        raise AssertionError("every message here has a key")

    consumer = QueueConsumer(
        MemoryQueues(),
        QUEUE,
        single,
        ConsumerSettings(),
        on_poison=lambda queue, reason: None,
        group=GroupDispatch(key=lambda m: m.payload["task_uuid"], dispatch=dispatch, consumes=True),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(consumer.run)
        consumer.deliver(message(1, "t1"))
        consumer.deliver(message(2, "t2"))
        await trio.sleep(0.5)  # t1's and t2's first batches are being processed
        for msg_id in (3, 4, 5):
            consumer.deliver(message(msg_id, "t1"))
        await trio.sleep(5)
        nursery.cancel_scope.cancel()

    assert sorted(batches) == [("t1", [1]), ("t1", [3, 4, 5]), ("t2", [2])]
    assert consumer.handed_over == 5


async def test_a_message_handed_over_before_the_consumer_runs_is_left_to_its_queue() -> None:
    calls: list[QueueMessage] = []

    async def single(message: QueueMessage) -> None:
        calls.append(message)

    consumer = QueueConsumer(
        MemoryQueues(), QUEUE, single, ConsumerSettings(), on_poison=lambda queue, reason: None
    )
    consumer.deliver(message(1, "t1"))  # nothing runs it: it turns visible and is read then

    assert (calls, consumer.handed_over) == ([], 0)
