"""In-process wake-ups shared by a PostgreSQL store and broker.

A store operation that sends a message or moves a task fires the matching signal, so waiters
in the same process (`wait_for_messages`, `wait_for_change`) wake at once without polling.
Other processes' changes reach them through the ``tasker_queues`` / ``tasker_tasks``
notifications the SQL functions send (a LISTEN bridge is left to the wake-up work of
issue 5); until then they wake by their timeout, which callers use as a poll interval.
"""

from __future__ import annotations

import trio


class Signals:
    """Named one-shot wake-ups: `fire(key)` wakes every current waiter on ``key``."""

    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}

    def fire(self, key: str) -> None:
        """Wake whoever waits on ``key`` now (later waiters wait for the next fire)."""
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def event(self, key: str) -> trio.Event:
        """The event the next `fire(key)` sets."""
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = trio.Event()
        return event


def queue_key(queue: str) -> str:
    """The signal fired when a message is sent to ``queue``."""
    return f"queue:{queue}"


def task_key(task_uuid: str) -> str:
    """The signal fired when the task's state changes."""
    return f"task:{task_uuid}"
