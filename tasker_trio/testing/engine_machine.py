"""`EngineStateMachine`: a Hypothesis stateful test of a whole engine, reusable on your workflows.

The machine opens an engine on a `TrioThread` (mock clock, time moves only when a rule says
so) — embedded in memory, or on PostgreSQL + PGMQ when ``database`` is a URL — and then lets
Hypothesis interleave: submitting tasks, time passing, cancelling tasks and resetting failed
steps. After every rule it checks the invariants of `tasker_trio.testing.invariants`
(parents before children, attempts within limits, no retry before its backoff, legal audit
trails, complete tasks have complete steps, nothing lost); every handler call is also probed
live (`tasker_trio.testing.probes`: its parents must be satisfied and its task not terminal
*at that instant*). At teardown it lets up to two hours pass and checks that every
task settled (terminal or blocked) with no step result left undelivered, and — for scripted
templates — that each step ended as the plain model of its script says.

By default the workload is random: DAG templates from `scripted_templates` whose handlers
succeed, fail retryably k times, fail permanently or hang, by script. To check **your own**
templates and handlers, subclass and override `workloads` (and `contexts` if your templates
have an ``input_schema``)::

    class MyWorkflows(EngineStateMachine):
        def workloads(self) -> st.SearchStrategy[Workload]:
            return st.just(Workload(templates=[TaskTemplate.from_yaml(TEXT)],
                                    handlers={"charge": charge, "ship": ship}))

        def contexts(self, template: TaskTemplate) -> st.SearchStrategy[dict[str, Any]]:
            return st.fixed_dictionaries({"order_id": st.integers(1, 5)})

    TestMyWorkflows = MyWorkflows.TestCase

Handlers should be ``async def`` and wait only on Trio primitives (``trio.sleep``...): the
harness settles by waiting until every task is blocked, which a thread cannot report. A sync
handler is called inline on the Trio thread (it must not block). To run the same rules and
invariants on PostgreSQL, set ``database`` to the URL of a *scratch* database: the machine
migrates it and empties it before every example (`tasker_trio.testing.database`), and its
store runs on the mock clock. Opening, snapshotting and draining the engine is the machine's
base, `tasker_trio.testing._engine_side.EngineSide`. See docs/testing.md.
"""

from __future__ import annotations

import functools
import json
import random
import uuid
import weakref
from typing import Any, ClassVar
from unittest import mock

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tasker_trio.engine_api import Engine
from tasker_trio.errors import InvalidTransition
from tasker_trio.models import Task
from tasker_trio.state_machine import TaskState
from tasker_trio.templates import TaskTemplate
from tasker_trio.testing import invariants as inv
from tasker_trio.testing._engine_side import EngineSide
from tasker_trio.testing.model import check_model
from tasker_trio.testing.probes import HandlerProbes
from tasker_trio.testing.strategies import Workload, random_workloads
from tasker_trio.testing.trio_thread import TrioThread

__all__ = ["EngineStateMachine"]


_RUNNERS: weakref.WeakSet[TrioThread] = weakref.WeakSet()
"""The runners of machines created in this process (a running one keeps itself alive)."""


@attrs.frozen
class _Submitted:
    template: TaskTemplate
    identity: str


