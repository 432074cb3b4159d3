"""Loading templates: the examples, tasker-core compatibility, defaults, aliases, warnings,
YAML and file errors, directories, and JSON round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tasker_trio.errors import TemplateError, TemplateValidationError
from tasker_trio.models.policy import BackoffKind, RetryPolicy, StepType
from tasker_trio.templates import (
    IdentityStrategy,
    StalenessAction,
    TaskTemplate,
    load_template,
    load_templates,
    template_files,
    validate_paths,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "templates"


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t",
        "namespace_name": "ns",
        "version": "1.0.0",
        "steps": [{"name": "a", "handler": {"callable": "pkg.mod:a"}}],
    }
    base.update(overrides)
    return base


def load(data: dict[str, Any]) -> TaskTemplate:
    return TaskTemplate.from_yaml(yaml.safe_dump(data, sort_keys=False), file="t.yaml")


# --------------------------------------------------------------------------- examples

EXPECTED_SHAPES = {
    "linear.yaml": (
        "examples/linear_workflow@1.0.0",
        {
            "linear_step_1": (),
            "linear_step_2": ("linear_step_1",),
            "linear_step_3": ("linear_step_2",),
            "linear_step_4": ("linear_step_3",),
        },
    ),
    "diamond.yaml": (
        "examples/diamond_workflow@1.0.0",
        {
            "start": (),
            "branch_b": ("start",),
            "branch_c": ("start",),
            "end": ("branch_b", "branch_c"),
        },
    ),
    "complex_dag.yaml": (
        "examples/complex_dag_workflow@1.0.0",
        {
            "init": (),
            "left": ("init",),
            "right": ("init",),
            "validate": ("left", "right"),
            "transform": ("left",),
            "analyze": ("right",),
            "finalize": ("validate", "transform", "analyze"),
        },
    ),
    "tree.yaml": (
        "examples/tree_workflow@1.0.0",
        {
            "root": (),
            "branch_left": ("root",),
            "branch_right": ("root",),
            "leaf_d": ("branch_left",),
            "leaf_e": ("branch_left",),
            "leaf_f": ("branch_right",),
            "leaf_g": ("branch_right",),
            "convergence": ("leaf_d", "leaf_e", "leaf_f", "leaf_g"),
        },
    ),
    "order_fulfillment.yaml": (
        "ecommerce/order_fulfillment@1.0.0",
        {
            "validate_order": (),
            "reserve_inventory": ("validate_order",),
            "charge_payment": ("validate_order",),
            "ship_order": ("reserve_inventory", "charge_payment"),
            "notify_customer": ("ship_order",),
        },
    ),
    "flaky.yaml": (
        "examples/flaky_workflow@1.0.0",
        {"fetch_rate": (), "convert": ("fetch_rate",)},
    ),
}


def test_every_example_is_checked() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == set(EXPECTED_SHAPES)


@pytest.mark.parametrize("file_name", sorted(EXPECTED_SHAPES))
def test_example_loads_with_its_shape(file_name: str) -> None:
    identifier, shape = EXPECTED_SHAPES[file_name]
    template = load_template(EXAMPLES / file_name)
    assert template.identifier == identifier
    assert {s.name: s.dependencies for s in template.steps} == shape
    assert template.warnings == ()
    assert template.source_file == str(EXAMPLES / file_name)
    for step in template.steps:
        assert ":" in step.handler.callable


def test_order_fulfillment_details() -> None:
    template = load_template(EXAMPLES / "order_fulfillment.yaml")
    assert template.namespace_name == "ecommerce"
    assert template.lifecycle is not None
    assert template.lifecycle.staleness_action is StalenessAction.DLQ
    assert template.lifecycle.max_duration_minutes == 60
    assert set(template.input_schema["required"]) == {"order_id", "customer_email", "items"}  # type: ignore[index]
    assert template.step("validate_order").retry.retryable is False
    assert template.step("notify_customer").retry.backoff is BackoffKind.FIBONACCI
    assert template.step("charge_payment").timeout_seconds == 45
    assert "test" in template.environments


# --------------------------------------------------------------------------- defaults, aliases


def test_defaults() -> None:
    template = load(doc())
    step = template.step("a")
    assert template.identity_strategy is IdentityStrategy.STRICT
    assert template.description is None
    assert template.metadata == {}
    assert template.input_schema is None
    assert template.lifecycle is None
    assert template.environments == {}
    assert step.step_type is StepType.STANDARD
    assert step.retry == RetryPolicy()
    assert step.retry.max_attempts == 3
    assert step.retry.backoff is BackoffKind.EXPONENTIAL
    assert (step.retry.backoff_base_ms, step.retry.max_backoff_ms) == (1000, 30000)
    assert step.timeout_seconds == 30
    assert step.dependencies == ()
    assert step.handler.initialization == {}


def test_no_steps_is_a_valid_template() -> None:
    assert load(doc(steps=[])).steps == ()
    data = doc()
    del data["steps"]
    assert load(data).topological_order() == ()


@pytest.mark.parametrize("strategy", list(IdentityStrategy))
def test_identity_strategy_is_read(strategy: IdentityStrategy) -> None:
    assert load(doc(identity_strategy=strategy.value)).identity_strategy is strategy


def test_depends_on_is_an_alias_of_dependencies() -> None:
    steps = [
        {"name": "a", "handler": {"callable": "m:a"}},
        {"name": "b", "handler": {"callable": "m:b"}, "depends_on": ["a"]},
    ]
    assert load(doc(steps=steps)).parents_of("b") == ("a",)


def test_retry_limit_and_step_type_are_tasker_core_aliases() -> None:
    steps = [
        {"name": "a", "handler": {"callable": "m:a"}},
        {
            "name": "b",
            "handler": {"callable": "m:b"},
            "dependencies": ["a"],
            "step_type": "decision",
            "retry": {"limit": 7},
        },
    ]
    step = load(doc(steps=steps)).step("b")
    assert step.retry.max_attempts == 7
    assert step.step_type is StepType.DECISION


def test_tasker_core_style_template_loads_unchanged() -> None:
    text = """
