"""In-process wake-ups shared by a PostgreSQL store and broker, and the wake-up modes.

A store operation that sends a message or moves a task fires the matching signal, so waiters
in the same process (`wait_for_messages`, `wait_for_change`) wake at once. Other processes'
changes arrive as ``tasker_queues`` / ``tasker_tasks`` notifications, which the database's
listener (`tasker_trio.db.listener`) turns into the same `fire` calls. `WakeupMode` says
whether that listener runs and whether waits are also cut at the poll interval.
"""

from __future__ import annotations

import enum
import weakref

import trio


class WakeupMode(enum.StrEnum):
    """How waiters learn about changes made by other processes (semantics §6)."""

    EVENT = "event"
    """LISTEN/NOTIFY only: a wait lasts until a notification or the caller's own timeout."""
    POLL = "poll"
    """No LISTEN connection: waits return at the poll interval and callers re-read."""
    HYBRID = "hybrid"
    """Both: notifications wake waiters at once; polling takes over while LISTEN is down."""


class Signals:
    """Named one-shot wake-ups: `fire(key)` wakes every current waiter on ``key``."""

    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}
        self._carried: weakref.WeakKeyDictionary[trio.Event, object] = weakref.WeakKeyDictionary()

    def fire(self, key: str, carrying: object = None) -> None:
        """Wake whoever waits on ``key`` now (later waiters wait for the next fire).

        ``carrying`` is what the change left behind, for the woken to take without a read
        (`carried`): a task this process committed, say.
        """
        event = self._events.pop(key, None)
        if event is not None:
            if carrying is not None:
                self._carried[event] = carrying
            event.set()

    def carried(self, event: trio.Event) -> object:
        """What the fire that set ``event`` carried (None: nothing, or not fired yet)."""
        return self._carried.get(event)

    def fire_all(self) -> None:
        """Wake every current waiter (after a lost connection: a notification may be lost)."""
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    def event(self, key: str) -> trio.Event:
        """The event the next `fire(key)` sets."""
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = trio.Event()
        return event

    def waiting(self) -> int:
        """How many keys have waiters (or had them since their last fire)."""
        return len(self._events)


def queue_key(queue: str) -> str:
    """The signal fired when a message is sent to ``queue``."""
    return f"queue:{queue}"


def task_key(task_uuid: str) -> str:
    """The signal fired when the task's state changes."""
    return f"task:{task_uuid}"


QUEUES_CHANNEL = "tasker_queues"
"""The NOTIFY channel of sends; the payload is the queue name (``tasker.q_send``)."""
TASKS_CHANNEL = "tasker_tasks"
"""The NOTIFY channel of task transitions; the payload is the task uuid."""

CHANNEL_KEYS = {QUEUES_CHANNEL: queue_key, TASKS_CHANNEL: task_key}
"""Each channel, and the signal key its payload names."""


def channel_of(key: str) -> tuple[str, str]:
    """The NOTIFY channel and payload that announce ``key`` to other processes."""
    for channel, key_of in CHANNEL_KEYS.items():
        prefix = key_of("")
        if key.startswith(prefix):
            return channel, key[len(prefix) :]
    raise ValueError(f"no notification channel announces {key!r}")


ORIGIN_SETTING = "tasker.origin"
"""The connection setting `tasker.notify` appends to a payload: ``<name>|<origin>``."""


def parse_payload(payload: str) -> tuple[str, str]:
    """A notification's (name, origin); origin is ``""`` when a tool without one sent it."""
    name, sep, origin = payload.rpartition("|")
    return (name, origin) if sep else (payload, "")
