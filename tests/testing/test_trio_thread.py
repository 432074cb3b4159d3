"""Unit tests of `TrioThread`: calls settle, time only moves on `jump`, errors propagate,
`close` joins, and a hang fails within its deadline instead of hanging the test."""

from __future__ import annotations

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
