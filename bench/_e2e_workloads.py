"""What the e2e bench measures: the task shapes, the workloads run on them, the targets.

The shapes become templates whose every step runs one trivial handler (``async def``, or a
plain function run in a thread); `run_workloads` runs every chosen workload through a
`Driver` and measures each with a `Meter`; `targets` checks a mode's figures against the
issues' bounds.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Protocol

from _e2e_meter import Meter

from tasker_trio import StepContext, TaskTemplate

NAMESPACE = "bench"

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


class Driver(Protocol):
    """Runs tasks: one at a time (latency), or many at once (throughput)."""

    async def one(self, shape: str, i: int) -> float: ...

    async def many(self, shape: str, n: int) -> float: ...


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
