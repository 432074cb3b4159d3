"""ask, tell and tell_nowait: replies, handler errors, backpressure, timeouts, cancellation."""

from __future__ import annotations

import logging
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing

from tasker_trio.actors import Actor, Message, handles, open_registry
from tasker_trio.errors import (
    AskTimeout,
    MailboxFull,
    UnhandledMessage,
)


@attrs.frozen(kw_only=True)
class Double(Message[int]):
    n: int


@attrs.frozen(kw_only=True)
class SpecialDouble(Double):
    """A subclass of a handled message: dispatched to its base's handler."""


@attrs.frozen(kw_only=True)
class Fail(Message[None]):
    reason: str


@attrs.frozen(kw_only=True)
class Sleep(Message[str]):
    seconds: float
    tag: str = ""


@attrs.frozen(kw_only=True)
class Unknown(Message[None]):
    pass


class Worker(Actor[Any]):
    """Doubles numbers, fails on demand, sleeps on demand; records what it handled."""

    mailbox_capacity = 2

    def __init__(self, context: Any, *, name: str | None = None) -> None:
        super().__init__(context, name=name)
        self.handled: list[object] = []
        self.running = 0
        self.max_running = 0

    @handles(Double)
    async def double(self, msg: Double) -> int:
        self.handled.append(msg)
        return msg.n * 2

    @handles(Fail)
    async def fail(self, msg: Fail) -> None:
        raise ValueError(msg.reason)

    @handles(Sleep)
    async def sleep(self, msg: Sleep) -> str:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await trio.sleep(msg.seconds)
        finally:
            self.running -= 1
        self.handled.append(msg)
        return msg.tag


def actor_of(ref: Any) -> Worker:
    """The actor behind ``ref``, to look at what it recorded (white-box, tests only)."""
    return cast(Worker, ref._cell.actor)


class Wide(Worker):
    concurrency = 4
    mailbox_capacity = 8


async def test_ask_returns_the_handlers_reply() -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        assert await ref.ask(Double(n=21)) == 42
        assert await ref.ask(SpecialDouble(n=2)) == 4


async def test_handler_error_goes_to_the_asker_and_the_actor_survives() -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        with pytest.raises(ValueError, match="bad input"):
            await ref.ask(Fail(reason="bad input"))
        assert await ref.ask(Double(n=1)) == 2
        stats = ref.statistics()
        assert (stats.messages_failed, stats.messages_handled, stats.restarts) == (1, 1, 0)


async def test_unhandled_message_is_refused_before_sending() -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        with pytest.raises(UnhandledMessage) as caught:
            await ref.ask(Unknown())
        assert caught.value.actor == "Worker"
        assert caught.value.message_type == "Unknown"
        assert caught.value.handled == ("Double", "Fail", "Sleep")
        with pytest.raises(UnhandledMessage):
            await ref.tell(Unknown())
        with pytest.raises(UnhandledMessage):
            ref.tell_nowait(Unknown())
        assert ref.statistics().mailbox_depth == 0
        assert await ref.ask(Double(n=3)) == 6  # not a crash


async def test_tell_is_handled_later_and_its_failure_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        actor = actor_of(ref)
        with caplog.at_level(logging.ERROR, logger="tasker_trio.actors"):
            ref.tell_nowait(Double(n=5))
            assert actor.handled == []  # not handled yet: telling does not wait for it
            await ref.tell(Fail(reason="told to fail"))
            await trio.testing.wait_all_tasks_blocked()
        assert actor.handled == [Double(n=5)]
        assert ref.statistics().messages_failed == 1
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "[Worker] told Fail failed"
    assert record.actor == "Worker"  # type: ignore[attr-defined]
    assert isinstance(record.exc_info[1], ValueError)  # type: ignore[index]


async def test_full_mailbox_applies_backpressure_and_tell_nowait_raises(
    autojump_clock: Any,
) -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        ref.tell_nowait(Sleep(seconds=10))
        await trio.testing.wait_all_tasks_blocked()  # the handler took it: mailbox empty
        ref.tell_nowait(Sleep(seconds=0, tag="1"))
        ref.tell_nowait(Sleep(seconds=0, tag="2"))
        assert ref.statistics().mailbox_depth == 2
        with pytest.raises(MailboxFull, match="full \\(2 messages\\)"):
            ref.tell_nowait(Double(n=1))
        began = trio.current_time()
        await ref.tell(Double(n=1))  # waits until the slow handler frees a slot
        assert trio.current_time() - began == pytest.approx(10)


async def test_cancelled_asker_does_not_break_the_actor(autojump_clock: Any) -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        actor = actor_of(ref)
        ref.tell_nowait(Sleep(seconds=5, tag="busy"))
        with trio.move_on_after(1) as scope:
            await ref.ask(Double(n=1))  # queued behind the slow one, then abandoned
        assert scope.cancelled_caught
        assert await ref.ask(Double(n=2)) == 4
        assert actor.handled == [Sleep(seconds=5, tag="busy"), Double(n=2)]
        assert ref.statistics().messages_abandoned == 1


async def test_cancelled_asker_while_its_message_is_handled(autojump_clock: Any) -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        with trio.move_on_after(1):
            await ref.ask(Sleep(seconds=3, tag="x"))
        assert await ref.ask(Double(n=2)) == 4  # the actor finished the abandoned one
        assert actor_of(ref).handled == [Sleep(seconds=3, tag="x"), Double(n=2)]


async def test_ask_timeout(autojump_clock: Any) -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        began = trio.current_time()
        with pytest.raises(AskTimeout) as caught:
            await ref.ask(Sleep(seconds=5), timeout=2)
        assert trio.current_time() - began == pytest.approx(2)
        assert (caught.value.actor, caught.value.message_type, caught.value.timeout) == (
            "Worker",
            "Sleep",
            2,
        )
        assert isinstance(caught.value, TimeoutError)
        assert await ref.ask(Sleep(seconds=1, tag="ok"), timeout=10) == "ok"


async def test_ask_timeout_covers_backpressure(autojump_clock: Any) -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        for _ in range(3):  # one in the handler, two filling the mailbox
            await ref.tell(Sleep(seconds=10))
        with pytest.raises(AskTimeout):
            await ref.ask(Double(n=1), timeout=1)


async def test_concurrency_runs_that_many_handlers_at_once(autojump_clock: Any) -> None:
    async with open_registry(None, [Worker, Wide]) as registry:
        for actor_type, expected in ((Worker, 1), (Wide, 4)):
            ref = registry.ref(actor_type)
            began = trio.current_time()
            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(ref.ask, Sleep(seconds=1, tag=str(i)))
            actor = actor_of(ref)
            assert actor.max_running == expected
            assert trio.current_time() - began == pytest.approx(8 / expected)


async def test_one_handler_task_keeps_message_order() -> None:
    async with open_registry(None, [Worker]) as registry:
        ref = registry.ref(Worker)
        for n in range(2):
            ref.tell_nowait(Double(n=n))
        await ref.tell(Double(n=2))
        assert await ref.ask(Double(n=3)) == 6
        assert actor_of(ref).handled == [Double(n=n) for n in range(4)]
