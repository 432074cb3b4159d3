"""The e2e bench's ``python -m tasker_trio`` subprocesses, and what runs inside them.

`Child` starts one, asks it for its crossing counts and stops it; the ``sitecustomize`` the
bench puts on its ``PYTHONPATH`` calls `child_hook` there, which counts its crossings and
writes them out on SIGUSR1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio
from _e2e_meter import install_counter
from _e2e_workloads import NAMESPACE, async_handler, sync_handler

import tasker_trio

ROOT = Path(__file__).resolve().parents[1]


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


SITECUSTOMIZE = f"""\
import os, sys
if os.environ.get("TASKER_BENCH_COUNTS"):
    sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
    import _e2e_children
    _e2e_children.child_hook(os.environ["TASKER_BENCH_COUNTS"])
"""


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
