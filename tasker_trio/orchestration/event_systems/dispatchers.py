"""What each orchestration queue's consumer does with its messages: hydrate, then command.

Step results are grouped by task, so the results of one task that arrive together are
processed in one store operation (`ProcessStepResults`), which also deletes their messages
(all but the poison ones, which the consumer archives). A task request's message is
deleted by the store operation that creates its task (`InitializeTask`).
"""

from __future__ import annotations

import attrs

from tasker_trio.errors import PoisonMessage
from tasker_trio.messaging.protocol import QueueMessage
from tasker_trio.models import (
    ORCHESTRATION_STEP_RESULTS,
    ORCHESTRATION_TASK_FINALIZATIONS,
    ORCHESTRATION_TASK_REQUESTS,
)
from tasker_trio.orchestration.command_processor import CommandProcessor
from tasker_trio.orchestration.commands import FinalizeTask, InitializeTask, ProcessStepResults
from tasker_trio.orchestration.event_systems.queue_consumer import Dispatch, GroupDispatch
from tasker_trio.orchestration.hydration import (
    hydrate_finalization,
    hydrate_step_result,
    hydrate_task_request,
)
from tasker_trio.store.protocol import MessageRef


@attrs.frozen(kw_only=True)
class QueueRoute:
    """How one queue is consumed."""

    queue: str
    dispatch: Dispatch
    group: GroupDispatch | None = None
    read_ahead: bool = False
    """Read with `Store.read_for_processing` (its messages' tasks come along)."""
    consumes: bool = False
    """``dispatch`` deletes its message itself (see `QueueConsumer`)."""


def orchestration_routes(commands: CommandProcessor) -> list[QueueRoute]:
    """The consumers of the three orchestration queues."""

    async def step_results(messages: list[QueueMessage], *, consume: bool = True) -> dict[int, str]:
        notices = [hydrate_step_result(message) for message in messages]
        consumed = tuple(MessageRef(queue=m.queue, msg_id=m.msg_id) for m in messages)
        outcome = await commands.process(
            ProcessStepResults(
                task_uuid=notices[0].task_uuid,
                notices=tuple(notices),
                consumed=consumed if consume else (),
            )
        )
        unknown = set(outcome.get("unknown_steps", ()))
        return {
            message.msg_id: f"unknown step {notice.step_uuid} of task {notice.task_uuid}"
            for message, notice in zip(messages, notices, strict=True)
            if notice.step_uuid in unknown
        }

    async def step_result(message: QueueMessage) -> None:
        poison = await step_results([message], consume=False)  # the consumer deletes it
        if poison:
            raise PoisonMessage(message.queue, poison[message.msg_id], msg_id=message.msg_id)

    async def task_request(message: QueueMessage) -> None:
        # The task's creation deletes the message (the consumer does not).
        consumed = (MessageRef(queue=message.queue, msg_id=message.msg_id),)
        request = hydrate_task_request(message).request
        await commands.process(InitializeTask(request=request, consumed=consumed))

    async def finalization(message: QueueMessage) -> None:
        await commands.process(FinalizeTask(task_uuid=hydrate_finalization(message).task_uuid))

    def task_of(message: QueueMessage) -> str:
        return hydrate_step_result(message).task_uuid

    return [
        QueueRoute(
            queue=ORCHESTRATION_STEP_RESULTS,
            dispatch=step_result,
            group=GroupDispatch(key=task_of, dispatch=step_results, consumes=True),
            read_ahead=True,
        ),
        QueueRoute(queue=ORCHESTRATION_TASK_REQUESTS, dispatch=task_request, consumes=True),
        QueueRoute(queue=ORCHESTRATION_TASK_FINALIZATIONS, dispatch=finalization),
    ]
