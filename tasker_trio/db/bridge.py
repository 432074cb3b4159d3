"""The Trio-to-asyncio bridge: one asyncio loop, pooled connections, one crossing per operation.

`tasker_trio.db.opening.open_database` opens the loop, the pool and the listener and hands
back a `Database`. `Database.run` takes a pooled connection on the Trio side, hands a whole
operation — usually one statement, or one transaction — to the asyncio side and waits for
it there, so each store operation crosses the bridge once; every asyncpg failure is
translated into a `DatabaseError` on the way back, after the retries `tasker_trio.db.retry`
allows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeAlias, TypeVar

# Neither ships type information (no py.typed, no stubs package): their values are Any here.
import asyncpg  # type: ignore[import-untyped]
import trio
import trio_asyncio  # type: ignore[import-untyped]

from tasker_trio.db.errors import TRANSLATED, DatabaseError, DatabaseUnavailable, translate
from tasker_trio.db.listener import Listener
from tasker_trio.db.pool import TrioPool
from tasker_trio.db.publisher import Publisher
from tasker_trio.db.retry import Failure, RetryPolicy, retrying
from tasker_trio.db.signals import Signals, WakeupMode

_NOTIFY = "SELECT pg_notify(c, p || $3) FROM unnest($1::text[], $2::text[]) AS n(c, p)"

T = TypeVar("T")

Connection: TypeAlias = Any
"""An ``asyncpg.Connection`` (untyped), as an operation receives it (asyncio side only)."""
Operation = Callable[[Connection], Awaitable[T]]
"""An asyncio-side coroutine function run with a pooled connection."""
Guard = Callable[[], AbstractContextManager[object]]
"""A context manager factory entered around every crossing (see
`tasker_trio.db.opening.open_database`)."""


class Database:
    """A pool of connections on the asyncio side of the bridge; made by
    `tasker_trio.db.opening.open_database`.

    Attributes:
        dsn: the URL it connects to.
        signals: the in-process wake-ups the listener fires (a store and a broker built on
            this database share them unless given their own, which they then `attach`).
        origin: the id every pooled connection notifies with (setting ``tasker.origin``),
            by which the listener knows, and skips, this database's own notifications.
        wakeups: the wake-up mode (`WakeupMode`).
        poll_interval: the longest wait when polling (`wait_bound`).
    """

    def __init__(
        self,
        pool: TrioPool,
        loop: Any,
        *,
        dsn: str,
        guard: Guard,
        retry: RetryPolicy,
        wakeups: WakeupMode = WakeupMode.HYBRID,
        poll_interval: float = 1.0,
        origin: str = "",
    ) -> None:
        self._pool = pool
        self._loop = loop
        self._guard = guard
        self._retry = retry
        self._signal_sets: list[Signals] = []
        self._listener: Listener | None = None
        self.dsn = dsn
        self.wakeups = wakeups
        self.poll_interval = poll_interval
        self.signals = Signals()
        self.attach(self.signals)
        self.origin = origin
        self.publisher = Publisher(self._notify)
        self.held_statements: Counter[str] = Counter()
        self._background: trio.Nursery | None = None

    @property
    def pool(self) -> TrioPool:
        """The connection pool (its ``size``, ``opened`` and ``discarded`` counts)."""
        return self._pool

    @property
    def listener(self) -> Listener | None:
        """The LISTEN bridge (None in ``poll`` mode)."""
        return self._listener

    def listen_with(self, listener: Listener) -> None:
        """Have `wait_bound` follow ``listener``'s connection (`open_database` runs it)."""
        self._listener = listener

    def attach(self, signals: Signals) -> None:
        """Have notifications from other processes fire ``signals`` too."""
        if not any(known is signals for known in self._signal_sets):
            self._signal_sets.append(signals)

    def fire(self, key: str, *, announced: bool = False, carrying: object = None) -> None:
        """Wake this process's waiters on ``key`` after a change committed here.

        Every attached `Signals` hears it (with what it is ``carrying``: `Signals.fire`),
        as they would hear another process's change; other processes hear it from the
        `publisher` (the listener drops the echo of this database's own notifications by
        their `origin`) — unless the committed transaction ``announced`` it itself (a batch
        of plans, `tasker.apply_many`).
        """
        for signals in self._signal_sets:
            signals.fire(key, carrying)
        if not announced:
            self.publisher.add(key)

    async def _notify(self, channels: list[str], payloads: list[str]) -> None:
        """Send this database's deferred notifications (see `tasker_trio.db.publisher`)."""
        await self.fetch(
            _NOTIFY,
            channels,
            payloads,
            f"|{self.origin}" if self.origin else "",
            where="notifying other processes",
            idempotent=True,  # a notification twice only wakes waiters twice
        )

    def serve_in(self, nursery: trio.Nursery | None) -> None:
        """Run `start_soon`'s tasks in ``nursery`` (`open_database` gives its own; None
        once it closes)."""
        self._background = nursery

    def start_soon(self, fn: Callable[[], Awaitable[object]], *, name: str) -> None:
        """Run ``fn()`` beside this database's users until the database closes.

        It runs in `open_database`'s nursery, which is cancelled when the database closes
        (after the publisher's last flush), so ``fn`` must handle its own errors: one that
        escapes it ends the database's block.

        Raises:
            RuntimeError: the database is not open (closed, or not made by `open_database`).
        """
        if self._background is None:
            raise RuntimeError(f"{name}: the database is not open")
        self._background.start_soon(fn, name=name)

    def crossed(self, where: str, seconds: float) -> None:
        """A statement an operation run with `hold` sent, and its answer, ``seconds`` later.

        Counted in `held_statements` by ``where``; counters of crossings (the bench, the
        tests) wrap it as they wrap `run`, since each such statement is a round trip.
        """
        self.held_statements[where] += 1

    def signal_sets(self) -> tuple[Signals, ...]:
        """Every `Signals` a notification fires."""
        return tuple(self._signal_sets)

    def wait_bound(self, timeout: float) -> float:
        """How long a wait asked to last ``timeout`` seconds may last now.

        The caller's ``timeout`` (the engine's poll interval) always bounds a wait. Polling
        cuts it to ``poll_interval`` too — always in ``poll`` mode, and in ``hybrid`` mode
        while the listener is reconnecting; ``event`` mode relies on notifications alone.
        """
        if self.wakeups is WakeupMode.POLL or (
            self.wakeups is WakeupMode.HYBRID
            and (self._listener is None or not self._listener.statistics().connected)
        ):
            return min(timeout, self.poll_interval)
        return timeout

    async def hold(
        self,
        operation: Operation[T],
        *,
        where: str = "database operation",
        idempotent: bool = False,
    ) -> T:
        """`run` an operation that sends statement after statement on its connection.

        Each statement is one round trip, which the operation reports with `crossed`; the
        hold itself is not counted as one (`tasker_trio.store.postgres._batches` sends
        batch after batch of plans so, without crossing back to Trio between them).
        Retried, and raising, as `run` is and does.
        """
        return await self._run(operation, where=where, idempotent=idempotent)

    async def run(
        self,
        operation: Operation[T],
        *,
        where: str = "database operation",
        idempotent: bool = False,
    ) -> T:
        """Run ``operation(conn)`` on the asyncio side with a pooled connection.

        A lost connection is retried with backoff (see `tasker_trio.db.retry` for the rule):
        always when it was lost before the statement was sent, and after sending only when
        ``idempotent`` says running the operation twice cannot apply it twice.

        Raises:
            DatabaseUnavailable: the server stayed unreachable for the retry timeout, or the
                connection was lost after sending a non-idempotent operation.
            DatabaseError: the server refused the operation (other asyncpg errors).
        """
        return await self._run(operation, where=where, idempotent=idempotent)

    async def _run(self, operation: Operation[T], *, where: str, idempotent: bool) -> T:
        async def on_asyncio(conn: Connection) -> T:
            try:
                return await operation(conn)
            except TRANSLATED as exc:
                raise Failure(translate(exc, where=where), sent=True) from exc

        async def attempt() -> T:
            with self._guard():
                if self._pool.closed:  # not retried: it stays closed
                    raise DatabaseUnavailable(f"{where}: the database is closed")
                try:
                    conn = await self._pool.acquire()
                except DatabaseError as exc:  # connecting: nothing was sent
                    raise Failure(exc, sent=False) from exc
                reusable = False
                try:
                    result: T = await trio_asyncio.aio_as_trio(on_asyncio, loop=self._loop)(conn)
                    reusable = True
                except asyncio.CancelledError as exc:
                    # Not this caller's cancellation (that arrives as trio.Cancelled): the
                    # asyncio side was stopped under it, as the database closed.
                    raise self._closed_under(where) from exc
                except Failure as failure:
                    # The server answered (a constraint, a conflict...): the connection is
                    # fine. Anything else (lost, cancelled mid-statement) may not be.
                    reusable = failure.error.sqlstate is not None
                    if self._pool.closed and isinstance(failure.error, DatabaseUnavailable):
                        # Cut by the close: not retried, it stays closed.
                        raise self._closed_under(where) from failure.error
                    raise
                finally:
                    self._pool.release(conn, reusable=reusable)
            return result

        return await retrying(attempt, self._retry, idempotent=idempotent, where=where)

    @staticmethod
    def _closed_under(where: str) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"{where}: the database closed while this was on its way")

    async def fetch(
        self, query: str, *args: Any, where: str = "query", idempotent: bool = False
    ) -> list[asyncpg.Record]:
        """All rows of one statement (one crossing)."""

        async def op(conn: Connection) -> list[asyncpg.Record]:
            return list(await conn.fetch(query, *args))

        return await self.run(op, where=where, idempotent=idempotent)

    async def fetchrow(
        self, query: str, *args: Any, where: str = "query", idempotent: bool = False
    ) -> asyncpg.Record | None:
        """The first row of one statement, or None (one crossing)."""

        async def op(conn: Connection) -> asyncpg.Record | None:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row

        return await self.run(op, where=where, idempotent=idempotent)

    async def fetchval(
        self, query: str, *args: Any, where: str = "query", idempotent: bool = False
    ) -> Any:
        """The first column of the first row of one statement (one crossing)."""

        async def op(conn: Connection) -> Any:
            return await conn.fetchval(query, *args)

        return await self.run(op, where=where, idempotent=idempotent)
