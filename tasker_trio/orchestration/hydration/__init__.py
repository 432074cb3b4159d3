"""Hydration: queue messages -> domain objects, or `PoisonMessage` with the reason."""

from tasker_trio.orchestration.hydration.hydrators import hydrate as hydrate
from tasker_trio.orchestration.hydration.hydrators import (
    hydrate_finalization as hydrate_finalization,
)
from tasker_trio.orchestration.hydration.hydrators import hydrate_step as hydrate_step
from tasker_trio.orchestration.hydration.hydrators import hydrate_step_result as hydrate_step_result
from tasker_trio.orchestration.hydration.hydrators import (
    hydrate_task_request as hydrate_task_request,
)
