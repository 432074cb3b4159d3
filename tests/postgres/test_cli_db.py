"""``python -m tasker_trio db migrate|status`` and ``run --database`` on a real server.

The commands run their own `trio.run`, so these tests are synchronous: each creates its own
empty database on the test server (and drops it afterwards) instead of using the async
``database`` fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tasker_trio.cli import main
from tasker_trio.db import open_database
from tests.postgres._database import server_url, with_database

ROOT = Path(__file__).parents[2]
LINEAR_RESULTS = {
    "linear_step_1": {"value": 36},
    "linear_step_2": {"value": 1296},
    "linear_step_3": {"value": 1679616},
    "linear_step_4": {"value": 2821109907456},
}


def _admin(sql: str) -> None:
    async def run() -> None:
        async with open_database(server_url(), max_size=1, wakeups="poll") as admin:
            await admin.fetchval(sql)

    trio.run(run)


@pytest.fixture
def empty_url() -> Iterator[str]:
    """The URL of a new, empty database (no migration applied), dropped afterwards."""
    name = f"tasker_test_{uuid.uuid4().hex[:16]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url(), name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_status_before_and_after_migrate(
    empty_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "status", "--database", empty_url]) == 1
    out, _ = capsys.readouterr()
    assert "pending  0001_schema.sql" in out
    assert "applied" not in out
    assert f"db migrate --database {empty_url}" in out

    assert main(["db", "migrate", "--database", empty_url]) == 0
    out, _ = capsys.readouterr()
    assert "applied  0001_schema.sql" in out
    assert "the schema is up to date" in out

    assert main(["db", "status", "--database", empty_url]) == 0
    out, _ = capsys.readouterr()
    assert "pending" not in out
    assert "applied  0001_schema.sql" in out


def test_migrate_twice_is_idempotent(empty_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "migrate", "--database", empty_url]) == 0
    first, _ = capsys.readouterr()
    assert main(["db", "migrate", "--database", empty_url]) == 0
    second, _ = capsys.readouterr()
    assert first.count("applied  ") >= 1
    assert "applied  " not in second
    assert "nothing to apply" in second


def test_the_database_url_may_come_from_the_environment(
    empty_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASKER_DATABASE_URL", empty_url)
    assert main(["db", "migrate"]) == 0
    assert main(["db", "status"]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://postgres@127.0.0.1:1/postgres", "the server cannot be reached"),
        ("mysql://127.0.0.1/tasker", "is not a PostgreSQL URL"),
        ("postgresql://127.0.0.1:port/tasker", "malformed database URL"),
    ],
    ids=["unreachable", "not-postgres", "bad-port"],
)
def test_unusable_url_is_one_clear_line(
    url: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "status", "--database", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert says in err
    assert "Traceback" not in err


def test_missing_database_and_unknown_role_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    missing = with_database(server_url(), f"tasker_missing_{uuid.uuid4().hex[:8]}")
    assert main(["db", "migrate", "--database", missing]) == 1
    assert "the database does not exist" in capsys.readouterr().err
    head, _, tail = server_url().partition("://")
    stranger = f"{head}://tasker_no_such_role@{tail.rsplit('@', 1)[-1]}"
    assert main(["db", "status", "--database", stranger]) == 1
    assert "refused the credentials" in capsys.readouterr().err


def test_database_is_required(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TASKER_DATABASE_URL", raising=False)
    assert main(["db", "status"]) == 1
    assert "give --database URL or set TASKER_DATABASE_URL" in capsys.readouterr().err


def test_run_on_a_fresh_database_migrates_and_completes(empty_url: str) -> None:
    command = [
        sys.executable,
        "-m",
        "tasker_trio",
        "run",
        "examples/templates/linear.yaml",
        "--context",
        '{"even_number": 6}',
        "--database",
        empty_url,
    ]
    env = {k: v for k, v in os.environ.items() if k != "TASKER_DATABASE_URL"}
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == LINEAR_RESULTS
    assert "complete: 4 steps" in done.stderr
    # The task stays in the database: running the same request again finds it.
    again = subprocess.run(
        [*command, "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == LINEAR_RESULTS
