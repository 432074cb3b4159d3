"""The TaskerError hierarchy: every error a user of tasker_trio can cause or see.

One root (`TaskerError`), precise leaves. A leaf also subclasses the builtin it refines where
that fits (`TemplateError` is a `ValueError`, `UnknownTemplate` a `LookupError`), so callers
that only know the builtins still catch the right thing. Every message says *what* was wrong
and *where* (file, step, field, state, event, actor...), and the parts are kept as attributes
so programs need not parse the text.
"""

from __future__ import annotations

from collections.abc import Sequence


class TaskerError(Exception):
    """Root of every error raised by tasker_trio."""


# --------------------------------------------------------------------------- templates


class TemplateError(TaskerError, ValueError):
    """A task template is malformed or invalid.

    Attributes:
        file: the template's file (or ``"<string>"`` when loaded from text), if known.
        step: the step the problem is in, if any.
        field: the field the problem is in (dotted, e.g. ``retry.max_attempts``), if any.
        reason: the bare description, without the location.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        step: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.step = step
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.step is not None:
            where.append(f"step {self.step!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{': '.join(where)}: {self.reason}" if where else self.reason


class TemplateCycleError(TemplateError):
    """The steps of a template form a cycle; ``cycle`` is its path, first step repeated last."""

    def __init__(self, cycle: Sequence[str], *, file: str | None = None) -> None:
        self.cycle = tuple(cycle)
        super().__init__(
            "dependency cycle: " + " -> ".join(self.cycle),
            file=file,
            step=self.cycle[0] if self.cycle else None,
            field="dependencies",
        )


class TemplateValidationError(TemplateError):
    """A template has one or more problems; ``errors`` lists each with its location."""

    def __init__(self, errors: Sequence[TemplateError], *, file: str | None = None) -> None:
        self.errors = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        count = len(self.errors)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid template ({count} {noun}):\n{lines}", file=file)

    def _format(self) -> str:
        return self.reason


class UnknownTemplate(TaskerError, LookupError):
    """No registered template has this namespace, name (and version)."""

    def __init__(self, namespace: str, name: str, version: str | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.version = version
        what = f"{namespace}/{name}" + (f"@{version}" if version else " (any version)")
        super().__init__(f"unknown task template {what}")


class DuplicateTemplate(TaskerError, ValueError):
    """A template with the same (namespace, name, version) is already registered."""

    def __init__(self, namespace: str, name: str, version: str, *, file: str | None) -> None:
        self.namespace = namespace
        self.name = name
        self.version = version
        self.file = file
        where = f" (from {file})" if file else ""
        super().__init__(f"task template {namespace}/{name}@{version} is already registered{where}")


class InvalidContext(TaskerError, ValueError):
    """A task context does not satisfy its template's ``input_schema``.

    Attributes:
        template: ``namespace/name@version`` of the template.
        path: JSON path of the failing value inside the context (``$`` for the root).
    """

    def __init__(self, template: str, path: str, reason: str) -> None:
        self.template = template
        self.path = path
        self.reason = reason
        super().__init__(f"context for {template} is invalid at {path}: {reason}")


# --------------------------------------------------------------------------- state machines


class InvalidTransition(TaskerError, ValueError):
    """An event is not legal in an entity's current state (or a guard refused it)."""

    def __init__(self, machine: str, state: str, event: str, reason: str | None = None) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        self.reason = reason
        why = f": {reason}" if reason else ""
        super().__init__(f"{machine}: event {event!r} is not allowed in state {state!r}{why}")


# --------------------------------------------------------------------------- tasks and steps


class DuplicateTask(TaskerError):
    """A task with the same identity hash already exists (see ``task_uuid``)."""

    def __init__(self, task_uuid: str, identity_hash: str) -> None:
        self.task_uuid = task_uuid
        self.identity_hash = identity_hash
        super().__init__(f"a task with identity {identity_hash[:12]}… already exists: {task_uuid}")


class InvalidTaskRequest(TaskerError, ValueError):
    """A task request is malformed for its template (e.g. a missing idempotency key)."""

    def __init__(self, template: str, field: str, reason: str) -> None:
        self.template = template
        self.field = field
        self.reason = reason
        super().__init__(f"request for {template}: field {field!r}: {reason}")


class DeadLetterNotFound(TaskerError, LookupError):
    """No dead-letter entry has this id."""

    def __init__(self, entry_id: str) -> None:
        self.entry_id = entry_id
        super().__init__(f"no dead-letter entry {entry_id}")


class TaskNotFound(TaskerError, LookupError):
    """No task has this uuid."""

    def __init__(self, task_uuid: str) -> None:
        self.task_uuid = task_uuid
        super().__init__(f"no task {task_uuid}")


class StepNotFound(TaskerError, LookupError):
    """No workflow step has this uuid (or name within a task)."""

    def __init__(self, step: str, task_uuid: str | None = None) -> None:
        self.step = step
        self.task_uuid = task_uuid
        where = f" in task {task_uuid}" if task_uuid else ""
        super().__init__(f"no step {step}{where}")


class WaitTimeout(TaskerError, TimeoutError):
    """A task did not settle (terminal or blocked) within the time waited for it."""

    def __init__(self, task_uuid: str, timeout: float, state: str) -> None:
        self.task_uuid = task_uuid
        self.timeout = timeout
        self.state = state
        super().__init__(f"task {task_uuid} is still {state} after {timeout:g}s")


