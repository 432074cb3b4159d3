"""The Trio-to-asyncio bridge: one asyncio loop, one asyncpg pool, one crossing per operation.

`open_database` opens a trio-asyncio loop and an asyncpg pool inside the caller's nursery
tree and closes both on the way out (shielded, within a grace period, then terminated).
`Database.run` hands a whole operation — usually one statement, or one transaction — to the
asyncio side and waits for it there, so each store operation crosses the bridge once; every
asyncpg failure is translated into a `DatabaseError` on the way back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any, TypeAlias, TypeVar

# Neither ships type information (no py.typed, no stubs package): their values are Any here,
# and this module is the only one that touches them.
import asyncpg  # type: ignore[import-untyped]
import trio
import trio_asyncio  # type: ignore[import-untyped]

from tasker_trio.db.errors import TRANSLATED, DatabaseError, translate

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
    """A pool of connections on the asyncio side of the bridge; use `open_database`."""

    def __init__(self, pool: asyncpg.Pool, loop: Any, *, dsn: str, guard: Guard) -> None:
        self._pool = pool
        self._loop = loop
        self._guard = guard
        self.dsn = dsn

    async def run(self, operation: Operation[T], *, where: str = "database operation") -> T:
        """Run ``operation(conn)`` on the asyncio side with a pooled connection.

        Raises:
            DatabaseUnavailable: the server is unreachable or dropped the connection.
            DatabaseError: the server refused the operation (other asyncpg errors).
        """

        async def on_asyncio() -> T:
            try:
                async with self._pool.acquire() as conn:
                    return await operation(conn)
            except TRANSLATED as exc:
                raise translate(exc, where=where) from exc

        with self._guard():
            result: T = await trio_asyncio.aio_as_trio(on_asyncio, loop=self._loop)()
        return result

    async def fetch(self, query: str, *args: Any, where: str = "query") -> list[asyncpg.Record]:
        """All rows of one statement (one crossing)."""

        async def op(conn: Connection) -> list[asyncpg.Record]:
            return list(await conn.fetch(query, *args))

        return await self.run(op, where=where)

    async def fetchrow(self, query: str, *args: Any, where: str = "query") -> asyncpg.Record | None:
        """The first row of one statement, or None (one crossing)."""

        async def op(conn: Connection) -> asyncpg.Record | None:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row

        return await self.run(op, where=where)

    async def fetchval(self, query: str, *args: Any, where: str = "query") -> Any:
        """The first column of the first row of one statement (one crossing)."""

        async def op(conn: Connection) -> Any:
            return await conn.fetchval(query, *args)

        return await self.run(op, where=where)


@asynccontextmanager
async def open_database(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    close_grace: float = 5.0,
    guard: Guard | None = None,
) -> AsyncIterator[Database]:
    """Open an asyncio loop and a connection pool to ``dsn`` for the duration of the block.

    Args:
        dsn: a ``postgresql://`` URL.
        min_size, max_size: the pool's bounds.
        close_grace: seconds the pool may take to close before its connections are cut.
        guard: entered around every crossing; tests pass one that stops a
            `trio.testing.MockClock` from autojumping while the database works (real I/O
            looks idle to Trio).

    Raises:
        DatabaseUnavailable: the server cannot be reached, or refuses the credentials or
            the database name.
    """
    enter = guard or nullcontext
    try:
        async with (
            trio_asyncio.open_loop() as loop,
            _pool(dsn, loop, enter, min_size=min_size, max_size=max_size, grace=close_grace) as db,
        ):
            yield db
    except BaseExceptionGroup as group:
        # The loop runs in a nursery, which wraps whatever crosses it in a group; a single
        # error (a failed connect, or the block's own) is re-raised as itself.
        sole = _sole_error(group)
        if sole is None:
            raise
        raise sole from sole.__cause__


@asynccontextmanager
async def _pool(
    dsn: str, loop: Any, enter: Guard, *, min_size: int, max_size: int, grace: float
) -> AsyncIterator[Database]:
    async def create() -> Any:
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                # No idle timer: connections live as long as the pool (timers would also
                # run on a test's mock clock).
                max_inactive_connection_lifetime=0,
            )
        except TRANSLATED as exc:
            raise translate(exc, where=f"connecting to {_redact(dsn)}") from exc
        except ValueError as exc:  # asyncpg's DSN parser
            raise DatabaseError(f"bad database URL {_redact(dsn)}: {exc}") from exc

    with enter():
        pool = await trio_asyncio.aio_as_trio(create, loop=loop)()
    try:
        yield Database(pool, loop, dsn=dsn, guard=enter)
    finally:
        with enter(), trio.move_on_after(grace, shield=True) as scope:
            await trio_asyncio.aio_as_trio(pool.close, loop=loop)()
        if scope.cancelled_caught:
            pool.terminate()


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
