"""`StepContext`: what a step handler sees (semantics §10)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tasker_trio.store.protocol import ClaimedStep


@attrs.frozen(kw_only=True)
class StepContext:
    """Everything a handler may read about the step it runs.

    Attributes:
        task_uuid, step_uuid: identifiers.
        step_name: the step's name in its template.
        namespace: the task's namespace.
        correlation_id: the task's correlation id (for logs and tracing).
        input_data: the task's context.
        step_config: the step's ``handler.initialization``.
        dependency_results: ``{step name: result}`` of every completed ancestor.
        attempt: this attempt's number (1 on the first run).
        max_attempts: the step's ``retry.max_attempts``.
        timeout_seconds: the limit on this attempt.
    """

    task_uuid: str
    step_uuid: str
    step_name: str
    namespace: str
    correlation_id: str
    input_data: Mapping[str, Any]
    step_config: Mapping[str, Any]
    dependency_results: Mapping[str, Mapping[str, Any]]
    attempt: int
    max_attempts: int
    timeout_seconds: float

    @classmethod
    def from_claim(cls, claimed: ClaimedStep) -> StepContext:
        """The context of a step a worker just claimed."""
        step, task = claimed.step, claimed.task
        return cls(
            task_uuid=task.task_uuid,
            step_uuid=step.step_uuid,
            step_name=step.name,
            namespace=step.namespace,
            correlation_id=task.correlation_id,
            input_data=task.context,
            step_config=step.step_config,
            dependency_results=claimed.dependency_results,
            attempt=step.attempts,
            max_attempts=step.retry.max_attempts,
            timeout_seconds=step.timeout_seconds,
        )

    def get_input(self, key: str, default: Any = None) -> Any:
        """A value of the task's context, or ``default``."""
        return self.input_data.get(key, default)

    def get_config(self, key: str, default: Any = None) -> Any:
        """A value of the step's configuration, or ``default``."""
        return self.step_config.get(key, default)

    def get_dependency_result(self, name: str) -> Mapping[str, Any]:
        """The result of the completed ancestor step ``name``.

        Raises:
            KeyError: ``name`` is not a completed ancestor of this step (the message lists
                the ones that are).
        """
        try:
            return self.dependency_results[name]
        except KeyError:
            known = ", ".join(sorted(self.dependency_results)) or "none"
            raise KeyError(
                f"step {self.step_name!r} has no completed ancestor {name!r} (it has: {known})"
            ) from None

    @property
    def is_retry(self) -> bool:
        """Whether an earlier attempt of this step failed."""
        return self.attempt > 1

    @property
    def is_last_attempt(self) -> bool:
        """Whether a failure now would be final."""
        return self.attempt >= self.max_attempts