class HandlerResolutionError(TaskerError, LookupError):
    """A step's ``handler.callable`` cannot be imported or is not a usable handler."""

    def __init__(self, callable_ref: str, reason: str, *, step: str | None = None) -> None:
        self.callable_ref = callable_ref
        self.step = step
        self.reason = reason
        where = f"step {step!r}: " if step else ""
        super().__init__(f"{where}cannot resolve handler {callable_ref!r}: {reason}")


class PoisonMessage(TaskerError, ValueError):
    """A queue message cannot be parsed or names an unknown entity; it is archived, not lost."""

    def __init__(self, queue: str, reason: str, *, msg_id: int | None = None) -> None:
        self.queue = queue
        self.msg_id = msg_id
        self.reason = reason
        ident = f" message {msg_id}" if msg_id is not None else " message"
        super().__init__(f"poison{ident} in {queue}: {reason}")


class MalformedData(TaskerError, ValueError):
    """JSON data (a queue message, a stored row, a file) does not have the expected shape.

    Attributes:
        kind: what the data should have been (``StepMessage``, ``TaskRequest``...).
        problems: each problem with its JSON path, e.g. ``missing required field @ $.attempt``.
    """

    def __init__(self, kind: str, problems: Sequence[str]) -> None:
        self.kind = kind
        self.problems = tuple(problems)
        super().__init__(f"malformed {kind}: {'; '.join(self.problems)}")


class BackendError(TaskerError):
    """The store or broker failed in a way that may pass (a lost connection, a timeout).

    Consumers leave the message in its queue, to be retried after its visibility timeout;
    every other `TaskerError` a message causes means the message itself is bad (poison).
    """


class ConfigurationError(TaskerError, ValueError):
    """A setting (argument, TASKER_* variable, config file) is missing or malformed."""


# --------------------------------------------------------------------------- handler outcomes


class StepHandlerError(TaskerError):
    """Base of the errors a step handler raises to say how its failure must be treated."""


class RetryableError(StepHandlerError):
    """The attempt failed but may succeed later; retried while attempts remain.

    Args:
        message: what went wrong.
        retry_after: seconds to wait before the next attempt (capped by the step's
            ``max_backoff_ms``); ``None`` lets the step's backoff policy decide.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class PermanentError(StepHandlerError):
    """The step can never succeed with this input; it is not retried."""


# --------------------------------------------------------------------------- actors


class ActorError(TaskerError):
    """Base of the errors of the actor runtime."""


class ActorStopped(ActorError):
    """The actor stopped (or was never running) before it could handle the message."""

    def __init__(self, actor: str, message_type: str | None = None) -> None:
        self.actor = actor
        self.message_type = message_type
        what = f" before handling {message_type}" if message_type else ""
        super().__init__(f"actor {actor!r} stopped{what}")


class MailboxFull(ActorError):
    """``tell_nowait`` found the actor's bounded mailbox full."""

    def __init__(self, actor: str, capacity: int) -> None:
        self.actor = actor
        self.capacity = capacity
        super().__init__(f"mailbox of actor {actor!r} is full ({capacity} messages)")


class UnhandledMessage(ActorError, TypeError):
    """An actor was sent a message type it declares no handler for."""

    def __init__(self, actor: str, message_type: str, handled: Sequence[str]) -> None:
        self.actor = actor
        self.message_type = message_type
        self.handled = tuple(handled)
        super().__init__(
            f"actor {actor!r} has no handler for {message_type}; "
            f"it handles: {', '.join(self.handled) or 'nothing'}"
        )


class AskTimeout(ActorError, TimeoutError):
    """An ``ask`` got no reply within its timeout."""

    def __init__(self, actor: str, message_type: str, timeout: float) -> None:
        self.actor = actor
        self.message_type = message_type
        self.timeout = timeout
        super().__init__(f"actor {actor!r} did not answer {message_type} within {timeout:g}s")


class ActorCrashed(ActorError):
    """An actor's loop crashed more often than its restart policy allows."""

    def __init__(self, actor: str, restarts: int, window: float, cause: BaseException) -> None:
        self.actor = actor
        self.restarts = restarts
        self.window = window
        self.cause = cause
        super().__init__(
            f"actor {actor!r} crashed after {restarts} restarts within {window:g}s: "
            f"{type(cause).__name__}: {cause}"
        )


class StopDeadlineExceeded(ActorError):
    """An actor's ``stopped()`` hook (or its drain) did not finish within its deadline."""

    def __init__(self, actor: str, deadline: float, phase: str) -> None:
        self.actor = actor
        self.deadline = deadline
        self.phase = phase
        super().__init__(f"actor {actor!r}: {phase} did not finish within {deadline:g}s")


class CrashActor(ActorError):
    """Raised by a handler to crash its actor's loop, so the supervisor restarts it.

    Any other `Exception` a handler raises is a *handler error*: it goes back to the asker (or,
    for a ``tell``, is logged and counted as failed) and the actor keeps running. Raise
    ``CrashActor("why") from error`` when the actor's own state is no longer trustworthy and
    it must run `Actor.started` again. The asker of the crashing message gets `ActorStopped`
    with this error as its ``__cause__``.
    """


class UnknownActor(ActorError, LookupError):
    """No actor (or more than one) in the registry matches a name or class."""
