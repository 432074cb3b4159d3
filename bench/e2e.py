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

This module parses the options and runs the modes; its parts are siblings: `_e2e_workloads`
(shapes, handlers, workloads, targets), `_e2e_drivers` (running tasks through an engine, or
as a client of separate processes), `_e2e_meter` (round trips, transactions, CPU),
`_e2e_postgres` (the fresh database and the two PostgreSQL modes) and `_e2e_children` (the
``serve`` and ``worker`` subprocesses).

Usage:
    python bench/e2e.py [--runs 50] [--tasks 500] [--sync-handlers]
    python bench/e2e.py --backend postgres --database postgresql://postgres@127.0.0.1/postgres
        [--mode both|one|multi] [--workers 1] [--orchestrators 1] [--pool-size 10]
        [--durability full|outcomes]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from typing import Any

import trio
from _e2e_drivers import EngineDriver
from _e2e_meter import Meter
from _e2e_postgres import _admin, fresh_database, run_one_process, run_processes
from _e2e_workloads import WORKLOADS, async_handler, run_workloads, sync_handler, targets, templates

import tasker_trio


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
    report["durability"] = args.durability
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
    parser.add_argument(
        "--durability",
        choices=["full", "outcomes"],
        default="full",
        help="postgres: the engines' durability (default full: every commit waits for the disk)",
    )
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
