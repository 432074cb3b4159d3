"""`OrchestrationContext`: what every orchestration actor and event system shares."""

from __future__ import annotations

import random

import attrs
import trio

from tasker_trio.messaging.protocol import Broker
from tasker_trio.store.protocol import Store
from tasker_trio.templates import TemplateRegistry


@attrs.define(kw_only=True)
class OrchestrationContext:
    """The shared system context of orchestration.

    Attributes:
        store, broker: the backend.
        templates: the registered task templates.
        rng: drives backoff jitter (seed it for reproducible tests).
        retry_wakeup: set when a retry was scheduled, so the retry timer re-plans its sleep.
        poison_count: messages archived as poison, per queue.
    """

    store: Store
    broker: Broker
    templates: TemplateRegistry
    rng: random.Random = attrs.field(factory=random.Random)
    retry_wakeup: trio.Event = attrs.field(factory=trio.Event)
    poison_count: dict[str, int] = attrs.field(factory=dict)

    def kick_retry_timer(self) -> None:
        """Tell the retry timer a new backoff may end earlier than it planned."""
        self.retry_wakeup.set()
