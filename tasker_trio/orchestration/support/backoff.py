"""Backoff: how long a failed step waits before its next attempt (semantics §4).

The delay after ``n`` attempts (``n >= 1``, the attempts made so far) is:

- the handler's ``retry_after`` when it gave one, in seconds, capped at ``max_backoff_ms`` and
  honoured exactly otherwise — it is *not* jittered, since the handler (or the service behind
  it, e.g. an HTTP ``Retry-After``) said precisely when to come back;
- else by the policy's kind: none = 0; linear = base·n; exponential = base·2^(n-1);
  fibonacci = base·fib(n) with fib(1) = fib(2) = 1; capped at ``max_backoff_ms``;
- then, only when a ``random.Random`` is injected, jittered uniformly within ±``jitter`` of
  that value and clamped to the cap again (so the cap always holds and the jittered delay stays
  within ±jitter of the deterministic one). Without an rng the delay is deterministic.

All arithmetic before the cap is on Python integers and stops growing once the cap is passed,
so any ``n`` (100, or a million) is cheap and never overflows a float.
"""

from __future__ import annotations

import math
import random

import attrs

from tasker_trio.models.policy import BackoffKind, RetryPolicy

DEFAULT_JITTER = 0.1
"""The default jitter fraction (±10 %)."""


def _check_attempts(attempts: int) -> None:
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1 (the attempts made so far), got {attempts}")


def _check_jitter(jitter: float) -> None:
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be a fraction in [0, 1], got {jitter}")


def _fibonacci_capped(n: int, base: int, cap: int) -> int:
    """``base · fib(n)``, or any value above ``cap`` once it passes the cap."""
    if base == 0:
        return 0
    previous, current = 0, 1  # fib(0), fib(1)
    for _ in range(n - 1):
        if base * current > cap:
            break
        previous, current = current, previous + current
    return base * current


def policy_delay_ms(policy: RetryPolicy, attempts: int) -> int:
    """The deterministic delay the policy's kind gives after ``attempts`` attempts, capped.

    Args:
        policy: the step's retry policy (kind, base and cap are used).
        attempts: the attempts made so far (``>= 1``).

    Returns:
        The delay in whole milliseconds, in ``[0, policy.max_backoff_ms]``.

    Raises:
        ValueError: ``attempts`` is below 1.
    """
    _check_attempts(attempts)
    base, cap = policy.backoff_base_ms, policy.max_backoff_ms
    match policy.backoff:
        case BackoffKind.NONE:
            raw = 0
        case BackoffKind.LINEAR:
            raw = base * attempts
        case BackoffKind.EXPONENTIAL:
            # Once the shift passes the cap's bit length, base·2^k > cap for any base >= 1.
            raw = base << min(attempts - 1, cap.bit_length() + 1)
        case BackoffKind.FIBONACCI:
            raw = _fibonacci_capped(attempts, base, cap)
    return min(raw, cap)


def delay_ms(
    policy: RetryPolicy,
    attempts: int,
    *,
    retry_after_s: float | None = None,
    jitter: float = DEFAULT_JITTER,
    rng: random.Random | None = None,
) -> float:
    """The delay before the next attempt, in milliseconds (see the module docstring).

    Args:
        policy: the step's retry policy.
        attempts: the attempts made so far (``>= 1``).
        retry_after_s: the handler's ``RetryableError.retry_after`` in seconds, if any; a
            negative value counts as 0. It is capped at ``max_backoff_ms`` and never jittered.
        jitter: the jitter fraction in ``[0, 1]``; used only when ``rng`` is given.
        rng: the random source for jitter (seed it in tests); ``None`` means no jitter.

    Returns:
        The delay in milliseconds, in ``[0, policy.max_backoff_ms]``.

    Raises:
        ValueError: ``attempts`` is below 1, ``jitter`` is outside ``[0, 1]``, or
            ``retry_after_s`` is NaN.
    """
    _check_attempts(attempts)
    _check_jitter(jitter)
    cap = float(policy.max_backoff_ms)
    if retry_after_s is not None:
        if math.isnan(retry_after_s):
            raise ValueError("retry_after must be a number of seconds, got NaN")
        return min(max(retry_after_s, 0.0) * 1000.0, cap)
    delay = float(policy_delay_ms(policy, attempts))
    if rng is None or jitter == 0.0 or delay == 0.0:
        return delay
    return min(delay * (1.0 + rng.uniform(-jitter, jitter)), cap)


def next_retry_at(
    failed_at: float,
    policy: RetryPolicy,
    attempts: int,
    *,
    retry_after_s: float | None = None,
    jitter: float = DEFAULT_JITTER,
    rng: random.Random | None = None,
) -> float:
    """When the next attempt may start: ``failed_at`` plus `delay_ms`, in seconds.

    Args:
        failed_at: when the attempt failed, in seconds on the caller's clock.
        policy: the step's retry policy.
        attempts: the attempts made so far (``>= 1``).
        retry_after_s: the handler's ``retry_after`` in seconds, if any.
        jitter: the jitter fraction in ``[0, 1]``; used only when ``rng`` is given.
        rng: the random source for jitter; ``None`` means no jitter.

    Raises:
        ValueError: as `delay_ms`.
    """
    delay = delay_ms(policy, attempts, retry_after_s=retry_after_s, jitter=jitter, rng=rng)
    return failed_at + delay / 1000.0


@attrs.frozen(kw_only=True)
class BackoffCalculator:
    """`delay_ms` and `next_retry_at` with the jitter settings bound once, for the engine.

    Attributes:
        jitter: the jitter fraction in ``[0, 1]``.
        rng: the random source for jitter; ``None`` (the default) means deterministic delays.
            The engine passes its own ``random.Random``; tests pass a seeded one.
    """

    jitter: float = attrs.field(default=DEFAULT_JITTER)
    rng: random.Random | None = attrs.field(default=None, eq=False)

    @jitter.validator
    def _validate_jitter(self, _: attrs.Attribute[float], value: float) -> None:
        _check_jitter(value)

    def delay_ms(
        self, policy: RetryPolicy, attempts: int, *, retry_after_s: float | None = None
    ) -> float:
        """The delay before the next attempt in milliseconds (see the function `delay_ms`)."""
        return delay_ms(
            policy, attempts, retry_after_s=retry_after_s, jitter=self.jitter, rng=self.rng
        )

    def next_retry_at(
        self,
        failed_at: float,
        policy: RetryPolicy,
        attempts: int,
        *,
        retry_after_s: float | None = None,
    ) -> float:
        """When the next attempt may start, in seconds (see the function `next_retry_at`)."""
        return next_retry_at(
            failed_at,
            policy,
            attempts,
            retry_after_s=retry_after_s,
            jitter=self.jitter,
            rng=self.rng,
        )
