"""Supervision: loop crashes restart one-for-one within the policy; beyond it, all stop."""

from __future__ import annotations

import functools
import logging
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tasker_trio.actors import Actor, CrashActor, Message, RestartPolicy, handles, open_registry
from tasker_trio.errors import ActorCrashed, ActorStopped


@attrs.frozen(kw_only=True)
class Crash(Message[None]):
    pass


@attrs.frozen(kw_only=True)
class Echo(Message[int]):
    n: int
    seconds: float = 0


class Fragile(Actor[Any]):
    """Crashes its loop on `Crash`; records every start and stop."""

    restart_policy = RestartPolicy(max_restarts=2, window=10.0)
    concurrency = 2

    @handles(Crash)
    async def crash(self, msg: Crash) -> None:
        raise CrashActor("state is corrupt") from KeyError("k")

    @handles(Echo)
    async def echo(self, msg: Echo) -> int:
        await trio.sleep(msg.seconds)
        return msg.n

    async def started(self) -> None:
        self.context.record("started", self.name)

    async def stopped(self) -> None:
        self.context.record("stopped", self.name)


async def crash_once(recorder: Any, factory: functools.partial[Fragile]) -> None:
    """Run a registry of one actor, crash it once, and wait (for the registry to end it)."""
    async with open_registry(recorder, [factory]) as registry:
        registry.ref(factory.keywords["name"]).tell_nowait(Crash())
        await trio.sleep_forever()


def named(name: str, cls: type[Fragile] = Fragile) -> functools.partial[Fragile]:
    return functools.partial(cls, name=name)


async def test_crash_within_policy_restarts_and_is_logged_and_counted(
    recorder: Any, autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_registry(recorder, [named("f")]) as registry:
        ref = registry.ref("f")
        for _ in range(2):
            with pytest.raises(ActorStopped) as caught:
                await ref.ask(Crash())
            assert isinstance(caught.value.__cause__, CrashActor)
            await trio.testing.wait_all_tasks_blocked()
        assert await ref.ask(Echo(n=7)) == 7
        stats = ref.statistics()
        assert (stats.restarts, stats.messages_failed, stats.state) == (2, 2, "running")
    assert recorder.of("started") == ["f", "f", "f"]
    assert recorder.of("stopped") == ["f"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "[f] loop crashed; restarting (1 of 2 allowed within 10s)",
        "[f] loop crashed; restarting (2 of 2 allowed within 10s)",
    ]
    assert all(isinstance(r.exc_info[1], CrashActor) for r in warnings)  # type: ignore[index]


async def test_crash_cancels_sibling_handlers_but_keeps_the_queue(
    recorder: Any, autojump_clock: Any
) -> None:
    outcomes: dict[int, object] = {}

    async def ask(ref: Any, n: int, seconds: float) -> None:
        try:
            outcomes[n] = await ref.ask(Echo(n=n, seconds=seconds))
        except ActorStopped as error:
            outcomes[n] = error

    async with open_registry(recorder, [named("f")]) as registry:
        ref = registry.ref("f")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, ref, 1, 5.0)  # in flight in the second handler task
            await trio.testing.wait_all_tasks_blocked()
            ref.tell_nowait(Crash())
            ref.tell_nowait(Echo(n=0))  # filler: queued behind the crash
            nursery.start_soon(ask, ref, 2, 0.0)  # queued: survives the restart
    assert isinstance(outcomes[1], ActorStopped)
    assert outcomes[2] == 2
    assert recorder.of("started") == ["f", "f"]


async def test_crashes_beyond_the_policy_stop_everything_in_reverse_and_raise(
    recorder: Any, autojump_clock: Any
) -> None:
    body_finished = False
    refs: dict[str, Any] = {}

    async def crash_three_times() -> None:
        nonlocal body_finished
        async with open_registry(recorder, [named("a"), named("f"), named("z")]) as registry:
            refs["registry"], refs["f"] = registry, registry.ref("f")
            for _ in range(3):
                refs["f"].tell_nowait(Crash())
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(1000)  # cancelled by the registry
            body_finished = True

    with pytest.raises(ActorCrashed) as caught:
        await crash_three_times()
    assert not body_finished
    registry, ref = refs["registry"], refs["f"]
    error = caught.value
    assert (error.actor, error.restarts, error.window) == ("f", 2, 10.0)
    assert isinstance(error.cause, CrashActor)
    assert error.__cause__ is error.cause
    assert "actor 'f' crashed after 2 restarts within 10s: CrashActor: state is corrupt" in str(
        error
    )
    assert recorder.of("stopped") == ["z", "f", "a"]
    assert registry.statistics().by_name("f").state == "crashed"
    with pytest.raises(ActorStopped):
        await ref.ask(Echo(n=1))


async def test_crashes_spread_beyond_the_window_never_exceed_it(
    recorder: Any, autojump_clock: Any
) -> None:
    async with open_registry(recorder, [named("f")]) as registry:
        ref = registry.ref("f")
        for _ in range(6):
            ref.tell_nowait(Crash())
            await trio.sleep(5.0)  # two crashes per 10 s window at most
        assert ref.statistics().restarts == 6


async def test_zero_restarts_makes_the_first_crash_fatal(recorder: Any) -> None:
    class Brittle(Fragile):
        restart_policy = RestartPolicy(max_restarts=0, window=1.0)

    with pytest.raises(ActorCrashed) as caught:
        await crash_once(recorder, named("b", Brittle))
    assert caught.value.restarts == 0


async def test_started_failing_on_restart_counts_as_a_crash(
    recorder: Any, autojump_clock: Any
) -> None:
    class FailsOnRestart(Fragile):
        async def started(self) -> None:
            await super().started()
            if len(self.context.of("started")) > 1:
                raise OSError("cannot reconnect")

    with pytest.raises(ActorCrashed) as caught:
        await crash_once(recorder, named("r", FailsOnRestart))
    assert isinstance(caught.value.cause, OSError)
    assert recorder.of("started") == ["r"] * 3  # first start, then two failed restarts
    assert recorder.of("stopped") == ["r"]


async def test_ordinary_handler_errors_never_restart(recorder: Any) -> None:
    class Grumpy(Fragile):
        @handles(Echo)
        async def echo(self, msg: Echo) -> int:
            raise LookupError(msg.n)

    async with open_registry(recorder, [named("g", Grumpy)]) as registry:
        ref = registry.ref("g")
        for n in range(5):
            with pytest.raises(LookupError):
                await ref.ask(Echo(n=n))
        assert ref.statistics().restarts == 0
    assert recorder.of("started") == ["g"]
