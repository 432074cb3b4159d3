"""Handlers of the order fulfillment workflow (examples/templates/order_fulfillment.yaml).

A small but realistic business flow over a simulated catalog, warehouse, payment gateway and
carrier. Everything is deterministic: identifiers are derived from the order id, so running
the same order twice gives the same results.

Failures, as a real integration would report them:

- an unknown SKU, or a price that differs from the catalog's, can never succeed →
  `PermanentError` (the task becomes blocked and gets a dead-letter entry);
- a line asking for more than the warehouse holds may succeed after a restock →
  `RetryableError` with ``retry_after`` (retried until the step's attempts run out);
- an amount above the simulated card limit is declined → `PermanentError`
  (unless ``step_config.always_approve``, as in the template's ``test`` environment).
"""

from __future__ import annotations

import hashlib
from typing import Any

import trio.lowlevel

from tasker_trio import PermanentError, RetryableError, StepContext

CATALOG: dict[str, dict[str, Any]] = {
    "WIDGET-1": {"name": "Widget", "price": 19.99, "stock": 100, "weight_kg": 0.5},
    "GADGET-7": {"name": "Gadget", "price": 49.50, "stock": 20, "weight_kg": 1.2},
    "GIZMO-3": {"name": "Gizmo", "price": 5.25, "stock": 3, "weight_kg": 0.1},
}
"""The simulated catalog and warehouse: price (USD), units in stock, shipping weight."""


def digest(*parts: object, length: int = 12) -> str:
    """A short deterministic id: the first ``length`` hex digits of SHA-256 of the parts."""
    text = ":".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _cents(amount: float) -> int:
    return round(amount * 100)


def validate_order(ctx: StepContext) -> dict[str, Any]:
    """Check every line against the catalog and compute the order total.

    Raises:
        PermanentError: too many lines, an unknown SKU, a bad quantity, or a price that
            does not match the catalog.
    """
    items = ctx.get_input("items", [])
    max_items = ctx.get_config("max_items", 100)
    if len(items) > max_items:
        raise PermanentError(f"an order holds at most {max_items} lines, got {len(items)}")
    lines = []
    for index, item in enumerate(items, start=1):
        sku, quantity = item["sku"], item["quantity"]
        product = CATALOG.get(sku)
        if product is None:
            known = ", ".join(sorted(CATALOG))
            raise PermanentError(f"line {index}: unknown SKU {sku!r} (the catalog has {known})")
        if not isinstance(quantity, int) or quantity < 1:
            raise PermanentError(f"line {index} ({sku}): invalid quantity {quantity!r}")
        if _cents(item["price"]) != _cents(product["price"]):
            raise PermanentError(
                f"line {index} ({sku}): price {item['price']:.2f} does not match the "
                f"catalog price {product['price']:.2f}"
            )
        lines.append(
            {
                "sku": sku,
                "quantity": quantity,
                "unit_price_cents": _cents(product["price"]),
                "line_total_cents": _cents(product["price"]) * quantity,
            }
        )
    total_cents = sum(line["line_total_cents"] for line in lines)
    return {
        "order_id": ctx.get_input("order_id"),
        "lines": lines,
        "item_count": sum(line["quantity"] for line in lines),
        "total_cents": total_cents,
        "total": total_cents / 100,
        "currency": "USD",
    }


async def reserve_inventory(ctx: StepContext) -> dict[str, Any]:
    """Reserve every line's units in the warehouse.

    Raises:
        RetryableError: a line asks for more units than are in stock; asks to be retried
            after ``step_config.restock_check_seconds`` (a restock may arrive meanwhile).
    """
    await trio.lowlevel.checkpoint()  # stands for the warehouse API call
    order = ctx.get_dependency_result("validate_order")
    for line in order["lines"]:
        in_stock = CATALOG[line["sku"]]["stock"]
        if line["quantity"] > in_stock:
            raise RetryableError(
                f"only {in_stock} of {line['sku']} in stock, {line['quantity']} ordered; "
                "waiting for a restock",
                retry_after=ctx.get_config("restock_check_seconds", 60),
            )
    return {
        "reservation_id": f"res_{digest(order['order_id'], 'reservation')}",
        "reserved": {line["sku"]: line["quantity"] for line in order["lines"]},
        "expires_in_minutes": ctx.get_config("reservation_minutes", 15),
    }


async def charge_payment(ctx: StepContext) -> dict[str, Any]:
    """Charge the order total; the payment id is derived from the order id and amount.

    Raises:
        PermanentError: the simulated gateway declines amounts above
            ``step_config.max_amount`` (unless ``always_approve``).
    """
    await trio.lowlevel.checkpoint()  # stands for the payment gateway call
    order = ctx.get_dependency_result("validate_order")
    limit = ctx.get_config("max_amount", 5000)
    if order["total"] > limit and not ctx.get_config("always_approve", False):
        raise PermanentError(
            f"card declined: {order['total']:.2f} {order['currency']} exceeds the "
            f"limit of {limit:.2f}"
        )
    return {
        "payment_id": f"pay_{digest(order['order_id'], order['total_cents'], length=16)}",
        "amount_cents": order["total_cents"],
        "currency": order["currency"],
        "gateway": ctx.get_config("gateway", "simulated"),
        "status": "captured",
    }


def ship_order(ctx: StepContext) -> dict[str, Any]:
    """Book the shipment once stock is reserved and the payment captured."""
    order = ctx.get_dependency_result("validate_order")
    reservation = ctx.get_dependency_result("reserve_inventory")
    payment = ctx.get_dependency_result("charge_payment")
    weight_g = sum(
        round(CATALOG[line["sku"]]["weight_kg"] * 1000) * line["quantity"]
        for line in order["lines"]
    )
    carrier = ctx.get_config("carrier", "simulated")
    return {
        "tracking_number": f"{carrier[:3].upper()}{digest(order['order_id'], 'shipment').upper()}",
        "carrier": carrier,
        "weight_g": weight_g,
        "reservation_id": reservation["reservation_id"],
        "payment_id": payment["payment_id"],
    }


def notify_customer(ctx: StepContext) -> dict[str, Any]:
    """Tell the customer that the order has shipped (simulated email)."""
    order_id = ctx.get_input("order_id")
    shipment = ctx.get_dependency_result("ship_order")
    return {
        "channel": ctx.get_config("channel", "email"),
        "recipient": ctx.get_input("customer_email"),
        "subject": f"Your order {order_id} has shipped",
        "tracking_number": shipment["tracking_number"],
        "message_id": f"msg_{digest(order_id, shipment['tracking_number'])}",
    }
