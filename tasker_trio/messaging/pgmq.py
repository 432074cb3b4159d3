"""The PostgreSQL broker: PGMQ queues read and written with the engine's clock.

Queues are PGMQ queues (``pgmq.q_<queue>`` and its archive ``pgmq.a_<queue>``, created with
``pgmq.create`` on the first send), read oldest ``msg_id`` first with ``FOR UPDATE SKIP
LOCKED``, hidden for a visibility timeout, counted in ``read_ct`` — PGMQ's semantics. The
statements are the ``tasker.q_*`` functions of the migrations rather than PGMQ's own, because
PGMQ's decide visibility with the server's ``clock_timestamp()``; these take ``now`` from
the broker's clock, so visibility follows a test's mock clock like everything else. Archive
reasons live in ``tasker.archive_reasons`` beside PGMQ's archive table.

Retries (`tasker_trio.db.retry`): every statement is retried when the connection was lost
before it was sent; after sending, only the idempotent ones (statistics, archive listing,
visibility, delete, archive: by id, with absolute values). A ``send`` or ``read`` whose
connection drops mid-statement raises `DatabaseUnavailable` instead — a second send would
add a second message, a second read would hide more messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from tasker_trio.db.bridge import Database
from tasker_trio.db.signals import Signals, queue_key
from tasker_trio.messaging.protocol import ArchivedMessage, QueueMessage, QueueStatistics

_SEND = "SELECT tasker.q_send($1, $2::jsonb, $3, $4)"
_READ = "SELECT * FROM tasker.q_read($1, $2, $3, $4)"
_SET_VT = "SELECT tasker.q_set_vt($1, $2, $3, $4)"
_DELETE = "SELECT tasker.q_delete($1, $2)"
_ARCHIVE = "SELECT tasker.q_archive($1, $2, $3, $4)"
_ARCHIVED = "SELECT * FROM tasker.q_archived($1)"
_STATISTICS = "SELECT * FROM tasker.q_statistics($1, $2)"
_NEXT_VISIBLE = "SELECT tasker.q_next_visible($1)"


def queue_message(queue: str, row: Any) -> QueueMessage:
    """A `QueueMessage` of a row shaped like ``tasker.q_read``'s."""
    return QueueMessage(
        queue=queue,
        msg_id=row["msg_id"],
        read_ct=row["read_ct"],
        enqueued_at=row["enqueued_at"],
        visible_at=row["visible_at"],
        payload=row["message"],
    )


VT_RESOLUTION = 1e-6
"""PGMQ's visibility times are microseconds (``timestamptz``)."""


class PgmqBroker:
    """Implements `Broker` on PGMQ; pairs with a `PostgresStore` over the same database."""

    def __init__(
        self,
        db: Database,
        *,
        signals: Signals | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.signals = signals or db.signals
        db.attach(self.signals)  # other processes' sends wake these waiters too
        self.clock = clock

    async def send(self, queue: str, payload: dict[str, Any], *, delay: float = 0.0) -> int:
        """Put a message in ``queue`` (visible after ``delay`` seconds); return its id."""
        msg_id = await self.db.fetchval(
            _SEND, queue, payload, self.clock(), delay, where=f"sending to {queue}"
        )
        self.db.fire(queue_key(queue))
        return int(msg_id)

    async def read(
        self, queue: str, *, limit: int, visibility_timeout: float
    ) -> list[QueueMessage]:
        """Take up to ``limit`` visible messages, oldest first, hiding each for a while."""
        rows = await self.db.fetch(
            _READ, queue, limit, visibility_timeout, self.clock(), where=f"reading {queue}"
        )
        return [
            queue_message(queue, row) for row in sorted(rows, key=lambda row: int(row["msg_id"]))
        ]

    # A timeout parameter, not a cancel scope: the protocol mirrors server-side waits.
    async def wait_for_messages(self, queue: str, *, timeout: float) -> None:  # noqa: ASYNC109
        """Return on a send to ``queue`` (by any process), when a hidden or delayed message
        turns visible, or at timeout.

        Other processes' sends arrive by NOTIFY unless the database polls; then the wait
        also ends by the database's poll interval (`Database.wait_bound`).
        """
        event = self.signals.event(queue_key(queue))  # before reading: no send is missed
        # One index probe (the earliest `vt`), not the statistics' counts: this runs each
        # time a consumer goes idle.
        next_visible_at = await self.db.fetchval(
            _NEXT_VISIBLE, queue, where=f"inspecting {queue}", idempotent=True
        )
        now = self.clock()
        wait = self.db.wait_bound(timeout)
        if next_visible_at is not None:
            # PGMQ keeps microseconds: a message due within one is visible to `read` now.
            if next_visible_at <= now + VT_RESOLUTION:
                return
            wait = min(wait, next_visible_at - now)
        with trio.move_on_after(wait):
            await event.wait()

    async def extend_visibility(
        self, queue: str, msg_id: int, *, visibility_timeout: float
    ) -> bool:
        """Hide the message for ``visibility_timeout`` more seconds from now."""
        return bool(
            await self.db.fetchval(
                _SET_VT,
                queue,
                msg_id,
                visibility_timeout,
                self.clock(),
                where=f"hiding in {queue}",
                idempotent=True,
            )
        )

    async def delete(self, queue: str, msg_id: int) -> bool:
        """Remove the message; False if it was already gone."""
        return bool(
            await self.db.fetchval(
                _DELETE, queue, msg_id, where=f"deleting from {queue}", idempotent=True
            )
        )

    async def archive(self, queue: str, msg_id: int, *, reason: str) -> bool:
        """Move the message to the queue's archive with ``reason``."""
        archived = await self.db.fetchval(
            _ARCHIVE,
            queue,
            msg_id,
            reason,
            self.clock(),
            where=f"archiving in {queue}",
            idempotent=True,
        )
        return bool(archived)

    async def archived(self, queue: str) -> list[ArchivedMessage]:
        """The archived messages of ``queue``, oldest first."""
        rows = await self.db.fetch(
            _ARCHIVED, queue, where=f"reading the archive of {queue}", idempotent=True
        )
        return [
            ArchivedMessage(
                queue=queue,
                msg_id=row["msg_id"],
                read_ct=row["read_ct"],
                enqueued_at=row["enqueued_at"],
                archived_at=row["archived_at"],
                payload=row["message"],
                reason=row["reason"] or "",
            )
            for row in rows
        ]

    async def queue_statistics(self, queue: str) -> QueueStatistics:
        """A snapshot of ``queue``."""
        row = await self.db.fetchrow(
            _STATISTICS, queue, self.clock(), where=f"counting {queue}", idempotent=True
        )
        assert row is not None  # the function always returns one row
        return QueueStatistics(
            queue=queue,
            depth=row["depth"],
            visible=row["visible"],
            archived=row["archived"],
            sent_total=row["sent_total"],
        )
