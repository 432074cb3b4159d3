"""Fixtures of the end-to-end engine tests (memory backend, Trio's MockClock).

Most tests take ``autojump_clock`` so that backoffs, timeouts and visibility timeouts pass
instantly while `trio.current_time()` still shows them. Tests with sync handlers run on the
real clock: a handler running in a thread looks idle to the autojump clock, which would
jump straight past the step's timeout.
"""

from __future__ import annotations

import pytest

from tests.engine._support import Recorder


@pytest.fixture
def recorder() -> Recorder:
    """A fresh handler-call recorder."""
    return Recorder()
