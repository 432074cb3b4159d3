"""Pure support logic for orchestration: backoff, error classification, viable steps, status."""

from tasker_trio.orchestration.support.backoff import DEFAULT_JITTER as DEFAULT_JITTER
from tasker_trio.orchestration.support.backoff import BackoffCalculator as BackoffCalculator
from tasker_trio.orchestration.support.backoff import delay_ms as delay_ms
from tasker_trio.orchestration.support.backoff import next_retry_at as next_retry_at
from tasker_trio.orchestration.support.backoff import policy_delay_ms as policy_delay_ms
from tasker_trio.orchestration.support.error_classification import (
    TIMEOUT_ERROR_TYPE as TIMEOUT_ERROR_TYPE,
)
from tasker_trio.orchestration.support.error_classification import (
    UNSERIALIZABLE_RESULT_ERROR_TYPE as UNSERIALIZABLE_RESULT_ERROR_TYPE,
)
from tasker_trio.orchestration.support.error_classification import (
    ErrorClassification as ErrorClassification,
)
from tasker_trio.orchestration.support.error_classification import (
    classify_exception as classify_exception,
)
from tasker_trio.orchestration.support.error_classification import (
    classify_timeout as classify_timeout,
)
from tasker_trio.orchestration.support.error_classification import (
    classify_unserializable_result as classify_unserializable_result,
)
from tasker_trio.orchestration.support.error_classification import (
    decide_after_failure as decide_after_failure,
)
from tasker_trio.orchestration.support.execution_status import (
    ExecutionStatus as ExecutionStatus,
)
from tasker_trio.orchestration.support.execution_status import (
    execution_status as execution_status,
)
from tasker_trio.orchestration.support.execution_status import task_event_for as task_event_for
from tasker_trio.orchestration.support.viable_steps import FAILED_STATES as FAILED_STATES
from tasker_trio.orchestration.support.viable_steps import IN_FLIGHT_STATES as IN_FLIGHT_STATES
from tasker_trio.orchestration.support.viable_steps import RUNNABLE_STATES as RUNNABLE_STATES
from tasker_trio.orchestration.support.viable_steps import StepSnapshot as StepSnapshot
from tasker_trio.orchestration.support.viable_steps import TaskSnapshot as TaskSnapshot
from tasker_trio.orchestration.support.viable_steps import (
    blocked_descendants as blocked_descendants,
)
from tasker_trio.orchestration.support.viable_steps import (
    earliest_retry_at as earliest_retry_at,
)
from tasker_trio.orchestration.support.viable_steps import failed_steps as failed_steps
from tasker_trio.orchestration.support.viable_steps import is_failed as is_failed
from tasker_trio.orchestration.support.viable_steps import is_viable as is_viable
from tasker_trio.orchestration.support.viable_steps import step_facts as step_facts
from tasker_trio.orchestration.support.viable_steps import viable_steps as viable_steps
