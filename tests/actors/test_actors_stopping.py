"""Stopping an actor: drain within the grace period, then cancel; pending asks fail cleanly."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tasker_trio.actors import Actor, Message, handles, open_registry
from tasker_trio.errors import ActorStopped


@attrs.frozen(kw_only=True)
class Job(Message[str]):
    seconds: float
    tag: str


class Slow(Actor[Any]):
    """Handles each job by sleeping; records starts, finishes and its own stop."""

    stop_grace = 3.0
    mailbox_capacity = 8

    @handles(Job)
    async def job(self, msg: Job) -> str:
        self.context.record("begin", msg.tag)
        await trio.sleep(msg.seconds)
        self.context.record("end", msg.tag)
        return msg.tag

    async def stopped(self) -> None:
        self.context.record("stopped", self.name)


async def test_stop_drains_the_mailbox_within_the_grace_period(
    recorder: Any, autojump_clock: Any
) -> None:
    results: list[str] = []

    async def ask(ref: Any, job: Job) -> None:
        results.append(await ref.ask(job))

    async with trio.open_nursery() as askers:
        async with open_registry(recorder, [Slow]) as registry:
            ref = registry.ref(Slow)
            for tag in "abc":
                askers.start_soon(ask, ref, Job(seconds=0.5, tag=tag))
            await trio.testing.wait_all_tasks_blocked()
            began = trio.current_time()
        # All three were handled (1.5 s < 3 s grace) before stopped() ran.
        assert trio.current_time() - began == pytest.approx(1.5)
    assert sorted(results) == ["a", "b", "c"]
    assert recorder.events[-1] == ("stopped", "Slow")
    assert sorted(recorder.of("end")) == ["a", "b", "c"]


async def test_pending_asks_at_stop_fail_with_actor_stopped(
    recorder: Any, autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: dict[str, object] = {}

    async def ask(ref: Any, job: Job) -> None:
        try:
            outcomes[job.tag] = await ref.ask(job)
        except ActorStopped as error:
            outcomes[job.tag] = error

    async with trio.open_nursery() as askers, open_registry(recorder, [Slow]) as registry:
        ref = registry.ref(Slow)
        askers.start_soon(ask, ref, Job(seconds=1, tag="quick"))
        await trio.testing.wait_all_tasks_blocked()
        askers.start_soon(ask, ref, Job(seconds=10, tag="in-flight"))
        await trio.testing.wait_all_tasks_blocked()
        askers.start_soon(ask, ref, Job(seconds=1, tag="queued"))
        await trio.testing.wait_all_tasks_blocked()
        ref.tell_nowait(Job(seconds=1, tag="told"))
        began = trio.current_time()
    assert trio.current_time() - began == pytest.approx(3.0)  # the grace period, no more
    assert outcomes["quick"] == "quick"
    assert isinstance(outcomes["in-flight"], ActorStopped)  # cancelled mid-handler
    assert isinstance(outcomes["queued"], ActorStopped)  # never taken
    assert str(outcomes["queued"]) == "actor 'Slow' stopped before handling Job"
    assert recorder.of("begin") == ["quick", "in-flight"]
    assert recorder.events[-1] == ("stopped", "Slow")  # no handler after stopped()
    assert "[Slow] stopped with 1 told message(s) unhandled" in caplog.messages
    assert "[Slow] not drained within 3s; cancelling" in caplog.messages


async def test_a_stopping_actor_refuses_new_messages(recorder: Any, autojump_clock: Any) -> None:
    refused: list[BaseException] = []

    class Stubborn(Slow):
        async def stopped(self) -> None:
            try:
                await self.context.ref.ask(Job(seconds=0, tag="late"))
            except ActorStopped as error:
                refused.append(error)

    async with open_registry(recorder, [Stubborn]) as registry:
        recorder.ref = registry.ref(Stubborn)
    assert len(refused) == 1
    assert recorder.of("begin") == []


async def test_a_failing_body_skips_the_drain_but_not_stopped(
    recorder: Any, autojump_clock: Any
) -> None:
    outcomes: list[object] = []

    async def ask(ref: Any) -> None:
        try:
            outcomes.append(await ref.ask(Job(seconds=60, tag="long")))
        except ActorStopped as error:
            outcomes.append(error)

    async def fail_with_work_in_flight() -> None:
        async with trio.open_nursery() as askers, open_registry(recorder, [Slow]) as registry:
            askers.start_soon(ask, registry.ref(Slow))
            await trio.testing.wait_all_tasks_blocked()
            raise LookupError("body failed")

    began = trio.current_time()
    with pytest.raises(BaseExceptionGroup) as caught:  # from the askers' nursery
        await fail_with_work_in_flight()
    assert caught.group_contains(LookupError, match="body failed")
    assert trio.current_time() == began  # no grace period waited out
    assert isinstance(outcomes[0], ActorStopped)
    assert recorder.events == [("begin", "long"), ("stopped", "Slow")]
