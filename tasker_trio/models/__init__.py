"""Frozen attrs value types: tasks, steps, transitions, results and queue messages."""

from tasker_trio.models.base import JsonModel as JsonModel
from tasker_trio.models.codec import canonical_json as canonical_json
from tasker_trio.models.codec import identity_hash as identity_hash
from tasker_trio.models.dead_letter import DeadLetterEntry as DeadLetterEntry
from tasker_trio.models.dead_letter import DeadLetterStatus as DeadLetterStatus
from tasker_trio.models.messages import (
    ORCHESTRATION_STEP_RESULTS as ORCHESTRATION_STEP_RESULTS,
)
from tasker_trio.models.messages import (
    ORCHESTRATION_TASK_FINALIZATIONS as ORCHESTRATION_TASK_FINALIZATIONS,
)
from tasker_trio.models.messages import (
    ORCHESTRATION_TASK_REQUESTS as ORCHESTRATION_TASK_REQUESTS,
)
from tasker_trio.models.messages import StepMessage as StepMessage
from tasker_trio.models.messages import StepResultMessage as StepResultMessage
from tasker_trio.models.messages import TaskFinalizationMessage as TaskFinalizationMessage
from tasker_trio.models.messages import TaskRequestMessage as TaskRequestMessage
from tasker_trio.models.messages import worker_queue as worker_queue
from tasker_trio.models.policy import BackoffKind as BackoffKind
from tasker_trio.models.policy import RetryPolicy as RetryPolicy
from tasker_trio.models.policy import StepType as StepType
from tasker_trio.models.results import StepError as StepError
from tasker_trio.models.results import StepExecutionResult as StepExecutionResult
from tasker_trio.models.step import StepEdge as StepEdge
from tasker_trio.models.step import WorkflowStep as WorkflowStep
from tasker_trio.models.task import Task as Task
from tasker_trio.models.task import TaskRequest as TaskRequest
from tasker_trio.models.transition import EntityKind as EntityKind
from tasker_trio.models.transition import Transition as Transition
from tasker_trio.models.transition import TransitionLog as TransitionLog
