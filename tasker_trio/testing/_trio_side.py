"""The Trio side of `TrioThread`: the run on its worker thread, settling, and the I/O guard.

`TrioSide` is the base of `TrioThread` holding what runs on the worker thread rather than in
the test's: the ``trio.run`` with its root nursery (an error that ends the run is kept, the
only leaf of nested one-member exception groups, for the test's side to re-raise), its
shutdown (the mock clock may autojump while the run winds down), *settling* — waiting until
every task is blocked, no guarded round trip is in flight and no deadline is due within the
clock's ``resolution`` — and `TrioSide.io_guard`, which marks a real I/O round trip so that
settling waits for it. It keeps no state of its own: the attributes it declares are the
runner's, set by `TrioThread.__init__`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import threading
from collections.abc import Iterator

import trio
import trio.testing

__all__ = ["TrioSide"]


class TrioSide:
    """The Trio thread's half of a `TrioThread` (its base; see `TrioThread` for the options)."""

    cushion: float
    autojump_on_close: bool
    resolution: float
    clock: trio.testing.MockClock
    _autojump: bool
    _in_flight: int
    _io_idle: trio.Event | None
    _token: trio.lowlevel.TrioToken | None
    _nursery: trio.Nursery | None
    _started: threading.Event
    _finished: concurrent.futures.Future[None]
    _error: BaseException | None

    # ------------------------------------------------------------------ the Trio side

    def _main(self) -> None:
        try:
            trio.run(self._root, clock=self.clock)
        except BaseException as error:  # re-raised in the test's thread
            self._error = _unwrap(error)
        finally:
            self._started.set()
            self._finished.set_result(None)

    async def _root(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self._started.set()
            await trio.sleep_forever()

    def _shutdown(self) -> None:
        self._autojump = self.autojump_on_close
        self._apply_autojump()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _apply_autojump(self) -> None:
        wanted = self._autojump and not self._in_flight
        self.clock.autojump_threshold = 0.0 if wanted else math.inf

    async def _settle(self) -> None:
        """Wait until every Trio task is blocked, no guarded round trip is in flight, and no
        deadline is due within the clock's ``resolution``."""
        while True:
            await trio.testing.wait_all_tasks_blocked(self.cushion)
            idle = self._io_idle
            if idle is not None:
                await idle.wait()  # a reply is still on its way: it will wake a task
                continue
            due = trio.lowlevel.current_statistics().seconds_to_next_deadline
            if due > self.resolution:
                return
            self.clock.jump(max(due, 0.0))

    @contextlib.contextmanager
    def io_guard(self) -> Iterator[None]:
        """Mark real I/O (one database round trip) as in flight for the block.

        Real I/O looks blocked to Trio, so without this a call would settle while a query is
        still on the wire, and a closing run's clock would autojump past grace periods in
        the middle of it. Inside the block, settling waits for its end and the clock never
        autojumps; as the mock clock stands still, the round trip takes no Trio time.
        Pass it as ``open_engine(database_guard=runner.io_guard)`` (or ``guard=`` of
        `tasker_trio.db.open_database`). Enter it only in the Trio thread; it nests.
        """
        if self._in_flight == 0:
            self._io_idle = trio.Event()
        self._in_flight += 1
        self._apply_autojump()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._io_idle is not None:
                self._io_idle.set()
                self._io_idle = None
            self._apply_autojump()


def _unwrap(error: BaseException) -> BaseException:
    """The only leaf of nested one-member exception groups (else the error itself)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
