"""What each workload of the e2e bench costs: database round trips, transactions, CPU.

`install_counter` wraps `Database.run` in a process (the bench's, and each ``serve`` or
``worker`` subprocess's) to count every bridge crossing by operation; a `Meter` reads those
counts, the server's transaction counters and every process's CPU time before and after a
workload, and turns the differences into figures per step.
"""

from __future__ import annotations

import collections
import contextvars
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio


class Meter:
    """Crossing counts of every process, the server's transaction counters, and the CPU
    time of every process (the server's when it runs on this machine)."""

    def __init__(
        self,
        counters: Mapping[str, Callable[[], Awaitable[dict[str, list[float]]]]],
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


class RoundTrips:
    """Bridge crossings (`Database.run` calls) of this process, by operation label.

    Each crossing is one transaction on one pooled connection — a single statement in
    autocommit, or one explicit transaction — i.e. one commit as the server counts them.
    """

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)

    def snapshot(self) -> dict[str, list[float]]:
        return {label: [n, self.seconds[label]] for label, n in self.counts.items()}


_COUNTERS: list[RoundTrips] = []  # this process's one counter, once installed
BENCH_OWN: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_own", default=False)
"""Set while the bench itself queries (waiting for a task): counted as ``bench: ...``."""


def install_counter() -> RoundTrips:
    """Wrap `tasker_trio.db.bridge.Database.run` and ``crossed`` (this process only) to
    count round trips: crossings, and the statements of operations that hold their
    connection (the batches of plans).

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
        label = f"bench: {where}" if BENCH_OWN.get() else where
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

    crossed = Database.crossed

    def held(self: Any, where: str, seconds: float) -> None:
        # A statement of an operation that holds its connection (a batch of plans).
        counter.counts[where] += 1
        counter.seconds[where] += seconds
        crossed(self, where, seconds)

    Database.run = run  # type: ignore[method-assign]
    Database.crossed = held  # type: ignore[method-assign]
    return counter


def _is_queue_read(label: str) -> bool:
    return label.startswith(
        ("reading orchestration_", "reading worker_", "reading and claiming from ")
    )


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
