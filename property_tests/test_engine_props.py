"""Stateful property test of the whole engine (issue 4), on both backends.

`tasker_trio.testing.EngineStateMachine` with its default workload: random DAG templates
(1..8 steps, small backoffs, 1..3 attempts, 1..10 s timeouts) whose handlers succeed, fail
retryably k times, fail permanently or hang, by script; random submits (identical requests
included), cancels, operator resets and time passing. The invariants are listed in
tasker_trio/testing/engine_machine.py and docs/testing.md.

The same machine runs on the embedded memory backend and on PostgreSQL + PGMQ: one
database for the whole run (``postgres_url``), migrated by the first example and emptied
before each one. The PostgreSQL run is skipped with the reason when no server is reachable,
and fails instead under ``CI``.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tasker_trio.testing import EngineStateMachine
from tests.postgres._database import skip_without_server


class EngineProperties(EngineStateMachine):
    """The engine against random scripted workloads."""


# Few steps per run: every run also drains (up to two hours of mock time) and checks the end
# state, and 200 runs must fit in about a minute on a 2-core CI machine.
TestEngineProperties = EngineProperties.TestCase
TestEngineProperties.settings = settings(settings(), stateful_step_count=20)


class EnginePropertiesOnPostgres(EngineProperties):
    """The same rules and invariants on PostgreSQL + PGMQ (``database`` is set by the test)."""


POSTGRES_SETTINGS = settings(
    settings(), max_examples=max(10, settings().max_examples // 2), stateful_step_count=20
)
"""Half the profile's examples: an example costs ~0.6 s on PostgreSQL against ~0.06 s in
memory, so the ``ci`` profile's 100 take about a minute on a 2-core machine (``thorough``:
1,000, about ten minutes)."""


@skip_without_server()
def test_engine_properties_on_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EnginePropertiesOnPostgres, "database", postgres_url)
    run_state_machine_as_test(EnginePropertiesOnPostgres, settings=POSTGRES_SETTINGS)
