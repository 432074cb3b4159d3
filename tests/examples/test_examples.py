"""Every example template runs to its documented results on the embedded engine.

The tests run on a `MockClock`, so backoffs cost (almost) no real time; the templates'
header comments document the expected values asserted here.

The clock jumps only after 20 ms of real idleness, not at once as pytest-trio's
``autojump_clock`` does: with ``autojump_threshold=0`` the virtual clock runs ahead while a
*sync* handler's thread works, so steps time out at random (see
`test_sync_handler_is_not_timed_out_while_autojump_clock_runs`, which pins that engine bug).
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import tasker_trio
from tasker_trio import Engine, StepState, TaskState

ROOT = Path(__file__).parents[2]
TEMPLATES = ROOT / "examples" / "templates"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the templates name `examples.handlers...` modules

ORDER: dict[str, Any] = {
    "order_id": "ORD-1001",
    "customer_email": "ada@example.com",
    "items": [
        {"sku": "WIDGET-1", "quantity": 2, "price": 19.99},
        {"sku": "GADGET-7", "quantity": 1, "price": 49.50},
    ],
}


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """A mock clock that jumps after 20 ms of real idleness (see the module docstring)."""
    return trio.testing.MockClock(autojump_threshold=0.02)


@asynccontextmanager
async def engine_for(*names: str, environment: str | None = None) -> AsyncIterator[Engine]:
    paths = [TEMPLATES / f"{name}.yaml" for name in names]
    async with tasker_trio.open_engine(
        paths, environment=environment, poll_interval=5.0, rng=random.Random(3)
    ) as engine:
        yield engine


async def run(engine: Engine, namespace: str, name: str, context: dict[str, Any]) -> str:
    submission = await engine.submit(namespace, name, context)
    await engine.wait_for_task(submission.task_uuid, timeout=600)
    return submission.task_uuid


def value(n: int) -> dict[str, int]:
    return {"value": n}


def digest(*parts: object, length: int = 12) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


# --------------------------------------------------------------------------- the DAG shapes

SHAPES = {
    "linear": (
        "linear_workflow",
        {
            "linear_step_1": value(36),
            "linear_step_2": value(1296),
            "linear_step_3": value(1679616),
            "linear_step_4": value(2821109907456),
        },
    ),
    "diamond": (
        "diamond_workflow",
        {"start": value(36), "branch_b": value(40), "branch_c": value(108), "end": value(4320)},
    ),
    "complex_dag": (
        "complex_dag_workflow",
        {
            "init": value(36),
            "left": value(72),
            "right": value(40),
            "validate": value(112),
            "transform": value(5184),
            "analyze": value(1600),
            "finalize": value(6896),
        },
    ),
    "tree": (
        "tree_workflow",
        {
            "root": value(36),
            "branch_left": value(72),
            "branch_right": value(108),
            "leaf_d": value(73),
            "leaf_e": value(144),
            "leaf_f": value(109),
            "leaf_g": value(216),
            "convergence": {
                "value": 542,
                "terms": {"leaf_d": 73, "leaf_e": 144, "leaf_f": 109, "leaf_g": 216},
            },
        },
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_shape_completes_with_documented_results(
    shape: str, clock: trio.testing.MockClock
) -> None:
    name, expected = SHAPES[shape]
    async with engine_for(shape) as engine:
        task_uuid = await run(engine, "examples", name, {"even_number": 6})
        assert (await engine.get_task(task_uuid)).state == TaskState.COMPLETE
        assert await engine.get_results(task_uuid) == expected
        steps = await engine.get_steps(task_uuid)
        assert all(s.state == StepState.COMPLETE and s.attempts == 1 for s in steps)


@pytest.mark.parametrize("n", [2, 10])
async def test_shape_formulas_hold_for_other_inputs(n: int, clock: trio.testing.MockClock) -> None:
    sq = n * n
    async with engine_for("linear", "diamond", "complex_dag", "tree") as engine:
        linear = await engine.get_results(
            await run(engine, "examples", "linear_workflow", {"even_number": n})
        )
        diamond = await engine.get_results(
            await run(engine, "examples", "diamond_workflow", {"even_number": n})
        )
        dag = await engine.get_results(
            await run(engine, "examples", "complex_dag_workflow", {"even_number": n})
        )
        tree = await engine.get_results(
            await run(engine, "examples", "tree_workflow", {"even_number": n})
        )
    assert linear["linear_step_4"] == value(n**16)
    assert diamond["end"] == value((sq + 4) * 3 * sq)
    assert dag["finalize"] == value((3 * sq + 4) + (2 * sq) ** 2 + (sq + 4) ** 2)
    assert tree["convergence"]["value"] == 15 * sq + 2  # type: ignore[index]


async def test_shape_rejects_a_context_outside_its_schema(
    clock: trio.testing.MockClock,
) -> None:
    async with engine_for("diamond") as engine:
        with pytest.raises(tasker_trio.InvalidContext, match=r"\$\.even_number"):
            await engine.submit("examples", "diamond_workflow", {"even_number": 7})


# --------------------------------------------------------------------------- flaky


async def test_flaky_completes_on_its_third_attempt_after_backoff(
    clock: trio.testing.MockClock,
) -> None:
    async with engine_for("flaky") as engine:
        task_uuid = await run(engine, "examples", "flaky_workflow", {"amount": 250})
        assert (await engine.get_task(task_uuid)).state == TaskState.COMPLETE
        assert await engine.get_results(task_uuid) == {
            "fetch_rate": {"rate": 1.25, "attempts": 3},
            "convert": {"converted": 312.5},
        }
        fetch = await engine.get_step(task_uuid, "fetch_rate")
        assert fetch.attempts == 3
        assert fetch.last_error is not None
        assert fetch.last_error.error_type == "RetryableError"
        assert fetch.last_error.attempt == 2
        assert (await engine.get_step(task_uuid, "convert")).attempts == 1
        trail = await engine.get_transitions(fetch.step_uuid)
        waits = [t for t in trail if t.to_state == StepState.WAITING_FOR_RETRY]
        assert len(waits) == 2
        # Each retry was enqueued only once its backoff (10 ms, then 20 ms, ±10 %) had passed.
        for wait, base in zip(waits, [0.010, 0.020], strict=True):
            retry_at = wait.metadata["next_retry_at"]
            assert retry_at - wait.at >= base * 0.9 - 1e-9
            enqueue = next(
                t for t in trail if t.sort_key > wait.sort_key and t.to_state == StepState.ENQUEUED
            )
            assert enqueue.at >= retry_at


# --------------------------------------------------------------------------- order fulfillment


async def test_order_fulfillment_completes_with_derived_ids(
    clock: trio.testing.MockClock,
) -> None:
    async with engine_for("order_fulfillment") as engine:
        task_uuid = await run(engine, "ecommerce", "order_fulfillment", ORDER)
        assert (await engine.get_task(task_uuid)).state == TaskState.COMPLETE
        results = await engine.get_results(task_uuid)
    tracking = "SIM" + digest("ORD-1001", "shipment").upper()
    assert tracking == "SIMC2AD4B28113F"
    assert results == {
        "validate_order": {
            "order_id": "ORD-1001",
            "lines": [
                {
                    "sku": "WIDGET-1",
                    "quantity": 2,
                    "unit_price_cents": 1999,
                    "line_total_cents": 3998,
                },
                {
                    "sku": "GADGET-7",
                    "quantity": 1,
                    "unit_price_cents": 4950,
                    "line_total_cents": 4950,
                },
            ],
            "item_count": 3,
            "total_cents": 8948,
            "total": 89.48,
            "currency": "USD",
        },
        "reserve_inventory": {
            "reservation_id": "res_" + digest("ORD-1001", "reservation"),
            "reserved": {"WIDGET-1": 2, "GADGET-7": 1},
            "expires_in_minutes": 15,
        },
        "charge_payment": {
            "payment_id": "pay_" + digest("ORD-1001", 8948, length=16),
            "amount_cents": 8948,
            "currency": "USD",
            "gateway": "simulated",
            "status": "captured",
        },
        "ship_order": {
            "tracking_number": tracking,
            "carrier": "simulated",
            "weight_g": 2200,
            "reservation_id": "res_" + digest("ORD-1001", "reservation"),
            "payment_id": "pay_" + digest("ORD-1001", 8948, length=16),
        },
        "notify_customer": {
            "channel": "email",
            "recipient": "ada@example.com",
            "subject": "Your order ORD-1001 has shipped",
            "tracking_number": tracking,
            "message_id": "msg_" + digest("ORD-1001", tracking),
        },
    }


async def test_order_with_unknown_sku_is_blocked_with_a_dead_letter(
    clock: trio.testing.MockClock,
) -> None:
    bad = {**ORDER, "order_id": "ORD-BAD", "items": [{"sku": "NOPE-0", "quantity": 1, "price": 1}]}
    async with engine_for("order_fulfillment") as engine:
        task_uuid = await run(engine, "ecommerce", "order_fulfillment", bad)
        assert (await engine.get_task(task_uuid)).state == TaskState.BLOCKED_BY_FAILURES
        validate = await engine.get_step(task_uuid, "validate_order")
        assert validate.state == StepState.ERROR
        assert validate.attempts == 1
        assert validate.last_error is not None
        assert validate.last_error.error_type == "PermanentError"
        assert not validate.last_error.retryable
        assert "unknown SKU 'NOPE-0'" in validate.last_error.message
        others = [s for s in await engine.get_steps(task_uuid) if s.name != "validate_order"]
        assert {s.state for s in others} == {StepState.PENDING}
        [entry] = [e for e in await engine.dead_letters() if e.task_uuid == task_uuid]
    assert entry.reason == "permanent_failure"
    [failed] = entry.details["failed_steps"]
    assert failed["step"] == "validate_order"
    assert failed["error"]["error_type"] == "PermanentError"
    assert entry.details["blocked_steps"] == [
        "reserve_inventory",
        "charge_payment",
        "ship_order",
        "notify_customer",
    ]


async def test_order_with_a_wrong_price_fails_permanently(
    clock: trio.testing.MockClock,
) -> None:
    bad = {**ORDER, "items": [{"sku": "WIDGET-1", "quantity": 1, "price": 9.99}]}
    async with engine_for("order_fulfillment") as engine:
        task_uuid = await run(engine, "ecommerce", "order_fulfillment", bad)
        validate = await engine.get_step(task_uuid, "validate_order")
    assert validate.last_error is not None
    assert "price 9.99 does not match the catalog price 19.99" in validate.last_error.message


async def test_order_out_of_stock_retries_until_attempts_run_out(
    clock: trio.testing.MockClock,
) -> None:
    short = {**ORDER, "items": [{"sku": "GIZMO-3", "quantity": 5, "price": 5.25}]}
    async with engine_for("order_fulfillment") as engine:
        task_uuid = await run(engine, "ecommerce", "order_fulfillment", short)
        assert (await engine.get_task(task_uuid)).state == TaskState.BLOCKED_BY_FAILURES
        reserve = await engine.get_step(task_uuid, "reserve_inventory")
        assert reserve.state == StepState.ERROR
        assert reserve.attempts == 5  # the step's retry.max_attempts
        assert reserve.last_error is not None
        assert reserve.last_error.error_type == "RetryableError"
        assert "only 3 of GIZMO-3 in stock" in reserve.last_error.message
        # The payment branch does not depend on the reservation: it still ran.
        assert (await engine.get_step(task_uuid, "charge_payment")).state == StepState.COMPLETE
        trail = await engine.get_transitions(reserve.step_uuid)
        waits = [t for t in trail if t.to_state == StepState.WAITING_FOR_RETRY]
        assert len(waits) == 4
        for wait in waits:  # retry_after = restock_check_seconds (5 s)
            assert wait.metadata["next_retry_at"] - wait.at >= 5 * 0.9


async def test_operator_completes_a_failed_reservation_and_the_order_ships(
    clock: trio.testing.MockClock,
) -> None:
    short = {**ORDER, "items": [{"sku": "GIZMO-3", "quantity": 5, "price": 5.25}]}
    async with engine_for("order_fulfillment") as engine:
        task_uuid = await run(engine, "ecommerce", "order_fulfillment", short)
        [entry] = [e for e in await engine.dead_letters() if e.task_uuid == task_uuid]
        manual = {"reservation_id": "res_manual", "reserved": {"GIZMO-3": 5}}
        await engine.complete_step(task_uuid, "reserve_inventory", manual, note="backorder")
        task = await engine.wait_for_task(task_uuid, timeout=600)
        assert task.state == TaskState.COMPLETE
        results = await engine.get_results(task_uuid)
        assert results["ship_order"]["reservation_id"] == "res_manual"  # type: ignore[index]
        resolved = await engine.resolve_dead_letter(entry.entry_id, resolution="backordered")
        assert resolved.status == "resolved"
        assert [e for e in await engine.dead_letters() if e.task_uuid == task_uuid] == []


async def test_order_over_the_card_limit_is_declined_except_in_test_environment(
    clock: trio.testing.MockClock,
) -> None:
    big = {
        **ORDER,
        "order_id": "ORD-BIG",
        "items": [
            {"sku": "WIDGET-1", "quantity": 100, "price": 19.99},
            {"sku": "GADGET-7", "quantity": 1, "price": 49.50},
        ],
    }
    async with engine_for("order_fulfillment") as engine:
        task_uuid = await run(engine, "ecommerce", "order_fulfillment", big)
        assert (await engine.get_task(task_uuid)).state == TaskState.BLOCKED_BY_FAILURES
        charge = await engine.get_step(task_uuid, "charge_payment")
        assert charge.last_error is not None
        assert charge.last_error.error_type == "PermanentError"
        assert "card declined: 2048.50 USD exceeds the limit of 2000.00" in (
            charge.last_error.message
        )
    async with engine_for("order_fulfillment", environment="test") as engine:
        task_uuid = await run(engine, "ecommerce", "order_fulfillment", big)
        assert (await engine.get_task(task_uuid)).state == TaskState.COMPLETE
        charge = await engine.get_step(task_uuid, "charge_payment")
        assert charge.results is not None
        assert charge.results["gateway"] == "sandbox"


# --------------------------------------------------------------------------- engine bug


def slow_sync_square(ctx: tasker_trio.StepContext) -> dict[str, Any]:
    """A plain (thread-run) handler whose work takes 50 ms of real time."""
    time.sleep(0.05)
    return {"value": ctx.get_input("even_number") ** 2}


async def test_sync_handler_is_not_timed_out_while_autojump_clock_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """ENGINE BUG: under ``MockClock(autojump_threshold=0)`` a sync handler times out.

    The worker runs a sync handler with ``trio.to_thread.run_sync`` inside
    ``trio.move_on_after(timeout_seconds)``. While the thread works, every Trio task is
    blocked, so the autojump clock leaps from deadline to deadline (pollers, lease
    renewals) and reaches the 30 s step timeout within a few milliseconds of real time:
    the attempt is recorded as ``Timeout`` although the handler needed 50 ms. The same
    happens, at random, to the example handlers (a thread that starts slowly); expected:
    the virtual clock does not advance past a step's timeout while its handler's thread is
    still running, so tests of sync handlers under autojump are deterministic.
    """
    template = tasker_trio.TaskTemplate.from_yaml(
        "name: slow\nnamespace_name: examples\nversion: 1.0.0\n"
        "steps:\n  - name: square\n    handler: {callable: slow_square}\n"
    )
    async with tasker_trio.open_engine(template, handlers={"slow_square": slow_sync_square}) as e:
        submission = await e.submit("examples", "slow", {"even_number": 6})
        task = await e.wait_for_task(submission.task_uuid, timeout=600)
        step = await e.get_step(submission.task_uuid, "square")
        error = step.last_error
        assert error is None, f"attempt {error.attempt}: {error.error_type}: {error.message}"
        assert task.state == TaskState.COMPLETE
        assert step.results == {"value": 36}


# --------------------------------------------------------------------------- docs


def _python_blocks(doc: str) -> list[str]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_running_guide_embedding_example_runs() -> None:
    """The complete example of docs/running.md runs as written and prints what it says."""
    [example] = [b for b in _python_blocks("running.md") if "trio.run(main)" in b]
    done = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "complete",
        "{'shout': {'text': 'HELLO, TRIO!'}, 'count': {'letters': 9}}",
    ]


async def test_handler_guide_examples_work_as_described(clock: trio.testing.MockClock) -> None:
    """The code of docs/handlers.md runs, and its handlers behave as the guide says."""
    namespace: dict[str, Any] = {"__name__": "handlers_doc"}
    for block in _python_blocks("handlers.md"):  # later blocks use earlier ones
        exec(compile(block, "docs/handlers.md", "exec"), namespace)
    template = tasker_trio.TaskTemplate.from_yaml(
        """
