"""Writes other code makes to reach the venue: rows in the durable outbox (SPEC §9).

Call these inside the transaction that makes the decision (the order's transition):
the row commits with it or not at all, and ``run_gateway`` sends committed rows in
``id`` order. Values are the order's own (``buy``, ``limit``, ``gtc``); the gateway
turns them into FIX. Invalid values raise ``InvalidOutboxMessage`` and store nothing.
"""

from __future__ import annotations

from decimal import Decimal

from exchange.models import OutboxMessage

SIDES = ("buy", "sell")
ORD_TYPES = ("market", "limit")
TIMES_IN_FORCE = ("day", "gtc", "ioc", "fok")


class InvalidOutboxMessage(ValueError):
    pass


def _check(condition: bool, text: str) -> None:
    if not condition:
        raise InvalidOutboxMessage(text)


def _check_id(name: str, value: str) -> None:
    _check(
        bool(value) and len(value) <= 64 and value.isprintable() and "=" not in value,
        f"{name} must be 1-64 printable characters",
    )


def outbox_new_order(
    *,
    cl_ord_id: str,
    symbol: str,
    side: str,
    quantity: int,
    ord_type: str,
    price: Decimal | None = None,
    time_in_force: str = "day",
    attempt: int = 1,
) -> OutboxMessage:
    """A NewOrderSingle for our order ``cl_ord_id`` (its UUID); re-sending one the venue holds is harmless."""
    cl_ord_id = str(cl_ord_id)
    _check_id("cl_ord_id", cl_ord_id)
    _check(bool(symbol) and len(symbol) <= 12 and symbol.isalnum(), "symbol must be an ISIN")
    _check(side in SIDES, f"side must be one of {SIDES}")
    _check(ord_type in ORD_TYPES, f"ord_type must be one of {ORD_TYPES}")
    _check(time_in_force in TIMES_IN_FORCE, f"time_in_force must be one of {TIMES_IN_FORCE}")
    _check(isinstance(quantity, int) and quantity > 0, "quantity must be a whole number above 0")
    if ord_type == "limit":
        _check(price is not None and Decimal(price) > 0, "a limit order needs a price above 0")
    else:
        _check(price is None, "a market order has no price")
    return OutboxMessage.objects.create(
        kind=OutboxMessage.Kind.NEW_ORDER,
        cl_ord_id=cl_ord_id,
        symbol=symbol,
        side=side,
        order_qty=quantity,
        ord_type=ord_type,
        price=price,
        time_in_force=time_in_force,
        attempt=attempt,
    )


def outbox_cancel(
    *, cl_ord_id: str, orig_cl_ord_id: str, side: str = "", symbol: str = "", attempt: int = 1
) -> OutboxMessage:
    """An OrderCancelRequest for order ``orig_cl_ord_id``; ``cl_ord_id`` names this request (unique)."""
    cl_ord_id, orig_cl_ord_id = str(cl_ord_id), str(orig_cl_ord_id)
    _check_id("cl_ord_id", cl_ord_id)
    _check_id("orig_cl_ord_id", orig_cl_ord_id)
    _check(cl_ord_id != orig_cl_ord_id, "a cancel request needs a ClOrdID of its own")
    _check(side in SIDES + ("",), f"side must be one of {SIDES}")
    return OutboxMessage.objects.create(
        kind=OutboxMessage.Kind.CANCEL,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig_cl_ord_id,
        side=side,
        symbol=symbol,
        attempt=attempt,
    )


def outbox_status_request(*, cl_ord_id: str, side: str = "") -> OutboxMessage:
    """An OrderStatusRequest: the venue answers with an ExecutionReport ExecType=I."""
    cl_ord_id = str(cl_ord_id)
    _check_id("cl_ord_id", cl_ord_id)
    _check(side in SIDES + ("",), f"side must be one of {SIDES}")
    return OutboxMessage.objects.create(
        kind=OutboxMessage.Kind.STATUS_REQUEST, cl_ord_id=cl_ord_id, side=side
    )


def outbox_status_requests(cl_ord_ids: list[str]) -> int:
    """Status requests for many orders in one INSERT (reconcile on logon); returns how many."""
    rows = [
        OutboxMessage(kind=OutboxMessage.Kind.STATUS_REQUEST, cl_ord_id=str(c)[:64]) for c in cl_ord_ids if c
    ]
    OutboxMessage.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
