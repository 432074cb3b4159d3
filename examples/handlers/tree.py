"""Handlers of the tree workflow (examples/templates/tree.yaml).

``root`` squares the input, each branch scales the root, each leaf adds to or doubles its
branch, and ``convergence`` — a handler *class* (``examples.handlers.tree:SumOfLeaves``,
instantiated once per worker, its ``call`` method run for each step) — sums the four leaves.
With ``even_number = n``: convergence = (2n² + 1) + 4n² + (3n² + 1) + 6n² = 15n² + 2
(542 for n = 6).
"""

from __future__ import annotations

from typing import Any

import trio.lowlevel

from tasker_trio import StepContext


def square(ctx: StepContext) -> dict[str, Any]:
    """Square the task's ``even_number``."""
    value = ctx.get_input("even_number")
    return {"value": value * value}


async def scale(ctx: StepContext) -> dict[str, Any]:
    """Multiply the result of ``step_config.source`` by ``step_config.factor``."""
    await trio.lowlevel.checkpoint()
    value = ctx.get_dependency_result(ctx.get_config("source"))["value"]
    return {"value": value * ctx.get_config("factor", 1)}


def add(ctx: StepContext) -> dict[str, Any]:
    """Add ``step_config.addend`` to the result of ``step_config.source``."""
    value = ctx.get_dependency_result(ctx.get_config("source"))["value"]
    return {"value": value + ctx.get_config("addend", 0)}


class SumOfLeaves:
    """Sum the results of the steps in ``step_config.sources``; report each term too."""

    def call(self, ctx: StepContext) -> dict[str, Any]:
        """Run once per step that references this class."""
        terms = {
            name: ctx.get_dependency_result(name)["value"] for name in ctx.get_config("sources")
        }
        return {"value": sum(terms.values()), "terms": terms}
