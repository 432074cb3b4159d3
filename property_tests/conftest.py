"""Hypothesis profiles for the property tests.

- ``ci`` (the default, and what ``.ci/run`` uses): derandomized, so a run is reproducible,
  with at least 200 examples per test and no per-example deadline (CI machines are noisy).
- ``thorough`` (``just property``): random, 2,000 examples per test, for local hunting.

Choose with ``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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
