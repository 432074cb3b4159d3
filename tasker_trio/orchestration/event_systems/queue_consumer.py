"""A queue consumer: read batches, hydrate, dispatch, then delete — or archive as poison.

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
from typing import Any

import attrs
import trio

from tasker_trio.errors import BackendError, PoisonMessage, TaskerError
from tasker_trio.messaging.protocol import Broker, QueueMessage

_log = logging.getLogger("tasker_trio.orchestration.consumer")

Dispatch = Callable[[QueueMessage], Awaitable[Any]]


@attrs.frozen(kw_only=True)
class ConsumerSettings:
    """How a consumer reads its queue."""

    batch_size: int = 32
    visibility_timeout: float = 30.0
    poll_interval: float = 1.0
    concurrency: int = 16


class QueueConsumer:
    """Consume one queue with ``dispatch`` (which raises `PoisonMessage` for bad input)."""

    def __init__(
        self,
        broker: Broker,
        queue: str,
        dispatch: Dispatch,
        settings: ConsumerSettings,
        *,
        on_poison: Callable[[str, str], None],
    ) -> None:
        self.broker = broker
        self.queue = queue
        self.dispatch = dispatch
        self.settings = settings
        self.on_poison = on_poison
        self._limiter = trio.Semaphore(settings.concurrency)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until cancelled."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                messages = await self.broker.read(
                    self.queue,
                    limit=self.settings.batch_size,
                    visibility_timeout=self.settings.visibility_timeout,
                )
                if not messages:
                    await self.broker.wait_for_messages(
                        self.queue, timeout=self.settings.poll_interval
                    )
                    continue
                if len(messages) == 1:
                    # The common case when idle: handle it here, sparing a task spawn.
                    await self._limiter.acquire()
                    await self._handle(messages[0])
                    continue
                for message in messages:
                    await self._limiter.acquire()
                    nursery.start_soon(self._handle, message)

    async def _handle(self, message: QueueMessage) -> None:
        try:
            await self.dispatch(message)
        except PoisonMessage as exc:
            await self._archive(message, exc.reason)
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
            await self._archive(message, f"{type(exc).__name__}: {exc}")
            return
        except Exception:
            # Not the message's fault (e.g. a backend hiccup): it becomes visible again after
            # its visibility timeout and is retried then.
            _log.exception(
                "processing message %s of %s failed; it will be retried", message.msg_id, self.queue
            )
            return
        finally:
            self._limiter.release()
        await self.broker.delete(self.queue, message.msg_id)

    async def _archive(self, message: QueueMessage, reason: str) -> None:
        _log.warning("archiving poison message %s of %s: %s", message.msg_id, self.queue, reason)
        await self.broker.archive(self.queue, message.msg_id, reason=reason)
        self.on_poison(self.queue, reason)