name: payment_flow
namespace_name: payments_core
version: 1.2.0
description: "tasker-core shaped"
metadata:
  author: someone
  tags: [a, b]
  documentation_url:
  created_at: 2025-08-29T00:00:00Z
task_handler:
  callable: Payments::TaskHandler
  initialization: {mode: live}
system_dependencies: {primary: default, secondary: []}
domain_events: []
lifecycle:
  max_waiting_for_retry_minutes: 5
  auto_dlq_on_timeout: true
steps:
  - name: authorize
    handler:
      callable: payments_rs::step_handlers::Authorize
      initialization: {gateway: test}
    system_dependency:
    dependencies: []
    retry: {retryable: true, limit: 3, backoff: exponential, backoff_base_ms: 1000}
    timeout_seconds: 45
    publishes_events: []
  - name: split
    type: batchable
    dependencies: [authorize]
    handler: {callable: payments.batches.Split}
    batch_config: {batch_size: 100, worker_template: settle}
  - name: settle
    type: batch_worker
    dependencies: [split]
    handler: {callable: payments.batches.Settle}
environments:
  development:
    task_handler:
      initialization: {debug: true}
    steps:
      - name: authorize
        timeout_seconds: 60
"""
    template = TaskTemplate.from_yaml(text, file="core.yaml")
    assert template.warnings == ()
    assert template.metadata["created_at"] == "2025-08-29T00:00:00Z"  # stays a string
    assert template.extensions["task_handler"]["callable"] == "Payments::TaskHandler"
    assert template.step("authorize").extensions["publishes_events"] == []
    assert template.step("split").extensions["batch_config"]["worker_template"] == "settle"
    assert template.lifecycle is not None
    assert template.lifecycle.auto_dlq_on_timeout is True
    dev = template.for_environment("development")
    assert dev.extensions["task_handler"]["initialization"] == {"mode": "live", "debug": True}
    assert dev.step("authorize").timeout_seconds == 60
    assert TaskTemplate.from_json(template.to_json()) == template


# --------------------------------------------------------------------------- warnings


def test_unknown_keys_are_warnings_with_location() -> None:
    steps = [{"name": "a", "handler": {"callable": "m:a", "init": {}}, "dependecies": []}]
    template = load(doc(steps=steps, colour="blue", lifecycle={"max_duration": 5}))
    found = {(w.step, w.field) for w in template.warnings}
    assert found == {
        (None, "colour"),
        ("a", "dependecies"),
        ("a", "handler.init"),
        (None, "lifecycle.max_duration"),
    }
    typo = next(w for w in template.warnings if w.field == "dependecies")
    assert "did you mean 'dependencies'" in typo.message
    assert str(typo).startswith("t.yaml: step 'a': field 'dependecies':")


def test_duplicate_dependency_is_a_warning_and_deduplicated() -> None:
    steps = [
        {"name": "a", "handler": {"callable": "m:a"}},
        {"name": "b", "handler": {"callable": "m:b"}, "dependencies": ["a", "a"]},
    ]
    template = load(doc(steps=steps))
    assert template.parents_of("b") == ("a",)
    assert [(w.step, w.field) for w in template.warnings] == [("b", "dependencies")]


# --------------------------------------------------------------------------- YAML and files


def test_yaml_syntax_error_names_file_and_line() -> None:
    with pytest.raises(TemplateError) as info:
        TaskTemplate.from_yaml("name: x\nsteps: [a, b\nversion: 1.0.0\n", file="broken.yaml")
    assert info.value.file == "broken.yaml"
    assert "invalid YAML at line 3" in str(info.value)


def test_duplicate_yaml_key_is_an_error_with_line() -> None:
    with pytest.raises(TemplateError, match=r"line 3, column 1: found duplicate key 'name'"):
        TaskTemplate.from_yaml("name: a\nversion: 1.0.0\nname: b\n", file="dup.yaml")


@pytest.mark.parametrize(("text", "reason"), [("", "empty"), ("- a\n- b\n", "got a list")])
def test_not_a_mapping(text: str, reason: str) -> None:
    with pytest.raises(TemplateError, match=reason) as info:
        TaskTemplate.from_yaml(text)
    assert info.value.file == "<string>"


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TemplateError) as info:
        load_template(missing)
    assert info.value.file == str(missing)
    assert info.value.reason == "file not found"


def test_loading_a_directory_recursively(tmp_path: Path) -> None:
    (tmp_path / "ns" / "flow").mkdir(parents=True)
    (tmp_path / "ns" / "flow" / "1.0.0.yaml").write_text(yaml.safe_dump(doc(name="flow")))
    (tmp_path / "ns" / "flow" / "2.0.0.yml").write_text(
        yaml.safe_dump(doc(name="flow", version="2.0.0"))
    )
    (tmp_path / "README.md").write_text("not a template")
    templates = load_templates([tmp_path])
    assert load_templates(tmp_path) == templates  # a single path works too
    assert [t.identifier for t in templates] == ["ns/flow@1.0.0", "ns/flow@2.0.0"]
    assert [p.name for p in template_files(tmp_path)] == ["1.0.0.yaml", "2.0.0.yml"]


def test_load_templates_reports_every_failing_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc(namespace_name="Bad")))
    (tmp_path / "b.yaml").write_text("steps: [\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc()))
    with pytest.raises(TemplateValidationError) as info:
        load_templates([tmp_path])
    assert [Path(e.file or "").name for e in info.value.errors] == ["a.yaml", "b.yaml"]


def test_validate_paths_pairs_each_file_with_its_outcome(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(doc()))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc(version="one")))
    empty = tmp_path / "empty"
    empty.mkdir()
    results = validate_paths([tmp_path / "bad.yaml", tmp_path / "good.yaml", empty])
    assert [(p.name, type(o).__name__) for p, o in results] == [
        ("bad.yaml", "TemplateValidationError"),
        ("good.yaml", "TaskTemplate"),
        ("empty", "TemplateError"),
    ]


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("file_name", sorted(EXPECTED_SHAPES))
def test_json_round_trip(file_name: str) -> None:
    template = load_template(EXAMPLES / file_name)
    data = template.to_json()
    assert TaskTemplate.from_json(data) == template
    assert TaskTemplate.from_yaml(yaml.safe_dump(data)) == template
    assert data["steps"][0]["type"] == "standard"
    assert data["identity_strategy"] == "strict"


def test_from_json_does_not_alias_the_input() -> None:
    data = doc(metadata={"tags": ["x"]})
    template = TaskTemplate.from_json(data)
    data["metadata"]["tags"].append("y")
    assert template.metadata == {"tags": ["x"]}
