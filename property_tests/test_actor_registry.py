"""Stateful test of the actor registry: random asks, tells, failures, crashes, time, stop.

The real registry runs on a Trio loop kept alive on a worker thread (`TrioThread`, the
pattern of STYLE.md item 10: ``hypothesis-trio`` does not import with current Hypothesis).
The plain model is the log of what the actors did plus the restart policy applied to the
crash incidents in that log; the invariants compare the registry with it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from tasker_trio.actors import Actor, ActorRegistry, CrashActor, Message, RestartPolicy, handles
from tasker_trio.actors import open_registry as open_actor_registry
from tasker_trio.errors import ActorCrashed, ActorStopped, AskTimeout, MailboxFull

T = TypeVar("T")


# --------------------------------------------------------------------------- the harness


class TrioThread:
    """One ``trio.run`` with a ``MockClock(rate=0)`` on a worker thread, driven synchronously.

    Every call goes through ``trio.from_thread.run`` and then waits until every Trio task is
    blocked, so a call returns with the system settled. Each call has a wall-clock deadline;
    errors of the Trio thread itself are re-raised by `close`.

    Args:
        deadline: wall-clock seconds any one call may take before the test fails.
    """

    def __init__(self, *, deadline: float = 10.0) -> None:
        self.deadline = deadline
        self.clock = trio.testing.MockClock(rate=0)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._thread = threading.Thread(target=self._main, name="trio-harness", daemon=True)
        self._caller = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="harness")
        self._thread.start()
        if not self._ready.wait(self.deadline) or self._token is None:
            raise RuntimeError("the Trio thread did not start") from self._error

    def _main(self) -> None:
        try:
            trio.run(self._root, clock=self.clock)
        except BaseException as error:
            self._error = error
        finally:
            self._ready.set()

    async def _root(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await trio.sleep_forever()

    @property
    def nursery(self) -> trio.Nursery:
        """The root nursery: background tasks started with `start_soon` live here."""
        assert self._nursery is not None
        return self._nursery

    def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await function(*args)`` in Trio, wait until all tasks block, return it."""

        async def settled() -> T:
            result = await function(*args)
            await trio.testing.wait_all_tasks_blocked()
            return result

        future = self._caller.submit(lambda: trio.from_thread.run(settled, trio_token=self._token))
        try:
            return future.result(timeout=self.deadline)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"Trio call {function!r} took over {self.deadline}s") from None

    def run_sync(self, function: Callable[..., T], *args: Any) -> T:
        """Run the sync ``function(*args)`` in Trio (it may start tasks), then settle."""

        async def wrapper() -> T:
            return function(*args)

        return self.call(wrapper)

    def time_passes(self, seconds: float, *, step: float = 0.5) -> None:
        """Advance the mock clock by ``seconds`` in ``step``\\ s, settling after each."""
        for _ in range(round(seconds / step)):
            self.run_sync(self.clock.jump, step)

    def close(self) -> None:
        """Cancel the root nursery, join the thread, and re-raise any error it had."""
        try:
            if self._thread.is_alive() and self._nursery is not None:
                cancel = self._nursery.cancel_scope.cancel  # not settled: the run ends
                self._caller.submit(
                    lambda: trio.from_thread.run_sync(cancel, trio_token=self._token)
                ).result(timeout=self.deadline)
        finally:
            self._thread.join(self.deadline)
            self._caller.shutdown(wait=False)
        if self._thread.is_alive():
            raise TimeoutError("the Trio thread did not finish")
        if self._error is not None:
            raise self._error


# --------------------------------------------------------------------------- the system

NAMES = ("a", "b", "c")
POLICY = RestartPolicy(max_restarts=2, window=5.0)
SLOW = 2.0


@attrs.frozen(kw_only=True)
class Job(Message[int]):
    ask_id: int
    kind: str  # "work", "slow", "fail" or "crash"


@attrs.define
class World:
    """The context shared by the actors: what they did, in order, with the time."""

    events: list[tuple[str, str, int, float]] = attrs.field(factory=list)

    def record(self, kind: str, actor: str, number: int) -> None:
        self.events.append((kind, actor, number, trio.current_time()))


