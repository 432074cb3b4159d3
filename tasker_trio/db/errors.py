"""Database errors: what asyncpg and the server report, as `TaskerError`s.

`translate` is the one place asyncpg's exceptions become tasker errors (the bridge calls it
for every operation), so nothing above the store sees an asyncpg type. Every class here is a
`BackendError`: a consumer leaves its message in the queue and tries again later.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # no py.typed, no stubs
from asyncpg.exceptions import _base as _asyncpg_base  # type: ignore[import-untyped]

from tasker_trio.errors import BackendError

_InternalClientError: type[Exception] = _asyncpg_base.InternalClientError


class DatabaseError(BackendError):
    """The database refused or failed an operation (``sqlstate`` says which, when known)."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


class DatabaseUnavailable(DatabaseError, ConnectionError):
    """The server cannot be reached, refused the credentials, or dropped the connection."""


class DatabaseConflict(DatabaseError):
    """Concurrent writers kept changing the same task; the operation gave up retrying."""


class MigrationError(DatabaseError):
    """A schema migration failed or the database schema is not the one this code expects."""


ROLLED_BACK_STATES = frozenset({"40001", "40P01"})
"""serialization_failure and deadlock_detected: the server rolled the whole transaction back,
so running it again is safe whatever it does."""

_UNAVAILABLE_STATES = {
    "08000",  # connection_exception
    "08003",  # connection_does_not_exist
    "08006",  # connection_failure
    "28000",  # invalid_authorization_specification
    "28P01",  # invalid_password
    "3D000",  # invalid_catalog_name (no such database)
    "57P01",  # admin_shutdown (pg_terminate_backend)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
}


def translate(exc: BaseException, *, where: str) -> DatabaseError:
    """The `DatabaseError` for an asyncpg (or socket) failure during ``where``."""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None)
        text = f"{where}: {type(exc).__name__}: {exc}"
        if sqlstate in _UNAVAILABLE_STATES:
            return DatabaseUnavailable(text, sqlstate=sqlstate)
        if sqlstate in ROLLED_BACK_STATES:
            return DatabaseConflict(text, sqlstate=sqlstate)
        return DatabaseError(text, sqlstate=sqlstate)
    if isinstance(exc, (OSError, asyncpg.InterfaceError, TimeoutError, _InternalClientError)):
        # InternalClientError: a connection the server just terminated, handed out by the pool
        # ("cannot switch to state ...; another operation is in progress").
        return DatabaseUnavailable(f"{where}: {type(exc).__name__}: {exc}")
    return DatabaseError(f"{where}: {type(exc).__name__}: {exc}")


TRANSLATED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    _InternalClientError,
    OSError,
    TimeoutError,
)
"""The exception types `translate` turns into `DatabaseError`s."""