name: guide
namespace_name: docs
version: 1.0.0
steps:
  - name: greet
    handler: {callable: docs.greet}
  - name: shout
    dependencies: [greet]
    handler: {callable: shout}
  - name: quote
    handler: {callable: fetch_quote}
  - name: price
    handler: {callable: price_order}
  - name: rate
    handler: {callable: rate, initialization: {simulated_status: 503}}
    retry: {max_attempts: 2, max_backoff_ms: 1000}
"""
    )
    handlers = {
        "shout": namespace["Shout"],
        "fetch_quote": namespace["fetch_quote"],
        "price_order": namespace["price_order"],
        "rate": namespace["call_rate_service"],
    }
    async with tasker_trio.open_engine(template, handlers=handlers, poll_interval=5.0) as engine:
        context = {"who": "trio", "items": [{"sku": "NOPE", "quantity": 1}]}
        submission = await engine.submit("docs", "guide", context)
        task = await engine.wait_for_task(submission.task_uuid, timeout=600)
        steps = {s.name: s for s in await engine.get_steps(submission.task_uuid)}
    assert task.state == TaskState.BLOCKED_BY_FAILURES
    assert steps["shout"].results == {"text": "HELLO TRIO!"}
    assert steps["quote"].results == {"quote": 42, "attempt": 1}
    price_error = steps["price"].last_error
    assert price_error is not None
    assert (price_error.error_type, steps["price"].attempts) == ("PermanentError", 1)
    rate_error = steps["rate"].last_error
    assert rate_error is not None
    assert (rate_error.error_type, rate_error.retry_after) == ("RetryableError", 2.0)
    assert steps["rate"].attempts == 2
