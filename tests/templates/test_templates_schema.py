"""Task contexts checked against a template's input_schema, with the failing JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from tasker_trio.errors import InvalidContext
from tasker_trio.templates import TaskTemplate, json_path, validate_context

ORDER_SCHEMA = {
    "type": "object",
    "required": ["order"],
    "properties": {
        "order": {
            "type": "object",
            "required": ["order_id", "items"],
            "properties": {
                "order_id": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["sku", "qty"],
                        "properties": {
                            "sku": {"type": "string"},
                            "qty": {"type": "integer", "minimum": 1},
                        },
                    },
                },
            },
        }
    },
}


def template(schema: Any) -> TaskTemplate:
    return TaskTemplate.from_json(
        {"name": "t", "namespace_name": "shop", "version": "1.0.0", "input_schema": schema}
    )


def failure(context: Any, schema: Any = ORDER_SCHEMA) -> InvalidContext:
    with pytest.raises(InvalidContext) as info:
        validate_context(template(schema), context)
    return info.value


def good_order(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {"order_id": "o-1", "items": [{"sku": "x", "qty": 1}]}
    order.update(changes)
    return {"order": order}


def test_valid_context_passes() -> None:
    validate_context(template(ORDER_SCHEMA), good_order(email="a@example.com"))


def test_no_schema_accepts_anything() -> None:
    validate_context(template(None), {"anything": [1, 2]})


def test_failing_path_points_into_arrays() -> None:
    error = failure(good_order(items=[{"sku": "x", "qty": 1}, {"sku": "y", "qty": 0}]))
    assert error.path == "$.order.items[1].qty"
    assert error.template == "shop/t@1.0.0"
    assert "0 is less than the minimum of 1" in error.reason
    assert str(error).startswith("context for shop/t@1.0.0 is invalid at $.order.items[1].qty:")


def test_missing_required_property_names_the_property() -> None:
    error = failure({"order": {"items": []}})
    assert error.path == "$.order.order_id"
    assert "'order_id' is a required property" in error.reason


def test_root_type_error() -> None:
    assert failure([1, 2]).path == "$"


def test_format_is_checked() -> None:
    assert failure(good_order(email="not-an-email")).path == "$.order.email"


def test_several_problems_are_counted() -> None:
    error = failure({"order": {"order_id": 5, "items": "none"}})
    assert "(and 1 more problem)" in error.reason


def test_draft_07_schema_is_honoured() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer", "exclusiveMaximum": 3}},
    }
    assert failure({"n": 3}, schema).path == "$.n"


def test_invalid_context_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"\$\.order"):
        validate_context(template(ORDER_SCHEMA), {"order": 1})


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        ([], "$"),
        (["order", "items", 0, "qty"], "$.order.items[0].qty"),
        (["first name"], "$['first name']"),
        (["it's"], "$['it\\'s']"),
        ([3, 4], "$[3][4]"),
    ],
)
def test_json_path(parts: list[str | int], path: str) -> None:
    assert json_path(parts) == path
