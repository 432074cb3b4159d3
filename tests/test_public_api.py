"""The public surface of ``tasker_trio``: a name appearing or disappearing fails this test."""

from __future__ import annotations

import tasker_trio

PUBLIC = {
    "DeadLetterEntry",
    "DeadLetterNotFound",
    "Engine",
    "InvalidTaskRequest",
    "StepContext",
    "StepNotFound",
    "Submission",
    "TaskNotFound",
    "Transition",
    "WaitTimeout",
    "open_engine",
    "step_handler",
    "DuplicateTask",
    "HandlerResolutionError",
    "InvalidContext",
    "InvalidTransition",
    "MalformedData",
    "PermanentError",
    "RetryPolicy",
    "RetryableError",
    "StepExecutionResult",
    "StepState",
    "Task",
    "TaskRequest",
    "TaskState",
    "TaskTemplate",
    "TaskerError",
    "TemplateError",
    "TemplateRegistry",
    "UnknownTemplate",
    "WorkflowStep",
    "load_template",
    "load_templates",
}


def test_public_names_are_pinned() -> None:
    exported = {name for name in vars(tasker_trio) if not name.startswith("_")}
    # Submodules imported for the re-exports are attributes too, but not API.
    modules = {name for name in exported if type(getattr(tasker_trio, name)).__name__ == "module"}
    assert exported - modules == PUBLIC


def test_every_public_error_derives_from_tasker_error() -> None:
    for name in PUBLIC:
        value = getattr(tasker_trio, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, tasker_trio.TaskerError), name


def test_version_is_exposed() -> None:
    assert tasker_trio.__version__.count(".") == 2
