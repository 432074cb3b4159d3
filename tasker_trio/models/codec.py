"""JSON conversion of the models: one cattrs converter, errors translated to `MalformedData`.

Every model's ``to_json()`` / ``from_json(data)`` goes through here, so enums become their
values, timestamps stay floats (seconds), nested models nest, and a malformed document is
reported with the JSON path of every problem instead of a bare ``KeyError``.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Any, TypeVar

import cattrs
from cattrs.v import format_exception

from tasker_trio.errors import MalformedData

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=False, omit_if_default=False)
"""The converter shared by every model (extra keys are ignored for forward compatibility)."""


def _strict(kind: type[Any], accepts: tuple[type[Any], ...]) -> None:
    """Make ``kind`` structure only from ``accepts`` (cattrs would coerce ``"1"`` to 1 and
    ``"false"`` to True, hiding malformed messages)."""

    def hook(value: object, _: object) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got bool")
        if not isinstance(value, accepts):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    converter.register_structure_hook(kind, hook)


# StrEnum members are strs, so cattrs would pass them through unchanged; store plain values.
converter.register_unstructure_hook(enum.StrEnum, lambda member: member.value)


def _structure_enum(value: object, cls: type[enum.StrEnum]) -> enum.StrEnum:
    """A StrEnum member from its value (more specific than the ``str`` hook below, which
    would otherwise hand back a plain ``str``)."""
    if not isinstance(value, str):
        raise TypeError(f"expected {cls.__name__}, got {type(value).__name__}")
    return cls(value)


converter.register_structure_hook(enum.StrEnum, _structure_enum)
_strict(str, (str,))
_strict(int, (int,))
_strict(float, (int, float))
_strict(bool, (bool,))


def unstructure(value: object) -> Any:
    """Turn a model (or anything the converter knows) into plain JSON-able data."""
    return converter.unstructure(value)


def structure(data: object, cls: type[T]) -> T:
    """Build a ``cls`` from plain JSON data.

    Raises:
        MalformedData: naming ``cls`` and every problem with its path (``@ $.field``).
    """
    if not isinstance(data, dict):
        raise MalformedData(cls.__name__, [f"expected a JSON object, got {type(data).__name__}"])
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = cattrs.transform_error(exc, format_exception=_describe)
        raise MalformedData(cls.__name__, problems) from exc
    except (TypeError, ValueError) as exc:
        raise MalformedData(cls.__name__, [str(exc)]) from exc


def _describe(exc: BaseException, expected: type[Any] | None) -> str:
    """cattrs' wording, plus the validator's own message for a rejected value."""
    text = format_exception(exc, expected)
    if isinstance(exc, ValueError) and str(exc):
        return f"{text}: {exc}"
    return text


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace: the same data always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_json(text: str | bytes, cls: type[T]) -> T:
    """Parse JSON text into a ``cls``; bad JSON is `MalformedData` too."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedData(cls.__name__, [f"not JSON: {exc}"]) from exc
    return structure(data, cls)


def identity_hash(
    template_identifier: str, *, context: object = None, key: str | None = None
) -> str:
    """The identity hash of a task request (semantics §7).

    SHA-256 over the template's identifier and either the idempotency ``key`` (when given) or
    the canonical JSON of the ``context``.
    """
    basis = f"key:{key}" if key is not None else f"context:{canonical_json(context)}"
    return hashlib.sha256(f"{template_identifier}\n{basis}".encode()).hexdigest()


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists and scalars), much cheaper than copy.deepcopy."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value
