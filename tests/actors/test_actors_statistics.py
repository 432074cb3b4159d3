"""statistics(): per actor and per registry, frozen snapshots of counters and latencies."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tasker_trio.actors import (
    Actor,
    ActorStatistics,
    CrashActor,
    Message,
    RestartPolicy,
    handles,
    open_registry,
)
from tasker_trio.actors.statistics import LATENCY_SAMPLES, ActorCounters


@attrs.frozen(kw_only=True)
class Work(Message[None]):
    seconds: float
    fail: bool = False
    crash: bool = False


class Timed(Actor[None]):
    concurrency = 2
    mailbox_capacity = 5
    restart_policy = RestartPolicy(max_restarts=5, window=60)

    @handles(Work)
    async def work(self, msg: Work) -> None:
        await trio.sleep(msg.seconds)
        if msg.crash:
            raise CrashActor("boom")
        if msg.fail:
            raise ValueError("bad")


async def test_actor_statistics_count_everything(autojump_clock: Any) -> None:
    async with open_registry(None, [Timed]) as registry:
        ref = registry.ref(Timed)
        initial = ref.statistics()
        assert initial == ActorStatistics(
            name="Timed",
            state="running",
            messages_handled=0,
            messages_failed=0,
            messages_in_flight=0,
            messages_abandoned=0,
            mailbox_depth=0,
            mailbox_capacity=5,
            concurrency=2,
            restarts=0,
            latency_samples=0,
            latency_p50=None,
            latency_p90=None,
            latency_p99=None,
        )
        for seconds in range(1, 11):  # handle latencies of 1..10 s
            await ref.ask(Work(seconds=seconds))
        with pytest.raises(ValueError, match="bad"):
            await ref.ask(Work(seconds=0, fail=True))
        ref.tell_nowait(Work(seconds=0, crash=True))
        await trio.testing.wait_all_tasks_blocked()
        ref.tell_nowait(Work(seconds=100))
        ref.tell_nowait(Work(seconds=100))
        ref.tell_nowait(Work(seconds=100))
        await trio.testing.wait_all_tasks_blocked()
        stats = ref.statistics()
        assert (stats.messages_handled, stats.messages_failed, stats.restarts) == (10, 2, 1)
        assert (stats.messages_in_flight, stats.mailbox_depth) == (2, 1)
        assert stats.latency_samples == 12
        # Samples: 1..10 s, the failure's 0 s and the crash's 0 s (nearest-rank percentiles).
        assert (stats.latency_p50, stats.latency_p90, stats.latency_p99) == (4, 9, 10)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            stats.restarts = 0  # type: ignore[misc]

        totals = registry.statistics()
        assert totals.actors == (ref.statistics(),)
        assert (totals.messages_handled, totals.messages_failed) == (10, 2)
        assert (totals.messages_in_flight, totals.restarts) == (2, 1)
        assert totals.by_name("Timed") == ref.statistics()
        with pytest.raises(KeyError):
            totals.by_name("nope")


def test_latency_ring_is_bounded() -> None:
    counters = ActorCounters()
    for i in range(LATENCY_SAMPLES * 3):
        counters.latencies.append(float(i))
    stats = ActorStatistics.from_counters(
        counters, name="x", state="running", mailbox_depth=0, mailbox_capacity=1, concurrency=1
    )
    assert stats.latency_samples == LATENCY_SAMPLES
    assert stats.latency_p99 == LATENCY_SAMPLES * 3 - 1 - LATENCY_SAMPLES // 100
