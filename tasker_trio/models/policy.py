"""Per-step policy values shared by templates, the engine and the support logic.

`StepType` and `RetryPolicy` are what a template says about one step's kind and its retries;
they live here (not in ``templates/``) because the orchestration support code and the store
need them without depending on YAML loading.
"""

from __future__ import annotations

import enum

import attrs

from tasker_trio.models.base import JsonModel


class StepType(enum.StrEnum):
    """What kind of step a template declares (semantics §1, §9)."""

    STANDARD = "standard"
    """Runs its handler once its parents are satisfied."""
    DECISION = "decision"
    """Its result names which of its descendant steps are created."""
    DEFERRED_CONVERGENCE = "deferred_convergence"
    """Waits only for the branches a decision actually created."""
    BATCHABLE = "batchable"
    """Its result describes cursor ranges, one batch worker step each."""
    BATCH_WORKER = "batch_worker"
    """A template for the steps a batchable step creates, one per cursor range."""


class BackoffKind(enum.StrEnum):
    """How the delay before the next attempt grows with the attempts so far (semantics §4)."""

    NONE = "none"
    """Retry at once."""
    LINEAR = "linear"
    """base · n."""
    EXPONENTIAL = "exponential"
    """base · 2^(n-1)."""
    FIBONACCI = "fibonacci"
    """base · fib(n), with fib(1) = fib(2) = 1."""


MAX_ATTEMPTS_LIMIT = 100
"""The largest ``retry.max_attempts`` a template may set."""


def _check_attempts(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise ValueError(f"{attribute.name} must be in 1..{MAX_ATTEMPTS_LIMIT}, got {value}")


def _check_non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class RetryPolicy(JsonModel):
    """A step's retry settings (template field ``retry``).

    Attributes:
        retryable: whether a failed attempt may be retried at all.
        max_attempts: total attempts, the first included (1..100).
        backoff: how the delay grows.
        backoff_base_ms: the base delay in milliseconds.
        max_backoff_ms: the cap on any delay, ``retry_after`` included.
    """

    retryable: bool = True
    max_attempts: int = attrs.field(default=3, validator=_check_attempts)
    backoff: BackoffKind = attrs.field(default=BackoffKind.EXPONENTIAL, converter=BackoffKind)
    backoff_base_ms: int = attrs.field(default=1000, validator=_check_non_negative)
    max_backoff_ms: int = attrs.field(default=30000, validator=_check_non_negative)
