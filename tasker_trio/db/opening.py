"""Opening a database: the asyncio loop, the connection pool and the listener, in a nursery.

`open_database` opens a trio-asyncio loop (`tasker_trio.db.loop`), a pool of asyncpg
connections kept on the Trio side (`tasker_trio.db.pool`), the publisher of this process's
notifications (`tasker_trio.db.publisher`) and (unless polling) the LISTEN bridge of
`tasker_trio.db.listener` inside the caller's nursery tree, and closes them on the way out
(shielded, within a grace period, then terminated). What it yields, a
`tasker_trio.db.bridge.Database`, runs the operations.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no py.typed, no stubs
import trio

from tasker_trio.db.bridge import Connection, Database, Guard
from tasker_trio.db.errors import TRANSLATED, DatabaseError, translate
from tasker_trio.db.listener import Listener
from tasker_trio.db.loop import open_asyncio_loop
from tasker_trio.db.pool import TrioPool
from tasker_trio.db.publisher import NOTIFY_MODE_SETTING
from tasker_trio.db.retry import RetryPolicy
from tasker_trio.db.signals import ORIGIN_SETTING, WakeupMode
from tasker_trio.models.codec import dumps_compact

_log = logging.getLogger("tasker_trio.db")


async def _init_connection(conn: Connection) -> None:
    """JSON in and out as Python data (the models' ``to_json``/``from_json`` do the rest).

    Decoded by the standard library: orjson would read an integer beyond 64 bits (which
    ``jsonb`` keeps exactly) as a float."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, encoder=dumps_compact, decoder=json.loads, schema="pg_catalog"
        )


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
            db.serve_in(nursery)
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
                db.listen_with(await nursery.start(listener.run))
            try:
                yield db
            finally:
                # What this process committed last must still reach the others.
                with trio.move_on_after(close_grace, shield=True):
                    await db.publisher.flush()
                db.serve_in(None)
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
            raise translate(exc, where=f"connecting to {redact(dsn)}") from exc
        except ValueError as exc:  # asyncpg's DSN parser
            raise DatabaseError(f"bad database URL {redact(dsn)}: {exc}") from exc
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


def redact(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
