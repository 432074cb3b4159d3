"""The public surface of `tasker_trio.testing`, and the example of docs/testing.md runs."""

from __future__ import annotations

import re
import unittest
from pathlib import Path
from typing import Any

import tasker_trio.testing

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
    "random_workloads",
    "retry_policies",
    "scripted_templates",
    "step_scripts",
}


def test_public_surface_is_pinned() -> None:
    public = {name for name in vars(tasker_trio.testing) if not name.startswith("_")}
    modules = {"engine_machine", "invariants", "strategies", "trio_thread"}
    assert public - modules == EXPECTED


def test_the_docs_example_runs_and_passes() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert blocks, "docs/testing.md has a runnable python example"
    namespace: dict[str, Any] = {"__name__": "docs_testing_example"}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    case = namespace["TestOrderWorkflow"]
    result = unittest.TextTestRunner(verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(case)
    )
    assert result.wasSuccessful(), [str(e) for _, e in result.errors + result.failures]
