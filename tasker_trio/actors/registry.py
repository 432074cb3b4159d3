"""The registry: builds actors, starts them in order, stops them in reverse, supervises.

`open_registry` is the only way to run actors. It is a nursery tree: one task per actor in
the registry's nursery, each with its own cancel scope and a nursery of handler tasks.
Actors start in declaration order (each only after the previous one's ``started()``
returned) and stop in reverse order: close the mailbox, drain for ``stop_grace`` (only when
the ``async with`` body ended normally), cancel the actor's scope, then run ``stopped()``
shielded within ``stop_deadline``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar, overload

import trio

from tasker_trio.actors.actor import Actor
from tasker_trio.actors.cell import ActorCell
from tasker_trio.actors.ref import ActorRef
from tasker_trio.actors.statistics import RegistryStatistics
from tasker_trio.actors.supervision import run_actor
from tasker_trio.errors import ActorCrashed, StopDeadlineExceeded, UnknownActor

__all__ = ["ActorRegistry", "open_registry"]

C = TypeVar("C")
A = TypeVar("A", bound=Actor[Any])

_logger = logging.getLogger("tasker_trio.actors")


class ActorRegistry(Generic[C]):
    """The running actors of one system, and typed access to them.

    Built and run only by `open_registry`; use it inside that ``async with`` block.

    Args:
        context: the shared system context handed to every actor factory.
        factories: one per actor, in start order: an `Actor` subclass or any callable taking
            the context and returning an actor (e.g. ``functools.partial(Cls, name="x")``).

    Raises:
        ValueError: two actors share a name.
    """

    def __init__(self, context: C, factories: Sequence[Callable[[C], Actor[C]]]) -> None:
        self.context = context
        self._cells: list[ActorCell] = []
        self._by_name: dict[str, ActorCell] = {}
        for factory in factories:
            cell = ActorCell(factory(context), self._on_fatal)
            if cell.name in self._by_name:
                raise ValueError(f"two actors are named {cell.name!r}")
            self._cells.append(cell)
            self._by_name[cell.name] = cell
        self._body_scope: trio.CancelScope | None = None
        self.fatal: ActorCrashed | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The actors' names, in start order."""
        return tuple(cell.name for cell in self._cells)

    @overload
    def ref(self, key: type[A]) -> ActorRef[A]: ...
    @overload
    def ref(self, key: str) -> ActorRef[Actor[Any]]: ...
    def ref(self, key: type[A] | str) -> ActorRef[A] | ActorRef[Actor[Any]]:
        """The ref of the actor named ``key``, or of the only actor of class ``key``.

        A class matches actors of exactly that class first, then instances of subclasses.

        Raises:
            UnknownActor: no actor has that name; or none, or several, are of that class.
        """
        if isinstance(key, str):
            cell = self._by_name.get(key)
            if cell is None:
                raise UnknownActor(f"no actor named {key!r}; actors: {', '.join(self.names)}")
            return ActorRef(cell)
        matches = [cell for cell in self._cells if type(cell.actor) is key] or [
            cell for cell in self._cells if isinstance(cell.actor, key)
        ]
        if len(matches) != 1:
            found = ", ".join(cell.name for cell in matches) or "none"
            raise UnknownActor(
                f"expected exactly one actor of class {key.__qualname__}, found {found}"
            )
        return ActorRef(matches[0])

    def statistics(self) -> RegistryStatistics:
        """A frozen snapshot of every actor's figures, in start order, with totals."""
        return RegistryStatistics.from_actors(tuple(cell.statistics() for cell in self._cells))

    def _on_fatal(self, cell: ActorCell, error: ActorCrashed) -> None:
        """An actor crashed beyond its policy: refuse its messages and end the registry."""
        cell.fail_pending()
        if self.fatal is None:
            self.fatal = error
        if self._body_scope is not None:
            self._body_scope.cancel()

    async def _start_all(self, nursery: trio.Nursery) -> None:
        """Start every actor in declaration order; the first failure propagates."""
        for cell in self._cells:
            await nursery.start(run_actor, cell)
        _logger.info("started %d actor(s): %s", len(self._cells), ", ".join(self.names))

    async def _stop_all(self, *, drain: bool) -> list[Exception]:
        """Stop every actor in reverse order; return the errors of their ``stopped()``."""
        errors: list[Exception] = []
        try:
            for cell in reversed(self._cells):
                errors.extend(await _stop_cell(cell, drain=drain))
        finally:
            for cell in self._cells:  # never leave a task behind, whatever happened above
                if cell.scope is not None:
                    cell.scope.cancel()
        return errors


