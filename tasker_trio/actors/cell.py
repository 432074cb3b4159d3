"""The runtime record of one actor: its mailbox, reply slots, counters and lifecycle state.

An `ActorCell` is what the registry, the supervisor and `ActorRef` share; user code never
sees it. The mailbox carries envelopes ``(message, handler, reply slot or None)``; a
`ReplySlot` is the one-shot rendezvous between an asker and the handler that answers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import outcome
import trio

from tasker_trio.actors.actor import Actor
from tasker_trio.actors.message import Handler, Message
from tasker_trio.actors.policy import RestartWindow
from tasker_trio.actors.statistics import ActorCounters, ActorStatistics
from tasker_trio.errors import ActorCrashed, ActorStopped, UnhandledMessage

__all__ = ["ActorCell", "Envelope", "ReplySlot"]

_PENDING: Final = 0
_RESOLVED: Final = 1
_ABANDONED: Final = 2


class ReplySlot:
    """A one-shot reply: resolved at most once, waited on by exactly one asker.

    It parks the asking task directly (`trio.lowlevel.wait_task_rescheduled`), which is the
    cheapest correct rendezvous in Trio: no channel or event objects per ask. If the asker is
    cancelled (or times out) while waiting, the slot becomes *abandoned*: a later
    `resolve` is a no-op and the actor skips the message if it has not started it yet.
    """

    __slots__ = ("_outcome", "_state", "_task")

    def __init__(self) -> None:
        self._state = _PENDING
        self._task: trio.lowlevel.Task | None = None
        self._outcome: outcome.Outcome[Any] | None = None

    @property
    def pending(self) -> bool:
        """Neither resolved nor abandoned yet."""
        return self._state == _PENDING

    @property
    def abandoned(self) -> bool:
        """The asker gave up (cancelled or timed out) before a reply was resolved."""
        return self._state == _ABANDONED

    def resolve(self, result: outcome.Outcome[Any]) -> None:
        """Deliver ``result`` to the asker (first call only; later calls are ignored)."""
        if self._state != _PENDING:
            return
        self._state = _RESOLVED
        task = self._task
        if task is None:
            self._outcome = result
        else:
            self._task = None
            trio.lowlevel.reschedule(task, result)

    async def wait(self) -> Any:
        """Wait for the reply and return it, or raise the error it carries.

        Raises:
            trio.Cancelled: the asker was cancelled; the slot is then abandoned.
        """
        if self._outcome is not None:
            await trio.lowlevel.checkpoint()
            return self._outcome.unwrap()
        self._task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._task = None
            self._state = _ABANDONED
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)


#: What a mailbox carries: the message, its bound handler function and the asker's slot.
Envelope = tuple[Message[Any], Handler, ReplySlot | None]


class ActorCell:
    """One actor's runtime: mailbox, dispatch table, counters, scope and state.

    Args:
        actor: the actor instance this cell runs.
        on_fatal: called (synchronously) when the actor's crashes exceed its policy.
    """

    def __init__(
        self, actor: Actor[Any], on_fatal: Callable[[ActorCell, ActorCrashed], None]
    ) -> None:
        self.actor = actor
        self.name = actor.name
        self.capacity = actor.mailbox_capacity
        # One send channel per actor, shared by all its refs, rather than a clone() per
        # producer: the registry must close the mailbox with one call however many refs
        # exist; closing it is what handler tasks see as end-of-channel once drained.
        self.send, self.receive = trio.open_memory_channel[Envelope](self.capacity)
        self.handlers: dict[type[Message[Any]], Handler] = dict(type(actor).handlers)
        self.counters = ActorCounters()
        self.restart_window = RestartWindow(actor.restart_policy)
        self.on_fatal = on_fatal
        self.state = "new"
        self.started_once = False
        self.scope: trio.CancelScope | None = None
        self.finished = trio.Event()

    def lookup(self, message: Message[Any]) -> Handler:
        """The handler for ``message``: by its exact type, else by its nearest base class.

        Raises:
            UnhandledMessage: the actor handles neither the type nor any of its bases.
        """
        message_type = type(message)
        handler = self.handlers.get(message_type)
        if handler is not None:
            return handler
        for base in message_type.__mro__[1:]:
            handler = self.handlers.get(base)
            if handler is not None:
                self.handlers[message_type] = handler
                return handler
        raise UnhandledMessage(
            self.name, message_type.__qualname__, type(self.actor).handled_types()
        )

    def post_nowait(self, envelope: Envelope) -> bool:
        """Put ``envelope`` in the mailbox if there is room; return whether it went in.

        Raises:
            ActorStopped: the mailbox is closed.
        """
        try:
            self.send.send_nowait(envelope)
        except trio.WouldBlock:
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped(self.name, type(envelope[0]).__qualname__) from None
        return True

    async def post(self, envelope: Envelope) -> None:
        """Put ``envelope`` in the mailbox, waiting while it is full (backpressure).

        Raises:
            ActorStopped: the mailbox is (or gets) closed.
        """
        try:
            await self.send.send(envelope)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorStopped(self.name, type(envelope[0]).__qualname__) from None

    def close_mailbox(self) -> None:
        """Refuse new messages; handler tasks see end-of-channel once the queue is drained."""
        self.send.close()

    def fail_pending(self) -> None:
        """Fail every message still queued with `ActorStopped` and close the mailbox for good.

        Only called once no handler task is consuming the mailbox any more.
        """
        self.send.close()
        dropped_tells = 0
        while True:
            try:
                message, _, slot = self.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if slot is None:
                dropped_tells += 1
            else:
                slot.resolve(outcome.Error(ActorStopped(self.name, type(message).__qualname__)))
        self.receive.close()
        if dropped_tells:
            self.actor.log.warning("stopped with %d told message(s) unhandled", dropped_tells)

    def statistics(self) -> ActorStatistics:
        """A frozen snapshot of this actor's figures."""
        return ActorStatistics.from_counters(
            self.counters,
            name=self.name,
            state=self.state,
            mailbox_depth=self.receive.statistics().current_buffer_used,
            mailbox_capacity=self.capacity,
            concurrency=self.actor.concurrency,
        )
