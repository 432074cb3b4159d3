"""End-to-end benchmark of the engine, on the memory or the PostgreSQL backend; prints JSON.

Workloads (semantics §11 lists tasker-core's figures for the same shapes):
- latency of one task at a time (p50/p95/max over --runs runs): linear (4 steps), diamond (4),
  complex DAG (7), tree (8);
- fan-out: 1 -> 100 parallel -> 1, wall time of one task (p50 of 5);
- throughput: --tasks linear tasks submitted at once, tasks/s and steps/s.

Handlers are trivial (``async def``, or plain functions run in a thread with --sync-handlers)
so the figures are the engine's own overhead.

With ``--backend postgres --database URL`` the bench creates a fresh database on that server
(``tasker_bench_<random>``), migrates it, runs every workload, and drops it. It runs them
twice: in one process (``open_engine(database=...)``, orchestration and workers together),
and with separate processes (``python -m tasker_trio serve`` and ``python -m tasker_trio
worker`` subprocesses; the bench only sends task requests to the task-request queue and
watches the tasks table). Each PostgreSQL workload also reports its database cost per step:
every bridge crossing (`Database.run`, one transaction each) counted by operation in every
process, the state-changing ones among them ("write commits"), and the server's own
``pg_stat_database.xact_commit`` delta (every transaction, read-only ones included).

Usage:
    python bench/e2e.py [--runs 50] [--tasks 500] [--sync-handlers]
    python bench/e2e.py --backend postgres --database postgresql://postgres@127.0.0.1/postgres
        [--mode both|one|multi] [--workers 1] [--orchestrators 1] [--pool-size 10]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import contextvars
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import trio

import tasker_trio
from tasker_trio import StepContext, TaskTemplate

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
SETTLED = ("complete", "error", "cancelled", "resolved_manually", "blocked_by_failures")

SHAPES: dict[str, dict[str, list[str]]] = {
    "linear": {"s1": [], "s2": ["s1"], "s3": ["s2"], "s4": ["s3"]},
    "diamond": {"start": [], "b": ["start"], "c": ["start"], "end": ["b", "c"]},
    "complex_dag": {
        "init": [],
        "left": ["init"],
        "right": ["init"],
        "validate": ["left", "right"],
        "transform": ["left"],
        "analyze": ["right"],
        "finalize": ["validate", "transform", "analyze"],
    },
    "tree": {
        "root": [],
        "bl": ["root"],
        "br": ["root"],
        "l1": ["bl"],
        "l2": ["bl"],
        "l3": ["br"],
        "l4": ["br"],
        "converge": ["l1", "l2", "l3", "l4"],
    },
    "fan_out": {
        "source": [],
        **{f"p{i}": ["source"] for i in range(100)},
        "sink": [f"p{i}" for i in range(100)],
    },
}
LATENCY_SHAPES = ("linear", "diamond", "complex_dag", "tree")
WORKLOADS = ("latency", "fan_out", "throughput")
FAN_OUT_RUNS = 5

TARGETS = {
    # backend -> name -> (comparison, bound)
    # memory: issue 4 ("Benchmark"); postgres: issue 5 ("Benchmark").
    "memory": {
        "linear_p50_ms": ("<=", 2.0),
        "throughput_steps_per_s": (">=", 3000.0),
        "fan_out_ms": ("<=", 50.0),
    },
    "postgres": {
        "linear_p50_ms": ("<=", 8.0),
        "diamond_p50_ms": ("<=", 8.0),
        "throughput_steps_per_s": (">=", 1500.0),
        "fan_out_ms": ("<=", 120.0),
        "write_commits_per_step": ("<=", 4.0),
    },
}
ONE_PROCESS_ONLY = {"linear_p50_ms", "diamond_p50_ms"}
"""Targets the issue sets for one process only ("... p50 <= 8 ms in one process")."""


async def async_handler(ctx: StepContext) -> dict[str, Any]:
    """Trivial async work: count the parents' results."""
    return {"n": len(ctx.dependency_results)}


def sync_handler(ctx: StepContext) -> dict[str, Any]:
    """Trivial sync work (runs in a worker thread)."""
    return {"n": len(ctx.dependency_results)}


