"""Deferred notifications: this process's NOTIFYs, sent after its commits, in batches.

PostgreSQL serialises the commits of every transaction that notifies (``NOTIFY`` takes one
database-wide lock at commit and holds it through the commit's WAL flush), so notifying
inside the hot transactions — a recorded result, an applied plan — would queue them all
behind one another. Instead, the pooled connections carry ``tasker.notify = deferred``
(migration 0008 makes `tasker.notify` skip then), and the process hands the keys of what it
committed to a `Publisher` (`Database.fire`), which sends them from one read-only
transaction of its own: everything that piled up while the previous batch was being sent
goes in the next. Waiters in this process are woken at once by `Database.fire` itself;
only other processes wait for the batch, one round trip later.

A batch that cannot be sent (the database is away) is dropped with a warning: the other
processes' waits are bounded by their poll interval, so a lost notification delays them by
that much at most, as a lost NOTIFY would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from tasker_trio.db.signals import channel_of
from tasker_trio.errors import BackendError

_log = logging.getLogger("tasker_trio.db.publisher")

Send = Callable[[list[str], list[str]], Awaitable[None]]
"""Sends NOTIFYs: the channels and payloads (origin not yet appended), one transaction."""

NOTIFY_MODE_SETTING = "tasker.notify"
"""The connection setting that makes `tasker.notify` leave notifying to the `Publisher`."""


class Publisher:
    """Collects keys to notify and sends them in batches; run it with `run`."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[str, None] = {}  # an ordered set
        self._ready = trio.Event()
        self.sent = 0
        self.batches = 0
        self.dropped = 0

    def add(self, key: str) -> None:
        """Notify other processes of ``key`` (a `tasker_trio.db.signals` key) soon."""
        self._pending[key] = None
        self._ready.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send batches until cancelled."""
        task_status.started()
        while True:
            await self._ready.wait()
            await self.flush()

    async def flush(self) -> None:
        """Send whatever is pending now (one transaction)."""
        self._ready = trio.Event()
        keys, self._pending = list(self._pending), {}
        if not keys:
            return
        channels, payloads = zip(*(channel_of(key) for key in keys), strict=True)
        try:
            await self._send(list(channels), list(payloads))
        except BackendError as exc:
            self.dropped += len(keys)
            _log.warning("could not notify other processes of %d change(s): %s", len(keys), exc)
            return
        self.sent += len(keys)
        self.batches += 1
