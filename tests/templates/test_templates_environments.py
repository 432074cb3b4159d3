"""Environment overrides: ALL and named steps, order, partial retry, initialization merge."""

from __future__ import annotations

from typing import Any

import attrs

from tasker_trio.models.policy import BackoffKind
from tasker_trio.templates import TaskTemplate, apply_environment


def template(environments: dict[str, Any]) -> TaskTemplate:
    return TaskTemplate.from_json(
        {
            "name": "t",
            "namespace_name": "ns",
            "version": "1.0.0",
            "steps": [
                {
                    "name": "a",
                    "handler": {"callable": "m:a", "initialization": {"url": "prod", "k": 1}},
                    "retry": {"max_attempts": 5, "backoff": "linear"},
                    "timeout_seconds": 60,
                },
                {"name": "b", "dependencies": ["a"], "handler": {"callable": "m:b"}},
            ],
            "environments": environments,
        }
    )


def test_all_targets_every_step() -> None:
    base = template({"test": {"steps": [{"name": "ALL", "timeout_seconds": 2}]}})
    resolved = base.for_environment("test")
    assert [s.timeout_seconds for s in resolved.steps] == [2, 2]
    assert [s.timeout_seconds for s in base.steps] == [60, 30]  # the original is unchanged


def test_named_step_only() -> None:
    resolved = template({"dev": {"steps": [{"name": "b", "timeout_seconds": 9}]}}).for_environment(
        "dev"
    )
    assert [s.timeout_seconds for s in resolved.steps] == [60, 9]


def test_later_overrides_win_over_all() -> None:
    envs = {
        "test": {
            "steps": [{"name": "ALL", "timeout_seconds": 2}, {"name": "a", "timeout_seconds": 7}]
        }
    }
    resolved = template(envs).for_environment("test")
    assert [s.timeout_seconds for s in resolved.steps] == [7, 2]


def test_retry_override_replaces_only_given_fields() -> None:
    envs = {"test": {"steps": [{"name": "ALL", "retry": {"limit": 1}}]}}
    a = template(envs).for_environment("test").step("a")
    assert a.retry.max_attempts == 1
    assert a.retry.backoff is BackoffKind.LINEAR  # kept from the step


def test_initialization_is_merged_top_level() -> None:
    envs = {"test": {"steps": [{"name": "a", "handler": {"initialization": {"url": "mock"}}}]}}
    a = template(envs).for_environment("test").step("a")
    assert a.handler.initialization == {"url": "mock", "k": 1}
    assert a.handler.callable == "m:a"


def test_unknown_environment_leaves_the_template_unchanged() -> None:
    base = template({"test": {"steps": [{"name": "ALL", "timeout_seconds": 2}]}})
    assert base.for_environment("production") is base
    assert apply_environment(base, "production") == base


def test_resolved_template_keeps_identity_and_environments() -> None:
    base = template({"test": {"steps": [{"name": "ALL", "timeout_seconds": 2}]}})
    resolved = base.for_environment("test")
    assert resolved.identifier == base.identifier
    assert resolved.environments == base.environments
    assert resolved != base
    assert attrs.evolve(resolved, steps=base.steps) == base


def test_empty_environment_is_allowed() -> None:
    base = template({"staging": None})
    assert base.for_environment("staging") == base
    assert TaskTemplate.from_json(base.to_json()) == base
