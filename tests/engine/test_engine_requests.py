"""Task requests: identity and deduplication, input_schema checks, unknown templates."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio

from tasker_trio import (
    InvalidContext,
    InvalidTaskRequest,
    StepContext,
    TaskState,
    UnknownTemplate,
)
from tests.engine._support import NAMESPACE, running_engine, step, template


async def ok(ctx: StepContext) -> dict[str, Any]:
    return {"version": ctx.get_config("version")}


def tpl(name: str = "order", version: str = "1.0.0", **extra: Any) -> Any:
    return template(
        name, [step("only", "ok", config={"version": version})], version=version, **extra
    )


ORDER_SCHEMA = {
    "type": "object",
    "required": ["order"],
    "properties": {
        "order": {
            "type": "object",
            "required": ["id", "items"],
            "properties": {
                "id": {"type": "integer"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"qty": {"type": "integer", "minimum": 1}},
                    },
                },
            },
        }
    },
}


async def test_duplicate_submission_returns_the_same_task(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_engine([tpl()], {"ok": ok}) as engine:
        first = await engine.submit(NAMESPACE, "order", {"a": 1, "b": [1, 2]})
        await engine.wait_for_task(first.task_uuid, timeout=10)
        # Same canonical context (key order does not matter), even after completion.
        again = await engine.submit(NAMESPACE, "order", {"b": [1, 2], "a": 1})
        other = await engine.submit(NAMESPACE, "order", {"a": 2, "b": [1, 2]})
        stats = await engine.statistics()
    assert first.created is True
    assert (again.task_uuid, again.created) == (first.task_uuid, False)
    assert again.task.state == TaskState.COMPLETE
    assert other.created is True
    assert other.task_uuid != first.task_uuid
    assert sum(stats.tasks_by_state.values()) == 2


async def test_idempotency_key_identifies_the_task(autojump_clock: trio.abc.Clock) -> None:
    async with running_engine([tpl()], {"ok": ok}) as engine:
        first = await engine.submit(NAMESPACE, "order", {"a": 1}, idempotency_key="k-1")
        again = await engine.submit(NAMESPACE, "order", {"a": 99}, idempotency_key="k-1")
        other = await engine.submit(NAMESPACE, "order", {"a": 1}, idempotency_key="k-2")
    assert (first.created, again.created, other.created) == (True, False, True)
    assert again.task_uuid == first.task_uuid
    assert again.task.context == {"a": 1}
    assert other.task_uuid != first.task_uuid


async def test_caller_provided_identity_requires_a_key(autojump_clock: trio.abc.Clock) -> None:
    template_ = tpl(identity_strategy="caller_provided")
    async with running_engine([template_], {"ok": ok}) as engine:
        with pytest.raises(InvalidTaskRequest, match="idempotency"):
            await engine.submit(NAMESPACE, "order", {"a": 1})
        assert (await engine.statistics()).tasks_by_state == {}
        first = await engine.submit(NAMESPACE, "order", {"a": 1}, idempotency_key="k")
        again = await engine.submit(NAMESPACE, "order", {"a": 2}, idempotency_key="k")
    assert (first.created, again.created) == (True, False)
    assert again.task_uuid == first.task_uuid


async def test_always_unique_creates_a_task_per_request(autojump_clock: trio.abc.Clock) -> None:
    async with running_engine([tpl(identity_strategy="always_unique")], {"ok": ok}) as engine:
        first = await engine.submit(NAMESPACE, "order", {"a": 1})
        second = await engine.submit(NAMESPACE, "order", {"a": 1})
        for submission in (first, second):
            task = await engine.wait_for_task(submission.task_uuid, timeout=10)
            assert task.state == TaskState.COMPLETE
    assert first.created
    assert second.created
    assert first.task_uuid != second.task_uuid


@pytest.mark.parametrize(
    ("context", "path"),
    [
        ({}, "$.order"),
        ({"order": {"items": []}}, "$.order.id"),
        ({"order": {"id": "seven", "items": []}}, "$.order.id"),
        ({"order": {"id": 7, "items": [{"qty": 1}, {"qty": 0}]}}, "$.order.items[1].qty"),
    ],
    ids=["missing-root", "missing-nested", "wrong-type", "in-array"],
)
async def test_context_failing_input_schema_is_rejected(
    autojump_clock: trio.abc.Clock, context: dict[str, Any], path: str
) -> None:
    template_ = tpl(input_schema=ORDER_SCHEMA)
    async with running_engine([template_], {"ok": ok}) as engine:
        with pytest.raises(InvalidContext) as caught:
            await engine.submit(NAMESPACE, "order", context)
        stats = await engine.statistics()
        valid = await engine.submit(NAMESPACE, "order", {"order": {"id": 1, "items": []}})
    assert caught.value.path == path
    assert path in str(caught.value)
    assert f"{NAMESPACE}/order" in str(caught.value)
    assert stats.tasks_by_state == {}  # nothing was created
    assert valid.created


@pytest.mark.parametrize(
    ("context", "path", "reason"),
    [
        ({"order": {"rate": math.nan}}, "$.order.rate", "nan is not a JSON number"),
        ({"limits": [1, -math.inf]}, "$.limits[1]", "-inf is not a JSON number"),
        ({"by_id": {7: "seven"}}, "$.by_id", "key 7 is not a string"),
        ({"first name": {"seen": {1, 2}}}, "$['first name'].seen", "a set is not JSON data"),
    ],
    ids=["nan", "infinity", "int-key", "set"],
)
async def test_context_that_is_not_json_is_rejected_saying_where(
    autojump_clock: trio.abc.Clock, context: dict[Any, Any], path: str, reason: str
) -> None:
    # No input_schema: a context must be JSON data whatever the template says (PostgreSQL
    # refuses NaN; a key that is not a string would come back as one).
    async with running_engine([tpl()], {"ok": ok}) as engine:
        with pytest.raises(InvalidContext) as caught:
            await engine.submit(NAMESPACE, "order", context)
        stats = await engine.statistics()
    assert caught.value.path == path
    assert reason in str(caught.value)
    assert f"{NAMESPACE}/order" in str(caught.value)
    assert stats.tasks_by_state == {}  # nothing was created


async def echo(ctx: StepContext) -> dict[str, Any]:
    return {"echo": ctx.input_data}


async def test_context_and_results_keep_large_integers_and_text_exactly(
    autojump_clock: trio.abc.Clock,
) -> None:
    context = {
        "big": 2**70,
        "small": -(2**64) - 1,
        "text": 'caf\u00e9 \u2713 \u2028 "quoted" \\',
        "nested": [{"f": 0.1, "n": None, "b": False}],
    }
    template_ = template("echo", [step("only", "echo")])
    async with running_engine([template_], {"echo": echo}) as engine:
        submission = await engine.submit(NAMESPACE, "echo", context)
        task = await engine.wait_for_task(submission.task_uuid, timeout=10)
        results = await engine.get_results(submission.task_uuid)
    assert task.state == TaskState.COMPLETE
    assert task.context == context
    assert results == {"only": {"echo": context}}


async def test_latest_version_is_used_unless_one_is_named(
    autojump_clock: trio.abc.Clock,
) -> None:
    templates = [tpl(version="1.0.0"), tpl(version="1.10.0"), tpl(version="1.2.0")]
    async with running_engine(templates, {"ok": ok}) as engine:
        latest = await engine.submit(NAMESPACE, "order", {"x": 1})
        pinned = await engine.submit(NAMESPACE, "order", {"x": 1}, version="1.2.0")
        latest_task = await engine.wait_for_task(latest.task_uuid, timeout=10)
        results = await engine.get_results(latest.task_uuid)
    assert latest_task.version == "1.10.0"
    assert results == {"only": {"version": "1.10.0"}}
    assert pinned.created  # another template version is another task
    assert pinned.task.version == "1.2.0"


@pytest.mark.parametrize(
    ("namespace", "name", "version", "mentions"),
    [
        ("nowhere", "order", None, "nowhere/order"),
        (NAMESPACE, "no_such_flow", None, f"{NAMESPACE}/no_such_flow"),
        (NAMESPACE, "order", "9.9.9", "9.9.9"),
    ],
    ids=["namespace", "name", "version"],
)
async def test_unknown_template_is_a_clear_error(
    autojump_clock: trio.abc.Clock,
    namespace: str,
    name: str,
    version: str | None,
    mentions: str,
) -> None:
    async with running_engine([tpl()], {"ok": ok}) as engine:
        with pytest.raises(UnknownTemplate) as caught:
            await engine.submit(namespace, name, {}, version=version)
        stats = await engine.statistics()
    message = str(caught.value)
    assert mentions in message
    assert "unknown" in message.lower()
    assert stats.tasks_by_state == {}
