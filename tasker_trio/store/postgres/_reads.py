"""Views the PostgreSQL store keeps so as not to read a task again.

`ViewCache`: the read-ahead views of `PostgresStore.read_for_processing` (migration 0007).
`KnownViews` and `StepPatches`: what handed-over results are planned on (migration 0010).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from tasker_trio.store.plan import TaskView

MessageKey = tuple[str, int]
"""A message's (queue, msg_id)."""

VIEW_CACHE_SIZE = 1024
"""Read-ahead views kept at most (the oldest go first; a view is used once)."""

KNOWN_VIEWS_SIZE = 4096
"""Tasks whose latest view is kept: enough for every task a busy process has in flight (a
task whose view was dropped costs its next result a read and a separate record)."""


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


class KnownViews:
    """The view of each task after this process's last plan on it, with its version.

    Kept for the handed-over results of `PostgresStore.hand_off`: their `apply` starts from
    the known view with the recorded steps patched in (`StepPatches`) instead of reading
    the task. Workers move steps without bumping the version, so a known view may show
    steps it does not rewrite in an older in-flight state (enqueued, in progress, enqueued
    for orchestration), which orchestration treats alike; `tasker.apply_plan` checks the
    version and every step the plan rewrites, so a view that is stale in anything that
    matters makes the store read the task again.
    """

    def __init__(self, size: int = KNOWN_VIEWS_SIZE) -> None:
        self._size = size
        self._views: OrderedDict[str, tuple[int, TaskView]] = OrderedDict()

    def put(self, task_uuid: str, version: int, view: TaskView) -> None:
        """The task is at ``version``, as ``view`` shows it."""
        self._views[task_uuid] = (version, view)
        self._views.move_to_end(task_uuid)
        while len(self._views) > self._size:
            self._views.popitem(last=False)

    def get(self, task_uuid: str) -> tuple[int, TaskView] | None:
        """The known version and view of the task, if any."""
        return self._views.get(task_uuid)

    def forget(self, task_uuid: str) -> None:
        """Drop the task's view (it changed elsewhere)."""
        self._views.pop(task_uuid, None)


class StepPatches:
    """The step each handed-over result notice recorded, as the record left it."""

    def __init__(self, size: int = VIEW_CACHE_SIZE) -> None:
        self._size = size
        self._steps: OrderedDict[MessageKey, dict[str, Any]] = OrderedDict()

    def put(self, message: MessageKey, step: dict[str, Any]) -> None:
        """The notice ``message`` follows the record that left its step as ``step``."""
        self._steps[message] = step
        while len(self._steps) > self._size:
            self._steps.popitem(last=False)

    def take(self, consumed: Iterable[MessageKey]) -> list[dict[str, Any]] | None:
        """The recorded steps of ``consumed`` (removed), or None unless each one has one."""
        keys = list(consumed)
        if not keys or any(key not in self._steps for key in keys):
            return None
        return [self._steps.pop(key) for key in keys]
