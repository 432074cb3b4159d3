"""Handlers of the linear workflow: each step squares the previous result (6 -> 36 -> 1296 ...)."""

from __future__ import annotations

from typing import Any

from tasker_trio import StepContext


def square(ctx: StepContext) -> dict[str, Any]:
    """Square the number named by ``step_config.source``: the input, or a parent's result."""
    source = ctx.get_config("source", "input")
    if source == "input":
        value = ctx.get_input("even_number")
    else:
        value = ctx.get_dependency_result(source)["value"]
    return {"value": value * value}
