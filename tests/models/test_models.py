"""Models: named constructors, validation, JSON round trips, malformed data, the audit log."""

from __future__ import annotations

import json

import attrs
import pytest

from tasker_trio.errors import InvalidTransition, MalformedData
from tasker_trio.models import (
    BackoffKind,
    RetryPolicy,
    StepEdge,
    StepError,
    StepExecutionResult,
    StepMessage,
    StepResultMessage,
    Task,
    TaskFinalizationMessage,
    TaskRequest,
    TaskRequestMessage,
    TransitionLog,
    WorkflowStep,
    canonical_json,
    identity_hash,
    worker_queue,
)
from tasker_trio.models.codec import dumps_compact, json_problem
from tasker_trio.state_machine import StepEvent, StepFacts, StepState, TaskEvent, TaskState


def sample_models() -> list[object]:
    request = TaskRequest.create(
        "shop",
        "order",
        {"b": [1, 2], "a": {"x": None}},
        priority=5,
        tags=("vip",),
        idempotency_key="k-1",
    )
    task = Task.from_request(request, version="1.2.0", identity_hash="f" * 64, now=3.5)
    error = StepError(
        error_type="ValueError",
        message="bad",
        retryable=True,
        retry_after=2.0,
        traceback="Traceback...",
        attempt=2,
        execution_time_ms=12.5,
    )
    step = WorkflowStep(
        step_uuid="s1",
        task_uuid=task.task_uuid,
        name="charge",
        namespace="shop",
        handler_callable="shop.handlers:charge",
        step_config={"k": 1},
        retry=RetryPolicy(backoff=BackoffKind.FIBONACCI, max_attempts=5),
        state=StepState.WAITING_FOR_RETRY,
        attempts=2,
        next_retry_at=9.0,
        last_error=error,
    )
    return [
        request,
        task,
        step,
        StepEdge(task_uuid=task.task_uuid, from_step_uuid="s0", to_step_uuid="s1"),
        error,
        StepExecutionResult.succeeded(task_uuid="t", step_uuid="s", attempt=1, result={"v": 36}),
        StepExecutionResult.failed(task_uuid="t", step_uuid="s", error=error, worker_id="w1"),
        StepMessage(
            task_uuid="t",
            step_uuid="s",
            step_name="n",
            namespace="shop",
            attempt=1,
            correlation_id="c",
        ),
        StepResultMessage(
            task_uuid="t", step_uuid="s", attempt=1, success=True, correlation_id="c"
        ),
        TaskRequestMessage(request=request),
        TaskFinalizationMessage(task_uuid="t", correlation_id="c"),
    ]


@pytest.mark.parametrize("model", sample_models(), ids=lambda m: type(m).__name__)
def test_json_round_trip_through_text(model: object) -> None:
    data = model.to_json()  # type: ignore[attr-defined]
    text = json.dumps(data)  # plain JSON: enums are values, tuples are lists
    assert type(model).from_json_text(text) == model  # type: ignore[attr-defined]


def test_enums_are_stored_as_plain_values() -> None:
    step = next(m for m in sample_models() if isinstance(m, WorkflowStep))
    data = step.to_json()
    assert type(data["state"]) is str
    assert data["state"] == "waiting_for_retry"
    assert type(data["retry"]["backoff"]) is str


def test_models_are_frozen() -> None:
    request = TaskRequest.create("ns", "n")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.priority = 3  # type: ignore[misc]


def test_malformed_message_lists_every_problem_with_its_path() -> None:
    with pytest.raises(MalformedData) as info:
        StepMessage.from_json({"task_uuid": 7, "step_uuid": "s", "attempt": "1"})
    problems = " | ".join(info.value.problems)
    assert "$.task_uuid" in problems
    assert "$.attempt" in problems
    assert "$.step_name" in problems
    assert info.value.kind == "StepMessage"


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", "null", '{"success": "false"}'])
def test_bad_text_is_malformed_data_not_a_crash(payload: str) -> None:
    with pytest.raises(MalformedData):
        StepResultMessage.from_json_text(payload)


def test_bools_are_not_coerced_from_strings() -> None:
    data = sample_models()[8].to_json()  # type: ignore[attr-defined]
    data["success"] = "false"
    with pytest.raises(MalformedData, match=r"\$\.success"):
        StepResultMessage.from_json(data)


def test_priority_and_attempt_limits_are_enforced() -> None:
    with pytest.raises(ValueError, match="priority"):
        TaskRequest.create("ns", "n", priority=101)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(MalformedData, match=r"max_attempts must be in 1\.\.100"):
        RetryPolicy.from_json({"max_attempts": 500})


