"""The Trio-to-asyncio bridge: one asyncio loop, pooled connections, one crossing per operation.

`open_database` opens a trio-asyncio loop (`tasker_trio.db.loop`), a pool of asyncpg
connections kept on the Trio side (`tasker_trio.db.pool`) and (unless polling) the LISTEN
bridge of `tasker_trio.db.listener` inside the caller's nursery tree, and closes them on the
way out (shielded, within a grace period, then terminated).
`Database.run` takes a pooled connection on the Trio side, hands a whole operation — usually
one statement, or one transaction — to the asyncio side and waits for it there, so each
store operation crosses the bridge once; every
asyncpg failure is translated into a `DatabaseError` on the way back, after the retries
`tasker_trio.db.retry` allows.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeAlias, TypeVar

# Neither ships type information (no py.typed, no stubs package): their values are Any here,
# and this module is the only one that touches them.
import asyncpg  # type: ignore[import-untyped]
import trio
import trio_asyncio  # type: ignore[import-untyped]

from tasker_trio.db.errors import TRANSLATED, DatabaseError, translate
from tasker_trio.db.listener import Listener
from tasker_trio.db.loop import open_asyncio_loop
from tasker_trio.db.pool import TrioPool
from tasker_trio.db.publisher import NOTIFY_MODE_SETTING, Publisher
from tasker_trio.db.retry import Failure, RetryPolicy, retrying
from tasker_trio.db.signals import ORIGIN_SETTING, Signals, WakeupMode

_log = logging.getLogger("tasker_trio.db")

_NOTIFY = "SELECT pg_notify(c, p || $3) FROM unnest($1::text[], $2::text[]) AS n(c, p)"

T = TypeVar("T")

Connection: TypeAlias = Any
"""An ``asyncpg.Connection`` (untyped), as an operation receives it (asyncio side only)."""
Operation = Callable[[Connection], Awaitable[T]]
"""An asyncio-side coroutine function run with a pooled connection."""
Guard = Callable[[], AbstractContextManager[object]]
"""A context manager factory entered around every crossing (see `open_database`)."""


async def _init_connection(conn: Connection) -> None:
    """JSON in and out as Python data (the models' ``to_json``/``from_json`` do the rest)."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Database:
    """A pool of connections on the asyncio side of the bridge; use `open_database`.

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

    @property
    def pool(self) -> TrioPool:
        """The connection pool (its ``size``, ``opened`` and ``discarded`` counts)."""
        return self._pool

    @property
    def listener(self) -> Listener | None:
        """The LISTEN bridge (None in ``poll`` mode)."""
        return self._listener

    def attach(self, signals: Signals) -> None:
        """Have notifications from other processes fire ``signals`` too."""
        if not any(known is signals for known in self._signal_sets):
            self._signal_sets.append(signals)

    def fire(self, key: str) -> None:
        """Wake this process's waiters on ``key`` after a change committed here.

        Every attached `Signals` hears it, as they would hear another process's change;
        other processes hear it from the `publisher` (the listener drops the echo of this
        database's own notifications by their `origin`).
        """
        for signals in self._signal_sets:
            signals.fire(key)
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

        async def on_asyncio(conn: Connection) -> T:
            try:
                return await operation(conn)
            except TRANSLATED as exc:
                raise Failure(translate(exc, where=where), sent=True) from exc

        async def attempt() -> T:
            with self._guard():
                try:
                    conn = await self._pool.acquire()
                except DatabaseError as exc:  # connecting: nothing was sent
                    raise Failure(exc, sent=False) from exc
                reusable = False
                try:
                    result: T = await trio_asyncio.aio_as_trio(on_asyncio, loop=self._loop)(conn)
                    reusable = True
                except Failure as failure:
                    # The server answered (a constraint, a conflict...): the connection is
                    # fine. Anything else (lost, cancelled mid-statement) may not be.
                    reusable = failure.error.sqlstate is not None
                    raise
                finally:
                    self._pool.release(conn, reusable=reusable)
            return result

        return await retrying(attempt, self._retry, idempotent=idempotent, where=where)

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


@asynccontextmanager
async def open_database(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    wakeups: WakeupMode | str = WakeupMode.HYBRID,
    poll_interval: float = 1.0,
    retry: RetryPolicy | None = None,
    close_grace: float = 5.0,
    guard: Guard | None = None,
) -> AsyncIterator[Database]:
    """Open an asyncio loop, a connection pool and (unless polling) a LISTEN connection.

    Args:
        dsn: a ``postgresql://`` URL.
        min_size, max_size: the pool's bounds (the listener's connection is extra).
        wakeups: ``"hybrid"`` (default: notifications, and polling at ``poll_interval``
            while the listener is down), ``"event"`` (notifications only) or ``"poll"`` (no
            LISTEN connection; every wait ends by ``poll_interval``).
        poll_interval: the longest wait when polling, in seconds.
        retry: how operations retry a lost connection (default: `RetryPolicy()`, 30 s).
            Opening does not retry: a wrong URL or a server that is down fails at once.
        close_grace: seconds the pool may take to close before its connections are cut.
        guard: entered around every crossing; tests pass one that stops a
            `trio.testing.MockClock` from autojumping while the database works (real I/O
            looks idle to Trio).

    Raises:
        DatabaseUnavailable: the server cannot be reached, or refuses the credentials or
            the database name.
        ValueError: an unknown ``wakeups`` mode.
    """
    mode = WakeupMode(wakeups)
    enter = guard or nullcontext
    settings = {
        "wakeups": mode,
        "poll_interval": poll_interval,
        "retry": retry or RetryPolicy(),
        "origin": uuid.uuid4().hex,
    }
    try:
        async with (
            open_asyncio_loop() as loop,
            _quiet_stray_errors(loop),
            _pool(
                dsn,
                loop,
                enter,
                min_size=min_size,
                max_size=max_size,
                grace=close_grace,
                settings=settings,
            ) as db,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(db.publisher.run)
            if mode is not WakeupMode.POLL:
                listener = Listener(
                    dsn,
                    loop,
                    db.signal_sets,
                    policy=RetryPolicy(max_backoff=1.0),
                    guard=enter,
                    origin=db.origin,
                )
                db._listener = await nursery.start(listener.run)
            try:
                yield db
            finally:
                # What this process committed last must still reach the others.
                with trio.move_on_after(close_grace, shield=True):
                    await db.publisher.flush()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The loop runs in a nursery, which wraps whatever crosses it in a group; a single
        # error (a failed connect, or the block's own) is re-raised as itself.
        sole = _sole_error(group)
        if sole is None:
            raise
        raise sole from sole.__cause__


@asynccontextmanager
async def _quiet_stray_errors(loop: Any) -> AsyncIterator[None]:
    """Log asyncio errors nobody awaits (a connection the server cut, a failed pool reset).

    The asyncio loop would otherwise re-raise them and die, leaving Trio tasks that wait on
    it hanging for good; the operation that suffered them has its own error already.
    """

    def handler(_: Any, context: dict[str, Any]) -> None:
        _log.warning("asyncio: %s", context.get("message"), exc_info=context.get("exception"))

    loop.set_exception_handler(handler)
    yield


@asynccontextmanager
async def _pool(
    dsn: str,
    loop: Any,
    enter: Guard,
    *,
    min_size: int,
    max_size: int,
    grace: float,
    settings: dict[str, Any],
) -> AsyncIterator[Database]:
    async def connect() -> Any:
        try:
            conn = await asyncpg.connect(
                dsn,
                # Read by `tasker.notify`: this database's notifications carry its origin,
                # and are sent after the commit by its `publisher`, not by the statements.
                server_settings={
                    ORIGIN_SETTING: settings["origin"],
                    NOTIFY_MODE_SETTING: "deferred",
                },
            )
        except TRANSLATED as exc:
            raise translate(exc, where=f"connecting to {_redact(dsn)}") from exc
        except ValueError as exc:  # asyncpg's DSN parser
            raise DatabaseError(f"bad database URL {_redact(dsn)}: {exc}") from exc
        try:
            await _init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    # Pooled connections keep no session state (the listener has its own connection;
    # migrations release their advisory lock themselves), so a connection goes back to the
    # pool as it is: no reset round trip per operation.
    pool = TrioPool(connect, loop, max_size=max_size)
    try:
        with enter():
            await pool.fill(min_size)
        yield Database(pool, loop, dsn=dsn, guard=enter, **settings)
    finally:
        with enter():
            await pool.close(grace)


def _sole_error(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The one `Exception` inside ``group`` (nested groups included), else None."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    if len(leaves) == 1 and isinstance(leaves[0], Exception):
        return leaves[0]
    return None


def _redact(dsn: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
