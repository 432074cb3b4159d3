"""Pins the public surface of tasker_trio.orchestration.support."""

from __future__ import annotations

import types

from tasker_trio.orchestration import support

EXPECTED = {
    "DEFAULT_JITTER",
    "BackoffCalculator",
    "delay_ms",
    "next_retry_at",
    "policy_delay_ms",
    "TIMEOUT_ERROR_TYPE",
    "UNSERIALIZABLE_RESULT_ERROR_TYPE",
    "ErrorClassification",
    "classify_exception",
    "classify_timeout",
    "classify_unserializable_result",
    "decide_after_failure",
    "ExecutionStatus",
    "execution_status",
    "task_event_for",
    "FAILED_STATES",
    "IN_FLIGHT_STATES",
    "RUNNABLE_STATES",
    "StepSnapshot",
    "TaskSnapshot",
    "blocked_descendants",
    "earliest_retry_at",
    "failed_steps",
    "is_failed",
    "is_viable",
    "step_facts",
    "viable_steps",
}


def test_public_names_are_pinned() -> None:
    public = {
        name
        for name, value in vars(support).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == EXPECTED


def test_function_names_shadow_their_modules() -> None:
    # `viable_steps` and `execution_status` are both a module and the function it exports;
    # the package attribute is the function, which is what callers import.
    assert callable(support.viable_steps)
    assert callable(support.execution_status)


def test_every_public_name_has_a_docstring_or_is_a_constant() -> None:
    for name in EXPECTED:
        obj = getattr(support, name)
        if callable(obj):
            assert obj.__doc__, name
