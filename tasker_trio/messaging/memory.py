"""In-memory queues with visibility timeouts on the Trio clock: the embedded broker.

Everything is synchronous inside (no awaits between a read and its state change), so each
operation is atomic under Trio's cooperative scheduling. The memory store sends through the
same `MemoryQueues`, which is how a state change and its message commit together here.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

import attrs
import trio

from tasker_trio.messaging.protocol import ArchivedMessage, QueueMessage, QueueStatistics


@attrs.define
class _Stored:
    msg_id: int
    payload: dict[str, Any]
    enqueued_at: float
    visible_at: float
    read_ct: int = 0


class _Queue:
    """One queue: live messages by id, an archive, a wake-up, and two heaps.

    ``heap`` holds ``(visible_at, msg_id)`` of hidden or delayed messages (stale entries are
    skipped lazily); ``ready`` holds the ids of visible ones, so reads hand them out oldest
    (lowest id) first, as PGMQ does, even when an older message became visible again later.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: dict[int, _Stored] = {}
        self.heap: list[tuple[float, int]] = []
        self.ready: list[int] = []
        self.in_ready: set[int] = set()
        self.archive: list[ArchivedMessage] = []
        self.ids = itertools.count(1)
        self.sent_total = 0
        self.changed = trio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def push(self, stored: _Stored) -> None:
        heapq.heappush(self.heap, (stored.visible_at, stored.msg_id))

    def promote(self, now: float) -> None:
        """Move every message visible at ``now`` from the time heap to the ready heap."""
        while self.heap and self.heap[0][0] <= now:
            visible_at, msg_id = heapq.heappop(self.heap)
            stored = self.messages.get(msg_id)
            if (
                stored is not None
                and stored.visible_at == visible_at
                and msg_id not in self.in_ready
            ):
                heapq.heappush(self.ready, msg_id)
                self.in_ready.add(msg_id)

    def pop_ready(self, now: float) -> _Stored | None:
        """The oldest visible message, taken off the ready heap (None when there is none)."""
        while self.ready:
            msg_id = heapq.heappop(self.ready)
            self.in_ready.discard(msg_id)
            stored = self.messages.get(msg_id)
            if stored is not None and stored.visible_at <= now:
                return stored
        return None

    def next_visible_at(self) -> float | None:
        """When the earliest live message becomes visible (lazy heap: skip stale entries)."""
        while self.heap:
            visible_at, msg_id = self.heap[0]
            stored = self.messages.get(msg_id)
            if stored is not None and stored.visible_at == visible_at:
                return visible_at
            heapq.heappop(self.heap)
        return None


class MemoryQueues:
    """The embedded broker: named queues created on first use (implements `Broker`)."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name)
        return queue

    def send_nowait(self, queue: str, payload: dict[str, Any], *, delay: float = 0.0) -> int:
        """Send without waiting (used by the memory store inside its atomic operations)."""
        q = self._queue(queue)
        now = trio.current_time()
        stored = _Stored(next(q.ids), payload, now, now + max(delay, 0.0))
        q.messages[stored.msg_id] = stored
        q.push(stored)
        q.sent_total += 1
        q.notify()
        return stored.msg_id

    def delete_nowait(self, queue: str, msg_id: int) -> bool:
        """Delete without waiting (used by the memory store inside its atomic operations)."""
        return self._queue(queue).messages.pop(msg_id, None) is not None

    async def send(self, queue: str, payload: dict[str, Any], *, delay: float = 0.0) -> int:
        """Put a message in ``queue`` (visible after ``delay`` seconds); return its id."""
        return self.send_nowait(queue, payload, delay=delay)

    async def read(
        self, queue: str, *, limit: int, visibility_timeout: float
    ) -> list[QueueMessage]:
        """Take up to ``limit`` visible messages, oldest first, hiding each for a while."""
        q = self._queue(queue)
        now = trio.current_time()
        q.promote(now)
        taken: list[QueueMessage] = []
        hidden: list[_Stored] = []
        while len(taken) < limit:
            stored = q.pop_ready(now)
            if stored is None:
                break
            stored.read_ct += 1
            stored.visible_at = now + visibility_timeout
            hidden.append(stored)
            taken.append(
                QueueMessage(
                    queue=queue,
                    msg_id=stored.msg_id,
                    read_ct=stored.read_ct,
                    enqueued_at=stored.enqueued_at,
                    visible_at=stored.visible_at,
                    payload=stored.payload,
                )
            )
        for stored in hidden:  # after the loop: a zero timeout must not hand it out twice
            q.push(stored)
        return taken

    # A timeout parameter, not a cancel scope: the PostgreSQL side waits with a server-side
    # timeout (PGMQ's read_with_poll, LISTEN), and the protocol mirrors it.
    async def wait_for_messages(self, queue: str, *, timeout: float) -> None:  # noqa: ASYNC109
        """Return on a send to ``queue``, when a hidden message turns visible, or at timeout."""
        q = self._queue(queue)
        now = trio.current_time()
        deadline = now + timeout
        q.promote(now)
        if any(q.messages.get(m) is not None and q.messages[m].visible_at <= now for m in q.ready):
            return
        visible_at = q.next_visible_at()
        if visible_at is not None:
            if visible_at <= now:
                return
            deadline = min(deadline, visible_at)
        with trio.move_on_at(deadline):
            await q.changed.wait()

    async def extend_visibility(
        self, queue: str, msg_id: int, *, visibility_timeout: float
    ) -> bool:
        """Hide the message for ``visibility_timeout`` more seconds from now."""
        q = self._queue(queue)
        stored = q.messages.get(msg_id)
        if stored is None:
            return False
        stored.visible_at = trio.current_time() + visibility_timeout
        q.push(stored)
        return True

    async def delete(self, queue: str, msg_id: int) -> bool:
        """Remove the message; False if it was already gone."""
        return self.delete_nowait(queue, msg_id)

    async def archive(self, queue: str, msg_id: int, *, reason: str) -> bool:
        """Move the message to the archive with ``reason``."""
        q = self._queue(queue)
        stored = q.messages.pop(msg_id, None)
        if stored is None:
            return False
        q.archive.append(
            ArchivedMessage(
                queue=queue,
                msg_id=msg_id,
                read_ct=stored.read_ct,
                enqueued_at=stored.enqueued_at,
                archived_at=trio.current_time(),
                payload=stored.payload,
                reason=reason,
            )
        )
        return True

    async def archived(self, queue: str) -> list[ArchivedMessage]:
        """The archived messages of ``queue``, oldest first."""
        return list(self._queue(queue).archive)

    async def queue_statistics(self, queue: str) -> QueueStatistics:
        """A snapshot of ``queue``."""
        q = self._queue(queue)
        now = trio.current_time()
        visible = sum(1 for m in q.messages.values() if m.visible_at <= now)
        return QueueStatistics(
            queue=queue,
            depth=len(q.messages),
            visible=visible,
            archived=len(q.archive),
            sent_total=q.sent_total,
        )
