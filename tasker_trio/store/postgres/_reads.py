"""The read-ahead task views of `PostgresStore.read_for_processing` (migration 0007)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

MessageKey = tuple[str, int]
"""A message's (queue, msg_id)."""

VIEW_CACHE_SIZE = 1024
"""Read-ahead views kept at most (the oldest go first; a view is used once)."""


class ViewCache:
    """Task views read ahead with a queue's messages, for the `apply` that consumes them.

    A view is kept with the ids of the messages it was read with, and only an `apply` that
    consumes one of those messages takes it: such a view is as fresh as the message (it was
    read after whatever sent the message committed). Any other `apply` reads the task anew,
    so a view left behind (its message archived, its processing failed) never stands in for
    a later read. `tasker.apply_plan` still checks the version of whatever view was used.
    """

    def __init__(self, size: int = VIEW_CACHE_SIZE) -> None:
        self._size = size
        self._rows: OrderedDict[str, tuple[dict[str, Any], frozenset[MessageKey]]] = OrderedDict()

    def put(self, task_uuid: str, row: dict[str, Any], messages: frozenset[MessageKey]) -> None:
        """Keep ``row`` (a ``tasker.task_view``), read with ``messages``."""
        self._rows[task_uuid] = (row, messages)
        self._rows.move_to_end(task_uuid)
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def take(self, task_uuid: str, consumed: Iterable[MessageKey]) -> dict[str, Any] | None:
        """The task's view if it was read with one of the ``consumed`` messages (removed)."""
        kept = self._rows.get(task_uuid)
        if kept is None or kept[1].isdisjoint(consumed):
            return None
        del self._rows[task_uuid]
        return kept[0]

    def __len__(self) -> int:
        return len(self._rows)
