"""Hypothesis strategies for engine tests: random DAG templates and scripted step behaviours.

A `ScriptedTemplate` is a `TaskTemplate` (built through YAML, as a user's file would be) plus
one `StepScript` per step saying what its handler does on each attempt: succeed, fail
retryably for the first ``failures`` attempts, fail permanently, or hang past the step's
timeout. Every step uses the handler named `SCRIPTED_HANDLER`; its
``handler.initialization`` carries the template and step names so one handler can look up
the script (`EngineStateMachine` provides that handler).

`ScriptedTemplate.expected_attempts` and `ScriptedTemplate.expected_success` are the plain
model of a script: what the engine must end with when nobody interferes. A `Workload` is what
one run of `EngineStateMachine` uses; `random_workloads` draws scripted ones.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import yaml
from hypothesis import strategies as st

from tasker_trio.templates import TaskTemplate
from tasker_trio.worker.handlers import HandlerFn

__all__ = [
    "SCRIPTED_HANDLER",
    "Behaviour",
    "ScriptedTemplate",
    "StepScript",
    "Workload",
    "dag_shapes",
    "random_workloads",
    "retry_policies",
    "scripted_templates",
    "step_scripts",
]

SCRIPTED_HANDLER = "tasker_trio.testing.scripted"
"""The handler name every step of a `ScriptedTemplate` uses."""


class Behaviour(enum.StrEnum):
    """What a scripted step's handler does."""

    SUCCEED = "succeed"
    """Return a result (after yielding ``checkpoints`` times to the other tasks)."""
    FAIL_RETRYABLE = "fail_retryable"
    """Raise `RetryableError` on the first ``failures`` attempts, then succeed."""
    FAIL_PERMANENT = "fail_permanent"
    """Raise `PermanentError` on every attempt."""
    HANG = "hang"
    """Sleep forever, so the step's timeout fires on every attempt."""


class Outcome(enum.StrEnum):
    """What one attempt of a scripted step does."""

    SUCCEED = "succeed"
    """Return a result."""
    RETRYABLE = "retryable"
    """Raise `RetryableError`."""
    PERMANENT = "permanent"
    """Raise `PermanentError`."""
    HANG = "hang"
    """Never return (the engine's timeout ends it)."""


@attrs.frozen(kw_only=True)
class StepScript:
    """The scripted behaviour of one step.

    Attributes:
        behaviour: what the handler does.
        failures: for `Behaviour.FAIL_RETRYABLE`, how many first attempts fail.
        checkpoints: how often a successful attempt yields to other tasks first. (No mock
            time passes: a clock jump past both a sleep and the step's timeout would make
            the outcome a race.)
        retry_after: the ``retry_after`` a retryable failure asks for, if any.
    """

    behaviour: Behaviour
    failures: int = 0
    checkpoints: int = 0
    retry_after: float | None = None

    def outcome(self, attempt: int) -> Outcome:
        """What attempt number ``attempt`` (1-based) does."""
        if self.behaviour == Behaviour.SUCCEED:
            return Outcome.SUCCEED
        if self.behaviour == Behaviour.FAIL_PERMANENT:
            return Outcome.PERMANENT
        if self.behaviour == Behaviour.HANG:
            return Outcome.HANG
        return Outcome.RETRYABLE if attempt <= self.failures else Outcome.SUCCEED


@attrs.frozen(kw_only=True)
class ScriptedTemplate:
    """A template with a script for each of its steps.

    Attributes:
        template: the loaded template.
        scripts: the script of each step, by step name.
    """

    template: TaskTemplate
    scripts: Mapping[str, StepScript]

    @property
    def name(self) -> str:
        """The template's name."""
        return self.template.name

    def __repr__(self) -> str:
        """One line per step: parents, script, retry policy and timeout (for failing examples)."""
        lines = [f"ScriptedTemplate {self.name!r}:"]
        for spec in self.template.steps:
            script = self.scripts[spec.name]
            retry = spec.retry
            parents = f" <- {','.join(spec.dependencies)}" if spec.dependencies else ""
            what = str(script.behaviour)
            if script.behaviour == Behaviour.FAIL_RETRYABLE:
                what += f" x{script.failures}"
                if script.retry_after is not None:
                    what += f" retry_after={script.retry_after}"
            if script.checkpoints:
                what += f" checkpoints={script.checkpoints}"
            lines.append(
                f"  {spec.name}{parents}: {what}; max_attempts={retry.max_attempts}"
                f"{'' if retry.retryable else ' not retryable'} {retry.backoff} "
                f"base={retry.backoff_base_ms}ms cap={retry.max_backoff_ms}ms "
                f"timeout={spec.timeout_seconds}s"
            )
        return "\n".join(lines)

    def expected_attempts(self, step: str) -> int:
        """How many attempts ``step`` makes when it runs undisturbed (plain model)."""
        spec = next(s for s in self.template.steps if s.name == step)
        allowed = spec.retry.max_attempts if spec.retry.retryable else 1
        attempt = 1
        while attempt < allowed:
            if self.scripts[step].outcome(attempt) in (Outcome.SUCCEED, Outcome.PERMANENT):
                break
            attempt += 1
        return attempt

    def expected_success(self, step: str) -> bool:
        """Whether ``step`` ends complete when it runs undisturbed (plain model)."""
        return self.scripts[step].outcome(self.expected_attempts(step)) == Outcome.SUCCEED