def test_result_success_and_error_are_consistent() -> None:
    error = StepError(error_type="E", message="m", attempt=1)
    with pytest.raises(ValueError, match="successful result carries no error"):
        StepExecutionResult(task_uuid="t", step_uuid="s", attempt=1, success=True, error=error)
    with pytest.raises(ValueError, match="must carry its error"):
        StepExecutionResult(task_uuid="t", step_uuid="s", attempt=1, success=False)
    failed = StepExecutionResult.failed(task_uuid="t", step_uuid="s", error=error)
    assert failed.attempt == 1
    assert not failed.success


def test_task_from_request_carries_the_request() -> None:
    request = TaskRequest.create("shop", "order", {"id": 1}, priority=7, reason="test")
    task = Task.from_request(request, version="2.0.0", identity_hash="h", now=1.0)
    assert task.state == TaskState.PENDING
    assert (task.priority, task.reason, task.correlation_id) == (7, "test", request.correlation_id)
    assert task.template_identifier == "shop/order@2.0.0"


def test_identity_hash_uses_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'
    one = identity_hash("ns/n@1.0.0", context={"a": 1, "b": 2})
    assert one == identity_hash("ns/n@1.0.0", context={"b": 2, "a": 1})
    assert one != identity_hash("ns/n@1.0.1", context={"a": 1, "b": 2})
    assert one != identity_hash("ns/n@1.0.0", context={"a": 1, "b": 3})
    keyed = identity_hash("ns/n@1.0.0", context={"a": 1}, key="k")
    assert keyed == identity_hash("ns/n@1.0.0", context={"other": 2}, key="k")
    assert len(one) == 64


def test_worker_queue_name() -> None:
    assert worker_queue("shop") == "worker_shop_queue"


def test_transition_log_records_the_audit_trail() -> None:
    log = TransitionLog()
    log.apply_task("t", TaskEvent.START, at=1.0, processor_id="orch-1")
    log.apply_task("t", TaskEvent.READY_STEPS_FOUND, at=2.0, metadata={"ready": ["a"]})
    log.apply_step("s", StepEvent.ENQUEUE, at=2.0, facts=StepFacts(parents_satisfied=True))
    history = log.history("t")
    assert [(r.from_state, r.to_state, r.sort_key, r.most_recent) for r in history] == [
        ("pending", "initializing", 1, False),
        ("initializing", "enqueuing_steps", 2, True),
    ]
    assert history[0].processor_id == "orch-1"
    assert history[1].metadata == {"ready": ["a"]}
    assert log.state_of_task("t") == TaskState.ENQUEUING_STEPS
    assert log.state_of_step("s") == StepState.ENQUEUED
    assert log.state_of_step("never-seen") == StepState.PENDING


def test_transition_log_refuses_illegal_events_without_changing() -> None:
    log = TransitionLog()
    log.apply_step("s", StepEvent.ENQUEUE, at=1.0)
    with pytest.raises(InvalidTransition):
        log.apply_step("s", StepEvent.COMPLETE, at=2.0)
    with pytest.raises(InvalidTransition, match="step_is_ready"):
        log.apply_step("other", StepEvent.ENQUEUE, at=2.0, facts=StepFacts(parents_satisfied=False))
    assert len(log.records()) == 1


def test_json_problem_names_the_first_value_that_is_not_json() -> None:
    loop: dict[str, object] = {"a": 1}
    loop["self"] = {"again": loop}
    assert json_problem({"a": [1, 2.5, True, None, "x", (3, 4)], "big": 2**80}) is None
    assert json_problem({"a": [{"b": float("nan")}]}) == (
        "$.a[0].b",
        "nan is not a JSON number (JSON has no NaN or infinity)",
    )
    assert json_problem({"a": {None: 1}}) == (
        "$.a",
        "key None is not a string (JSON keys are strings)",
    )
    assert json_problem({"at": object()}) == ("$.at", "a object is not JSON data")
    assert json_problem(loop) == ("$.self.again", "it contains itself (a circular reference)")


@pytest.mark.parametrize(
    "value",
    [{"big": 2**70, "neg": -(2**65)}, {1: "one", "text": "caf\u00e9"}, [0.1, -0.0, 1e-7, 2**63]],
    ids=["big-ints", "int-key", "floats"],
)
def test_compact_json_reads_back_as_the_standard_library_writes_it(value: object) -> None:
    text = dumps_compact(value)
    assert " " not in text.replace("caf\u00e9", "")
    assert json.loads(text) == json.loads(json.dumps(value))
