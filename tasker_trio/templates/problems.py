"""Collect every problem of one template, and read typed fields from its raw mapping.

The parser never stops at the first problem: each reader below records what is wrong (with
file, step and field) in a `Problems` and returns a usable default, so the user sees every
problem of a template at once. Unknown keys become warnings, not errors.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Collection, Mapping
from typing import Any

import attrs

from tasker_trio.errors import TemplateError
from tasker_trio.models.policy import BackoffKind, RetryPolicy
from tasker_trio.templates.model import TemplateWarning

RETRY_KEYS = frozenset(
    {"retryable", "max_attempts", "limit", "backoff", "backoff_base_ms", "max_backoff_ms"}
)
"""Keys of a ``retry`` block; ``limit`` is tasker-core's older name for ``max_attempts``."""


def kind(value: object) -> str:
    """A short, user-facing name for the JSON type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def suggestion(word: str, choices: Collection[str]) -> str:
    """``" (did you mean 'x'?)"`` when ``word`` looks like a typo of one of ``choices``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@attrs.define
class Problems:
    """The errors and warnings found so far in one template file.

    Attributes:
        file: the file name every problem is reported against.
        errors: the errors, in the order found.
        warnings: the warnings, in the order found.
    """

    file: str
    errors: list[TemplateError] = attrs.Factory(list)
    warnings: list[TemplateWarning] = attrs.Factory(list)

    def error(self, reason: str, *, step: str | None = None, field: str | None = None) -> None:
        """Record an error at ``step`` / ``field``."""
        self.errors.append(TemplateError(reason, file=self.file, step=step, field=field))

    def warn(self, message: str, *, step: str | None = None, field: str | None = None) -> None:
        """Record a warning at ``step`` / ``field``."""
        self.warnings.append(
            TemplateWarning(message=message, file=self.file, step=step, field=field)
        )

    def unknown_keys(
        self,
        raw: Mapping[Any, Any],
        known: Collection[str],
        *,
        prefix: str = "",
        step: str | None = None,
    ) -> None:
        """Warn about every key of ``raw`` that is not in ``known`` (it is ignored)."""
        for key in raw:
            if key not in known:
                name = str(key)
                self.warn(
                    f"unknown key {name!r} is ignored{suggestion(name, known)}",
                    step=step,
                    field=prefix + name,
                )

    # ----------------------------------------------------------------- typed readers

    def string(
        self,
        raw: Mapping[str, Any],
        key: str,
        *,
        field: str,
        step: str | None = None,
        required: bool = False,
    ) -> str | None:
        """``raw[key]`` as a non-empty string; ``None`` (after an error if required) otherwise."""
        value = raw.get(key)
        if value is None:
            if required:
                self.error("is required", step=step, field=field)
            return None
        if not isinstance(value, str) or not value.strip():
            hint = f' (quote it: {key}: "{value}")' if isinstance(value, int | float) else ""
            self.error(
                f"must be a non-empty string, got {kind(value)}{hint}", step=step, field=field
            )
            return None
        return value

    def mapping(
        self, raw: Mapping[str, Any], key: str, *, field: str, step: str | None = None
    ) -> dict[str, Any] | None:
        """A deep copy of ``raw[key]`` when it is a mapping; ``None`` when absent or wrong."""
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.error(f"must be a mapping, got {kind(value)}", step=step, field=field)
            return None
        return copy.deepcopy(dict(value))

    def positive_number(
        self, raw: Mapping[str, Any], key: str, *, field: str, step: str | None = None
    ) -> float | None:
        """``raw[key]`` as a finite number > 0; ``None`` when absent or wrong."""
        value = raw.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            self.error(f"must be a positive number, got {value!r}", step=step, field=field)
            return None
        return value

    def int_in_range(
        self,
        raw: Mapping[str, Any],
        key: str,
        low: int,
        high: int,
        *,
        field: str,
        step: str | None = None,
    ) -> int | None:
        """``raw[key]`` as an integer in ``low..high``; ``None`` when absent or wrong."""
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(
                f"must be an integer in {low}..{high}, got {value!r}", step=step, field=field
            )
            return None
        return value

    def retry_fields(
        self, raw: Mapping[str, Any], *, field: str, step: str | None = None
    ) -> dict[str, Any]:
        """The valid fields of a ``retry`` block, keyed by `RetryPolicy` attribute names.

        Each field is checked on its own against `RetryPolicy`'s validators, so every bad
        field is reported (``retry.max_attempts``, ``retry.backoff``, ...).
        """
        self.unknown_keys(raw, RETRY_KEYS, prefix=field + ".", step=step)
        given = {key: raw[key] for key in RETRY_KEYS if key in raw and raw[key] is not None}
        if "limit" in given:
            if "max_attempts" in given:
                self.error(
                    "give max_attempts or its alias limit, not both",
                    step=step,
                    field=f"{field}.limit",
                )
            given.setdefault("max_attempts", given["limit"])
            del given["limit"]
        valid: dict[str, Any] = {}
        for key in sorted(given):
            value = given[key]
            where = f"{field}.{key}"
            if key == "retryable":
                if not isinstance(value, bool):
                    self.error(f"must be true or false, got {value!r}", step=step, field=where)
                    continue
            elif key == "backoff":
                if not isinstance(value, str) or value not in {k.value for k in BackoffKind}:
                    choices = ", ".join(k.value for k in BackoffKind)
                    self.error(f"must be one of {choices}, got {value!r}", step=step, field=where)
                    continue
            elif isinstance(value, bool) or not isinstance(value, int):
                self.error(f"must be an integer, got {value!r}", step=step, field=where)
                continue
            try:
                RetryPolicy(**{key: value})
            except (TypeError, ValueError) as exc:
                self.error(str(exc), step=step, field=where)
                continue
            valid[key] = value
        return valid
