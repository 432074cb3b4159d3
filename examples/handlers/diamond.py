"""Handlers of the diamond workflow (examples/templates/diamond.yaml).

``start`` squares the input; ``branch_b`` adds ``step_config.addend`` to it, ``branch_c``
multiplies it by ``step_config.factor`` (the two branches run in parallel); ``end``
multiplies the two branch results. With ``even_number = n``, addend 4 and factor 3:
``end = (n² + 4) · 3n²`` — 4320 for n = 6.
"""

from __future__ import annotations

from typing import Any

import trio

from tasker_trio import StepContext


def square(ctx: StepContext) -> dict[str, Any]:
    """Square the task's ``even_number`` (a plain function: it runs in a worker thread)."""
    value = ctx.get_input("even_number")
    return {"value": value * value}


def add(ctx: StepContext) -> dict[str, Any]:
    """Add ``step_config.addend`` to the result of the step named ``step_config.source``."""
    value = ctx.get_dependency_result(ctx.get_config("source"))["value"]
    return {"value": value + ctx.get_config("addend", 0)}


async def multiply(ctx: StepContext) -> dict[str, Any]:
    """Multiply the result of ``step_config.source`` by ``step_config.factor`` (async)."""
    # An async handler runs in the worker's nursery (cancelled on timeout); await real I/O here.
    await trio.sleep(0)  # noqa: ASYNC115 -- stands for that I/O
    value = ctx.get_dependency_result(ctx.get_config("source"))["value"]
    return {"value": value * ctx.get_config("factor", 1)}


def product(ctx: StepContext) -> dict[str, Any]:
    """Multiply the results of the steps listed in ``step_config.sources``."""
    result = 1
    for name in ctx.get_config("sources", []):
        result *= ctx.get_dependency_result(name)["value"]
    return {"value": result}
