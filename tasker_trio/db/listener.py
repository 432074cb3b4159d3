"""The LISTEN bridge: other processes' NOTIFYs wake this process's waiters.

One dedicated asyncpg connection per `Database` (outside the pool) LISTENs on
``tasker_queues`` and ``tasker_tasks``. asyncpg calls the notification callback on the
asyncio loop, and trio-asyncio runs that loop's callbacks inside a Trio task on the same
thread, so the callback fires the in-process `Signals` directly — the same ones local
changes fire — with no channel hop in between.

A lost connection (a restart, ``pg_terminate_backend``, a network cut) never crashes
anything: the listener reconnects with backoff and, once listening again, fires every
waiter once, because a notification sent while it was away is gone for good.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no py.typed, no stubs
import attrs
import trio
import trio_asyncio  # type: ignore[import-untyped]  # no py.typed, no stubs

from tasker_trio.db.errors import TRANSLATED, DatabaseError, translate
from tasker_trio.db.retry import RetryPolicy
from tasker_trio.db.signals import CHANNEL_KEYS, Signals, parse_payload

log = logging.getLogger(__name__)

CLOSE_GRACE = 2.0
"""Seconds the listening connection may take to close before it is cut."""


@attrs.frozen(kw_only=True)
class ListenerStatistics:
    """A snapshot of a `Listener`."""

    connected: bool
    notifications: int
    """Notifications received on the tasker channels (own ones included)."""
    reconnects: int
    """Connections made after the first (each followed by one wake-up of every waiter)."""


class Listener:
    """Keeps one LISTEN connection to ``dsn`` alive and fires ``targets`` on notifications.

    Start it with ``await nursery.start(listener.run)``; `run` returns only by cancellation.
    """

    def __init__(
        self,
        dsn: str,
        loop: Any,
        targets: Callable[[], Iterable[Signals]],
        *,
        policy: RetryPolicy,
        guard: Callable[[], AbstractContextManager[object]] = nullcontext,
        connect_timeout: float = 10.0,
        origin: str = "",
    ) -> None:
        self._dsn = dsn
        self._loop = loop
        self._targets = targets
        self._policy = policy
        self._guard = guard
        self._connect_timeout = connect_timeout
        self._origin = origin
        self._connected = False
        self._notifications = 0
        self._reconnects = 0

    def statistics(self) -> ListenerStatistics:
        """Whether it listens now, and what it has received."""
        return ListenerStatistics(
            connected=self._connected,
            notifications=self._notifications,
            reconnects=self._reconnects,
        )

    async def run(
        self, *, task_status: trio.TaskStatus[Listener] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost.

        Raises:
            DatabaseUnavailable: the first connection failed (before ``started``); later
                failures are retried forever with backoff, and logged.
        """
        first = True
        backoffs = self._policy.backoffs()
        while True:
            lost = trio.Event()
            try:
                conn = await self._connect(lost)
            except DatabaseError as exc:
                if first:
                    raise
                pause = next(backoffs)
                log.warning("LISTEN connection failed, retrying in %.2fs: %s", pause, exc)
                await trio.sleep(pause)
                continue
            backoffs = self._policy.backoffs()
            self._connected = True
            try:
                if first:
                    first = False
                    task_status.started(self)
                else:
                    self._reconnects += 1
                    log.info("LISTEN connection re-established; waking every waiter")
                    self._wake_everyone()
                await lost.wait()
                log.warning("LISTEN connection lost; reconnecting")
            finally:
                self._connected = False
                await self._close(conn)
            # Waiters re-check now and wait again, bounded by polling while this is away.
            self._wake_everyone()

    async def _connect(self, lost: trio.Event) -> Any:
        """A connection listening on every channel; ``lost`` is set when it closes."""

        def on_lost(_conn: Any) -> None:
            lost.set()

        async def on_asyncio() -> Any:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
            except TRANSLATED as exc:
                raise translate(exc, where="opening the LISTEN connection") from exc
            try:
                conn.add_termination_listener(on_lost)
                for channel in CHANNEL_KEYS:
                    await conn.add_listener(channel, self._on_notification)
            except TRANSLATED as exc:
                conn.terminate()
                raise translate(exc, where="subscribing to notifications") from exc
            return conn

        with self._guard():
            return await trio_asyncio.aio_as_trio(on_asyncio, loop=self._loop)()

    def _on_notification(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        # Called by asyncpg on the asyncio loop, which trio-asyncio runs in a Trio task on
        # this thread: firing a trio.Event here is legal and wakes the waiter directly.
        key_of = CHANNEL_KEYS.get(channel)
        if key_of is None:
            return
        self._notifications += 1
        name, origin = parse_payload(payload)
        if origin and origin == self._origin:
            return  # this process's own change: its waiters were woken when it committed
        key = key_of(name)
        for signals in self._targets():
            signals.fire(key)

    def _wake_everyone(self) -> None:
        for signals in self._targets():
            signals.fire_all()

    async def _close(self, conn: Any) -> None:
        if conn.is_closed():
            return
        # Closing a broken connection fails: nothing is left to close then.
        with (
            self._guard(),
            trio.move_on_after(CLOSE_GRACE, shield=True) as scope,
            contextlib.suppress(*TRANSLATED),
        ):
            await trio_asyncio.aio_as_trio(conn.close, loop=self._loop)()
        if scope.cancelled_caught:
            conn.terminate()
