"""Hydrators: turn a `QueueMessage` into the domain object it carries.

A message that does not parse becomes a `PoisonMessage` naming the queue, the message id and
every problem; consumers archive it with that reason and carry on (semantics §6).
"""

from __future__ import annotations

from typing import TypeVar

from tasker_trio.errors import MalformedData, PoisonMessage
from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    JsonModel,
    StepMessage,
    StepResultMessage,
    TaskFinalizationMessage,
    TaskRequestMessage,
)

M = TypeVar("M", bound=JsonModel)


def hydrate(message: QueueMessage, model: type[M]) -> M:
    """Parse ``message`` as ``model``.

    Raises:
        PoisonMessage: the payload is not a valid ``model``.
    """
    try:
        return model.from_json(message.payload)
    except MalformedData as exc:
        raise PoisonMessage(message.queue, str(exc), msg_id=message.msg_id) from exc


def hydrate_step_result(message: QueueMessage) -> StepResultMessage:
    """A worker's result notice."""
    return hydrate(message, StepResultMessage)


def hydrate_task_request(message: QueueMessage) -> TaskRequestMessage:
    """A task request sent through the queue."""
    return hydrate(message, TaskRequestMessage)


def hydrate_finalization(message: QueueMessage) -> TaskFinalizationMessage:
    """A finalization request."""
    return hydrate(message, TaskFinalizationMessage)


def hydrate_step(message: QueueMessage) -> StepMessage:
    """A step message in a worker queue."""
    return hydrate(message, StepMessage)
