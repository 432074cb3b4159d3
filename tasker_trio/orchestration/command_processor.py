"""The command processor: routes each `OrchestrationCommand` to its actor. Nothing else."""

from __future__ import annotations

from typing import Any, TypeVar

from tasker_trio.actors import Actor, ActorRegistry, Message
from tasker_trio.orchestration.actors import (
    ResultProcessorActor,
    StepEnqueuerActor,
    TaskFinalizerActor,
    TaskRequestActor,
)
from tasker_trio.orchestration.commands import (
    EnqueueReadySteps,
    FinalizeTask,
    InitializeTask,
    ProcessStepResults,
)
from tasker_trio.orchestration.context import OrchestrationContext

R = TypeVar("R")

ROUTES: dict[type[Message[Any]], type[Actor[OrchestrationContext]]] = {
    InitializeTask: TaskRequestActor,
    ProcessStepResults: ResultProcessorActor,
    EnqueueReadySteps: StepEnqueuerActor,
    FinalizeTask: TaskFinalizerActor,
}
"""Which actor handles which command."""


class CommandProcessor:
    """Sends commands to the actor that handles them and returns the reply."""

    def __init__(self, registry: ActorRegistry[OrchestrationContext]) -> None:
        self._refs = {command: registry.ref(actor) for command, actor in ROUTES.items()}

    async def process(self, command: Message[R]) -> R:
        """Route ``command`` and wait for the actor's reply (or its error)."""
        return await self._refs[type(command)].ask(command)
