"""tasker_trio: workflow orchestration on Trio's structured concurrency.

This module only re-exports the public API; everything lives in its own module.
"""

from tasker_trio.engine import open_engine as open_engine
from tasker_trio.engine_api import Engine as Engine
from tasker_trio.engine_api import Submission as Submission
from tasker_trio.errors import DeadLetterNotFound as DeadLetterNotFound
from tasker_trio.errors import DuplicateTask as DuplicateTask
from tasker_trio.errors import HandlerResolutionError as HandlerResolutionError
from tasker_trio.errors import InvalidContext as InvalidContext
from tasker_trio.errors import InvalidTaskRequest as InvalidTaskRequest
from tasker_trio.errors import InvalidTransition as InvalidTransition
from tasker_trio.errors import MalformedData as MalformedData
from tasker_trio.errors import PermanentError as PermanentError
from tasker_trio.errors import RetryableError as RetryableError
from tasker_trio.errors import StepNotFound as StepNotFound
from tasker_trio.errors import TaskerError as TaskerError
from tasker_trio.errors import TaskNotFound as TaskNotFound
from tasker_trio.errors import TemplateError as TemplateError
from tasker_trio.errors import UnknownTemplate as UnknownTemplate
from tasker_trio.errors import WaitTimeout as WaitTimeout
from tasker_trio.models import DeadLetterEntry as DeadLetterEntry
from tasker_trio.models import RetryPolicy as RetryPolicy
from tasker_trio.models import StepExecutionResult as StepExecutionResult
from tasker_trio.models import Task as Task
from tasker_trio.models import TaskRequest as TaskRequest
from tasker_trio.models import Transition as Transition
from tasker_trio.models import WorkflowStep as WorkflowStep
from tasker_trio.state_machine import StepState as StepState
from tasker_trio.state_machine import TaskState as TaskState
from tasker_trio.templates import TaskTemplate as TaskTemplate
from tasker_trio.templates import TemplateRegistry as TemplateRegistry
from tasker_trio.templates import load_template as load_template
from tasker_trio.templates import load_templates as load_templates
from tasker_trio.worker.context import StepContext as StepContext
from tasker_trio.worker.handlers import step_handler as step_handler

__version__ = "0.1.0"
