"""``serve`` and ``worker`` subprocesses for the scale-out and fault tests.

Each process runs ``python -m tasker_trio ...`` from the repository root with the root on
``PYTHONPATH`` (so ``--handlers tests.postgres._workloads`` and the templates' handler
references import), its output going to a log file (a pipe nobody reads could fill up and
stall it). `open_cluster` kills whatever is still running when its block ends, so a failing
test leaves no process behind on the database it is about to drop.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio

from tests.postgres._audit import poll_until
from tests.postgres._workloads import HERE, NAMESPACE, write_templates

ROOT = Path(__file__).parents[2]
POLL_INTERVAL = "0.2"
"""Every process's polling fallback (NOTIFY normally wakes them first)."""


@attrs.define
class Proc:
    """One running ``python -m tasker_trio`` process and its log."""

    name: str
    process: trio.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything it printed so far (standard output and error)."""
        return self.log.read_text(errors="replace")

    async def stop(self, signum: int = signal.SIGTERM, *, within: float = 20.0) -> int:
        """Send ``signum`` and wait for the exit code (fails the test after ``within`` s)."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
        with trio.fail_after(within):
            return await self.process.wait()


@attrs.define
class Cluster:
    """Processes on one database; see `open_cluster`."""

    dsn: str
    templates: Path
    logs: Path
    processes: list[Proc] = attrs.field(factory=list)

    async def serve(self, name: str, *extra: str) -> Proc:
        """Start a ``serve`` (orchestration only) process."""
        args = ["serve", "--templates", str(self.templates), *extra]
        return await self._start(name, args)

    async def worker(self, name: str, *extra: str) -> Proc:
        """Start a ``worker`` process for `NAMESPACE` with the workload handlers."""
        args = ["worker", "--namespace", NAMESPACE, "--handlers", HERE, *extra]
        return await self._start(name, args)

    async def _start(self, name: str, args: list[str]) -> Proc:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        log = self.logs / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "tasker_trio",
            *args,
            "--database",
            self.dsn,
            "--poll-interval",
            POLL_INTERVAL,
        ]
        with log.open("wb") as sink:
            process = await trio.lowlevel.open_process(
                command, cwd=ROOT, env=env, stdout=sink, stderr=sink
            )
        proc = Proc(name=name, process=process, log=log)
        self.processes.append(proc)
        return proc

    async def wait_until_started(self, *procs: Proc, within: float = 20.0) -> None:
        """Wait until each process says it runs (its "Ctrl-C or SIGTERM to stop" line)."""

        async def started(proc: Proc) -> bool:
            if proc.process.returncode is not None:
                raise AssertionError(f"{proc.name} exited early:\n{proc.output()}")
            return "SIGTERM to stop" in proc.output()

        for proc in procs:
            await poll_until(partial(started, proc), within=within)

    def logs_text(self) -> str:
        """Every process's log, for an assertion message."""
        return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.output()}" for p in self.processes)


@asynccontextmanager
async def open_cluster(dsn: str, directory: Path) -> AsyncIterator[Cluster]:
    """A `Cluster` on ``dsn``; templates and logs under ``directory``; killed on exit."""
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(dsn=dsn, templates=write_templates(directory / "templates"), logs=logs)
    try:
        yield cluster
    finally:
        with trio.CancelScope(shield=True):
            for proc in cluster.processes:
                if proc.process.returncode is None:
                    proc.process.kill()
                    with trio.move_on_after(10):
                        await proc.process.wait()
