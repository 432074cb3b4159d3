"""Unit tests of the backoff calculator (semantics §4)."""

from __future__ import annotations

import random

import pytest

from tasker_trio.models.policy import BackoffKind, RetryPolicy
from tasker_trio.orchestration.support import (
    BackoffCalculator,
    delay_ms,
    next_retry_at,
    policy_delay_ms,
)


def policy(kind: str, base: int = 1000, cap: int = 30_000) -> RetryPolicy:
    return RetryPolicy(backoff=BackoffKind(kind), backoff_base_ms=base, max_backoff_ms=cap)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("none", [0, 0, 0, 0, 0, 0, 0]),
        ("linear", [100, 200, 300, 400, 500, 600, 700]),
        ("exponential", [100, 200, 400, 800, 1600, 3200, 6400]),
        ("fibonacci", [100, 100, 200, 300, 500, 800, 1300]),
    ],
)
def test_each_kind_by_the_formula(kind: str, expected: list[int]) -> None:
    p = policy(kind, base=100, cap=1_000_000)
    assert [delay_ms(p, n) for n in range(1, 8)] == expected
    assert [policy_delay_ms(p, n) for n in range(1, 8)] == expected


@pytest.mark.parametrize("kind", ["linear", "exponential", "fibonacci"])
def test_capped_at_max_backoff(kind: str) -> None:
    p = policy(kind, base=1000, cap=2500)
    assert delay_ms(p, 50) == 2500.0
    assert max(delay_ms(p, n) for n in range(1, 30)) == 2500.0


def test_default_policy_is_exponential_1s_capped_30s() -> None:
    p = RetryPolicy()
    assert [delay_ms(p, n) for n in (1, 2, 3, 5, 6)] == [1000, 2000, 4000, 16000, 30000]


@pytest.mark.parametrize("kind", list(BackoffKind))
@pytest.mark.parametrize("n", [60, 99, 100, 1_000, 100_000])
def test_big_attempt_counts_do_not_overflow(kind: BackoffKind, n: int) -> None:
    p = RetryPolicy(backoff=kind, backoff_base_ms=700, max_backoff_ms=30_000)
    expected = 0.0 if kind is BackoffKind.NONE else 30_000.0
    assert delay_ms(p, n) == expected


@pytest.mark.parametrize("kind", list(BackoffKind))
def test_zero_base_and_zero_cap_give_zero(kind: BackoffKind) -> None:
    assert delay_ms(RetryPolicy(backoff=kind, backoff_base_ms=0), 100_000) == 0.0
    assert delay_ms(RetryPolicy(backoff=kind, max_backoff_ms=0), 100) == 0.0


def test_retry_after_is_honoured_exactly_and_not_jittered() -> None:
    p = policy("exponential")
    rng = random.Random(1)
    assert delay_ms(p, 1, retry_after_s=2.5) == 2500.0
    assert delay_ms(p, 3, retry_after_s=2.5, jitter=0.5, rng=rng) == 2500.0
    assert delay_ms(policy("none"), 1, retry_after_s=0.25) == 250.0


def test_retry_after_is_capped_and_negative_counts_as_zero() -> None:
    p = policy("linear", cap=5000)
    assert delay_ms(p, 1, retry_after_s=3600) == 5000.0
    assert delay_ms(p, 1, retry_after_s=float("inf")) == 5000.0
    assert delay_ms(p, 1, retry_after_s=-3) == 0.0


def test_retry_after_nan_is_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        delay_ms(policy("linear"), 1, retry_after_s=float("nan"))


def test_no_rng_means_no_jitter() -> None:
    assert delay_ms(policy("linear"), 2, jitter=0.5) == 2000.0


def test_jitter_stays_within_bounds() -> None:
    p = policy("linear", base=1000, cap=1_000_000)
    rng = random.Random(42)
    values = [delay_ms(p, 4, jitter=0.1, rng=rng) for _ in range(500)]
    assert all(3600.0 <= v <= 4400.0 for v in values)
    assert len(set(values)) > 100  # it does vary


def test_jitter_never_exceeds_the_cap() -> None:
    p = policy("exponential", base=1000, cap=4000)
    rng = random.Random(7)
    values = [delay_ms(p, 10, jitter=0.2, rng=rng) for _ in range(500)]
    assert all(3200.0 <= v <= 4000.0 for v in values)


def test_seeded_jitter_is_reproducible() -> None:
    p = policy("fibonacci")
    first = [delay_ms(p, n, rng=random.Random(3)) for n in range(1, 10)]
    second = [delay_ms(p, n, rng=random.Random(3)) for n in range(1, 10)]
    assert first == second


@pytest.mark.parametrize("jitter", [-0.1, 1.5])
def test_bad_jitter_is_rejected(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        delay_ms(policy("linear"), 1, jitter=jitter)
    with pytest.raises(ValueError, match="jitter"):
        BackoffCalculator(jitter=jitter)


@pytest.mark.parametrize("attempts", [0, -1])
def test_attempts_below_one_are_rejected(attempts: int) -> None:
    with pytest.raises(ValueError, match="attempts"):
        delay_ms(policy("linear"), attempts)


def test_next_retry_at_adds_seconds() -> None:
    assert next_retry_at(100.0, policy("linear", base=500), 3) == pytest.approx(101.5)
    assert next_retry_at(10.0, policy("linear"), 1, retry_after_s=4) == pytest.approx(14.0)


def test_calculator_binds_jitter_and_rng() -> None:
    p = policy("linear", cap=1_000_000)
    plain = BackoffCalculator()
    assert plain.delay_ms(p, 3) == 3000.0
    assert plain.next_retry_at(1.0, p, 3) == pytest.approx(4.0)
    jittered = BackoffCalculator(jitter=0.1, rng=random.Random(5))
    assert jittered.delay_ms(p, 3) == delay_ms(p, 3, jitter=0.1, rng=random.Random(5))
    assert 2.7 <= jittered.next_retry_at(0.0, p, 3) <= 3.3
    assert jittered.delay_ms(p, 3, retry_after_s=1) == 1000.0
