"""`ActorRef`: the caller's handle on a running actor — ask, tell, tell_nowait, statistics.

Refs are built only by the registry. They hold no state of their own beyond the actor's
cell, so copying or sharing a ref is free.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

import trio

from tasker_trio.actors.actor import Actor
from tasker_trio.actors.cell import ActorCell, ReplySlot
from tasker_trio.actors.message import Message
from tasker_trio.actors.statistics import ActorStatistics
from tasker_trio.errors import AskTimeout, MailboxFull

__all__ = ["ActorRef"]

A = TypeVar("A", bound=Actor[Any])
R = TypeVar("R")


class ActorRef(Generic[A]):
    """A handle for sending messages to one actor. Get one from `ActorRegistry.ref`.

    ``A`` is the actor's class, so ``registry.ref(Echo)`` is an ``ActorRef[Echo]``.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: ActorCell) -> None:
        self._cell = cell

    @property
    def name(self) -> str:
        """The actor's name."""
        return self._cell.name

    @property
    def actor_type(self) -> type[A]:
        """The actor's class."""
        return cast(type[A], type(self._cell.actor))

    # The API asks for `ask(msg, timeout=...)`: the timeout is part of the ask's
    # contract (it becomes AskTimeout naming the actor), not a generic cancellation.
    async def ask(self, message: Message[R], *, timeout: float | None = None) -> R:  # noqa: ASYNC109
        """Send ``message`` and wait for its handler's reply.

        Every ask resolves exactly once: with the reply, the handler's exception, a timeout,
        or `ActorStopped` — never a hang while the actor lives. If the caller is cancelled or
        times out before a handler took the message, the handler is not run.

        Args:
            message: the message; its type must be one the actor handles.
            timeout: seconds (Trio clock) to wait in total, mailbox backpressure included;
                ``None`` waits until the reply or the actor's stop.

        Returns:
            What the handler returned.

        Raises:
            UnhandledMessage: the actor has no handler for this message type (raised before
                anything is sent; the actor is unaffected).
            ActorStopped: the actor is stopped or stopping, or stopped (or crashed) before it
                finished handling the message.
            AskTimeout: no reply within ``timeout``.
            Exception: whatever the handler raised, re-raised here; the actor keeps running.
        """
        cell = self._cell
        slot = ReplySlot()
        envelope = (message, cell.lookup(message), slot)
        if timeout is None:
            if not cell.post_nowait(envelope):
                await cell.post(envelope)
            return cast(R, await slot.wait())
        with trio.move_on_after(timeout):
            if not cell.post_nowait(envelope):
                await cell.post(envelope)
            return cast(R, await slot.wait())
        raise AskTimeout(cell.name, type(message).__qualname__, timeout)

    async def tell(self, message: Message[Any]) -> None:
        """Send ``message`` without waiting for it to be handled; wait while the mailbox is full.

        A told message's handler error is logged and counted as failed by the actor.

        Raises:
            UnhandledMessage: the actor has no handler for this message type.
            ActorStopped: the actor is stopped or stopping.
        """
        cell = self._cell
        await cell.post((message, cell.lookup(message), None))

    def tell_nowait(self, message: Message[Any]) -> None:
        """Send ``message`` without waiting at all.

        Raises:
            UnhandledMessage: the actor has no handler for this message type.
            MailboxFull: the mailbox is at capacity; nothing was sent.
            ActorStopped: the actor is stopped or stopping.
        """
        cell = self._cell
        if not cell.post_nowait((message, cell.lookup(message), None)):
            raise MailboxFull(cell.name, cell.capacity)

    def statistics(self) -> ActorStatistics:
        """A frozen snapshot of the actor's figures (see `ActorStatistics`)."""
        return self._cell.statistics()

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.name!r} ({type(self._cell.actor).__qualname__})>"
