"""The restart policy: how many loop crashes an actor may survive, and how to escalate one.

`RestartPolicy` is the value an actor class declares; `RestartWindow` applies it to the crash
times of one actor; `CrashActor` is what a handler raises to crash its actor's loop on purpose
instead of returning an error to its caller.
"""

from __future__ import annotations

from collections import deque

import attrs

__all__ = ["RestartPolicy", "RestartWindow"]


@attrs.frozen(kw_only=True)
class RestartPolicy:
    """One-for-one restart limits for an actor's loop.

    Attributes:
        max_restarts: restarts allowed within ``window``; the crash after those is fatal and
            the registry shuts every actor down and raises `ActorCrashed`. ``0`` makes the
            first crash fatal.
        window: the sliding window, in seconds of the Trio clock. A crash exactly ``window``
            seconds old no longer counts.
    """

    max_restarts: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    window: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))


class RestartWindow:
    """The crash times of one actor within its policy's window (mutable, one per actor).

    Args:
        policy: the limits to apply.
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._crashes: deque[float] = deque()

    def record_crash(self, now: float) -> bool:
        """Record a crash at ``now``; return whether the actor may be restarted.

        Args:
            now: the Trio clock's current time.

        Returns:
            ``True`` while the crashes within the window (this one included) number at most
            ``max_restarts``; ``False`` when this crash exceeds the policy.
        """
        crashes = self._crashes
        crashes.append(now)
        horizon = now - self.policy.window
        while crashes and crashes[0] <= horizon:
            crashes.popleft()
        return len(crashes) <= self.policy.max_restarts

    @property
    def recent(self) -> int:
        """How many crashes are in the window as of the last `record_crash`."""
        return len(self._crashes)
