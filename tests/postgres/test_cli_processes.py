"""``serve`` and ``worker`` as separate processes on one database, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tasker_trio.cli import main
from tasker_trio.db import open_database
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.models import ORCHESTRATION_TASK_REQUESTS, TaskRequest
from tasker_trio.models.messages import TaskRequestMessage
from tasker_trio.store.postgres import PostgresStore
from tests.postgres.test_cli_db import empty_url

ROOT = Path(__file__).parents[2]
LINEAR = "examples/templates/linear.yaml"

__all__ = ["empty_url"]  # the fixture, reused


def start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "TASKER_DATABASE_URL"}
    return subprocess.Popen(
        [sys.executable, "-m", "tasker_trio", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def migrated_url(empty_url: str) -> str:
    """``empty_url`` after ``db migrate``."""
    assert main(["db", "migrate", "--database", empty_url]) == 0
    return empty_url


def request_and_wait(url: str, context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Queue a task request (as a client would) and wait for its task to end."""

    async def run() -> tuple[str, dict[str, Any]]:
        async with open_database(url, max_size=1, wakeups="poll") as db:
            request = TaskRequest.create("examples", "linear_workflow", context)
            await PgmqBroker(db).send(
                ORCHESTRATION_TASK_REQUESTS, TaskRequestMessage(request=request).to_json()
            )
            store = PostgresStore(db)
            with trio.fail_after(30):
                while True:
                    tasks = [t for t in await store.list_tasks() if t.context == context]
                    if tasks and tasks[0].state.is_terminal:
                        view = await store.get_view(tasks[0].task_uuid)
                        return str(tasks[0].state), {s.name: s.results for s in view.steps}
                    await trio.sleep(0.05)

    return trio.run(run)


def test_serve_and_worker_processes_run_a_task_and_stop_on_sigterm(migrated_url: str) -> None:
    serve = start("serve", "--database", migrated_url, "--templates", LINEAR)
    worker = start("worker", "--database", migrated_url, "--templates", LINEAR)
    try:
        time.sleep(1.0)  # let both start (a request sent earlier would wait for them anyway)
        state, results = request_and_wait(migrated_url, {"even_number": 4})
    finally:
        for process in (serve, worker):
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=20) for process in (serve, worker)]
    assert state == "complete"
    assert results["linear_step_4"] == {"value": 4**16}
    for process, (_, err) in zip((serve, worker), outputs, strict=True):
        assert process.returncode == 0, err
        assert "SIGTERM: shutting down" in err
        assert "stopped" in err
        assert "Traceback" not in err


def test_serve_refuses_an_unmigrated_database(empty_url: str) -> None:
    serve = start("serve", "--database", empty_url, "--templates", LINEAR)
    _, err = serve.communicate(timeout=30)
    assert serve.returncode == 1
    assert "older than this code" in err
    assert f"db migrate --database {empty_url}" in err
    assert "Traceback" not in err