def template_yaml(name: str, deps: dict[str, list[str]]) -> str:
    steps = "\n".join(
        f"  - name: {step}\n    handler: {{callable: bench}}\n"
        f"    retry: {{max_attempts: 1}}\n    dependencies: {parents}"
        for step, parents in deps.items()
    )
    return f"name: {name}\nnamespace_name: {NAMESPACE}\nversion: 1.0.0\nsteps:\n{steps}\n"


def templates() -> list[TaskTemplate]:
    return [TaskTemplate.from_yaml(template_yaml(name, deps)) for name, deps in SHAPES.items()]


def _summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max_ms": round(ordered[-1], 3),
        "runs": len(ordered),
    }


# ---------------------------------------------------------------------- round-trip counting


class RoundTrips:
    """Bridge crossings (`Database.run` calls) of this process, by operation label.

    Each crossing is one transaction on one pooled connection — a single statement in
    autocommit, or one explicit transaction — i.e. one commit as the server counts them.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()

    def snapshot(self) -> dict[str, list[float]]:
        return {label: [n, self.seconds[label]] for label, n in self.counts.items()}


_COUNTERS: list[RoundTrips] = []  # this process's one counter, once installed
_BENCH_OWN: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_own", default=False)
"""Set while the bench itself queries (waiting for a task): counted as ``bench: ...``."""


def _is_queue_read(label: str) -> bool:
    return label.startswith(
        ("reading orchestration_", "reading worker_", "reading and claiming from ")
    )


def install_counter() -> RoundTrips:
    """Wrap `tasker_trio.db.bridge.Database.run` (this process only) to count crossings.

    A queue read that returns no message is counted as ``"reading <queue> (empty)"``: it
    changes nothing, whereas a read that takes messages updates their visibility.
    """
    if _COUNTERS:
        return _COUNTERS[0]
    from tasker_trio.db.bridge import Database

    counter = RoundTrips()
    _COUNTERS.append(counter)
    original = Database.run

    async def run(
        self: Any, operation: Any, *, where: str = "database operation", **kw: Any
    ) -> Any:
        started = time.perf_counter()
        label = f"bench: {where}" if _BENCH_OWN.get() else where
        try:
            result = await original(self, operation, where=where, **kw)
        except BaseException:
            label += " (failed)"
            raise
        else:
            if _is_queue_read(where) and not result:
                label += " (empty)"
            return result
        finally:
            counter.counts[label] += 1
            counter.seconds[label] += time.perf_counter() - started

    Database.run = run  # type: ignore[method-assign]
    return counter


_READ_ONLY = (
    "reading a task",
    "reading a step",
    "reading transitions",
    "reading step results",
    "reading dead letters",
    "reading the archive of",
    "reading the schema version",
    "listing tasks",
    "inspecting ",
    "counting ",
    "finding retries",
    "notifying other processes",  # a NOTIFY from a transaction that writes nothing
    "bench",
)


def is_write(label: str) -> bool:
    """Whether the operation changes state (a commit with writes); unknown labels count."""
    return not (label.endswith(("(empty)", "(failed)")) or label.startswith(_READ_ONLY))


def child_hook(path: str) -> None:
    """In a ``serve``/``worker`` subprocess: count crossings, dump them on SIGUSR1.

    Also registers the bench handler (async, or sync with ``TASKER_BENCH_SYNC=1``) under
    ``bench`` for ``worker`` processes. Called by the ``sitecustomize`` the bench puts on
    the subprocesses' ``PYTHONPATH``.
    """
    counter = install_counter()
    sync = os.environ.get("TASKER_BENCH_SYNC") == "1"
    tasker_trio.step_handler(NAMESPACE)(sync_handler if sync else async_handler)
    sequence = 0

    def dump(*_: Any) -> None:
        nonlocal sequence
        sequence += 1
        data = {"seq": sequence, "counts": counter.snapshot()}
        Path(f"{path}.tmp").write_text(json.dumps(data))
        os.replace(f"{path}.tmp", path)

    signal.signal(signal.SIGUSR1, dump)
    dump()  # the bench waits for this first file before it signals


SITECUSTOMIZE = f"""\
import os, sys
if os.environ.get("TASKER_BENCH_COUNTS"):
    sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
    import e2e
    e2e.child_hook(os.environ["TASKER_BENCH_COUNTS"])
