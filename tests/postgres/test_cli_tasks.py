"""``templates register|list``, ``tasks submit|show``, and ``serve``/``worker`` without templates.

The commands run their own `trio.run`, so most tests here are synchronous and use their own
database (`empty_url`, `migrated_url`); ``serve`` and ``worker`` run as subprocesses, their
output going to files that the tests read while they run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tasker_trio.cli import main
from tasker_trio.cli.tasks import Pending
from tasker_trio.db import Database, open_database
from tasker_trio.messaging.pgmq import PgmqBroker
from tasker_trio.models import ORCHESTRATION_TASK_REQUESTS
from tests.postgres.test_cli_db import empty_url
from tests.postgres.test_cli_processes import migrated_url

ROOT = Path(__file__).parents[2]
LINEAR = "examples/templates/linear.yaml"
ORDER = "examples/templates/order_fulfillment.yaml"
GOOD_ORDER = {
    "order_id": "ORD-1",
    "customer_email": "ada@example.com",
    "items": [{"sku": "WIDGET-1", "quantity": 1, "price": 19.99}],
}
BAD_ORDER = {**GOOD_ORDER, "items": [{"sku": "NOPE-0", "quantity": 1, "price": 1.0}]}

__all__ = ["empty_url", "migrated_url"]  # the fixtures, reused


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tasker_trio ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "tasker_trio", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Background:
    """A ``python -m tasker_trio`` process whose output goes to a file."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tasker_trio", *args],
                cwd=ROOT,
                env=_env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while text not in self.output():
            assert self.process.poll() is None, f"exited early:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} within {within}s:\n{self.output()}"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[Background]]:
    """Processes started by a test; killed if still running when it ends."""
    started: list[Background] = []
    yield started
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait(timeout=10)


def requests_queued(url: str) -> int:
    async def count() -> int:
        async with open_database(url, max_size=1, wakeups="poll") as db:
            return (await PgmqBroker(db).queue_statistics(ORCHESTRATION_TASK_REQUESTS)).depth

    return trio.run(count)


def test_register_then_list(migrated_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "list", "--database", migrated_url]) == 0
    assert "no task templates registered" in capsys.readouterr().err

    assert main(["templates", "register", LINEAR, ORDER, "--database", migrated_url]) == 0
    out = capsys.readouterr().out
    assert f"registered  {LINEAR}: examples/linear_workflow@1.0.0 (4 steps)" in out
    assert f"registered  {ORDER}: ecommerce/order_fulfillment@1.0.0 (5 steps)" in out
    assert "2 template(s) registered, 0 already registered" in out

    assert main(["templates", "register", LINEAR, "--database", migrated_url]) == 0
    out = capsys.readouterr().out
    assert f"unchanged   {LINEAR}: examples/linear_workflow@1.0.0 (4 steps): registered" in out
    assert "0 template(s) registered, 1 already registered" in out

    assert main(["templates", "list", "--database", migrated_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "ecommerce/order_fulfillment@1.0.0",
        "examples/linear_workflow@1.0.0",
    ]
    assert "4 steps  registered " in lines[1]
    assert lines[1].endswith(f"from {LINEAR}")


def test_register_refuses_a_changed_template_and_registers_nothing(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["templates", "register", LINEAR, "--database", migrated_url]) == 0
    text = (ROOT / LINEAR).read_text()
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace('"Square the input"', '"Square the input, edited"'))
    newcomer = tmp_path / "newcomer.yaml"
    newcomer.write_text(text.replace("name: linear_workflow", "name: newcomer"))
    capsys.readouterr()

    args = ["templates", "register", str(newcomer), str(edited), "--database", migrated_url]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"error: task template examples/linear_workflow@1.0.0 (from {edited}) differs" in err
    assert "give the changed template a new version" in err
    assert "Traceback" not in err
    assert main(["templates", "list", "--database", migrated_url]) == 0
    assert "newcomer" not in capsys.readouterr().out


