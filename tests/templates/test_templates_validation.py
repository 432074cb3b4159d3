"""Every validation rule reports the exact file, step and field — and all problems at once."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tasker_trio.errors import TemplateCycleError, TemplateError, TemplateValidationError
from tasker_trio.templates import TaskTemplate

FILE = "flows/t.yaml"


def step(name: str, *deps: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, "handler": {"callable": f"pkg.mod:{name}"}}
    if deps:
        data["dependencies"] = list(deps)
    data.update(extra)
    return data


def doc(*steps: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t",
        "namespace_name": "ns",
        "version": "1.0.0",
        "steps": list(steps) or [step("a")],
    }
    base.update(overrides)
    return base


def problems(data: dict[str, Any]) -> list[tuple[str | None, str | None, str]]:
    """(step, field, reason) of every problem; also checks each names the file."""
    with pytest.raises(TemplateValidationError) as info:
        TaskTemplate.from_yaml(yaml.safe_dump(data, sort_keys=False), file=FILE)
    assert info.value.file == FILE
    assert all(e.file == FILE for e in info.value.errors)
    return [(e.step, e.field, e.reason) for e in info.value.errors]


def only(data: dict[str, Any]) -> tuple[str | None, str | None, str]:
    found = problems(data)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("field", ["name", "namespace_name", "version"])
def test_required_template_fields(field: str) -> None:
    data = doc()
    del data[field]
    assert only(data) == (None, field, "is required")


@pytest.mark.parametrize(
    "namespace", ["Orders", "1orders", "orders-eu", "a" * 30, "_x", "or ders", ""]
)
def test_bad_namespace(namespace: str) -> None:
    found_step, field, _ = only(doc(namespace_name=namespace))
    assert (found_step, field) == (None, "namespace_name")


@pytest.mark.parametrize("namespace", ["a", "orders", "order_fulfillment_2", "a" * 29])
def test_good_namespace(namespace: str) -> None:
    TaskTemplate.from_json(doc(namespace_name=namespace))


@pytest.mark.parametrize("version", ["1", "1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0.0"])
def test_bad_version(version: str) -> None:
    assert only(doc(version=version))[:2] == (None, "version")


def test_unquoted_float_version_says_to_quote_it() -> None:
    _, field, reason = only(doc(version=1.0))
    assert field == "version"
    assert 'quote it: version: "1.0"' in reason


@pytest.mark.parametrize("version", ["0.0.1", "1.10.0", "2.0.0-rc.1", "1.0.0+build.5"])
def test_good_version(version: str) -> None:
    TaskTemplate.from_json(doc(version=version))


def test_bad_identity_strategy() -> None:
    assert only(doc(identity_strategy="sometimes"))[:2] == (None, "identity_strategy")


# --------------------------------------------------------------------------- steps


def test_missing_step_name_and_handler() -> None:
    found = problems(doc({"handler": {"callable": "m:f"}}, {"name": "b"}))
    assert found == [
        (None, "steps[0].name", "is required"),
        ("b", "handler", "is required"),
    ]


def test_missing_callable() -> None:
    assert only(doc({"name": "a", "handler": {"initialization": {}}})) == (
        "a",
        "handler.callable",
        "is required",
    )


@pytest.mark.parametrize("callable_ref", ["has space", "1abc", "pkg/mod:f", "-x"])
def test_implausible_callable(callable_ref: str) -> None:
    assert only(doc(step("a", handler={"callable": callable_ref})))[:2] == (
        "a",
        "handler.callable",
    )


@pytest.mark.parametrize(
    "callable_ref", ["pkg.mod:func", "pkg.mod.Class", "registered_name", "Ruby::Handler"]
)
def test_plausible_callable(callable_ref: str) -> None:
    TaskTemplate.from_json(doc(step("a", handler={"callable": callable_ref})))


def test_duplicate_step_name() -> None:
    assert only(doc(step("a"), step("b"), step("a"))) == (
        "a",
        "steps[2].name",
        "duplicate step name (first defined as steps[0])",
    )


def test_step_named_all_is_reserved() -> None:
    assert only(doc(step("ALL")))[:2] == ("ALL", "name")


def test_unknown_dependency_suggests_a_name() -> None:
    assert only(doc(step("fetch"), step("b", "fetc"))) == (
        "b",
        "dependencies",
        "unknown dependency 'fetc' (did you mean 'fetch'?)",
    )


def test_self_dependency() -> None:
    assert only(doc(step("a", "a"))) == ("a", "dependencies", "a step cannot depend on itself")


def test_both_dependencies_and_depends_on() -> None:
    assert only(doc(step("a"), step("b", "a", depends_on=["a"]))) == (
        "b",
        "depends_on",
        "give dependencies or its alias depends_on, not both",
    )


def test_dependencies_must_be_a_list_of_names() -> None:
    assert only(doc(step("a"), step("b", dependencies="a")))[:2] == ("b", "dependencies")


def test_decision_step_without_dependency() -> None:
    assert only(doc(step("route", type="decision"))) == (
        "route",
        "dependencies",
        "a decision step needs at least one dependency (its parent)",
    )


def test_bad_step_type() -> None:
    assert only(doc(step("a", type="fancy")))[:2] == ("a", "type")


@pytest.mark.parametrize("timeout", [0, -1, "10", True, float("inf")])
def test_bad_timeout(timeout: object) -> None:
    assert only(doc(step("a", timeout_seconds=timeout)))[:2] == ("a", "timeout_seconds")


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": 101}, "retry.max_attempts"),
        ({"max_attempts": "3"}, "retry.max_attempts"),
        ({"limit": 0}, "retry.max_attempts"),
        ({"limit": 2, "max_attempts": 2}, "retry.limit"),
        ({"retryable": "yes"}, "retry.retryable"),
        ({"backoff": "quadratic"}, "retry.backoff"),
        ({"backoff_base_ms": -1}, "retry.backoff_base_ms"),
        ({"max_backoff_ms": 1.5}, "retry.max_backoff_ms"),
    ],
)
def test_bad_retry(retry: dict[str, Any], field: str) -> None:
    assert only(doc(step("a", retry=retry)))[:2] == ("a", field)


def test_retry_error_comes_from_the_policy_validator() -> None:
    assert only(doc(step("a", retry={"max_attempts": 0})))[2] == (
        "max_attempts must be in 1..100, got 0"
    )


@pytest.mark.parametrize(
    ("lifecycle", "field"),
    [
        ({"max_duration_minutes": 0}, "lifecycle.max_duration_minutes"),
        ({"max_waiting_for_retry_minutes": 10081}, "lifecycle.max_waiting_for_retry_minutes"),
        ({"staleness_action": "explode"}, "lifecycle.staleness_action"),
        ({"auto_fail_on_timeout": "yes"}, "lifecycle.auto_fail_on_timeout"),
        ("soon", "lifecycle"),
    ],
)
def test_bad_lifecycle(lifecycle: object, field: str) -> None:
    assert only(doc(lifecycle=lifecycle))[:2] == (None, field)


def test_bad_environment_override() -> None:
    envs = {"test": {"steps": [{"name": "ghost", "timeout_seconds": 5}, {"timeout_seconds": 1}]}}
    assert problems(doc(environments=envs)) == [
        (None, "environments.test.steps[1].name", "is required"),
        (
            "ghost",
            "environments.test.steps[0].name",
            "environment 'test' overrides unknown step 'ghost'",
        ),
    ]


def test_bad_environment_override_values() -> None:
    envs = {"test": {"steps": [{"name": "a", "timeout_seconds": 0, "retry": {"backoff": 1}}]}}
    assert [p[:2] for p in problems(doc(environments=envs))] == [
        ("a", "environments.test.steps[0].retry.backoff"),
        ("a", "environments.test.steps[0].timeout_seconds"),
    ]


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"type": "nope"}, "input_schema.type"),
        ({"properties": {"qty": {"minimum": "one"}}}, "input_schema.properties.qty.minimum"),
        ({"required": "order_id"}, "input_schema.required"),
        ("object", "input_schema"),
        ({"$schema": "https://example.com/my-draft"}, "input_schema.$schema"),
        ({"$ref": "https://example.com/s.json"}, "input_schema.$ref"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "input_schema.properties.a.$ref"),
    ],
)
def test_invalid_input_schema(schema: object, field: str) -> None:
    assert only(doc(input_schema=schema))[:2] == (None, field)


def test_local_references_are_accepted() -> None:
    schema = {
        "$defs": {"item": {"type": "object"}, "a/b": {"type": "string"}},
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
            "odd": {"$ref": "#/$defs/a~1b"},
            "self": {"$ref": "#"},
        },
    }
    TaskTemplate.from_json(doc(input_schema=schema))


# --------------------------------------------------------------------------- cycles


def test_cycle_reports_its_path() -> None:
    with pytest.raises(TemplateValidationError) as info:
        TaskTemplate.from_json(doc(step("a", "c"), step("b", "a"), step("c", "b")), file=FILE)
    (error,) = info.value.errors
    assert isinstance(error, TemplateCycleError)
    assert error.cycle == ("a", "b", "c", "a")
    assert (error.file, error.step, error.field) == (FILE, "a", "dependencies")
    assert "dependency cycle: a -> b -> c -> a" in str(info.value)


def test_two_separate_cycles_are_both_reported() -> None:
    data = doc(step("a", "b"), step("b", "a"), step("c", "d"), step("d", "c"), step("e"))
    cycles = [e.cycle for e in _errors(data) if isinstance(e, TemplateCycleError)]
    assert cycles == [("a", "b", "a"), ("c", "d", "c")]


def _errors(data: dict[str, Any]) -> tuple[TemplateError, ...]:
    with pytest.raises(TemplateValidationError) as info:
        TaskTemplate.from_json(data)
    return info.value.errors


# --------------------------------------------------------------------------- all at once


def test_every_problem_is_reported_at_once() -> None:
    data = doc(
        step("a", "ghost", retry={"max_attempts": 0}),
        step("a", type="decision"),
        namespace_name="Bad",
        version="1.0",
    )
    found = problems(data)
    assert {(s, f) for s, f, _ in found} == {
        (None, "namespace_name"),
        (None, "version"),
        ("a", "retry.max_attempts"),
        ("a", "steps[1].name"),
        ("a", "dependencies"),
    }
    assert len(found) == 6  # unknown dependency and decision without parent share a field
    text = str(
        TemplateValidationError(
            [TemplateError(r, file=FILE, step=s, field=f) for s, f, r in found], file=FILE
        )
    )
    assert text.startswith("invalid template (6 problems):")


def test_validation_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="namespace"):
        TaskTemplate.from_json(doc(namespace_name="Bad"))
