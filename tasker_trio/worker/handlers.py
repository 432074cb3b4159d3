"""Step handlers: registering them by name, and resolving a template's ``handler.callable``.

A reference is ``package.module:function``, ``package.module.ClassName`` (a class with a
``call`` method, instantiated once per worker), or a name registered with
`step_handler`. A handler takes a `StepContext` and returns a JSON-serializable dict (or
``None``); it may be ``async def`` or a plain function (run in a thread).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

from tasker_trio.errors import HandlerResolutionError

HandlerFn = Callable[..., Any]
F = TypeVar("F", bound=HandlerFn)

_REGISTERED: dict[str, HandlerFn] = {}


def step_handler(name: str) -> Callable[[F], F]:
    """Register a handler function (or class with ``call``) under ``name``.

    Example::

        @tasker_trio.step_handler("square")
        def square(ctx: StepContext) -> dict:
            return {"value": ctx.get_input("value") ** 2}

    Raises:
        ValueError: another object is already registered under ``name``.
    """

    def register(handler: F) -> F:
        existing = _REGISTERED.get(name)
        if existing is not None and existing is not handler:
            raise ValueError(f"a step handler named {name!r} is already registered: {existing!r}")
        _REGISTERED[name] = handler
        return handler

    return register


def registered_handlers() -> Mapping[str, HandlerFn]:
    """Every handler registered with `step_handler`, by name."""
    return dict(_REGISTERED)


@attrs.frozen(kw_only=True)
class ResolvedHandler:
    """A handler ready to call: ``fn(ctx)``; ``is_async`` says whether to await it."""

    reference: str
    fn: Callable[[Any], Any]
    is_async: bool

    def call_async(self, ctx: Any) -> Awaitable[Any]:
        """Call an async handler."""
        result: Awaitable[Any] = self.fn(ctx)
        return result


class HandlerResolver:
    """Resolve handler references, caching each (so a class is instantiated once).

    Args:
        handlers: handlers given to the engine by name; they take precedence over the
            `step_handler` registry and import paths.
    """

    def __init__(self, handlers: Mapping[str, HandlerFn] | None = None) -> None:
        self._explicit = dict(handlers or {})
        self._cache: dict[str, ResolvedHandler] = {}

    def resolve(self, reference: str) -> ResolvedHandler:
        """The handler for ``reference``.

        Raises:
            HandlerResolutionError: it cannot be imported, or is not callable.
        """
        cached = self._cache.get(reference)
        if cached is None:
            cached = self._cache[reference] = self._resolve(reference)
        return cached

    def _resolve(self, reference: str) -> ResolvedHandler:
        target: Any = self._explicit.get(reference) or _REGISTERED.get(reference)
        if target is None:
            target = _import(reference)
        if inspect.isclass(target):
            call = getattr(target, "call", None)
            if call is None:
                raise HandlerResolutionError(reference, "a handler class needs a call method")
            try:
                instance: Any = target()
            except Exception as exc:
                raise HandlerResolutionError(
                    reference, f"cannot instantiate {target.__name__}(): {exc}"
                ) from exc
            target = instance.call
        if not callable(target):
            raise HandlerResolutionError(reference, f"{target!r} is not callable")
        return ResolvedHandler(
            reference=reference, fn=target, is_async=inspect.iscoroutinefunction(target)
        )


def _import(reference: str) -> Any:
    if ":" in reference:
        module_name, _, attribute = reference.partition(":")
    elif "." in reference:
        module_name, _, attribute = reference.rpartition(".")
    else:
        raise HandlerResolutionError(
            reference,
            "no handler is registered under this name (use @step_handler, the engine's "
            "handlers=..., or an import path like package.module:function)",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerResolutionError(reference, f"cannot import {module_name}: {exc}") from exc
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerResolutionError(
                reference, f"module {module_name} has no attribute {attribute}"
            ) from None
    return target