def test_register_refuses_invalid_files_and_registers_nothing(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnamespace_name: Bad-NS\nversion: '1.0.0'\nsteps: []\n")
    assert main(["templates", "register", LINEAR, str(bad), "--database", migrated_url]) == 1
    err = capsys.readouterr().err
    assert f"invalid  {bad}" in err
    assert f"{bad}: field 'namespace_name'" in err
    assert "nothing registered" in err
    assert main(["templates", "list", "--database", migrated_url]) == 0
    assert "no task templates registered" in capsys.readouterr().err


def test_templates_and_tasks_need_a_migrated_database(
    empty_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (
        ["templates", "register", LINEAR],
        ["templates", "list"],
        ["tasks", "submit", "examples", "linear_workflow"],
        ["tasks", "show", str(uuid.uuid4())],
    ):
        assert main([*args, "--database", empty_url]) == 1
        err = capsys.readouterr().err
        assert "is older than this code" in err, args
        assert f"db migrate --database {empty_url}" in err


def test_submit_refuses_bad_requests_and_queues_nothing(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["templates", "register", LINEAR, "--database", migrated_url]) == 0
    capsys.readouterr()
    submit = ["tasks", "submit", "--database", migrated_url]
    cases = [
        (
            ["examples", "nope"],
            "error: unknown task template examples/nope (any version); registered in "
            f"{migrated_url}: examples/linear_workflow@1.0.0",
        ),
        (
            ["examples", "linear_workflow", "--version", "9.9.9"],
            "error: unknown task template examples/linear_workflow@9.9.9",
        ),
        (
            ["examples", "linear_workflow", "--context", '{"even_number": 3}'],
            "error: context for examples/linear_workflow@1.0.0 is invalid at $.even_number",
        ),
        (["examples", "linear_workflow", "--context", "{"], "error: --context is not valid JSON"),
        (["examples", "linear_workflow", "--priority", "101"], "error: --priority must be in"),
    ]
    for args, message in cases:
        assert main([*submit, *args]) == 1, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
    assert requests_queued(migrated_url) == 0


def test_submit_without_a_serve_process_says_so_and_leaves_the_request_queued(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["templates", "register", LINEAR, "--database", migrated_url]) == 0
    capsys.readouterr()
    args = ["tasks", "submit", "examples", "linear_workflow", "--context", '{"even_number": 2}']
    assert main([*args, "--timeout", "0.3", "--database", migrated_url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "request for examples/linear_workflow@1.0.0 queued (message 1)" in captured.err
    assert "error: no serve process has created the task yet: is one running on" in captured.err
    assert "The request stays queued (message 1)" in captured.err
    assert requests_queued(migrated_url) == 1


async def test_submit_reports_a_request_a_serve_process_rejected(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = PgmqBroker(database)
    msg_id = await broker.send(ORCHESTRATION_TASK_REQUESTS, {"request": {}})
    await broker.archive(ORCHESTRATION_TASK_REQUESTS, msg_id, reason="malformed TaskRequest")
    pending = Pending(identity="no-such-task", correlation_id="c", floor=0, msg_id=msg_id)
    with trio.fail_after(10):
        assert await pending.wait_created(database, deadline=trio.current_time() + 60) is None
    err = capsys.readouterr().err
    assert f"error: a serve process rejected request {msg_id}: malformed TaskRequest" in err


def test_worker_without_namespaces_or_registered_templates_says_what_to_do(
    migrated_url: str,
) -> None:
    done = cli("worker", "--database", migrated_url)
    assert done.returncode == 1
    assert "no template is registered" in done.stderr
    assert f"templates register PATH --database {migrated_url}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def cluster(migrated_url: str, tmp_path: Path, background: list[Background]) -> Iterator[str]:
    """A ``serve`` started with nothing registered, then templates, then a ``worker``.

    Neither process is given templates or namespaces. Yields the database URL; afterwards
    checks that both stop cleanly on SIGTERM and that no request was left queued.
    """
    url = migrated_url
    fast = ["--database", url, "--poll-interval", "0.2"]
    serve = Background(tmp_path / "serve.log", "serve", *fast)
    background.append(serve)
    serve.wait_for("SIGTERM to stop")
    assert f"no task templates are registered in {url} yet" in serve.output()
    # Registered after serve started: it finds them when a request names them.
    assert main(["templates", "register", LINEAR, ORDER, "--database", url]) == 0
    worker = Background(tmp_path / "worker.log", "worker", *fast)
    background.append(worker)
    worker.wait_for("SIGTERM to stop")
    assert "for namespace(s) ecommerce, examples" in worker.output()
    yield url
    for proc in (serve, worker):
        assert proc.stop() == 0, proc.output()
        assert "Traceback" not in proc.output()
    assert requests_queued(url) == 0


SUBMIT = ("tasks", "submit", "--wait", "--timeout", "30")


def test_serve_and_worker_without_templates_run_submitted_tasks(cluster: str) -> None:
    url = cluster
    args = ["examples", "linear_workflow", "--context", '{"even_number": 4}', "--database", url]
    done = cli(*SUBMIT, *args)
    assert done.returncode == 0, done.stderr
    task_uuid = done.stdout.strip()
    assert str(uuid.UUID(task_uuid)) == task_uuid
    assert f"task {task_uuid} complete: 4 steps" in done.stderr

    shown = cli("tasks", "show", task_uuid, "--database", url)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"task {task_uuid}  examples/linear_workflow@1.0.0  complete")
    assert 'linear_step_4  complete  attempts 1/3  result {"value": 4294967296}' in shown.stdout
    as_json = json.loads(cli("tasks", "show", task_uuid, "--json", "--database", url).stdout)
    assert as_json["task"]["state"] == "complete"
    assert [s["results"] for s in as_json["steps"]][-1] == {"value": 4**16}

    # The same request again finds the same task and queues nothing.
    again = cli("tasks", "submit", *args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == task_uuid
    assert "exists already; nothing queued" in again.stderr

    order = ["ecommerce", "order_fulfillment", "--context", json.dumps(BAD_ORDER)]
    blocked = cli(*SUBMIT, *order, "--database", url)
    assert blocked.returncode == 1
    assert "ended blocked_by_failures" in blocked.stderr
    assert "failed:  validate_order (error after 1 attempt): PermanentError" in blocked.stderr
    shown = cli("tasks", "show", blocked.stdout.strip(), "--database", url)
    assert "blocked_by_failures" in shown.stdout.splitlines()[0]
    assert "dead-letter entry" in shown.stdout


def test_each_request_of_an_always_unique_template_makes_a_task(
    cluster: str, tmp_path: Path
) -> None:
    # Its tasks are found by the request's correlation id, not by an identity hash.
    unique = tmp_path / "unique.yaml"
    text = (ROOT / LINEAR).read_text().replace("name: linear_workflow", "name: unique_linear")
    unique.write_text(text + "identity_strategy: always_unique\n")
    assert main(["templates", "register", str(unique), "--database", cluster]) == 0
    args = ["examples", "unique_linear", "--context", '{"even_number": 2}', "--database", cluster]
    first, second = (cli(*SUBMIT, *args) for _ in range(2))
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    uuids = {first.stdout.strip(), second.stdout.strip()}
    assert len(uuids) == 2
    assert all(str(uuid.UUID(u)) == u for u in uuids)


def test_show_of_an_unknown_task(migrated_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(uuid.uuid4())
    assert main(["tasks", "show", missing, "--database", migrated_url]) == 1
    assert f"error: no task {missing}" in capsys.readouterr().err


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env
