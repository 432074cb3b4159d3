"""Per-actor and per-registry figures: cheap counters on the hot path, snapshots on demand.

`ActorCounters` is the mutable record the runtime updates with plain integer adds and a
bounded ring of handle latencies; `ActorStatistics` and `RegistryStatistics` are the frozen
snapshots that ``statistics()`` returns, with percentiles computed only then.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

__all__ = ["LATENCY_SAMPLES", "ActorCounters", "ActorStatistics", "RegistryStatistics"]

#: How many of the most recent handle latencies each actor keeps for its percentiles.
LATENCY_SAMPLES = 1024


class ActorCounters:
    """Mutable counters of one actor, shared by its handler tasks (Trio: no locking needed)."""

    __slots__ = ("abandoned", "failed", "handled", "in_flight", "latencies", "restarts")

    def __init__(self) -> None:
        self.handled = 0
        self.failed = 0
        self.in_flight = 0
        self.abandoned = 0
        self.restarts = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted samples (``None`` when there are none)."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@attrs.frozen(kw_only=True)
class ActorStatistics:
    """A snapshot of one actor's figures.

    Attributes:
        name: the actor's name.
        state: ``"new"``, ``"starting"``, ``"running"``, ``"restarting"``, ``"stopping"``,
            ``"stopped"`` or ``"crashed"``.
        messages_handled: handler calls that returned.
        messages_failed: handler calls that raised (handler errors and `CrashActor`).
        messages_in_flight: handler calls running now.
        messages_abandoned: asks whose caller gave up (timeout, cancellation) before a handler
            took them; their handler is not run.
        mailbox_depth: messages waiting in the mailbox.
        mailbox_capacity: the mailbox's bound.
        concurrency: how many handler tasks consume the mailbox.
        restarts: loop restarts so far.
        latency_samples: how many recent handle latencies the percentiles are taken over.
        latency_p50: median handle latency in seconds (Trio clock), ``None`` before any.
        latency_p90: 90th percentile handle latency in seconds.
        latency_p99: 99th percentile handle latency in seconds.
    """

    name: str
    state: str
    messages_handled: int
    messages_failed: int
    messages_in_flight: int
    messages_abandoned: int
    mailbox_depth: int
    mailbox_capacity: int
    concurrency: int
    restarts: int
    latency_samples: int
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None

    @classmethod
    def from_counters(
        cls,
        counters: ActorCounters,
        *,
        name: str,
        state: str,
        mailbox_depth: int,
        mailbox_capacity: int,
        concurrency: int,
    ) -> ActorStatistics:
        """Snapshot ``counters``, sorting the latency ring once for the percentiles."""
        ordered = sorted(counters.latencies)
        return cls(
            name=name,
            state=state,
            messages_handled=counters.handled,
            messages_failed=counters.failed,
            messages_in_flight=counters.in_flight,
            messages_abandoned=counters.abandoned,
            mailbox_depth=mailbox_depth,
            mailbox_capacity=mailbox_capacity,
            concurrency=concurrency,
            restarts=counters.restarts,
            latency_samples=len(ordered),
            latency_p50=_percentile(ordered, 0.50),
            latency_p90=_percentile(ordered, 0.90),
            latency_p99=_percentile(ordered, 0.99),
        )


@attrs.frozen(kw_only=True)
class RegistryStatistics:
    """A snapshot of a registry: every actor's figures, in start order, and their totals.

    Attributes:
        actors: one `ActorStatistics` per actor, in start (declaration) order.
        messages_handled: sum over the actors.
        messages_failed: sum over the actors.
        messages_in_flight: sum over the actors.
        restarts: sum over the actors.
    """

    actors: tuple[ActorStatistics, ...]
    messages_handled: int
    messages_failed: int
    messages_in_flight: int
    restarts: int

    @classmethod
    def from_actors(cls, actors: tuple[ActorStatistics, ...]) -> RegistryStatistics:
        """Total the figures of ``actors``."""
        return cls(
            actors=actors,
            messages_handled=sum(a.messages_handled for a in actors),
            messages_failed=sum(a.messages_failed for a in actors),
            messages_in_flight=sum(a.messages_in_flight for a in actors),
            restarts=sum(a.restarts for a in actors),
        )

    def by_name(self, name: str) -> ActorStatistics:
        """The figures of the actor called ``name``.

        Raises:
            KeyError: no actor of that name.
        """
        for actor in self.actors:
            if actor.name == name:
                return actor
        raise KeyError(name)
