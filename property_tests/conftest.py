"""Hypothesis profiles for the property tests, and the PostgreSQL database they share.

- ``ci`` (the default, and what ``.ci/run`` uses): derandomized, so a run is reproducible,
  with 200 examples per test (fewer for expensive ones, below) and no per-example deadline
  (CI machines are noisy).
- ``thorough`` (``just property``): random, 2,000 examples per test, for local hunting.

Choose with ``HYPOTHESIS_PROFILE=thorough``. A test may run fewer examples than its profile
says when each one is expensive (the engine on PostgreSQL runs half as many); it derives the
count from the profile, so ``thorough`` still runs ten times more than ``ci``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.postgres._database import scratch_database

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of one PostgreSQL database for the whole run (dropped at its end).

    The engine's state machine migrates it on its first example and empties it before
    every example, which costs milliseconds where a new database would cost a second.
    """
    with scratch_database() as url:
        yield url
