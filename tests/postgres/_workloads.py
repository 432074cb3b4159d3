"""Workloads of the restart, scale-out and fault tests: templates, handlers, expected results.

Subprocesses (``serve``, ``worker``) import this module, so it depends on nothing but
tasker_trio: a worker resolves the templates' ``handler.callable`` references
(``tests.postgres._workloads:...``) with the repository root on its import path, and
``serve`` loads the YAML files `write_templates` writes.

Every template is in namespace ``NAMESPACE`` and computes integers from the task context's
``n``: the first step returns ``n``, every other step the sum of its ``sources`` plus its
``addend`` — so `expected_results` can tell what each step must have returned. Each result
also names the process that ran it (``pid``), which the fault tests use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio
import yaml

from tasker_trio import StepContext
from tasker_trio.models import TaskRequest
from tasker_trio.models.messages import TaskRequestMessage

NAMESPACE = "workloads"
HERE = "tests.postgres._workloads"


def _step(name: str, *sources: str, addend: int = 0, handler: str = "combine") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "handler": {
            "callable": f"{HERE}:{handler}",
            "initialization": {"sources": list(sources), "addend": addend},
        },
    }
    if sources:
        spec["dependencies"] = list(sources)
    return spec


SHAPES: dict[str, list[dict[str, Any]]] = {
    # a -> b -> c -> d
    "linear": [
        _step("a"),
        _step("b", "a", addend=1),
        _step("c", "b", addend=2),
        _step("d", "c", addend=3),
    ],
    # a -> (b, c) -> d
    "diamond": [
        _step("a"),
        _step("b", "a", addend=10),
        _step("c", "a", addend=20),
        _step("d", "b", "c", addend=1),
    ],
    # a -> (f1..f5) -> z
    "fanout": [
        _step("a"),
        *[_step(f"f{i}", "a", addend=i) for i in range(1, 6)],
        _step("z", *[f"f{i}" for i in range(1, 6)]),
    ],
    # a -> held -> c: ``held`` blocks on its first attempt (see `hold`).
    "held": [
        _step("a"),
        _step("held", "a", addend=5, handler="hold"),
        _step("c", "held", addend=1),
    ],
}
"""Step lists by template name."""

STEP_COUNTS = {name: len(steps) for name, steps in SHAPES.items()}


def template_document(name: str) -> dict[str, Any]:
    """The YAML document of template ``name`` (one of `SHAPES`)."""
    return {
        "name": name,
        "namespace_name": NAMESPACE,
        "version": "1.0.0",
        "input_schema": {
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "integer"}},
        },
        "steps": SHAPES[name],
    }


def write_templates(directory: Path) -> Path:
    """Write every template as a YAML file under ``directory``; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in SHAPES:
        text = yaml.safe_dump(template_document(name), sort_keys=False)
        (directory / f"{name}.yaml").write_text(text)
    return directory


def expected_results(shape: str, n: int) -> dict[str, int]:
    """What each step of a ``shape`` task with context ``{"n": n}`` returns as ``value``."""
    values: dict[str, int] = {}
    for spec in SHAPES[shape]:
        config = spec["handler"]["initialization"]
        sources = config["sources"]
        values[spec["name"]] = sum(values[s] for s in sources) + config["addend"] if sources else n
    return values


def request_payload(shape: str, n: int, **context: Any) -> dict[str, Any]:
    """A `TaskRequestMessage` for ``orchestration_task_requests`` (what a client sends)."""
    request = TaskRequest.create(NAMESPACE, shape, {"n": n, **context})
    return TaskRequestMessage(request=request).to_json()


# --- handlers -----------------------------------------------------------------------------


def _value(ctx: StepContext) -> int:
    sources: list[str] = ctx.get_config("sources", [])
    if not sources:
        n: int = ctx.get_input("n")
        return n
    total = sum(int(ctx.get_dependency_result(name)["value"]) for name in sources)
    return total + int(ctx.get_config("addend", 0))


async def combine(ctx: StepContext) -> dict[str, Any]:
    """The sum of the ``sources`` results plus ``addend`` (the first step: the input ``n``)."""
    await trio.lowlevel.checkpoint()
    return {"value": _value(ctx), "pid": os.getpid()}


async def hold(ctx: StepContext) -> dict[str, Any]:
    """Like `combine`, but the first attempt announces itself and never finishes.

    It writes its process id to the file named by the context's ``marker`` (so a test knows
    which process to kill) and sleeps until cancelled; a later attempt — the step reclaimed
    after the visibility timeout — returns normally.
    """
    marker = ctx.get_input("marker")
    if ctx.attempt == 1 and marker:
        await trio.Path(marker).write_text(str(os.getpid()))
        await trio.sleep_forever()
    return await combine(ctx)
