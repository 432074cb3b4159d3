"""Start in order, stop in reverse, failure during start-up, stop deadlines, typed access."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tasker_trio.actors import Actor, Message, UnknownActor, handles, open_registry
from tasker_trio.errors import ActorStopped, StopDeadlineExceeded


@attrs.frozen(kw_only=True)
class Hello(Message[str]):
    pass


class Recording(Actor[Any]):
    """Records started/stopped/handled events in the recorder context."""

    @handles(Hello)
    async def hello(self, msg: Hello) -> str:
        self.context.record("handled", self.name)
        return self.name

    async def started(self) -> None:
        await trio.sleep(0.1)  # a start that takes time: later actors must wait for it
        self.context.record("started", self.name)

    async def stopped(self) -> None:
        self.context.record("stopped", self.name)


class Other(Recording):
    pass


class Lonely(Actor[Any]):
    pass


def named(name: str) -> functools.partial[Recording]:
    return functools.partial(Recording, name=name)


async def test_start_in_order_stop_in_reverse(recorder: Any, autojump_clock: Any) -> None:
    async with open_registry(recorder, [named("a"), named("b"), named("c")]) as registry:
        assert recorder.of("started") == ["a", "b", "c"]
        assert registry.names == ("a", "b", "c")
        assert recorder.of("stopped") == []
    assert recorder.of("stopped") == ["c", "b", "a"]
    assert [s.state for s in registry.statistics().actors] == ["stopped"] * 3


async def test_started_failure_stops_earlier_actors_in_reverse_and_propagates(
    recorder: Any, autojump_clock: Any
) -> None:
    class Broken(Recording):
        async def started(self) -> None:
            raise RuntimeError("no database")

    factories: list[Callable[[Any], Actor[Any]]] = [
        named("a"),
        named("b"),
        functools.partial(Broken, name="x"),
        named("c"),
    ]
    body_ran = False
    with pytest.raises(RuntimeError, match="no database"):
        async with open_registry(recorder, factories):
            body_ran = True
    assert not body_ran
    assert recorder.of("started") == ["a", "b"]
    assert recorder.of("stopped") == ["b", "a"]  # neither the broken one nor the unstarted


async def test_actor_takes_messages_only_after_started(recorder: Any, autojump_clock: Any) -> None:
    async with open_registry(recorder, [named("a")]) as registry:
        assert await registry.ref("a").ask(Hello()) == "a"
    assert recorder.events == [("started", "a"), ("handled", "a"), ("stopped", "a")]


async def test_body_error_propagates_unwrapped_after_stop(recorder: Any) -> None:
    with pytest.raises(KeyError) as caught:
        async with open_registry(recorder, [named("a"), named("b")]):
            raise KeyError("body")
    assert caught.value.args == ("body",)
    assert recorder.of("stopped") == ["b", "a"]


async def test_cancelled_registry_still_stops_in_reverse_with_stopped_hooks(
    recorder: Any, autojump_clock: Any
) -> None:
    with trio.move_on_after(1.0) as scope:
        async with open_registry(recorder, [named("a"), named("b")]):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert recorder.of("stopped") == ["b", "a"]


async def test_stopped_overrunning_its_deadline_is_reported(
    recorder: Any, autojump_clock: Any
) -> None:
    class Slow(Recording):
        stop_deadline = 2.0

        async def stopped(self) -> None:
            await trio.sleep(10)
            self.context.record("stopped", self.name)  # never reached

    began = trio.current_time()
    with pytest.raises(StopDeadlineExceeded) as caught:
        async with open_registry(recorder, [named("a"), functools.partial(Slow, name="s")]):
            pass
    assert (caught.value.actor, caught.value.deadline, caught.value.phase) == (
        "s",
        2.0,
        "stopped()",
    )
    assert recorder.of("stopped") == ["a"]  # the next actor was still stopped
    assert trio.current_time() - began == pytest.approx(0.2 + 2.0)


async def test_failing_stopped_is_raised_after_all_are_stopped(recorder: Any) -> None:
    class Failing(Recording):
        async def stopped(self) -> None:
            raise OSError("close failed")

    with pytest.raises(OSError, match="close failed"):
        async with open_registry(recorder, [named("a"), functools.partial(Failing, name="f")]):
            pass
    assert recorder.of("stopped") == ["a"]


async def test_duplicate_names_are_rejected(recorder: Any) -> None:
    with pytest.raises(ValueError, match="two actors are named 'a'"):
        async with open_registry(recorder, [named("a"), named("a")]):
            pass


async def test_typed_access_by_name_and_class(recorder: Any, autojump_clock: Any) -> None:
    async with open_registry(recorder, [Recording, Other, named("r2")]) as registry:
        other = registry.ref(Other)
        assert other.name == "Other"
        assert other.actor_type is Other
        assert await other.ask(Hello()) == "Other"
        assert registry.ref("r2").name == "r2"
        assert "'Recording'" in repr(registry.ref("Recording"))
        with pytest.raises(UnknownActor, match="no actor named 'zz'"):
            registry.ref("zz")
        with pytest.raises(UnknownActor, match="found Recording, r2"):
            registry.ref(Recording)  # two of exactly that class: ambiguous
        with pytest.raises(UnknownActor, match="found none"):
            registry.ref(Lonely)


async def test_refs_refuse_messages_after_stop(recorder: Any, autojump_clock: Any) -> None:
    async with open_registry(recorder, [named("a")]) as registry:
        ref = registry.ref("a")
    with pytest.raises(ActorStopped, match="'a' stopped before handling Hello"):
        await ref.ask(Hello())
    with pytest.raises(ActorStopped):
        await ref.tell(Hello())
    with pytest.raises(ActorStopped):
        ref.tell_nowait(Hello())


async def test_no_task_is_left_after_stop(recorder: Any, autojump_clock: Any) -> None:
    me = trio.lowlevel.current_task()
    async with trio.open_nursery() as nursery:
        before = list(me.child_nurseries)
        async with open_registry(recorder, [named("a"), named("b")]) as registry:
            await registry.ref("a").ask(Hello())
            assert len(me.child_nurseries) == len(before) + 1  # the registry's nursery
        await trio.testing.wait_all_tasks_blocked()
        assert nursery.child_tasks == frozenset()
        assert me.child_nurseries == before
