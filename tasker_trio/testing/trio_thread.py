"""`TrioThread`: one Trio run kept alive on a worker thread, driven from synchronous code.

Hypothesis' stateful tests are synchronous, and ``hypothesis-trio`` does not import with
current Hypothesis. This runner is the pattern of STYLE.md item 10 instead: a single
``trio.run`` lives on a daemon thread with a ``trio.testing.MockClock(rate=0)`` — time stands
still until the test says otherwise (`jump`) — and the test's sync rules call into it with
``trio.from_thread.run``. After each call the runner *settles*: it waits until every Trio task
is blocked (``trio.testing.wait_all_tasks_blocked``), so a rule sees the system at rest.

Every call has a real-time deadline, so a hang fails the test (`TrioCallTimeout`) instead of
hanging CI; an error that ends the Trio run itself (for instance a background task started
with `TrioThread.start` crashing) is re-raised by the next call, or by `close`.

Example::

    with TrioThread() as runner:
        engine = runner.start(serve_engine)   # a task in the root nursery
        runner.call(engine.submit, "ns", "name", {})
        runner.jump(30.0)                     # let 30 s of engine time pass, then settle

Only async code that blocks on Trio primitives can be settled: a task waiting for a thread
(``trio.to_thread``) looks blocked to ``wait_all_tasks_blocked`` while the thread still works.
Real I/O (a database round trip) looks blocked too; code that does it enters
`TrioThread.io_guard` around each round trip — pass it as the engine's database guard — and
settling then also waits until no guarded round trip is in flight. What runs on the Trio
thread (the run, settling, `io_guard`) is the base `tasker_trio.testing._trio_side.TrioSide`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import trio
import trio.testing

from tasker_trio.testing._trio_side import TrioSide

T = TypeVar("T")

__all__ = ["TrioCallTimeout", "TrioThread"]


class TrioCallTimeout(TimeoutError):
    """A call into the Trio thread did not finish within its real-time deadline."""


class _CallBox:
    """The cancel scope of one call, so a call that overruns its deadline can be cancelled."""

    scope: trio.CancelScope | None = None


class TrioThread(TrioSide):
    """One ``trio.run`` with a ``MockClock(rate=0)`` on a worker thread, driven synchronously.

    Args:
        deadline: real seconds any one call may take (unless it passes its own
            ``timeout``); also the limit on starting and on closing the thread.
        cushion: the ``cushion`` given to ``wait_all_tasks_blocked`` when settling.
        autojump_on_close: let the mock clock jump freely while the run shuts down, so that
            grace periods and shielded cleanups with timeouts end instead of waiting for
            time that never passes (never while an `io_guard` block is open).
        resolution: settling treats a deadline at most this many seconds ahead as due, and
            jumps the clock to it. Stored times are rounded (PostgreSQL keeps microseconds),
            so code comparing a stored time with the clock may wait out the rounding error:
            a real clock moves on by itself, this one would wait for the next `jump`.

    Raises:
        TrioCallTimeout: the Trio thread did not start within ``deadline``.
    """

    def __init__(
        self,
        *,
        deadline: float = 10.0,
        cushion: float = 0.0,
        autojump_on_close: bool = True,
        resolution: float = 0.0,
    ) -> None:
        self.deadline = deadline
        self.cushion = cushion
        self.autojump_on_close = autojump_on_close
        self.resolution = resolution
        self.clock = trio.testing.MockClock(rate=0)
        self._autojump = False
        self._in_flight = 0
        self._io_idle: trio.Event | None = None  # set when the last guarded round trip ends
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._started = threading.Event()
        self._finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._error: BaseException | None = None
        self._error_reported = False
        self._closed = False
        # Calls block in trio.from_thread.run; they do so on these threads so that the test's
        # thread can keep its deadline. Two workers: one call may still be winding down after
        # its deadline while the next starts.
        self._callers = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="trio-call")
        self._thread = threading.Thread(target=self._main, name="trio-thread", daemon=True)
        self._thread.start()
        if not self._started.wait(deadline):
            raise TrioCallTimeout(f"the Trio thread did not start within {deadline}s")
        self._raise_if_dead()

    # ------------------------------------------------------------------ the test's side

    @property
    def nursery(self) -> trio.Nursery:
        """The root nursery (only touch it from inside the Trio thread, e.g. in a call)."""
        if self._nursery is None:
            raise RuntimeError("the Trio thread is not running")
        return self._nursery

    @property
    def running(self) -> bool:
        """Whether the Trio run is still alive."""
        return not self._finished.done()

    def call(
        self,
        async_fn: Callable[..., Awaitable[T]],
        *args: Any,
        timeout: float | None = None,
        settle: bool = True,
    ) -> T:
        """Run ``await async_fn(*args)`` in the Trio thread, settle, and return its result.

        Args:
            async_fn: the async function to run (in a system task of the run).
            args: its positional arguments.
            timeout: real seconds before the call fails (default: the runner's
                ``deadline``).
            settle: wait until every Trio task is blocked before returning.

        Raises:
            TrioCallTimeout: the call (with its settling) overran ``timeout``; it is cancelled.
            RuntimeError: the runner is closed.
            BaseException: whatever ``async_fn`` raised, or the error that ended the Trio run.
        """
        self._raise_if_dead()
        if self._closed:
            raise RuntimeError("the TrioThread is closed")
        limit = self.deadline if timeout is None else timeout
        box = _CallBox()

        async def guarded() -> T:
            with trio.CancelScope() as scope:
                box.scope = scope
                result = await async_fn(*args)
                if settle:
                    await self._settle()
                return result
            raise TrioCallTimeout(f"{_name(async_fn)} was cancelled after {limit}s")

        future: concurrent.futures.Future[T] = self._callers.submit(
            functools.partial(trio.from_thread.run, guarded, trio_token=self._token)
        )
        waited: list[concurrent.futures.Future[Any]] = [future, self._finished]
        done, _ = concurrent.futures.wait(
            waited, timeout=limit, return_when=concurrent.futures.FIRST_COMPLETED
        )
        if future in done:
            error = future.exception()
            if isinstance(error, trio.Cancelled | trio.RunFinishedError):
                # The run is ending under the call: report why it ends, not the cancellation.
                self._finished.exception(timeout=self.deadline)
                self._raise_if_dead()
            return future.result()
        if self._finished in done:
            self._raise_if_dead()
            raise RuntimeError(f"the Trio run ended during {_name(async_fn)}")
        self._cancel_call(box)
        raise TrioCallTimeout(
            f"{_name(async_fn)} did not finish within {limit}s of real time "
            f"(Trio clock at {self.clock.current_time():.3f}s)"
        )

    def run_sync(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run the sync ``fn(*args)`` in the Trio thread (it may start tasks), then settle."""

        async def wrapper() -> T:
            return fn(*args)

        return self.call(wrapper, timeout=timeout)

    def start(
        self, async_fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float | None = None
    ) -> Any:
        """Start ``async_fn(*args, task_status=...)`` in the root nursery; return its value.

        The task lives until `close` (or until it returns); if it raises, the Trio run ends
        and the error surfaces from the next call or from `close`.
        """

        async def starter() -> Any:
            return await self.nursery.start(async_fn, *args)

        return self.call(starter, timeout=timeout)

    def settle(self, *, timeout: float | None = None) -> None:
        """Wait until every Trio task is blocked, no `io_guard` block is open, and no
        deadline lies within ``resolution``."""

        async def nothing() -> None:
            return None

        self.call(nothing, timeout=timeout)

    def jump(self, seconds: float, *, timeout: float | None = None) -> None:
        """Advance the mock clock by ``seconds``, then settle.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"time only moves forward, got {seconds}")
        self.run_sync(self.clock.jump, seconds, timeout=timeout)

    def now(self) -> float:
        """The Trio clock (``trio.current_time()`` inside the run)."""
        return self.clock.current_time()

    def close(self) -> None:
        """Cancel the root nursery, join the thread, and re-raise any error of the run.

        Idempotent. With ``autojump_on_close`` the clock jumps freely while the run shuts
        down, so shielded cleanups with timeouts finish.

        Raises:
            TrioCallTimeout: the thread did not finish within ``deadline``.
            BaseException: the error that ended the Trio run, if no call reported it yet.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread.is_alive() and self._token is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(self._shutdown)
            self._thread.join(self.deadline)
        finally:
            self._callers.shutdown(wait=False, cancel_futures=True)
        if self._thread.is_alive():
            raise TrioCallTimeout(f"the Trio thread did not finish within {self.deadline}s")
        self._raise_if_dead()

    def __enter__(self) -> TrioThread:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except BaseException as close_error:  # keep the original error as the one raised
            exc.add_note(f"closing the TrioThread also failed: {close_error!r}")

    # ------------------------------------------------------------------ helpers

    def _raise_if_dead(self) -> None:
        if self._error is not None and not self._error_reported:
            self._error_reported = True
            raise self._error

    def _cancel_call(self, box: _CallBox) -> None:
        scope = box.scope
        if scope is None or self._token is None:
            return
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(scope.cancel)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
