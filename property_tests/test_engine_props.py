"""Stateful property test of the whole embedded engine (issue 4).

`tasker_trio.testing.EngineStateMachine` with its default workload: random DAG templates
(1..8 steps, small backoffs, 1..3 attempts, 1..10 s timeouts) whose handlers succeed, fail
retryably k times, fail permanently or hang, by script; random submits (identical requests
included), cancels, operator resets and time passing. The invariants are listed in
tasker_trio/testing/engine_machine.py and docs/testing.md.
"""

from __future__ import annotations

from hypothesis import settings

from tasker_trio.testing import EngineStateMachine


class EngineProperties(EngineStateMachine):
    """The engine against random scripted workloads."""


# Few steps per run: every run also drains (up to two hours of mock time) and checks the end
# state, and 200 runs must fit in about a minute on a 2-core CI machine.
TestEngineProperties = EngineProperties.TestCase
TestEngineProperties.settings = settings(settings(), stateful_step_count=20)
