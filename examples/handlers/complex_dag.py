"""Handlers of the complex DAG workflow (examples/templates/complex_dag.yaml).

Each handler reads which parent results to use from its ``step_config``:

- `square`: squares ``source`` (``input`` means the task's ``even_number``);
- `scale`: multiplies ``source`` by ``factor`` (async);
- `add`: adds ``addend`` to ``source``;
- `total`: sums the results of ``sources``.

With ``even_number = n`` the template computes init = n², left = 2n², right = n² + 4,
validate = left + right, transform = left², analyze = right², and
finalize = validate + transform + analyze (6896 for n = 6).
"""

from __future__ import annotations

from typing import Any

import trio.lowlevel

from tasker_trio import StepContext


def _value(ctx: StepContext, source: str) -> int:
    if source == "input":
        value: int = ctx.get_input("even_number")
        return value
    result: int = ctx.get_dependency_result(source)["value"]
    return result


def square(ctx: StepContext) -> dict[str, Any]:
    """Square ``step_config.source``."""
    value = _value(ctx, ctx.get_config("source", "input"))
    return {"value": value * value}


async def scale(ctx: StepContext) -> dict[str, Any]:
    """Multiply ``step_config.source`` by ``step_config.factor``."""
    await trio.lowlevel.checkpoint()
    return {"value": _value(ctx, ctx.get_config("source")) * ctx.get_config("factor", 1)}


def add(ctx: StepContext) -> dict[str, Any]:
    """Add ``step_config.addend`` to ``step_config.source``."""
    return {"value": _value(ctx, ctx.get_config("source")) + ctx.get_config("addend", 0)}


async def total(ctx: StepContext) -> dict[str, Any]:
    """Sum the results of the steps in ``step_config.sources``."""
    await trio.lowlevel.checkpoint()
    return {"value": sum(_value(ctx, name) for name in ctx.get_config("sources", []))}
