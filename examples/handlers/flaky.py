"""Handlers of the flaky workflow (examples/templates/flaky.yaml).

``fetch_rate`` stands for a call to an unreliable service: it raises `RetryableError` on
its first attempts (until ``ctx.attempt`` reaches ``step_config.succeed_on_attempt``), and
the engine retries it after the step's backoff. ``convert`` then uses the rate.
"""

from __future__ import annotations

from typing import Any

import trio.lowlevel

from tasker_trio import RetryableError, StepContext


async def fetch_rate(ctx: StepContext) -> dict[str, Any]:
    """Fail retryably before attempt ``succeed_on_attempt``; then return the rate."""
    await trio.lowlevel.checkpoint()  # stands for the network call
    succeed_on = ctx.get_config("succeed_on_attempt", 3)
    if ctx.attempt < succeed_on:
        # No retry_after: the step's backoff policy (retry: in the template) decides.
        raise RetryableError(
            f"rate service unavailable (attempt {ctx.attempt} of {ctx.max_attempts})"
        )
    return {"rate": ctx.get_config("rate"), "attempts": ctx.attempt}


def convert(ctx: StepContext) -> dict[str, Any]:
    """Convert the task's ``amount`` with the fetched rate."""
    rate = ctx.get_dependency_result("fetch_rate")["rate"]
    return {"converted": ctx.get_input("amount") * rate}
