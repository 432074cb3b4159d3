"""The `Actor` base class: identity, shared context, lifecycle hooks and the handler table.

An actor subclass declares its handlers with `handles`; the table is built and checked when
the class is defined, so a malformed actor fails at import, not at its first message. The
runtime (mailbox, handler tasks, supervision) lives elsewhere; this module only describes
what an actor *is*.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar, Generic, TypeVar

from tasker_trio.actors.message import HANDLES_ATTRIBUTE, Handler, Message
from tasker_trio.actors.policy import RestartPolicy

__all__ = ["Actor", "ActorLog"]

C = TypeVar("C")

_logger = logging.getLogger("tasker_trio.actors")


class ActorLog(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that puts the actor's name in every record.

    The name is prefixed to the message (``"[step_enqueuer] started"``) and set as the
    record's ``actor`` attribute, for formatters and filters that want it structured.
    """

    def __init__(self, actor: str) -> None:
        super().__init__(_logger, {"actor": actor})
        self._prefix = f"[{actor}] "

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Prefix the actor name and attach it as ``extra={"actor": ...}``."""
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return self._prefix + str(msg), kwargs


class Actor(Generic[C]):
    """Base of every actor. ``C`` is the type of the shared system context.

    Subclass it, declare handlers with `handles`, and let an `ActorRegistry` build, start
    and stop it; other code talks to it only through its `ActorRef`.

    Class attributes (override in subclasses):
        concurrency: how many handler tasks consume the mailbox (default 1: one message at a
            time, in order).
        mailbox_capacity: the mailbox bound; senders wait (``tell``/``ask``) or get
            `MailboxFull` (``tell_nowait``) when it is full.
        stop_grace: seconds a stopping actor may spend draining its mailbox before its scope
            is cancelled.
        stop_deadline: seconds `stopped` may take (it runs shielded) before
            `StopDeadlineExceeded` is reported.
        restart_policy: how many loop crashes are restarted within which window.

    Args:
        context: the shared system context (settings, store, broker, ...). The actor layer
            never looks inside it.
        name: the actor's name in logs, statistics and errors (default: the class name).

    Raises:
        TypeError: at class definition, when two methods of one class handle the same message
            type, or a class attribute has the wrong type.
        ValueError: at class definition, when ``concurrency`` or ``mailbox_capacity`` is not
            positive or a time is negative.
    """

    concurrency: ClassVar[int] = 1
    mailbox_capacity: ClassVar[int] = 64
    stop_grace: ClassVar[float] = 5.0
    stop_deadline: ClassVar[float] = 5.0
    restart_policy: ClassVar[RestartPolicy] = RestartPolicy()
    handlers: ClassVar[Mapping[type[Message[Any]], Handler]] = {}

    def __init__(self, context: C, *, name: str | None = None) -> None:
        self.context = context
        self.name = name if name is not None else type(self).__name__
        self.log = ActorLog(self.name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Collect this class's `handles` methods on top of the inherited ones, and check."""
        super().__init_subclass__(**kwargs)
        table: dict[type[Message[Any]], Handler] = dict(cls.handlers)
        own: dict[type[Message[Any]], str] = {}
        for attribute, value in vars(cls).items():
            message_type = getattr(value, HANDLES_ATTRIBUTE, None)
            if message_type is None:
                continue
            if message_type in own:
                raise TypeError(
                    f"{cls.__qualname__}: {own[message_type]!r} and {attribute!r} both handle "
                    f"{message_type.__name__}"
                )
            own[message_type] = attribute
            table[message_type] = value
        cls.handlers = table
        _check_class_settings(cls)

    @classmethod
    def handled_types(cls) -> tuple[str, ...]:
        """The names of the message types this actor handles, sorted (for error messages)."""
        return tuple(sorted(t.__qualname__ for t in cls.handlers))

    async def started(self) -> None:
        """Run before the actor takes its first message, and again after each restart.

        Acquire resources here. If it raises on the first start, the registry stops the
        actors already started and the error propagates; on a restart, it counts as another
        crash. The default logs.
        """
        self.log.info("started")

    async def stopped(self) -> None:
        """Run once after the actor took its last message, shielded, within ``stop_deadline``.

        Release resources here. It runs even when the registry is cancelled or failing; it
        must not assume its mailbox was drained. The default logs.
        """
        self.log.info("stopped")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _check_class_settings(cls: type[Actor[Any]]) -> None:
    """Reject a nonsensical class-level setting when the actor class is defined."""
    for attribute in ("concurrency", "mailbox_capacity"):
        value = getattr(cls, attribute)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{cls.__qualname__}.{attribute} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{cls.__qualname__}.{attribute} must be at least 1, got {value}")
    for attribute in ("stop_grace", "stop_deadline"):
        value = getattr(cls, attribute)
        if not isinstance(value, int | float) or not 0 <= value < float("inf"):
            raise ValueError(f"{cls.__qualname__}.{attribute} must be finite and >= 0")
    if not isinstance(cls.restart_policy, RestartPolicy):
        raise TypeError(f"{cls.__qualname__}.restart_policy must be a RestartPolicy")
