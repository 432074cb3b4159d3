"""Task and step state machines: states, events, tables, guards, and `transition` (pure)."""

from tasker_trio.state_machine.guards import StepFacts as StepFacts
from tasker_trio.state_machine.guards import TaskFacts as TaskFacts
from tasker_trio.state_machine.machine import STEP_MACHINE as STEP_MACHINE
from tasker_trio.state_machine.machine import TASK_MACHINE as TASK_MACHINE
from tasker_trio.state_machine.machine import MachineSpec as MachineSpec
from tasker_trio.state_machine.machine import transition as transition
from tasker_trio.state_machine.step import STEP_TERMINAL_STATES as STEP_TERMINAL_STATES
from tasker_trio.state_machine.step import STEP_TRANSITIONS as STEP_TRANSITIONS
from tasker_trio.state_machine.step import StepEvent as StepEvent
from tasker_trio.state_machine.step import StepState as StepState
from tasker_trio.state_machine.task import TASK_TERMINAL_STATES as TASK_TERMINAL_STATES
from tasker_trio.state_machine.task import TASK_TRANSITIONS as TASK_TRANSITIONS
from tasker_trio.state_machine.task import TaskEvent as TaskEvent
from tasker_trio.state_machine.task import TaskState as TaskState
