"""The orchestration actors: each wraps one service and handles its commands."""

from tasker_trio.orchestration.actors.actors import ORCHESTRATION_ACTORS as ORCHESTRATION_ACTORS
from tasker_trio.orchestration.actors.actors import ResultProcessorActor as ResultProcessorActor
from tasker_trio.orchestration.actors.actors import StepEnqueuerActor as StepEnqueuerActor
from tasker_trio.orchestration.actors.actors import TaskFinalizerActor as TaskFinalizerActor
from tasker_trio.orchestration.actors.actors import TaskRequestActor as TaskRequestActor
