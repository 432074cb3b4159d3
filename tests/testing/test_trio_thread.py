"""Unit tests of `TrioThread`: calls settle, time only moves on `jump`, errors propagate,
`close` joins, and a hang fails within its deadline instead of hanging the test; settling
waits for guarded I/O, and treats deadlines within the clock's resolution as due."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import trio

from tasker_trio.testing import TrioCallTimeout, TrioThread


@pytest.fixture
def runner() -> Iterator[TrioThread]:
    with TrioThread(deadline=5.0) as runner:
        yield runner


async def add(a: int, b: int) -> int:
    await trio.lowlevel.checkpoint()
    return a + b


def test_call_returns_the_result(runner: TrioThread) -> None:
    assert runner.call(add, 2, 3) == 5
    assert runner.run_sync(lambda: 7) == 7


def test_call_settles_background_work(runner: TrioThread) -> None:
    seen: list[str] = []

    async def worker(
        send: trio.MemorySendChannel[str],
        receive: trio.MemoryReceiveChannel[str],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        async for item in receive:
            for _ in range(5):
                await trio.lowlevel.checkpoint()
            seen.append(item)
        del send

    send, receive = trio.open_memory_channel[str](10)
    runner.start(worker, send, receive)
    runner.run_sync(send.send_nowait, "a")
    assert seen == ["a"]  # the call returned only once the worker was blocked again


def test_time_moves_only_on_jump(runner: TrioThread) -> None:
    woke: list[float] = []

    async def sleeper(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(10)
        woke.append(trio.current_time())

    runner.start(sleeper)
    start = runner.now()
    time.sleep(0.05)
    runner.settle()
    assert runner.now() == start
    runner.jump(9.5)
    assert woke == []
    runner.jump(0.5)
    assert woke == [start + 10]
    with pytest.raises(ValueError, match="forward"):
        runner.jump(-1)


def test_errors_of_a_call_propagate(runner: TrioThread) -> None:
    async def boom() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError, match="nope"):
        runner.call(boom)
    assert runner.call(add, 1, 1) == 2  # the run survives a failing call


def test_a_crash_of_the_run_surfaces_on_the_next_call() -> None:
    runner = TrioThread(deadline=5.0)

    async def crash_later(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(1)
        raise RuntimeError("background crash")

    runner.start(crash_later)
    with pytest.raises(RuntimeError, match="background crash"):
        runner.jump(1)
    runner.close()  # already reported: close does not raise it again
    assert not runner.running


def test_close_reraises_an_error_of_the_shutdown() -> None:
    runner = TrioThread(deadline=5.0)

    async def bad_cleanup(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            raise ValueError("cleanup failed")

    runner.start(bad_cleanup)
    with pytest.raises(ValueError, match="cleanup failed"):
        runner.close()
    assert not runner.running


def test_close_joins_the_thread_and_is_idempotent() -> None:
    runner = TrioThread(deadline=5.0)
    runner.close()
    assert not runner.running
    runner.close()
    with pytest.raises((RuntimeError, trio.RunFinishedError)):
        runner.call(add, 1, 2)


def test_close_lets_shielded_cleanup_with_timeouts_finish() -> None:
    cleaned: list[bool] = []

    async def service(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.move_on_after(30, shield=True):
                await trio.sleep(60)  # a drain that never finishes: the grace period ends it
            cleaned.append(True)

    runner = TrioThread(deadline=5.0)
    runner.start(service)
    started = time.monotonic()
    runner.close()
    assert cleaned == [True]
    assert time.monotonic() - started < 5


def test_a_hanging_call_times_out_and_is_cancelled(runner: TrioThread) -> None:
    cancelled: list[bool] = []

    async def hang() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    started = time.monotonic()
    with pytest.raises(TrioCallTimeout, match=r"did not finish within 0\.2s"):
        runner.call(hang, timeout=0.2)
    assert time.monotonic() - started < 2
    assert runner.call(add, 2, 2) == 4  # still usable
    assert cancelled == [True]


def test_a_call_that_never_settles_times_out(runner: TrioThread) -> None:
    async def spinner(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.lowlevel.checkpoint()  # never blocks: the run never settles

    with pytest.raises(TrioCallTimeout):
        runner.start(spinner, timeout=0.3)


def test_settling_waits_for_guarded_io(runner: TrioThread) -> None:
    # A thread stands in for a database round trip: Trio sees the waiting task as blocked.
    done: list[str] = []

    async def round_trip(label: str) -> None:
        with runner.io_guard():
            await trio.to_thread.run_sync(time.sleep, 0.2)
        done.append(label)

    async def query(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await round_trip("first")
        await round_trip("second")  # the next one starts before the first reply is handled

    runner.start(query)
    assert done == ["first", "second"]


def test_settling_without_a_guard_does_not_wait_for_io(runner: TrioThread) -> None:
    # The counterpart of the test above: why the guard exists.
    done: list[str] = []
    reply = threading.Event()

    async def unguarded(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.to_thread.run_sync(reply.wait)
        done.append("late")

    runner.start(unguarded)
    assert done == []  # settled while the "reply" is still outstanding
    reply.set()
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
        runner.settle()
    assert done == ["late"]


def test_the_clock_holds_still_during_guarded_io_while_closing() -> None:
    cleaned: list[float] = []
    runner = TrioThread(deadline=5.0)

    async def service(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            # A connection closing within a grace period: the autojump of `close` must not
            # end the grace period while the close is on the wire.
            with runner.io_guard(), trio.move_on_after(1.0, shield=True):
                await trio.to_thread.run_sync(time.sleep, 0.2)
                cleaned.append(trio.current_time())

    runner.start(service)
    start = runner.now()
    runner.close()
    assert cleaned == [start]


def test_deadlines_within_the_resolution_are_due() -> None:
    woke: list[float] = []

    async def sleeper(
        delay: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await trio.sleep(delay)
        woke.append(delay)

    with TrioThread(deadline=5.0, resolution=1e-5) as runner:
        start = runner.now()
        runner.start(sleeper, 4e-7)  # a stored time rounded up to the microsecond
        assert woke == [4e-7]
        runner.start(sleeper, 1e-3)  # a real deadline: it waits for the clock
        assert woke == [4e-7]
        assert runner.now() == pytest.approx(start + 4e-7)
    with TrioThread(deadline=5.0) as strict:
        strict.start(sleeper, 4e-7)
        assert woke == [4e-7]  # no resolution: only a jump wakes it
        strict.jump(1e-6)
        assert woke == [4e-7, 4e-7]
