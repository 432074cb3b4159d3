"""Dead-letter entries: tasks that could not finish, kept for an operator (semantics §8)."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from tasker_trio.models.base import JsonModel


class DeadLetterStatus(enum.StrEnum):
    """Where an operator is with a dead-letter entry."""

    PENDING = "pending"
    """Waiting for an operator."""
    RESOLVED = "resolved"
    """An operator dealt with it."""


@attrs.frozen(kw_only=True)
class DeadLetterEntry(JsonModel):
    """A task that became blocked (or stale), with a snapshot taken at that moment.

    Attributes:
        entry_id: the entry's id.
        task_uuid: the task.
        reason: why it was dead-lettered (e.g. ``permanent_failure``, ``stale``).
        details: what the engine knew (failed steps and their errors...).
        snapshot: the task and its steps as JSON, when the entry was made.
        created_at: when.
        status: pending or resolved.
        resolved_at, resolution: when and how an operator resolved it.
    """

    entry_id: str
    task_uuid: str
    reason: str
    details: dict[str, Any] = attrs.field(factory=dict)
    snapshot: dict[str, Any] = attrs.field(factory=dict)
    created_at: float
    status: DeadLetterStatus = DeadLetterStatus.PENDING
    resolved_at: float | None = None
    resolution: str | None = None
