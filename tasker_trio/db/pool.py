"""The bridge's connection pool, kept on the Trio side: taking a connection crosses nothing.

asyncpg's own pool lives on the asyncio side: acquiring and releasing a connection there
is a chain of asyncio callbacks (a queue, futures, a task), and under trio-asyncio every
callback costs a pass of Trio's scheduler — more than the query it surrounds (`SELECT 1`:
~180 µs on a bare connection, ~410 µs through asyncpg's pool, measured through the batched
loop of `tasker_trio.db.loop`). `TrioPool` keeps idle asyncpg connections in a Trio-side
list (newest first, so a quiet process keeps using the same few server backends), bounds
them with a `trio.Semaphore`, and opens a connection — one crossing — only when none is
idle. `Database.run` then crosses once per operation, for the operation alone.

A connection that an operation left in doubt (it was closed, the operation was cancelled or
failed other than by the server's answer, or it is still inside a transaction) is
terminated rather than handed out again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio_asyncio  # type: ignore[import-untyped]

Connect = Callable[[], Awaitable[Any]]
"""An asyncio-side coroutine function opening one configured connection."""


class TrioPool:
    """Up to ``max_size`` asyncpg connections, handed out on the Trio side."""

    def __init__(self, connect: Connect, loop: Any, *, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"a pool needs at least one connection, got max_size={max_size}")
        self._connect = trio_asyncio.aio_as_trio(connect, loop=loop)
        self._loop = loop
        self._limit = trio.Semaphore(max_size)
        self._idle: list[Any] = []
        self._open: set[Any] = set()
        self.max_size = max_size
        self.opened = 0
        self.discarded = 0
        self.closed = False

    @property
    def size(self) -> int:
        """Connections open now (idle or in use)."""
        return len(self._open)

    async def fill(self, count: int) -> None:
        """Open connections until ``count`` are idle (raises what connecting raises)."""
        while len(self._idle) < min(count, self.max_size):
            self._idle.append(await self._new())

    async def acquire(self) -> Any:
        """A connection for one operation; give it back with `release`.

        Raises what connecting raises when none is idle and a new one cannot be opened.
        """
        try:
            # No checkpoint when a slot is free: the crossing that follows is one, and a
            # scheduler pass here would cost as much as the rest of a short query.
            self._limit.acquire_nowait()
        except trio.WouldBlock:
            await self._limit.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._drop(conn)
            return await self._new()
        except BaseException:
            self._limit.release()
            raise

    def release(self, conn: Any, *, reusable: bool) -> None:
        """Take ``conn`` back: idle again if ``reusable`` and clean, else terminated."""
        try:
            if reusable and not conn.is_closed() and not conn.is_in_transaction():
                self._idle.append(conn)
            else:
                self._drop(conn)
        finally:
            self._limit.release()

    async def close(self, grace: float) -> None:
        """Close every connection, politely within ``grace`` seconds, then by force."""
        self.closed = True
        idle, self._idle = self._idle, []

        async def close_all() -> None:
            for conn in idle:
                if not conn.is_closed():
                    await conn.close()

        with trio.move_on_after(grace, shield=True):
            await trio_asyncio.aio_as_trio(close_all, loop=self._loop)()
        for conn in list(self._open):
            self._drop(conn)

    async def _new(self) -> Any:
        conn = await self._connect()
        self._open.add(conn)
        self.opened += 1
        return conn

    def _drop(self, conn: Any) -> None:
        self._open.discard(conn)
        if not conn.is_closed():
            conn.terminate()
            self.discarded += 1