"""


def _delta(after: dict[str, list[float]], before: dict[str, list[float]]) -> dict[str, list[float]]:
    out = {}
    for label, (n, seconds) in after.items():
        n0, s0 = before.get(label, [0, 0.0])
        if n - n0:
            out[label] = [n - n0, seconds - s0]
    return out


def db_figures(
    by_process: dict[str, dict[str, list[float]]], steps: int, server: dict[str, int] | None
) -> dict[str, Any]:
    """Per-step database cost of a workload, from the crossing deltas of every process."""
    total = writes = 0
    seconds = 0.0
    by_operation: dict[str, dict[str, float]] = {}
    for process, delta in by_process.items():
        ops = {label: v for label, v in delta.items() if not label.startswith("bench")}
        total += sum(int(n) for n, _ in ops.values())
        writes += sum(int(n) for label, (n, _) in ops.items() if is_write(label))
        seconds += sum(s for _, s in ops.values())
        by_operation[process] = {
            label: round(n / steps, 3) for label, (n, _) in sorted(ops.items()) if n
        }
    figures: dict[str, Any] = {
        "round_trips_per_step": round(total / steps, 3),
        "write_commits_per_step": round(writes / steps, 3),
        "mean_round_trip_ms": round(1000 * seconds / total, 3) if total else None,
    }
    if server is not None:
        figures["server_transactions_per_step"] = round(server["xact_commit"] / steps, 3)
        figures["server_rollbacks"] = server["xact_rollback"]
    figures["by_operation_per_step"] = by_operation
    return figures


# ---------------------------------------------------------------------- drivers


class Driver(Protocol):
    """Runs tasks: one at a time (latency), or many at once (throughput)."""

    async def one(self, shape: str, i: int) -> float: ...

    async def many(self, shape: str, n: int) -> float: ...


class EngineDriver:
    """Submits and waits through an engine that runs orchestration in this process."""

    def __init__(self, engine: tasker_trio.Engine, *, submitters: int = 1) -> None:
        self.engine = engine
        self.submitters = submitters

    async def _wait(self, task_uuid: str, seconds: float) -> Any:
        # The engine's orchestration runs in its own Trio tasks; only this task's reads
        # (the client polling the task's state) are the bench's own.
        token = _BENCH_OWN.set(True)
        try:
            return await self.engine.wait_for_task(task_uuid, timeout=seconds)
        finally:
            _BENCH_OWN.reset(token)

    async def one(self, shape: str, i: int) -> float:
        started = time.perf_counter()
        sub = await self.engine.submit(NAMESPACE, shape, {"i": i})
        task = await self._wait(sub.task_uuid, 60)
        if task.state != tasker_trio.TaskState.COMPLETE:
            raise RuntimeError(f"{shape} ended {task.state}")
        return (time.perf_counter() - started) * 1000.0

    async def many(self, shape: str, n: int) -> float:
        started = time.perf_counter()
        uuids: list[str] = [""] * n
        batch = uuid.uuid4().hex[:8]  # new tasks: not twins (same identity) of earlier ones

        async def submitter(first: int) -> None:
            for i in range(first, n, self.submitters):
                submitted = await self.engine.submit(NAMESPACE, shape, {"batch": batch, "n": i})
                if not submitted.created:  # a twin's work was done before: it would not count
                    raise RuntimeError(f"{shape} task {i} of the batch was not new")
                uuids[i] = submitted.task_uuid

        # Like an application's request handlers: several submit at once.
        async with trio.open_nursery() as nursery:
            for first in range(min(self.submitters, n)):
                nursery.start_soon(submitter, first)
        for task_uuid in uuids:
            task = await self._wait(task_uuid, 300)
            if task.state != tasker_trio.TaskState.COMPLETE:
                raise RuntimeError(f"{shape} ended {task.state}")
        return time.perf_counter() - started


class QueueDriver:
    """A client of separate processes: sends task requests to the task-request queue and
    watches the tasks table (woken by the ``tasker_tasks`` notifications) through its
    indexes: a task by its identity hash, a batch by the count of settled tasks."""

    def __init__(self, db: Any) -> None:
        from tasker_trio.db.signals import Signals
        from tasker_trio.messaging.pgmq import PgmqBroker

        class TaskWatch(Signals):
            """Signals that also wake `changed` waiters on any task's change."""

            changed = trio.Event()

            def fire(self, key: str) -> None:
                super().fire(key)
                if key.startswith("task:"):
                    TaskWatch.changed.set()
                    TaskWatch.changed = trio.Event()

        self.watch = TaskWatch
        db.attach(TaskWatch())
        self.db = db
        self.broker = PgmqBroker(db)
        self.run_id = uuid.uuid4().hex[:8]
        self.identifiers = {template.name: template.identifier for template in templates()}

    async def _send(self, shape: str, key: str) -> str:
        """Request a ``shape`` task with idempotency ``key``; return its identity hash, which
        the tasks table indexes (what a client watching its tasks would use)."""
        from tasker_trio.models import ORCHESTRATION_TASK_REQUESTS, TaskRequest, identity_hash
        from tasker_trio.models.messages import TaskRequestMessage

        request = TaskRequest.create(NAMESPACE, shape, {"run": self.run_id}, idempotency_key=key)
        message = TaskRequestMessage(request=request).to_json()
        await self.broker.send(ORCHESTRATION_TASK_REQUESTS, message)
        return identity_hash(self.identifiers[shape], key=key)

    async def _until(self, check: Callable[[], Awaitable[bool]], seconds: float) -> None:
        with trio.fail_after(seconds):
            while True:
                changed = self.watch.changed
                if await check():
                    return
                with trio.move_on_after(0.25):  # hybrid: a lost NOTIFY costs this much
                    await changed.wait()

    async def one(self, shape: str, i: int) -> float:
        started = time.perf_counter()
        identity = await self._send(shape, f"{self.run_id}-{shape}-{i}")

        async def done() -> bool:
            state = await self.db.fetchval(
                "SELECT state FROM tasker.tasks WHERE identity_hash = $1",
                identity,
                where="bench: watching a task",
            )
            if state in SETTLED and state != "complete":
                raise RuntimeError(f"{shape} ended {state}")
            return bool(state == "complete")

        await self._until(done, 60)
        return (time.perf_counter() - started) * 1000.0

    async def _settled(self) -> tuple[int, int]:
        """How many tasks have completed, and settled otherwise (only the bench submits)."""
        row = await self.db.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'complete') AS complete,"
            " count(*) FILTER (WHERE state <> 'complete') AS failed"
            " FROM tasker.tasks WHERE state = ANY($1::text[])",
            list(SETTLED),
            where="bench: watching a batch",
        )
        return int(row["complete"]), int(row["failed"])

    async def many(self, shape: str, n: int) -> float:
        complete0, failed0 = await self._settled()
        started = time.perf_counter()
        batch = uuid.uuid4().hex[:8]
        for i in range(n):
            await self._send(shape, f"{batch}-{i}")

        async def done() -> bool:
            await trio.sleep(0.01)  # coalesce the notifications of a busy moment
            complete, failed = await self._settled()
            if failed > failed0:
                raise RuntimeError(f"{failed - failed0} tasks did not complete")
            return complete - complete0 >= n

        await self._until(done, 300)
        return time.perf_counter() - started