@st.composite
def dag_shapes(
    draw: st.DrawFn, *, min_steps: int = 1, max_steps: int = 8, max_parents: int = 3
) -> list[tuple[str, tuple[str, ...]]]:
    """``[(step name, parent names)]`` in topological order; parents are earlier steps."""
    count = draw(st.integers(min_steps, max_steps))
    shape: list[tuple[str, tuple[str, ...]]] = []
    for index in range(count):
        earlier = [name for name, _ in shape]
        parents: list[str] = []
        if earlier:
            parents = draw(
                st.lists(
                    st.sampled_from(earlier), max_size=min(max_parents, len(earlier)), unique=True
                )
            )
        shape.append((f"s{index}", tuple(sorted(parents))))
    return shape


def retry_policies() -> st.SearchStrategy[dict[str, Any]]:
    """A template's ``retry`` mapping: small backoffs, 1..3 attempts, mostly retryable."""
    return st.fixed_dictionaries(
        {
            "retryable": st.sampled_from([True, True, True, False]),
            "max_attempts": st.integers(1, 3),
            "backoff": st.sampled_from(["none", "linear", "exponential", "fibonacci"]),
            "backoff_base_ms": st.integers(0, 2000),
            "max_backoff_ms": st.integers(0, 5000),
        }
    )


@st.composite
def step_scripts(draw: st.DrawFn, *, max_failures: int = 3) -> StepScript:
    """A step's behaviour: succeed (twice as likely), fail retryably, fail for good, hang."""
    behaviour = draw(
        st.sampled_from(
            [
                Behaviour.SUCCEED,
                Behaviour.SUCCEED,
                Behaviour.FAIL_RETRYABLE,
                Behaviour.FAIL_PERMANENT,
                Behaviour.HANG,
            ]
        )
    )
    failures = draw(st.integers(1, max_failures)) if behaviour == Behaviour.FAIL_RETRYABLE else 0
    checkpoints = draw(st.sampled_from([0, 0, 3]))
    retry_after = None
    if behaviour == Behaviour.FAIL_RETRYABLE:
        retry_after = draw(st.none() | st.sampled_from([0.5, 3.0]))
    return StepScript(
        behaviour=behaviour, failures=failures, checkpoints=checkpoints, retry_after=retry_after
    )


@st.composite
def scripted_templates(
    draw: st.DrawFn,
    *,
    name: str | st.SearchStrategy[str] = "t0",
    namespace: str = "props",
    min_steps: int = 1,
    max_steps: int = 8,
    timeouts: st.SearchStrategy[int] | None = None,
) -> ScriptedTemplate:
    """A random DAG template (through YAML) with a script per step.

    Each step gets a retry policy from `retry_policies`, a timeout from ``timeouts`` (default
    1..10 s) and a script from `step_scripts`; its handler is `SCRIPTED_HANDLER`.
    """
    template_name = draw(name) if isinstance(name, st.SearchStrategy) else name
    steps: list[dict[str, Any]] = []
    scripts: dict[str, StepScript] = {}
    for step_name, parents in draw(dag_shapes(min_steps=min_steps, max_steps=max_steps)):
        timeout = draw(timeouts if timeouts is not None else st.integers(1, 10))
        spec: dict[str, Any] = {
            "name": step_name,
            "handler": {
                "callable": SCRIPTED_HANDLER,
                "initialization": {"template": template_name, "step": step_name},
            },
            "retry": draw(retry_policies()),
            "timeout_seconds": timeout,
        }
        if parents:
            spec["dependencies"] = list(parents)
        steps.append(spec)
        scripts[step_name] = draw(step_scripts())
    document = {
        "name": template_name,
        "namespace_name": namespace,
        "version": "1.0.0",
        "steps": steps,
    }
    template = TaskTemplate.from_yaml(yaml.safe_dump(document, sort_keys=False))
    return ScriptedTemplate(template=template, scripts=scripts)


@attrs.frozen(kw_only=True)
class Workload:
    """What an `EngineStateMachine` runs: templates, their handlers, and optional scripts.

    Attributes:
        templates: the task templates to submit tasks of.
        handlers: handlers by the names the templates use (import paths and
            `step_handler` registrations resolve as in the engine).
        scripted: the `ScriptedTemplate` of each template name whose outcome the plain model
            predicts; templates not in it are checked by the invariants only.
    """

    templates: Sequence[TaskTemplate]
    handlers: Mapping[str, HandlerFn] = attrs.field(factory=dict)
    scripted: Mapping[str, ScriptedTemplate] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        """The scripted templates step by step, else the template names (failing examples)."""
        if self.scripted:
            return "Workload:\n" + "\n".join(repr(s) for s in self.scripted.values())
        names = ", ".join(f"{t.namespace_name}/{t.name}@{t.version}" for t in self.templates)
        return f"Workload({names}; handlers: {', '.join(sorted(self.handlers))})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints drawn values with its pretty printer: use the compact form."""
        del cycle
        printer.text(repr(self))


@st.composite
def random_workloads(
    draw: st.DrawFn,
    *,
    max_templates: int = 2,
    max_steps: int = 8,
    timeouts: st.SearchStrategy[int] | None = None,
) -> Workload:
    """1..``max_templates`` random scripted DAG templates (``t0``, ``t1``...).

    ``timeouts`` draws each step's ``timeout_seconds`` (see `scripted_templates`).
    """
    count = draw(st.integers(1, max_templates))
    scripted = [
        draw(scripted_templates(name=f"t{i}", max_steps=max_steps, timeouts=timeouts))
        for i in range(count)
    ]
    return Workload(
        templates=[s.template for s in scripted], scripted={s.name: s for s in scripted}
    )
