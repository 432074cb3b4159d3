"""The e2e bench on PostgreSQL: a fresh database for each mode, and the two modes.

In one process, an engine runs orchestration and workers together; across processes,
``serve`` and ``worker`` subprocesses do, and the bench is only their client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
from _e2e_children import SITECUSTOMIZE, Child
from _e2e_drivers import EngineDriver, QueueDriver
from _e2e_meter import Meter, install_counter
from _e2e_workloads import (
    NAMESPACE,
    SHAPES,
    async_handler,
    run_workloads,
    sync_handler,
    template_yaml,
    templates,
)

import tasker_trio


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
            durability=args.durability,
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
        common += ["--durability", args.durability]
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


async def _admin(dsn: str, sql: str) -> Any:
    from tasker_trio.db import open_database

    async with open_database(dsn, min_size=1, max_size=1, wakeups="poll") as admin:
        return await admin.fetchval(sql, where="bench: admin")


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` instead."""
    base, _, query = dsn.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{query}" if query else "")


def is_local(dsn: str) -> bool:
    """Whether the server of ``dsn`` runs on this machine (its CPU time is then measured)."""
    from urllib.parse import urlsplit

    return urlsplit(dsn).hostname in (None, "", "localhost", "127.0.0.1", "::1")