class Probe(Actor[World]):
    """Does what each `Job` says; numbers its incarnations (one per ``started()``)."""

    mailbox_capacity = 3
    restart_policy = POLICY
    stop_grace = 10.0  # > the longest drain (4 slow jobs), so stop never has to cancel
    stop_deadline = 1.0

    incarnation = 0

    async def started(self) -> None:
        self.incarnation += 1
        self.context.record("started", self.name, self.incarnation)

    async def stopped(self) -> None:
        self.context.record("stopped", self.name, self.incarnation)

    @handles(Job)
    async def job(self, msg: Job) -> int:
        self.context.record("handle", self.name, msg.ask_id)
        if msg.kind == "slow":
            await trio.sleep(SLOW)
        elif msg.kind == "fail":
            raise ValueError(msg.ask_id)
        elif msg.kind == "crash":
            self.context.record("crash", self.name, self.incarnation)
            raise CrashActor(f"job {msg.ask_id}")
        self.context.record("done", self.name, msg.ask_id)
        return msg.ask_id * 2


class WideProbe(Probe):
    concurrency = 2


FACTORIES: list[Callable[[World], Probe]] = [
    functools.partial(Probe, name="a"),
    functools.partial(WideProbe, name="b"),
    functools.partial(Probe, name="c"),
]


def expected_restarts(incidents: list[float]) -> tuple[int, bool]:
    """The plain model of the policy: (restarts, fatal) for crash incidents at these times."""
    restarts = 0
    for index, now in enumerate(incidents):
        recent = [t for t in incidents[: index + 1] if t > now - POLICY.window]
        if len(recent) > POLICY.max_restarts:
            return restarts, True
        restarts += 1
    return restarts, False


# --------------------------------------------------------------------------- the machine


