"""Smoke test of bench/e2e.py: tiny runs on both backends, and the shape of the JSON.

The figures themselves are not checked (they depend on the machine); only that every
workload ran and reported what bench/README.md documents. The PostgreSQL run needs the test
server (``TASKER_TEST_DATABASE_URL``, else 127.0.0.1:5432) and is skipped with the reason
when there is none — unless ``CI`` is set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.postgres._database import server_url, unreachable_reason

ROOT = Path(__file__).parents[1]
SHAPES = ("linear", "diamond", "complex_dag", "tree")
MEMORY_TARGETS = {"linear_p50_ms", "throughput_steps_per_s", "fan_out_ms"}
POSTGRES_TARGETS = {"linear_p50_ms", "diamond_p50_ms", "throughput_steps_per_s", "fan_out_ms"}


def bench(*args: str, timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "bench/e2e.py", "--runs", "3", "--tasks", "10", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def check_mode(mode: dict[str, Any], *, with_db: bool) -> None:
    for shape in SHAPES:
        latency = mode["latency"][shape]
        assert latency["runs"] == 3
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["max_ms"]
    fan = mode["fan_out_1_100_1"]
    assert fan["runs"] == 5
    assert 0 < fan["wall_ms_p50"] <= fan["wall_ms_max"]
    throughput = mode["throughput_linear"]
    assert throughput["tasks"] == 10
    assert throughput["steps_per_s"] == pytest.approx(4 * throughput["tasks_per_s"], rel=0.01)
    workloads = [*(mode["latency"][s] for s in SHAPES), fan, throughput]
    for workload in workloads:
        assert ("db" in workload) is with_db
        if with_db:
            db = workload["db"]
            # Something commits for every workload; in one process a plan can record and
            # process several results of a task at once (a fan-out's branches), so a step
            # may cost less than one commit.
            assert db["write_commits_per_step"] > 0
            assert db["round_trips_per_step"] >= db["write_commits_per_step"]
            assert "server_transactions_per_step" in db
            assert db["by_operation_per_step"]


def test_memory_benchmark_prints_every_workload() -> None:
    report = bench(timeout=120)
    assert report["backend"] == "memory"
    check_mode(report["one_process"], with_db=False)
    assert "multi_process" not in report
    assert set(report["targets"]["one_process"]) == MEMORY_TARGETS
    assert all(isinstance(t["met"], bool) for t in report["targets"]["one_process"].values())


@pytest.mark.postgres
@pytest.mark.skipif(unreachable_reason() is not None, reason=unreachable_reason() or "")
def test_postgres_benchmark_in_one_process_and_in_several() -> None:
    report = bench(
        "--backend", "postgres", "--database", server_url(), "--settle", "0.1", timeout=600
    )
    assert report["backend"] == "postgres"
    for name in ("one_process", "multi_process"):
        check_mode(report[name], with_db=True)
    assert set(report["targets"]["one_process"]) == {*POSTGRES_TARGETS, "write_commits_per_step"}
    # The latency targets are for one process; the others hold for separate processes too.
    assert set(report["targets"]["multi_process"]) == {
        "throughput_steps_per_s",
        "fan_out_ms",
        "write_commits_per_step",
    }
    cpu = report["multi_process"]["throughput_linear"]["db"]["cpu_ms_per_step"]
    assert set(cpu) == {"client (bench)", "serve0", "worker0", "postgres server"}
    assert all(value >= 0 for value in cpu.values())
    assert report["multi_process"]["processes"] == {"serve": 1, "worker": 1}
    by_process = report["multi_process"]["throughput_linear"]["db"]["by_operation_per_step"]
    assert set(by_process) == {"client (bench)", "serve0", "worker0"}
    # The worker process records every result (alone or in batches); orchestration (serve)
    # writes the plans.
    assert any(label.startswith("recording a") for label in by_process["worker0"])
    assert any(label.startswith("applying a") for label in by_process["serve0"])
    assert not any(label.startswith("recording a") for label in by_process["serve0"])


def test_a_subset_of_workloads_runs_alone() -> None:
    report = bench("--workloads", "throughput", timeout=120)
    mode = report["one_process"]
    assert set(mode) == {"throughput_linear"}
    assert set(report["targets"]["one_process"]) == {"throughput_steps_per_s"}


def test_an_unknown_workload_is_refused_with_the_choices() -> None:
    done = subprocess.run(
        [sys.executable, "bench/e2e.py", "--workloads", "latency,speed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "choose among latency, fan_out, throughput" in done.stderr
    assert "speed" in done.stderr
