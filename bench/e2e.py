"""End-to-end benchmark of the embedded engine; prints JSON.

Workloads (semantics §11 lists tasker-core's figures for the same shapes):
- latency of one task at a time (p50/p95/max over --runs runs): linear (4 steps), diamond (4),
  complex DAG (7), tree (8);
- fan-out: 1 -> 100 parallel -> 1, wall time of one task;
- throughput: --tasks linear tasks submitted at once, tasks/s and steps/s.

Handlers are trivial (``async def``, or plain functions run in a thread with --sync-handlers)
so the figures are the engine's own overhead.

Usage: python bench/e2e.py [--backend memory] [--runs 50] [--tasks 500] [--sync-handlers]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import trio

import tasker_trio
from tasker_trio import StepContext, TaskTemplate

STEP = {"handler": {"callable": "bench"}, "retry": {"max_attempts": 1}}


def _template(name: str, deps: dict[str, list[str]]) -> TaskTemplate:
    steps = "\n".join(
        f"  - name: {step}\n    handler: {{callable: bench}}\n    dependencies: {parents}"
        for step, parents in deps.items()
    )
    text = f"name: {name}\nnamespace_name: bench\nversion: 1.0.0\nsteps:\n{steps}\n"
    return TaskTemplate.from_yaml(text)


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


async def async_handler(ctx: StepContext) -> dict[str, Any]:
    """Trivial async work: count the parents' results."""
    return {"n": len(ctx.dependency_results)}


def sync_handler(ctx: StepContext) -> dict[str, Any]:
    """Trivial sync work (runs in a worker thread)."""
    return {"n": len(ctx.dependency_results)}


def _summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max_ms": round(ordered[-1], 3),
        "runs": len(ordered),
    }


async def _one(engine: tasker_trio.Engine, name: str, i: int) -> float:
    started = time.perf_counter()
    sub = await engine.submit("bench", name, {"i": i})
    task = await engine.wait_for_task(sub.task_uuid, timeout=60)
    if task.state != tasker_trio.TaskState.COMPLETE:
        raise RuntimeError(f"{name} ended {task.state}")
    return (time.perf_counter() - started) * 1000.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    handler = sync_handler if args.sync_handlers else async_handler
    templates = [_template(name, deps) for name, deps in SHAPES.items()]
    report: dict[str, Any] = {
        "benchmark": "e2e",
        "backend": args.backend,
        "handlers": "sync (thread)" if args.sync_handlers else "async",
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    async with tasker_trio.open_engine(
        templates, handlers={"bench": handler}, worker_concurrency=args.concurrency
    ) as engine:
        for _ in range(5):  # warm up
            await _one(engine, "linear", -1)
        latency = {}
        for shape in ("linear", "diamond", "complex_dag", "tree"):
            latency[shape] = _summary([await _one(engine, shape, i) for i in range(args.runs)])
        report["latency"] = latency
        fan = [await _one(engine, "fan_out", i) for i in range(5)]
        report["fan_out_1_100_1"] = {"wall_ms_p50": round(statistics.median(fan), 3), "runs": 5}
        started = time.perf_counter()
        uuids = [
            (await engine.submit("bench", "linear", {"batch": i})).task_uuid
            for i in range(args.tasks)
        ]
        for uuid in uuids:
            await engine.wait_for_task(uuid, timeout=120)
        elapsed = time.perf_counter() - started
        report["throughput_linear"] = {
            "tasks": args.tasks,
            "seconds": round(elapsed, 3),
            "tasks_per_s": round(args.tasks / elapsed, 1),
            "steps_per_s": round(4 * args.tasks / elapsed, 1),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["memory"], default="memory")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sync-handlers", action="store_true")
    print(json.dumps(trio.run(run, parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
