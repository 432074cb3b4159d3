"""`JsonModel`: the JSON round trip every model shares."""

from __future__ import annotations

from typing import Any, Self

from tasker_trio.models.codec import parse_json, structure, unstructure


class JsonModel:
    """Mixin for frozen attrs models: ``to_json()`` and ``from_json(data)`` round-trip."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        """The model as plain JSON data (enums as values, nested models as objects)."""
        data: dict[str, Any] = unstructure(self)
        return data

    @classmethod
    def from_json(cls, data: object) -> Self:
        """Build the model from plain JSON data.

        Raises:
            MalformedData: the data lacks a field or has a value of the wrong type.
        """
        return structure(data, cls)

    @classmethod
    def from_json_text(cls, text: str | bytes) -> Self:
        """Build the model from JSON text (see `from_json`)."""
        return parse_json(text, cls)
