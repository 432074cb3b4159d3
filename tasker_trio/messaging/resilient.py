"""Reading and waiting that survive a backend hiccup: the consumer loops' view of a queue.

A lost connection while reading (which is not retried, since a read hides messages) or
while waiting must not end a consumer loop, and through it the engine: the failure is
logged, the loop pauses briefly and reads again. Messages a failed read may have hidden
become visible again after their visibility timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Protocol

import trio

from tasker_trio.errors import BackendError
from tasker_trio.messaging.protocol import Broker, QueueMessage

_log = logging.getLogger("tasker_trio.messaging")


class Read(Protocol):
    """`Broker.read`, or a read that brings more along (`Store.read_for_processing`)."""

    def __call__(
        self, queue: str, *, limit: int, visibility_timeout: float
    ) -> Awaitable[list[QueueMessage]]: ...


async def read_or_pause(
    broker: Broker,
    queue: str,
    *,
    limit: int,
    visibility_timeout: float,
    pause: float,
    read: Read | None = None,
) -> list[QueueMessage]:
    """Read up to ``limit`` messages; on a `BackendError`, log, sleep ``pause``, return [].

    ``read`` replaces ``broker.read``.
    """
    try:
        return await (read or broker.read)(
            queue, limit=limit, visibility_timeout=visibility_timeout
        )
    except BackendError as exc:
        _log.warning("reading %s failed (%s); reading again in %gs", queue, exc, pause)
        await trio.sleep(pause)
        return []


async def wait_or_pause(broker: Broker, queue: str, *, timeout: float) -> None:  # noqa: ASYNC109
    """Wait for messages (see `Broker.wait_for_messages`); a `BackendError` waits it out."""
    try:
        await broker.wait_for_messages(queue, timeout=timeout)
    except BackendError as exc:
        _log.warning("waiting on %s failed (%s)", queue, exc)
        await trio.sleep(timeout)