# ---------------------------------------------------------------------- measuring


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds() -> float | None:
    """CPU time of every ``postgres`` process on this machine (None without ``/proc``).

    Counts what the bench's own database does, and anything else the local server runs
    meanwhile; backends that exit during a workload take their time with them.
    """
    total, seen = 0.0, False
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        seconds = cpu_seconds(int(entry.name))
        if seconds is not None:
            total, seen = total + seconds, True
    return total if seen else None


class Meter:
    """Crossing counts of every process, the server's transaction counters, and the CPU
    time of every process (the server's when it runs on this machine)."""

    def __init__(
        self,
        counters: dict[str, Callable[[], Awaitable[dict[str, list[float]]]]],
        db: Any | None,
        settle: float,
        *,
        pids: dict[str, int] | None = None,
        local_server: bool = False,
    ) -> None:
        self.counters = counters
        self.db = db
        self.settle = settle
        self.pids = pids or {}
        self.local_server = local_server

    def _cpu(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        if self.local_server:
            out["postgres server"] = server_cpu_seconds()
        return {name: seconds for name, seconds in out.items() if seconds is not None}

    async def _counts(self) -> dict[str, dict[str, list[float]]]:
        return {name: await read() for name, read in self.counters.items()}

    async def _server(self) -> dict[str, int] | None:
        if self.db is None:
            return None
        # Backends report their statistics at most once a second (PostgreSQL 15).
        await trio.sleep(self.settle)
        row = await self.db.fetchrow(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()",
            where="bench: reading pg_stat_database",
        )
        return {"xact_commit": int(row["xact_commit"]), "xact_rollback": int(row["xact_rollback"])}

    async def measure(
        self, steps: int, workload: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, dict[str, Any] | None]:
        if not self.counters:
            return await workload(), None
        server0 = await self._server()
        counts0 = await self._counts()
        cpu0 = self._cpu()
        result = await workload()
        cpu1 = self._cpu()
        counts1 = await self._counts()
        server1 = await self._server()
        deltas = {name: _delta(counts1[name], counts0[name]) for name in counts1}
        server = None
        if server0 is not None and server1 is not None:
            own = sum(
                int(n)
                for delta in deltas.values()
                for label, (n, _) in delta.items()
                if label.startswith("bench")
            )
            server = {
                # minus the bench's own statements (its watching, and one stats read)
                "xact_commit": server1["xact_commit"] - server0["xact_commit"] - own - 1,
                "xact_rollback": server1["xact_rollback"] - server0["xact_rollback"],
            }
        figures = db_figures(deltas, steps, server)
        if cpu1:
            figures["cpu_ms_per_step"] = {
                name: round(1000 * (cpu1[name] - cpu0[name]) / steps, 3)
                for name in cpu1
                if name in cpu0
            }
        return result, figures


async def run_workloads(driver: Driver, meter: Meter, args: argparse.Namespace) -> dict[str, Any]:
    """Every workload through ``driver``, each measured by ``meter``."""
    for i in range(5):  # warm up (caches, prepared statements, queues created)
        await driver.one("linear", -1 - i)
    report: dict[str, Any] = {}
    if "latency" in args.workloads:
        latency = {}
        for shape in LATENCY_SHAPES:

            async def runs(shape: str = shape) -> list[float]:
                return [await driver.one(shape, i) for i in range(args.runs)]

            samples, db = await meter.measure(args.runs * len(SHAPES[shape]), runs)
            latency[shape] = _summary(samples) | ({"db": db} if db else {})
        report["latency"] = latency

    async def fan() -> list[float]:
        return [await driver.one("fan_out", i) for i in range(FAN_OUT_RUNS)]

    if "fan_out" in args.workloads:
        samples, db = await meter.measure(FAN_OUT_RUNS * len(SHAPES["fan_out"]), fan)
        report["fan_out_1_100_1"] = {
            "wall_ms_p50": round(statistics.median(samples), 3),
            "wall_ms_max": round(max(samples), 3),
            "runs": FAN_OUT_RUNS,
        } | ({"db": db} if db else {})

    async def batch() -> float:
        return await driver.many("linear", args.tasks)

    if "throughput" in args.workloads:
        # Warm up for many tasks at once too: the latency runs, one task at a time, used one
        # or two pooled connections; the others connect now, and on PostgreSQL each compiles
        # the store's functions on its first call.
        await driver.many("linear", max(1, args.tasks // 10))

        elapsed, db = await meter.measure(args.tasks * len(SHAPES["linear"]), batch)
        report["throughput_linear"] = {
            "tasks": args.tasks,
            "seconds": round(elapsed, 3),
            "tasks_per_s": round(args.tasks / elapsed, 1),
            "steps_per_s": round(len(SHAPES["linear"]) * args.tasks / elapsed, 1),
        } | ({"db": db} if db else {})
    return report


def targets(report: dict[str, Any], backend: str, *, one_process: bool = True) -> dict[str, Any]:
    """The issue's targets for ``backend`` against one mode's figures."""
    values = {}
    if "latency" in report:
        values["linear_p50_ms"] = report["latency"]["linear"]["p50_ms"]
        values["diamond_p50_ms"] = report["latency"]["diamond"]["p50_ms"]
    if "fan_out_1_100_1" in report:
        values["fan_out_ms"] = report["fan_out_1_100_1"]["wall_ms_p50"]
    if "throughput_linear" in report:
        throughput = report["throughput_linear"]
        values["throughput_steps_per_s"] = throughput["steps_per_s"]
        if "db" in throughput:
            values["write_commits_per_step"] = throughput["db"]["write_commits_per_step"]
    out = {}
    for name, value in values.items():
        if name not in TARGETS[backend] or (name in ONE_PROCESS_ONLY and not one_process):
            continue
        op, bound = TARGETS[backend][name]
        met = value <= bound if op == "<=" else value >= bound
        out[name] = {"value": value, "target": f"{op} {bound:g}", "met": met}
    return out


# ---------------------------------------------------------------------- PostgreSQL plumbing


def is_local(dsn: str) -> bool:
    """Whether the server of ``dsn`` runs on this machine (its CPU time is then measured)."""
    from urllib.parse import urlsplit

    return urlsplit(dsn).hostname in (None, "", "localhost", "127.0.0.1", "::1")


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` instead."""
    base, _, query = dsn.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def _admin(dsn: str, sql: str) -> Any:
    from tasker_trio.db import open_database

    async with open_database(dsn, min_size=1, max_size=1, wakeups="poll") as admin:
        return await admin.fetchval(sql, where="bench: admin")


@contextlib.asynccontextmanager
async def fresh_database(server: str) -> AsyncIterator[str]:
    """A new, migrated database on the server of ``server`` (dropped afterwards)."""
    from tasker_trio.db import migrate, open_database

    name = f"tasker_bench_{uuid.uuid4().hex[:12]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        async with open_database(url, min_size=1, max_size=1, wakeups="poll") as db:
            await migrate(db)
        yield url
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_one_process(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Orchestration and workers in this process (``open_engine(database=url)``)."""
    from tasker_trio.db import open_database

    counter = install_counter()

    async def mine() -> dict[str, list[float]]:
        return counter.snapshot()

    handler = sync_handler if args.sync_handlers else async_handler
    async with (
        open_database(url, min_size=1, max_size=1, wakeups="poll") as stats_db,
        tasker_trio.open_engine(
            templates(),
            handlers={"bench": handler},
            database=url,
            worker_concurrency=args.concurrency,
            pool_size=args.pool_size,
        ) as engine,
    ):
        meter = Meter(
            {"process": mine},
            stats_db,
            args.settle,
            pids={"process": os.getpid()},
            local_server=is_local(url),
        )
        report = await run_workloads(EngineDriver(engine, submitters=args.submitters), meter, args)
    report["processes"] = {"engine (orchestration + workers)": 1}
    return report


class Child:
    """A ``python -m tasker_trio`` subprocess whose crossings the bench can read."""

    def __init__(self, name: str, argv: list[str], workdir: Path, args: argparse.Namespace) -> None:
        self.name = name
        self.counts_path = workdir / f"{name}.counts.json"
        self.log_path = workdir / f"{name}.log"
        env = dict(os.environ)
        env.pop("TASKER_DATABASE_URL", None)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(workdir), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["TASKER_BENCH_COUNTS"] = str(self.counts_path)
        env["TASKER_BENCH_SYNC"] = "1" if args.sync_handlers else "0"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tasker_trio", *argv],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def _sequence(self) -> int:
        try:
            return int(json.loads(self.counts_path.read_text())["seq"])
        except (OSError, ValueError, KeyError):
            return 0

    async def started(self) -> None:
        """Wait until the process counts (its SIGUSR1 handler is in place)."""
        while self._sequence() == 0:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            await trio.sleep(0.05)

    async def counts(self) -> dict[str, list[float]]:
        """Ask the process for its crossing counts (SIGUSR1) and read them."""
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
        seen = self._sequence()
        self.process.send_signal(signal.SIGUSR1)
        with trio.fail_after(10):
            while True:  # another process writes the file: poll it
                if self._sequence() > seen:
                    break
                await trio.sleep(0.005)
        counts: dict[str, list[float]] = json.loads(self.counts_path.read_text())["counts"]
        return counts

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


async def run_processes(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """``serve`` and ``worker`` subprocesses; the bench is their client."""
    from tasker_trio.db import open_database

    counter = install_counter()
    with tempfile.TemporaryDirectory(prefix="tasker_bench_") as tmp:
        workdir = Path(tmp)
        (workdir / "sitecustomize.py").write_text(SITECUSTOMIZE)
        folder = workdir / "templates"
        folder.mkdir()
        for name, deps in SHAPES.items():
            (folder / f"{name}.yaml").write_text(template_yaml(name, deps))
        common = ["--database", url, "--pool-size", str(args.pool_size)]
        children = [
            Child(f"serve{i}", ["serve", *common, "--templates", str(folder)], workdir, args)
            for i in range(args.orchestrators)
        ] + [
            Child(
                f"worker{i}",
                [
                    "worker",
                    *common,
                    "--namespace",
                    NAMESPACE,
                    "--handlers",
                    "e2e",
                    "--concurrency",
                    str(args.concurrency),
                ],
                workdir,
                args,
            )
            for i in range(args.workers)
        ]
        try:
            async with open_database(url, min_size=1, max_size=2) as db:

                async def mine() -> dict[str, list[float]]:
                    return counter.snapshot()

                reads = {"client (bench)": mine} | {c.name: c.counts for c in children}
                pids = {"client (bench)": os.getpid()} | {c.name: c.process.pid for c in children}
                meter = Meter(reads, db, args.settle, pids=pids, local_server=is_local(url))
                with trio.fail_after(60):  # the children start: wait for their first counts
                    for child in children:
                        await child.started()
                report = await run_workloads(QueueDriver(db), meter, args)
        finally:
            for child in children:
                child.stop()
    report["processes"] = {"serve": args.orchestrators, "worker": args.workers}
    return report


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "e2e",
        "backend": args.backend,
        "handlers": "sync (thread)" if args.sync_handlers else "async",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "tasks": args.tasks,
        "worker_concurrency": args.concurrency,
    }
    if args.backend == "memory":
        handler = sync_handler if args.sync_handlers else async_handler
        async with tasker_trio.open_engine(
            templates(), handlers={"bench": handler}, worker_concurrency=args.concurrency
        ) as engine:
            one = await run_workloads(
                EngineDriver(engine, submitters=args.submitters), Meter({}, None, 0), args
            )
        report["one_process"] = one
        report["targets"] = {"one_process": targets(one, "memory")}
        return report
    report["pool_size"] = args.pool_size
    report["postgres"] = await _admin(args.database, "SHOW server_version")
    report["targets"] = {}
    if args.mode in ("both", "one"):
        async with fresh_database(args.database) as url:
            report["one_process"] = await run_one_process(url, args)
        report["targets"]["one_process"] = targets(report["one_process"], "postgres")
    if args.mode in ("both", "multi"):
        async with fresh_database(args.database) as url:
            report["multi_process"] = await run_processes(url, args)
        report["targets"]["multi_process"] = targets(
            report["multi_process"], "postgres", one_process=False
        )
    return report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["memory", "postgres"], default="memory")
    parser.add_argument(
        "--database",
        default=os.environ.get("TASKER_DATABASE_URL"),
        metavar="URL",
        help="postgres: a server URL (its database is used only to create and drop the "
        "bench's own database); default $TASKER_DATABASE_URL",
    )
    parser.add_argument("--mode", choices=["both", "one", "multi"], default="both")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--submitters",
        type=int,
        default=8,
        help="tasks submitted at once in the throughput workload (one process; default 8)",
    )
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (multi)")
    parser.add_argument("--orchestrators", type=int, default=1, help="serve processes (multi)")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.2,
        help="seconds to wait before reading pg_stat_database (backends report each second)",
    )
    parser.add_argument("--sync-handlers", action="store_true")
    parser.add_argument(
        "--workloads",
        type=lambda text: [w for w in text.split(",") if w],
        default=list(WORKLOADS),
        help=f"a comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown or not args.workloads:
        parser.error(f"--workloads: choose among {', '.join(WORKLOADS)} (got {unknown or 'none'})")
    if args.backend == "postgres" and not args.database:
        parser.error("--backend postgres needs --database URL (or TASKER_DATABASE_URL)")
    return args


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(trio.run(run, parse(argv)), indent=2))


if __name__ == "__main__":
    main()
