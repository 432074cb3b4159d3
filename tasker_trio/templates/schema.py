"""A template's ``input_schema``: checked to be valid at load, enforced on task contexts.

The schema may be any JSON Schema draft ``jsonschema`` knows; its ``$schema`` picks the draft
(2020-12 when absent). ``format`` keywords are checked (``format: email`` and friends), so a
context is held to everything its schema says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from jsonschema.protocols import Validator

from tasker_trio.errors import InvalidContext
from tasker_trio.models.codec import json_path

if TYPE_CHECKING:
    from tasker_trio.templates.task_template import TaskTemplate


def _validator_class(schema: Mapping[str, Any] | bool) -> type[Validator]:
    """The validator class for ``schema``'s draft (2020-12 when it names none).

    Raises:
        ValueError: ``$schema`` names a draft ``jsonschema`` does not know.
    """
    default = jsonschema.Draft202012Validator
    cls: type[Validator] = jsonschema.validators.validator_for(schema, default=default)
    if isinstance(schema, Mapping) and "$schema" in schema:
        # validator_for falls back to `default` for an unknown $schema; asking again with
        # another default tells a known draft from a fallback, using public API only.
        other = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        if other is not cls:
            raise ValueError(f"unknown $schema: {schema['$schema']!r}")
    return cls


def schema_problems(schema: Mapping[str, Any] | bool) -> list[tuple[str, str]]:
    """Everything wrong with ``schema`` as a JSON Schema, as ``(field, reason)`` pairs.

    ``field`` is dotted from ``input_schema`` (``input_schema.properties.qty.type``).
    Empty when the schema is valid.
    """
    try:
        cls = _validator_class(schema)
    except ValueError as exc:
        return [("input_schema.$schema", str(exc))]
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
    problems: list[tuple[str, str]] = []
    for error in sorted(meta.iter_errors(schema), key=lambda e: [str(p) for p in e.path]):
        field = ".".join(["input_schema", *(str(part) for part in error.absolute_path)])
        problems.append((field, f"invalid JSON Schema: {error.message}"))
    if not problems:
        problems.extend(_reference_problems(schema, schema, "input_schema"))
    return problems


def _reference_problems(root: Any, node: Any, field: str) -> list[tuple[str, str]]:
    """Every ``$ref`` below ``node`` that is not a resolvable local JSON pointer (``#/...``).

    Remote references are refused: a template must be self-contained, and loading one must
    never fetch anything from the network.
    """
    problems: list[tuple[str, str]] = []
    if isinstance(node, list):
        for index, item in enumerate(node):
            problems.extend(_reference_problems(root, item, f"{field}.{index}"))
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                reason = _unresolvable(root, value)
                if reason:
                    problems.append((f"{field}.$ref", reason))
            else:
                problems.extend(_reference_problems(root, value, f"{field}.{key}"))
    return problems


def _unresolvable(root: Any, ref: str) -> str | None:
    if not ref.startswith("#"):
        return f"only local references (#/...) are supported, got {ref!r}"
    if ref == "#" or not ref.startswith("#/"):
        return None  # the root, or a plain-name anchor that jsonschema resolves itself
    target = root
    for token in ref[2:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and key in target:
            target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            target = target[int(key)]
        else:
            return f"reference {ref!r} points to nothing in the schema"
    return None


def validate_context(template: TaskTemplate, context: Any) -> None:
    """Check a task context against the template's ``input_schema`` (nothing to do without one).

    When several things are wrong, the most relevant one (``jsonschema``'s ``best_match``) is
    reported, with the number of others. For a missing required property the path names the
    property itself (``$.order.order_id``), not the object that lacks it.

    Raises:
        InvalidContext: the context does not satisfy the schema; ``path`` is where
            (e.g. ``$.order.items[0].qty``), ``reason`` what.
    """
    schema = template.input_schema
    if schema is None:
        return
    cls = _validator_class(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = list(validator.iter_errors(context))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    assert error is not None  # errors is not empty
    parts: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:
            parts.append(missing[0])
    reason = error.message
    if len(errors) > 1:
        others = len(errors) - 1
        reason += f" (and {others} more problem{'s' if others > 1 else ''})"
    raise InvalidContext(template.identifier, json_path(parts), reason)