class EngineStateMachine(EngineSide, RuleBasedStateMachine):
    """Random submits, cancels, resets and time against one engine per example.

    Class attributes tune it: ``database`` is None for the embedded in-memory backend, or
    the ``postgresql://`` URL of a scratch database (emptied before every example!) to run
    on PostgreSQL + PGMQ; ``visibility_timeout`` must exceed 1.5x the largest jump (the
    lease keeper renews every third of it, and at most once per jump), ``max_jump`` is the
    largest ``time_passes`` step, ``horizon`` the time teardown allows for settling,
    ``call_deadline`` the real seconds any one call into Trio may take, and
    ``clock_resolution`` how close a deadline must be to count as due when settling
    (PGMQ's visibility times are rounded to microseconds; see `TrioThread`).
    """

    database: ClassVar[str | None] = None
    visibility_timeout: ClassVar[float] = 600.0
    poll_interval: ClassVar[float] = 1.0
    max_jump: ClassVar[float] = 120.0
    drain_step: ClassVar[float] = 30.0
    horizon: ClassVar[float] = 7200.0
    call_deadline: ClassVar[float] = 30.0
    clock_resolution: ClassVar[float] = 1e-5
    worker_concurrency: ClassVar[int] = 8

    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        if any(runner.running for runner in _RUNNERS):
            # Its engine would share the patched uuid4 and the database with this one (and
            # lose its tasks to this one's reset): fail every later example instead.
            raise RuntimeError(
                "the Trio run of an earlier EngineStateMachine is still running (it was not "
                "torn down, or did not stop within call_deadline): run one at a time"
            )
        # Reproducible runs (Hypothesis replays and shrinks them): the engine's uuids decide
        # orders (retry wake-ups, step lists), so they come from a seeded generator while the
        # machine lives. Trio's scheduler is already seeded by Hypothesis (trio's plugin).
        self.runner = TrioThread(deadline=self.call_deadline, resolution=self.clock_resolution)
        _RUNNERS.add(self.runner)
        uuids = random.Random(0)
        self._uuid_patch = mock.patch.object(
            uuid, "uuid4", side_effect=lambda: uuid.UUID(int=uuids.getrandbits(128), version=4)
        )
        self._uuid_patch.start()
        self.engine: Engine | None = None
        self.workload = Workload(templates=())
        self.templates: dict[tuple[str, str, str], TaskTemplate] = {}
        self.submitted: dict[str, _Submitted] = {}
        self.identities: dict[str, str] = {}
        self.cancelled: set[str] = set()
        self.reset_steps: set[tuple[str, str]] = set()
        self.probe_problems: list[str] = []
        self.snapshot: inv.EngineSnapshot | None = None
        self._broken = False

    # ------------------------------------------------------------------ hooks for subclasses

    def workloads(self) -> st.SearchStrategy[Workload]:
        """The workloads to draw one from per run (override to test your own templates)."""
        return random_workloads()

    def contexts(self, template: TaskTemplate) -> st.SearchStrategy[dict[str, Any]]:
        """Task contexts for ``template`` (small, so identical requests happen)."""
        del template
        return st.fixed_dictionaries({"k": st.integers(0, 3)})

    # ------------------------------------------------------------------ rules

    @initialize(data=st.data())
    def open(self, data: st.DataObject) -> None:
        """Draw a workload and open an engine on it."""
        self.workload = data.draw(self.workloads(), label="workload")
        self.templates = {(t.namespace_name, t.name, t.version): t for t in self.workload.templates}
        probes = HandlerProbes(
            workload=self.workload,
            engine=self._engine,
            parents_of=self._parents,
            reset_steps=self.reset_steps,
            problems=self.probe_problems,
        )
        self.engine = self.runner.start(self._serve, probes.handlers())
        self._refresh()

    @rule(target=tasks, data=st.data())
    def submit(self, data: st.DataObject) -> str:
        """Submit a task of a template; identical requests must return the same task."""
        self._broken = True  # until the closing _refresh: teardown then only closes
        engine = self._engine()
        keys = sorted(self.templates)
        template = self.templates[data.draw(st.sampled_from(keys), label="template")]
        context = data.draw(self.contexts(template), label="context")
        submit = functools.partial(engine.submit, version=template.version)
        submission = self.runner.call(submit, template.namespace_name, template.name, context)
        identity = json.dumps([template.name, template.version, context], sort_keys=True)
        known = self.identities.get(identity)
        assert submission.created == (known is None), (submission, known)
        assert known in (None, submission.task_uuid), (submission, known)
        self.identities[identity] = submission.task_uuid
        self.submitted[submission.task_uuid] = _Submitted(template, identity)
        self._refresh()
        return submission.task_uuid

    @rule(seconds=st.floats(0.1, 120.0))
    def time_passes(self, seconds: float) -> None:
        """Jump the clock (at most ``max_jump``), then let the engine run until it rests."""
        self._broken = True  # until the closing _refresh: teardown then only closes
        self.runner.jump(min(seconds, self.max_jump))
        self._refresh()

    @rule(task_uuid=tasks)
    def cancel_task(self, task_uuid: str) -> None:
        """Cancel a task: a live one becomes cancelled, a terminal one is left as it was."""
        self._broken = True  # until the closing _refresh: teardown then only closes
        engine = self._engine()

        async def cancel() -> tuple[Task, Task]:
            before = await engine.get_task(task_uuid)
            return before, await engine.cancel_task(task_uuid)

        before, after = self.runner.call(cancel)
        if before.state.is_terminal:
            assert after.state == before.state, (before.state, after.state)
        else:
            assert after.state == TaskState.CANCELLED, after.state
            self.cancelled.add(task_uuid)
        self._refresh()

    @precondition(lambda self: bool(self._failed_steps()))
    @rule(data=st.data())
    def reset_failed_step(self, data: st.DataObject) -> None:
        """An operator resets a failed step: in a live task its next attempt succeeds; in a
        terminal (cancelled) task the engine refuses and nothing changes."""
        self._broken = True  # until the closing _refresh: teardown then only closes
        engine = self._engine()
        task_uuid, step = data.draw(st.sampled_from(self._failed_steps()), label="step")
        self.reset_steps.add((task_uuid, step))  # before the call: the step may run at once

        async def reset() -> tuple[Task, InvalidTransition | None]:
            before = await engine.get_task(task_uuid)
            try:
                await engine.reset_step(task_uuid, step)
            except InvalidTransition as refusal:
                return before, refusal
            return before, None

        before, refusal = self.runner.call(reset)
        if before.state.is_terminal:
            assert refusal is not None, f"reset accepted in a {before.state} task"
            self.reset_steps.discard((task_uuid, step))
        else:
            assert refusal is None, refusal
        self._refresh()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def parents_satisfied_before_start(self) -> None:
        """(1) No step starts before its parents are complete/resolved (audit and probes)."""
        self._check(inv.check_parents_before_start)
        assert not self.probe_problems, "\n".join(self.probe_problems)

    @invariant()
    def attempts_within_limits(self) -> None:
        """(2) Attempts never exceed max_attempts."""
        self._check(inv.check_attempts)

    @invariant()
    def no_retry_before_backoff(self) -> None:
        """(3) No retry before its next_retry_at."""
        self._check(inv.check_retry_backoff)

    @invariant()
    def audit_trails_replay(self) -> None:
        """(4) Audit trails replay legally through the pure state machines."""
        self._check(inv.check_audit_trails)

    @invariant()
    def complete_tasks_are_complete(self) -> None:
        """(5) A complete task has every step complete or resolved; blocked/cancelled agree."""
        self._check(inv.check_complete_tasks)
        self._check(inv.check_settled_task_consistency)

    @invariant()
    def nothing_lost(self) -> None:
        """(7) Every submitted task exists (the snapshot reads them all), results delivered."""
        if self.snapshot is not None:
            assert set(self.snapshot.tasks) == set(self.submitted)
            assert self.snapshot.result_queue_depth == 0, self.snapshot.result_queue_depth

    def teardown(self) -> None:
        """Let time pass until everything settles, check the end state, close the engine."""
        try:
            if self.engine is not None and not self._broken:
                self._drain()
                for check in (
                    inv.check_settled,
                    inv.check_parents_before_start,
                    inv.check_attempts,
                    inv.check_retry_backoff,
                    inv.check_audit_trails,
                    inv.check_complete_tasks,
                    inv.check_settled_task_consistency,
                    self._check_model,
                ):
                    self._check(check)
                assert not self.probe_problems, "\n".join(self.probe_problems)
        finally:
            try:
                self.runner.close()
            finally:
                self._uuid_patch.stop()

    def _check_model(self, snapshot: inv.EngineSnapshot) -> list[str]:
        """(8) Undisturbed scripted tasks end as the plain model of their scripts says."""
        return check_model(
            snapshot, self.workload, cancelled=self.cancelled, reset_steps=self.reset_steps
        )
