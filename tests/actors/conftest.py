"""Fixtures of the actor runtime tests: a recording context shared by the actors under test."""

from __future__ import annotations

from typing import Any

import attrs
import pytest


@attrs.define
class Recorder:
    """A system context that records lifecycle and handler events, in order."""

    events: list[tuple[str, str]] = attrs.field(factory=list)
    ref: Any = None  # somewhere for a test to leave a ref its actors can use

    def record(self, event: str, actor: str) -> None:
        self.events.append((event, actor))

    def of(self, event: str) -> list[str]:
        """The actors that recorded ``event``, in order."""
        return [actor for kind, actor in self.events if kind == event]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
