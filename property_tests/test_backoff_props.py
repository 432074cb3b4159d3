"""Property tests of the backoff calculator (semantics §4).

- Without jitter the delay follows the formula of its kind, capped; it is non-decreasing in
  the attempts and never above the cap, up to 100 attempts (and far beyond).
- A handler's ``retry_after`` is honoured exactly (never jittered) and capped.
- With jitter the delay is within ±jitter of the deterministic one, never above the cap, and
  the same seed gives the same delay.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from tasker_trio.models.policy import BackoffKind, RetryPolicy
from tasker_trio.orchestration.support import delay_ms, next_retry_at

EPS = 1e-6

policies = st.builds(
    RetryPolicy,
    backoff=st.sampled_from(BackoffKind),
    backoff_base_ms=st.integers(0, 10_000),
    max_backoff_ms=st.integers(0, 1_000_000),
)
attempts = st.integers(1, 100)
jitters = st.floats(0.0, 1.0)
seeds = st.integers(0, 2**32 - 1)


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def model_delay(policy: RetryPolicy, n: int) -> int:
    """The plain formula, on unbounded integers, then capped."""
    base = policy.backoff_base_ms
    match policy.backoff:
        case BackoffKind.NONE:
            raw = 0
        case BackoffKind.LINEAR:
            raw = base * n
        case BackoffKind.EXPONENTIAL:
            raw = base * 2 ** (n - 1)
        case BackoffKind.FIBONACCI:
            raw = base * fib(n)
    return min(raw, policy.max_backoff_ms)


@given(policy=policies, n=attempts)
def test_deterministic_delay_is_the_capped_formula(policy: RetryPolicy, n: int) -> None:
    assert delay_ms(policy, n) == float(model_delay(policy, n))


@given(policy=policies)
def test_without_jitter_non_decreasing_and_capped(policy: RetryPolicy) -> None:
    delays = [delay_ms(policy, n) for n in range(1, 101)]
    assert delays == sorted(delays)
    assert all(0.0 <= d <= policy.max_backoff_ms for d in delays)


@given(policy=policies, n=st.integers(101, 10**6))
def test_huge_attempt_counts_stay_capped(policy: RetryPolicy, n: int) -> None:
    d = delay_ms(policy, n)
    assert delay_ms(policy, 100) <= d <= policy.max_backoff_ms
    if policy.backoff is not BackoffKind.FIBONACCI:  # fib(10**6) is too slow for the model
        assert d == float(model_delay(policy, n))


@given(
    policy=policies,
    n=attempts,
    retry_after=st.floats(0.0, 1e7, allow_nan=False) | st.just(float("inf")),
    jitter=jitters,
    seed=seeds,
)
def test_retry_after_honoured_and_capped(
    policy: RetryPolicy, n: int, retry_after: float, jitter: float, seed: int
) -> None:
    expected = min(retry_after * 1000.0, float(policy.max_backoff_ms))
    assert delay_ms(policy, n, retry_after_s=retry_after) == expected
    jittered = delay_ms(
        policy, n, retry_after_s=retry_after, jitter=jitter, rng=random.Random(seed)
    )
    assert jittered == expected


@given(policy=policies, n=attempts, jitter=jitters, seed=seeds)
def test_jitter_within_bounds_and_reproducible(
    policy: RetryPolicy, n: int, jitter: float, seed: int
) -> None:
    d = delay_ms(policy, n)
    j = delay_ms(policy, n, jitter=jitter, rng=random.Random(seed))
    assert d * (1.0 - jitter) - EPS <= j <= d * (1.0 + jitter) + EPS
    assert 0.0 <= j <= policy.max_backoff_ms
    assert j == delay_ms(policy, n, jitter=jitter, rng=random.Random(seed))


@given(
    policy=policies,
    n=attempts,
    failed_at=st.floats(0.0, 1e9, allow_nan=False),
    seed=st.none() | seeds,
)
def test_next_retry_at_is_failed_at_plus_delay(
    policy: RetryPolicy, n: int, failed_at: float, seed: int | None
) -> None:
    rng = None if seed is None else random.Random(seed)
    at = next_retry_at(failed_at, policy, n, rng=rng)
    rng = None if seed is None else random.Random(seed)
    assert at == failed_at + delay_ms(policy, n, rng=rng) / 1000.0
    assert failed_at <= at <= failed_at + policy.max_backoff_ms / 1000.0 + EPS
