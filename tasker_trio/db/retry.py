"""Retrying database operations across lost connections, without applying anything twice.

The rule (see `Database.run`):

* A failure **before the statement was sent** — connecting, or taking a connection from the
  pool while the server is away — is retried for every operation: nothing reached the server.
* A lost connection **after the statement was sent** is ambiguous: the transaction may or may
  not have committed. It is retried only for operations declared ``idempotent``: reads, and
  writes whose second run cannot apply again — fenced by a version, a state and attempt, or a
  key (``create_task`` by task uuid and identity hash, ``apply`` by the task version,
  ``claim_step`` / ``record_result`` by state and attempt, lease, visibility, delete and
  archive by id with absolute values). The others (``send``, ``read``: each run adds or hides
  messages) raise `DatabaseUnavailable`, and their callers — whose loops treat a
  `BackendError` as "try again later" — decide.
* A deadlock or serialization failure (SQLSTATE 40P01, 40001) is retried for every
  operation: the server rolled the whole transaction back, so nothing was applied.
* Any other server error (a constraint, a bad statement) is not retried.

Retries back off exponentially with jitter and stop after the policy's ``timeout``; then the
last failure is raised as a `DatabaseUnavailable` that says how long and how often it tried.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import trio

from tasker_trio.db.errors import ROLLED_BACK_STATES, DatabaseError, DatabaseUnavailable

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How long and how fast to retry an operation while the database is unavailable.

    Attributes:
        timeout: seconds after the first failure before giving up (0: never retry).
        initial_backoff: the first pause between attempts, doubled after each failure.
        max_backoff: the longest pause between attempts.
    """

    timeout: float = 30.0
    initial_backoff: float = 0.05
    max_backoff: float = 2.0

    def backoffs(self) -> BackoffIterator:
        """A fresh sequence of pauses for one operation."""
        return BackoffIterator(self)


class BackoffIterator:
    """Pauses growing from ``initial_backoff`` to ``max_backoff``, each with ±25% jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._next = policy.initial_backoff
        self._max = policy.max_backoff

    def __next__(self) -> float:
        pause = self._next * random.uniform(0.75, 1.25)  # jitter, not cryptography
        self._next = min(self._next * 2, self._max)
        return min(pause, self._max)


class Failure(Exception):
    """A failed attempt, carrying its translated error and whether the server saw it.

    Raised on the asyncio side of the bridge and caught by `retrying`; never leaves this
    package.
    """

    def __init__(self, error: DatabaseError, *, sent: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent

    def retryable(self, *, idempotent: bool) -> bool:
        """Whether another attempt is allowed (see the module's rule)."""
        if self.error.sqlstate in ROLLED_BACK_STATES:
            return True  # a deadlock or serialization victim: nothing was committed
        if not isinstance(self.error, DatabaseUnavailable):
            return False
        return idempotent or not self.sent


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    where: str,
) -> T:
    """Run ``attempt`` until it succeeds, a failure is final, or ``policy`` gives up.

    Raises:
        DatabaseUnavailable: the database stayed unavailable for ``policy.timeout`` seconds,
            or a non-idempotent operation lost its connection after sending.
        DatabaseError: the server refused the operation.
    """
    started = trio.current_time()
    backoffs = policy.backoffs()
    attempts = 0
    while True:
        attempts += 1
        try:
            return await attempt()
        except Failure as failure:
            error = failure.error
            if not failure.retryable(idempotent=idempotent):
                if isinstance(error, DatabaseUnavailable) and failure.sent:
                    raise DatabaseUnavailable(
                        f"{error} (the connection was lost after the statement was sent; "
                        "not retried, since it may have committed)",
                        sqlstate=error.sqlstate,
                    ) from error.__cause__
                raise error from error.__cause__
            pause = next(backoffs)
            elapsed = trio.current_time() - started
            if elapsed + pause > policy.timeout:
                raise DatabaseUnavailable(
                    f"{where}: the database stayed unavailable for {elapsed:.1f}s "
                    f"({attempts} attempt{'s' if attempts > 1 else ''}); last error: {error}",
                    sqlstate=error.sqlstate,
                ) from error.__cause__
        await trio.sleep(pause)
