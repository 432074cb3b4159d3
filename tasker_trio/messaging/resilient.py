"""Reading and waiting that survive a backend hiccup: the consumer loops' view of a queue.

A lost connection while reading (which is not retried, since a read hides messages) or
while waiting must not end a consumer loop, and through it the engine: the failure is
logged, the loop pauses briefly and reads again. Messages a failed read may have hidden
become visible again after their visibility timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from tasker_trio.errors import BackendError
from tasker_trio.messaging.protocol import Broker

_log = logging.getLogger("tasker_trio.messaging")

T = TypeVar("T")


async def read_or_pause(
    read: Callable[[], Awaitable[list[T]]], queue: str, *, pause: float
) -> list[T]:
    """``await read()`` (a read of ``queue``); on a `BackendError`, log, sleep ``pause``, return [].

    Any read that hides what it returns: `Broker.read`, `Store.read_for_processing`,
    `Store.claim_from_queue`.
    """
    try:
        return await read()
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
