"""A queue consumer: read batches, hydrate, dispatch, then delete — or archive as poison.

Messages of one read that share a key (the step results of one task) can be handled
together by a `GroupDispatch`, so one store operation covers them all.

Wake-ups come from the broker (`Broker.wait_for_messages`: a send in memory, NOTIFY in
PostgreSQL) with polling as the fallback. A message is deleted only after its command was
processed, so a crash in between redelivers it (at-least-once; consumers are idempotent).
A message that cannot be hydrated, or whose command fails with a `TaskerError` (an unknown
task, step or template, an invalid context...), is archived with the reason and counted; a
`BackendError` or an unexpected exception leaves it for redelivery. Nothing crashes the
consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio

from tasker_trio.errors import BackendError, PoisonMessage, TaskerError
from tasker_trio.messaging.protocol import Broker, QueueMessage
from tasker_trio.messaging.resilient import read_or_pause, wait_or_pause

_log = logging.getLogger("tasker_trio.orchestration.consumer")

Dispatch = Callable[[QueueMessage], Awaitable[Any]]


@attrs.frozen(kw_only=True)
class GroupDispatch:
    """Handle the messages of one read that share a key (e.g. a task) together.

    Attributes:
        key: the group of a message; ``None`` (or an exception) sends it to the plain
            one-message dispatch instead, which reports what is wrong with it.
        dispatch: handles one group; returns the poison reason of any message in it that
            must be archived (by msg_id); the others are deleted.
        consumes: the dispatch deletes the group's other messages itself, atomically with
            the store operation that processed them (fewer commits); the consumer then only
            archives the poison ones. A dispatch that raises must have deleted nothing.
    """

    key: Callable[[QueueMessage], str | None]
    dispatch: Callable[[list[QueueMessage]], Awaitable[dict[int, str]]]
    consumes: bool = False


@attrs.frozen(kw_only=True)
class ConsumerSettings:
    """How a consumer reads its queue."""

    batch_size: int = 32
    visibility_timeout: float = 30.0
    poll_interval: float = 1.0
    concurrency: int = 16


@attrs.frozen(kw_only=True)
class _Unit:
    messages: list[QueueMessage]
    grouped: bool


class QueueConsumer:
    """Consume one queue with ``dispatch`` (which raises `PoisonMessage` for bad input).

    ``read`` replaces ``broker.read`` (e.g. `Store.read_for_processing`, which reads the
    tasks the messages name along with them). With ``consumes``, ``dispatch`` deletes its
    message itself, atomically with the store operation that processed it (a task request,
    with its task's creation): the consumer deletes nothing then, and archives a poison
    message as ever (a dispatch that raises must have deleted nothing).
    """

    def __init__(
        self,
        broker: Broker,
        queue: str,
        dispatch: Dispatch,
        settings: ConsumerSettings,
        *,
        on_poison: Callable[[str, str], None],
        group: GroupDispatch | None = None,
        consumes: bool = False,
        read: Callable[..., Awaitable[list[QueueMessage]]] | None = None,
    ) -> None:
        self.broker = broker
        self.read = read
        self.queue = queue
        self.dispatch = dispatch
        self.settings = settings
        self.on_poison = on_poison
        self.group = group
        self.consumes = consumes
        self._limiter = trio.Semaphore(settings.concurrency)
        self._nursery: trio.Nursery | None = None
        self._handed: dict[str | None, list[QueueMessage]] = {}
        self.handed_over = 0

    @property
    def hold_seconds(self) -> float:
        """How long a message handed over here stays hidden from other readers."""
        return self.settings.visibility_timeout

    def deliver(self, message: QueueMessage) -> None:
        """Process ``message`` as if this consumer had just read it (a `LocalResults`).

        For messages sent in this process that no other reader sees for `hold_seconds`
        (a result handed over by a worker here). Never blocks: messages of one group key
        that arrive while that group is being processed are processed together next, so a
        fan-out's results become a few store operations rather than one each. Before the
        consumer runs, or once it stopped, the message is left to turn visible and be read.
        """
        if self._nursery is None:
            return
        key: str | None = None
        if self.group is not None:
            try:
                key = self.group.key(message)
            except Exception:
                key = None
        self.handed_over += 1
        if key is None:
            self._nursery.start_soon(self._drain_one, message)
            return
        if key in self._handed:
            self._handed[key].append(message)  # its drain takes it next
            return
        self._handed[key] = [message]
        self._nursery.start_soon(self._drain, key)

    async def _drain(self, key: str) -> None:
        try:
            while batch := self._handed[key]:
                self._handed[key] = []
                await self._limiter.acquire()
                await self._handle(_Unit(messages=batch, grouped=True))
        finally:
            del self._handed[key]

    async def _drain_one(self, message: QueueMessage) -> None:
        await self._limiter.acquire()
        await self._handle(_Unit(messages=[message], grouped=False))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    messages = await read_or_pause(
                        partial(
                            self.read or self.broker.read,
                            self.queue,
                            limit=self.settings.batch_size,
                            visibility_timeout=self.settings.visibility_timeout,
                        ),
                        self.queue,
                        pause=min(self.settings.poll_interval, 1.0),
                    )
                    units = self._units(messages)
                    if len(units) == 1:
                        # The common case when idle: handle it here, sparing a task spawn.
                        await self._limiter.acquire()
                        await self._handle(units[0])
                    else:
                        for unit in units:
                            await self._limiter.acquire()
                            nursery.start_soon(self._handle, unit)
                    if len(messages) < self.settings.batch_size:
                        # The queue was drained when read: rather than read it again (empty, as
                        # a rule), wait — which returns at once if a message is visible by now.
                        await wait_or_pause(
                            self.broker, self.queue, timeout=self.settings.poll_interval
                        )
            finally:
                self._nursery = None

    def _units(self, messages: list[QueueMessage]) -> list[_Unit]:
        """The work of one read: groups of messages sharing a key, and single messages."""
        if self.group is None:
            return [_Unit(messages=[message], grouped=False) for message in messages]
        groups: dict[str, list[QueueMessage]] = {}
        singles: list[_Unit] = []
        for message in messages:
            try:
                key = self.group.key(message)
            except Exception:
                key = None
            if key is None:
                singles.append(_Unit(messages=[message], grouped=False))
            else:
                groups.setdefault(key, []).append(message)
        return [*(_Unit(messages=m, grouped=True) for m in groups.values()), *singles]

    async def _handle(self, unit: _Unit) -> None:
        try:
            await self._process(unit.messages, grouped=unit.grouped)
        finally:
            self._limiter.release()

    async def _process(self, unit: list[QueueMessage], *, grouped: bool) -> None:
        poison: dict[int, str] = {}
        consumed = False
        message = unit[0]
        try:
            if grouped and self.group is not None:
                poison = await self.group.dispatch(unit)
                consumed = self.group.consumes
            else:
                await self.dispatch(message)
                consumed = self.consumes
        except PoisonMessage as exc:
            for bad in unit:
                await self._archive(bad, exc.reason)
            return
        except BackendError:
            _log.exception(
                "backend failure on message %s of %s; it will be retried",
                message.msg_id,
                self.queue,
            )
            return
        except TaskerError as exc:
            # Unknown task or step, unknown template, invalid context...: the message is bad.
            for bad in unit:
                await self._archive(bad, f"{type(exc).__name__}: {exc}")
            return
        except Exception:
            # Not the message's fault (e.g. a backend hiccup): it becomes visible again after
            # its visibility timeout and is retried then.
            _log.exception(
                "processing message %s of %s failed; it will be retried", message.msg_id, self.queue
            )
            return
        try:
            for done in unit:
                if done.msg_id in poison:
                    await self._archive(done, poison[done.msg_id])
                elif not consumed:
                    await self.broker.delete(self.queue, done.msg_id)
        except BackendError:
            # Processed but not deleted: redelivered after its visibility timeout, and the
            # second processing changes nothing (consumers are idempotent).
            _log.warning("could not delete processed messages of %s", self.queue, exc_info=True)

    async def _archive(self, message: QueueMessage, reason: str) -> None:
        _log.warning("archiving poison message %s of %s: %s", message.msg_id, self.queue, reason)
        await self.broker.archive(self.queue, message.msg_id, reason=reason)
        self.on_poison(self.queue, reason)
