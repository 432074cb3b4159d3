"""The public surface of `tasker_trio.testing`, and the example of docs/testing.md runs (in
memory, and on a scratch PostgreSQL database as the docs' "On PostgreSQL" section shows)."""

from __future__ import annotations

import re
import unittest
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

import tasker_trio.testing
from tests.postgres._database import scratch_database, skip_without_server

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"

EXPECTED = {
    "Behaviour",
    "EngineSnapshot",
    "EngineStateMachine",
    "SCRIPTED_HANDLER",
    "ScriptedTemplate",
    "StepScript",
    "TaskRecord",
    "TrioCallTimeout",
    "TrioThread",
    "Workload",
    "dag_shapes",
    "open_scratch_database",
    "random_workloads",
    "reset_database",
    "retry_policies",
    "scripted_templates",
    "step_scripts",
}


def test_public_surface_is_pinned() -> None:
    public = {name for name in vars(tasker_trio.testing) if not name.startswith("_")}
    modules = {
        "database",
        "engine_machine",
        "invariants",
        "model",
        "probes",
        "strategies",
        "trio_thread",
    }
    assert public - modules == EXPECTED


def docs_example() -> dict[str, Any]:
    """The names the first runnable example of docs/testing.md defines."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert blocks, "docs/testing.md has a runnable python example"
    namespace: dict[str, Any] = {"__name__": "docs_testing_example"}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    return namespace


def test_the_docs_example_runs_and_passes() -> None:
    case = docs_example()["TestOrderWorkflow"]
    result = unittest.TextTestRunner(verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(case)
    )
    assert result.wasSuccessful(), [str(e) for _, e in result.errors + result.failures]


@skip_without_server()
def test_the_docs_example_runs_on_postgresql() -> None:
    workflow = docs_example()["OrderWorkflow"]
    with scratch_database() as url:
        on_postgres = type("OrderWorkflowOnPostgres", (workflow,), {"database": url})
        run_state_machine_as_test(
            on_postgres,
            settings=settings(
                max_examples=5, stateful_step_count=10, deadline=None, derandomize=True
            ),
        )