class ActorRegistryMachine(RuleBasedStateMachine):
    """Drives a registry of three actors and checks it against `World` and the policy."""

    asks = Bundle("asks")

    def __init__(self) -> None:
        super().__init__()
        self.trio = TrioThread()
        self.world = World()
        self.outcomes: dict[int, list[object]] = {}
        self.kinds: dict[int, tuple[str, str]] = {}
        self.ids = itertools.count(1)
        self.stop_requested = threading.Event()
        self.stop = trio.Event()
        self.registry: ActorRegistry[World] | None = None
        self.registry_error: BaseException | None = None
        self.registry_done = False
        self.stopped = False
        self.trio.call(self.trio.nursery.start, self._run_registry)

    async def _run_registry(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with open_actor_registry(self.world, FACTORIES) as registry:
                self.registry = registry
                task_status.started()
                await self.stop.wait()
        except ActorCrashed as error:
            self.registry_error = error
        finally:
            self.registry_done = True

    async def _ask(self, ask_id: int, name: str, job: Job, within: float | None) -> None:
        assert self.registry is not None
        try:
            result: object = await self.registry.ref(name).ask(job, timeout=within)
        except (ValueError, ActorStopped, AskTimeout) as error:
            result = error
        self.outcomes[ask_id].append(result)

    @precondition(lambda self: not self.stopped)
    @rule(
        target=asks,
        name=st.sampled_from(NAMES),
        kind=st.sampled_from(["work", "slow", "fail", "crash"]),
        timeout=st.sampled_from([None, 1.0, 3.0]),
    )
    def ask(self, name: str, kind: str, timeout: float | None) -> int:
        ask_id = next(self.ids)
        self.outcomes[ask_id] = []
        self.kinds[ask_id] = (name, kind)
        job = Job(ask_id=ask_id, kind=kind)
        self.trio.run_sync(self.trio.nursery.start_soon, self._ask, ask_id, name, job, timeout)
        return ask_id

    @precondition(lambda self: not self.stopped)
    @rule(name=st.sampled_from(NAMES), kind=st.sampled_from(["work", "fail", "crash", "slow"]))
    def tell(self, name: str, kind: str) -> None:
        registry = self.registry
        assert registry is not None
        ref = registry.ref(name)
        ask_id = -next(self.ids)

        def tell_nowait() -> str:
            room = ref.statistics().mailbox_depth < ref.statistics().mailbox_capacity
            try:
                ref.tell_nowait(Job(ask_id=ask_id, kind=kind))
            except MailboxFull:
                assert not room, "MailboxFull with room in the mailbox"
                return "full"
            except ActorStopped:
                # Only once the registry is going down: after its stop or an actor's crash.
                states = {actor.state for actor in registry.statistics().actors}
                assert self.registry_done or "crashed" in states, states
                return "stopped"
            return "sent"

        self.trio.run_sync(tell_nowait)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 5.0]))
    def time_passes(self, seconds: float) -> None:
        self.trio.time_passes(seconds)

    @rule(ask_id=asks)
    def ask_outcome_is_legal(self, ask_id: int) -> None:
        name, kind = self.kinds[ask_id]
        for outcome in self.outcomes[ask_id]:
            done = ("done", name, ask_id) in {e[:3] for e in self.world.events}
            if isinstance(outcome, int):
                assert kind in ("work", "slow"), outcome
                assert outcome == ask_id * 2
                assert done, "a reply without its handler finishing"
            elif isinstance(outcome, ValueError):
                assert kind == "fail", outcome
                assert outcome.args == (ask_id,)
            elif isinstance(outcome, ActorStopped):
                # Crashed by its own message, or stopped (or crashed) before answering it.
                if isinstance(outcome.__cause__, CrashActor):
                    assert kind == "crash", outcome
            else:
                assert isinstance(outcome, AskTimeout), outcome

    @precondition(lambda self: not self.stopped)
    @rule()
    def stop_registry(self) -> None:
        self.trio.run_sync(self.stop.set)
        for _ in range(200):
            if self.registry_done:
                break
            self.trio.time_passes(0.5)
        assert self.registry_done, "the registry did not stop"
        self.stopped = True
        self.check_after_stop()

    def check_after_stop(self) -> None:
        unresolved = {i: r for i, r in self.outcomes.items() if len(r) != 1}
        assert not unresolved, f"asks not resolved exactly once: {unresolved}"
        started = [name for kind, name, _, _ in self.world.events if kind == "started"]
        stopped = [name for kind, name, _, _ in self.world.events if kind == "stopped"]
        assert started[:3] == list(NAMES), started
        assert stopped == list(reversed(NAMES)), stopped
        fatal = {name for name in NAMES if self.model(name)[1]}
        if fatal:
            assert isinstance(self.registry_error, ActorCrashed), (fatal, self.registry_error)
            assert self.registry_error.actor in fatal, (fatal, self.registry_error)
        else:
            assert self.registry_error is None, self.registry_error

        def left() -> frozenset[trio.lowlevel.Task]:
            return self.trio.nursery.child_tasks

        assert self.trio.run_sync(left) == frozenset(), "tasks left after the stop"

    def model(self, name: str) -> tuple[int, bool]:
        """(restarts, fatal) the policy allows for ``name``'s crash incidents so far."""
        first_crash_time: dict[int, float] = {}
        for kind, actor, incarnation, at in self.world.events:
            if kind == "crash" and actor == name:
                first_crash_time.setdefault(incarnation, at)
        return expected_restarts(list(first_crash_time.values()))

    @invariant()
    def every_ask_resolves_at_most_once(self) -> None:
        assert all(len(results) <= 1 for results in self.outcomes.values())

    @invariant()
    def restarts_follow_the_policy(self) -> None:
        if self.registry is None:
            return
        for name in NAMES:
            restarts, fatal = self.model(name)
            stats = self.registry.statistics().by_name(name)
            assert stats.restarts == restarts, (name, stats, self.world.events)
            assert (stats.state == "crashed") == fatal, (name, stats, self.world.events)

    @invariant()
    def no_handler_after_stopped_and_stop_order_is_reversed(self) -> None:
        stopped_at: dict[str, int] = {}
        for index, (kind, name, _, _) in enumerate(self.world.events):
            if kind == "stopped":
                stopped_at[name] = index
            elif kind == "handle":
                assert name not in stopped_at, f"{name} handled a message after stopped()"
        assert list(stopped_at) == list(reversed(NAMES))[: len(stopped_at)]

    def teardown(self) -> None:
        try:
            if not self.stopped and not self.registry_done:
                self.stop_registry()
        finally:
            self.trio.close()


# Inherits the loaded profile (conftest.py: `ci` runs 200 examples); only the run length is set.
ActorRegistryMachine.TestCase.settings = settings(stateful_step_count=30)
TestActorRegistry = ActorRegistryMachine.TestCase
