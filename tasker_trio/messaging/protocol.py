"""The `Broker` protocol: reading, extending, deleting and archiving queue messages.

Sending a message that goes with a state change is done by the store, in the same atomic
operation (see `tasker_trio.store.protocol`); the broker also offers a plain `send` for
messages that change no state (task requests, finalization requests, tests). Times are
seconds on the engine's clock (the Trio clock for the memory backend).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs


@attrs.frozen(kw_only=True)
class QueueMessage:
    """One message as read from a queue.

    Attributes:
        queue: the queue it was read from.
        msg_id: its id, unique within the queue.
        read_ct: how many times it has been read (1 on the first read).
        enqueued_at: when it was sent.
        visible_at: when it becomes visible to other readers again, unless deleted first.
        payload: its JSON body.
    """

    queue: str
    msg_id: int
    read_ct: int
    enqueued_at: float
    visible_at: float
    payload: dict[str, Any]


@attrs.frozen(kw_only=True)
class ArchivedMessage:
    """A message taken out of its queue for good, with the reason (e.g. poison)."""

    queue: str
    msg_id: int
    read_ct: int
    enqueued_at: float
    archived_at: float
    payload: dict[str, Any]
    reason: str


@attrs.frozen(kw_only=True)
class QueueStatistics:
    """A snapshot of one queue."""

    queue: str
    depth: int
    visible: int
    archived: int
    sent_total: int


class Broker(Protocol):
    """Queues with visibility timeouts (PGMQ semantics)."""

    async def send(self, queue: str, payload: dict[str, Any], *, delay: float = 0.0) -> int:
        """Put a message in ``queue`` (visible after ``delay`` seconds); return its id."""
        ...

    async def read(
        self, queue: str, *, limit: int, visibility_timeout: float
    ) -> list[QueueMessage]:
        """Take up to ``limit`` visible messages, hiding each for ``visibility_timeout``."""
        ...

    # A timeout parameter, not a cancel scope: the PostgreSQL side waits with a server-side
    # timeout (PGMQ's read_with_poll, LISTEN), and the protocol mirrors it.
    async def wait_for_messages(self, queue: str, *, timeout: float) -> None:  # noqa: ASYNC109
        """Return when ``queue`` may have a visible message, or after ``timeout`` seconds."""
        ...

    async def extend_visibility(
        self, queue: str, msg_id: int, *, visibility_timeout: float
    ) -> bool:
        """Hide the message for ``visibility_timeout`` more seconds from now; False if gone."""
        ...

    async def delete(self, queue: str, msg_id: int) -> bool:
        """Remove the message; False if it was already gone."""
        ...

    async def archive(self, queue: str, msg_id: int, *, reason: str) -> bool:
        """Move the message to the queue's archive with ``reason``; False if already gone."""
        ...

    async def archived(self, queue: str) -> list[ArchivedMessage]:
        """The archived messages of ``queue``, oldest first."""
        ...

    async def queue_statistics(self, queue: str) -> QueueStatistics:
        """A snapshot of ``queue``."""
        ...
