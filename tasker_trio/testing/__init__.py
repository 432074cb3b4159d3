"""tasker_trio.testing: a property-test harness for the engine and for your own workflows.

Re-exports only. `EngineStateMachine` is a Hypothesis stateful test of an engine, embedded
or on a scratch PostgreSQL database (subclass it to run your templates and handlers),
`TrioThread` drives a Trio run from synchronous test code, the strategies generate random DAG
templates with scripted handler behaviours, and `open_scratch_database` / `reset_database`
prepare and empty a PostgreSQL database between runs. See docs/testing.md.
"""

from tasker_trio.testing.database import open_scratch_database as open_scratch_database
from tasker_trio.testing.database import reset_database as reset_database
from tasker_trio.testing.engine_machine import EngineStateMachine as EngineStateMachine
from tasker_trio.testing.invariants import EngineSnapshot as EngineSnapshot
from tasker_trio.testing.invariants import TaskRecord as TaskRecord
from tasker_trio.testing.strategies import SCRIPTED_HANDLER as SCRIPTED_HANDLER
from tasker_trio.testing.strategies import Behaviour as Behaviour
from tasker_trio.testing.strategies import ScriptedTemplate as ScriptedTemplate
from tasker_trio.testing.strategies import StepScript as StepScript
from tasker_trio.testing.strategies import Workload as Workload
from tasker_trio.testing.strategies import dag_shapes as dag_shapes
from tasker_trio.testing.strategies import random_workloads as random_workloads
from tasker_trio.testing.strategies import retry_policies as retry_policies
from tasker_trio.testing.strategies import scripted_templates as scripted_templates
from tasker_trio.testing.strategies import step_scripts as step_scripts
from tasker_trio.testing.trio_thread import TrioCallTimeout as TrioCallTimeout
from tasker_trio.testing.trio_thread import TrioThread as TrioThread
