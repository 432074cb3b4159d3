"""Messages and handler declarations: what an actor can be sent, and how it says so.

A message is a frozen attrs class deriving from `Message[R]`, where ``R`` is the type of the
reply its handler returns (``Message[None]`` for fire-and-forget work). An actor declares one
handler per message type with the `handles` decorator; dispatch is by the message's type.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs

__all__ = ["HANDLES_ATTRIBUTE", "Handler", "Message", "handles"]

R_co = TypeVar("R_co", covariant=True)
R = TypeVar("R")
A = TypeVar("A")
M = TypeVar("M", bound="Message[Any]")

#: The attribute `handles` sets on a handler function: the message type it handles.
HANDLES_ATTRIBUTE = "__actor_handles__"

#: A handler as stored in an actor's dispatch table: an unbound ``async def`` method.
Handler = Callable[[Any, Any], Awaitable[Any]]


@attrs.frozen(kw_only=True)
class Message(Generic[R_co]):
    """Base of every actor message; ``R_co`` is the type of its reply.

    Subclass it as a frozen, keyword-only attrs class::

        @attrs.frozen(kw_only=True)
        class Ping(Message[int]):
            payload: int

    The reply type is what `ActorRef.ask` returns for this message, so
    ``await ref.ask(Ping(payload=1))`` is typed ``int``.
    """


def handles(
    message_type: type[Message[R]],
) -> Callable[[Callable[[A, M], Awaitable[R]]], Callable[[A, M], Awaitable[R]]]:
    """Declare an ``async def`` actor method as the handler of ``message_type``.

    The `Actor` class collects the decorated methods when it is defined; see
    `Actor.__init_subclass__` for the checks made there.

    Args:
        message_type: the `Message` subclass the method handles.

    Returns:
        A decorator that marks the method and returns it unchanged.

    Raises:
        TypeError: ``message_type`` is not a `Message` subclass, or the decorated function is
            not an ``async def``.

    Example::

        class Echo(Actor[None]):
            @handles(Ping)
            async def ping(self, msg: Ping) -> int:
                return msg.payload
    """
    if not (isinstance(message_type, type) and issubclass(message_type, Message)):
        raise TypeError(f"@handles expects a Message subclass, got {message_type!r}")

    def decorate(
        function: Callable[[A, M], Awaitable[R]],
    ) -> Callable[[A, M], Awaitable[R]]:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(
                f"handler {getattr(function, '__qualname__', function)!r} for "
                f"{message_type.__name__} must be an async def"
            )
        setattr(function, HANDLES_ATTRIBUTE, message_type)
        return function

    return decorate
