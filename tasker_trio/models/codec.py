"""JSON conversion of the models: one cattrs converter, errors translated to `MalformedData`.

Every model's ``to_json()`` / ``from_json(data)`` goes through here, so enums become their
values, timestamps stay floats (seconds), nested models nest, and a malformed document is
reported with the JSON path of every problem instead of a bare ``KeyError``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Iterable
from typing import Any, TypeVar

import cattrs
import orjson
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


def dumps_compact(value: Any) -> str:
    """Compact JSON text of JSON data, for the database (plans, ``jsonb`` parameters).

    orjson's encoder: about 15 times the standard library's on a plan (a plan's encoding was
    the largest single share of the engine's CPU on PostgreSQL). What orjson refuses and JSON
    allows (integers beyond 64 bits) goes through the standard library, to the same text.
    Only JSON data reaches it: contexts are checked on the way in (`json_problem`) and
    results by the worker, for orjson writes NaN as ``null`` where the standard library
    writes a token PostgreSQL refuses.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(parts: Iterable[str | int]) -> str:
    """A JSONPath for a location: ``["order", "items", 0, "qty"]`` -> ``$.order.items[0].qty``.

    Keys that are not identifiers are bracketed: ``$['first name']``.
    """
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.match(part):
            path += f".{part}"
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            path += f"['{escaped}']"
    return path


def json_problem(value: object) -> tuple[str, str] | None:
    """Where ``value`` is not JSON data, and what is wrong there, e.g. ``("$.rate", "nan is
    not a JSON number")``; None when it is JSON data: dicts with string keys, lists and
    tuples, strings, integers, finite floats, booleans and None.
    """
    try:
        json.dumps(value, allow_nan=False)  # NaN, infinities, other types, cycles
        orjson.dumps(value)  # keys that are not strings (and integers beyond 64 bits)
    except (TypeError, ValueError):
        return _first_problem(value, [], set())
    return None


def _first_problem(
    value: object, parts: list[str | int], path_ids: set[int]
) -> tuple[str, str] | None:
    if value is None or isinstance(value, str | int):  # bool is an int
        return None
    if isinstance(value, float):
        return (
            None
            if math.isfinite(value)
            else (json_path(parts), f"{value!r} is not a JSON number (JSON has no NaN or infinity)")
        )
    if isinstance(value, dict | list | tuple):
        if id(value) in path_ids:
            return json_path(parts), "it contains itself (a circular reference)"
        path_ids.add(id(value))
        items: Iterable[tuple[object, object]] = (
            value.items() if isinstance(value, dict) else enumerate(value)
        )
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                return json_path(parts), f"key {key!r} is not a string (JSON keys are strings)"
            assert isinstance(key, str | int)
            found = _first_problem(item, [*parts, key], path_ids)
            if found is not None:
                return found
        path_ids.discard(id(value))
        return None
    return json_path(parts), f"a {type(value).__name__} is not JSON data"


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