async def _stop_cell(cell: ActorCell, *, drain: bool) -> list[Exception]:
    """Close, drain (within the grace period), cancel, then run ``stopped()`` shielded."""
    actor = cell.actor
    cell.close_mailbox()
    if cell.scope is not None and not cell.finished.is_set():
        if cell.state != "crashed":
            cell.state = "stopping"
        if drain:
            with trio.move_on_after(actor.stop_grace):
                await cell.finished.wait()
            if not cell.finished.is_set():
                actor.log.warning("not drained within %gs; cancelling", actor.stop_grace)
        cell.scope.cancel()
        await cell.finished.wait()
    cell.fail_pending()
    errors: list[Exception] = []
    if cell.started_once:
        with trio.move_on_after(actor.stop_deadline, shield=True) as deadline:
            try:
                await actor.stopped()
            except Exception as error:
                actor.log.exception("stopped() failed")
                errors.append(error)
        if deadline.cancelled_caught:
            exceeded = StopDeadlineExceeded(cell.name, actor.stop_deadline, "stopped()")
            actor.log.error("%s", exceeded)
            errors.append(exceeded)
    if cell.state != "crashed":
        cell.state = "stopped"
    return errors


@asynccontextmanager
async def open_registry(
    context: C, actors: Sequence[Callable[[C], Actor[C]]]
) -> AsyncIterator[ActorRegistry[C]]:
    """Build, start and supervise ``actors``; stop them in reverse order on exit.

    When the body ends normally (or an actor's fatal crash ends it), each actor drains its
    mailbox for up to its ``stop_grace`` before it is cancelled. When the body raises or is
    cancelled, actors are cancelled at once, still in reverse order, and every ``stopped()``
    still runs, shielded, within its ``stop_deadline``.

    Args:
        context: the shared system context given to every actor.
        actors: actor classes (or factories taking the context), in start order.

    Yields:
        The running `ActorRegistry`, once every actor's ``started()`` returned.

    Raises:
        ValueError: two actors share a name.
        ActorCrashed: an actor's loop crashed beyond its restart policy; the ``async with``
            body was cancelled and every actor stopped in reverse order first.
        StopDeadlineExceeded: an actor's ``stopped()`` overran its deadline (after all the
            others were stopped).
        Exception: the error of an actor's ``started()`` (the actors already started are
            stopped in reverse first), or of the body, or of a ``stopped()``.
    """
    registry = ActorRegistry(context, actors)
    body_error: BaseException | None = None
    stop_errors: list[Exception] = []
    try:
        async with trio.open_nursery() as nursery:
            try:
                body_scope = registry._body_scope = trio.CancelScope()
                with body_scope:
                    await registry._start_all(nursery)
                    yield registry
            except BaseException as error:
                body_error = error
                raise
            finally:
                # Only a body that ended normally (or was ended by a fatal crash) gets the
                # drain; an error, ^C or a cancelled caller gets the ordered, bounded stop
                # without it, so failing fast is never held up by stop_grace.
                cancelled = trio.current_effective_deadline() == -math.inf
                drain = body_error is None and not cancelled
                with trio.CancelScope(shield=True):
                    stop_errors = await registry._stop_all(drain=drain)
    except BaseExceptionGroup as group:
        # The nursery wraps even the body's own error; hand it back unwrapped.
        if body_error is not None and group.exceptions == (body_error,):
            raise body_error from None
        raise
    if registry.fatal is not None:
        raise registry.fatal
    if len(stop_errors) == 1:
        raise stop_errors[0]
    if stop_errors:
        raise ExceptionGroup("several actors failed to stop", stop_errors)
