"""Reads of orders (STYLE: selectors own the queries the API and admin run)."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from matching.models import OrderMatch
from orders.models import Execution, Order, OrderEvent

INTERNAL = "internal"
VENUE = "venue"


@dataclass(frozen=True)
class OrderExecution:
    """One execution of an order (SPEC §9): an internal match or a venue fill.

    ``exec_id`` is the venue's ExecID for a fill and ``M<match id>`` for a match;
    ``match_id`` is the match's id, ``None`` for a venue fill.
    """

    exec_id: str
    source: str
    quantity: int
    price: Decimal
    executed_at: datetime
    match_id: int | None = None


def order_list(*, user, filters=None) -> QuerySet[Order]:
    """The orders ``user`` may see: their own, or every order for staff."""
    queryset = Order.objects.all()
    if not user.is_staff:
        queryset = queryset.filter(owner=user)
    if filters:
        queryset = queryset.filter(**filters)
    return queryset


def match_list_for_order(*, order: Order) -> QuerySet[OrderMatch]:
    """The fills of one order, oldest first."""
    field = "buy_order" if order.side == Order.Side.BUY else "sell_order"
    return OrderMatch.objects.filter(**{field: order}).order_by("matched_at", "id")


def execution_list_for_order(*, order: Order) -> list[OrderExecution]:
    """Every execution of one order, internal matches and venue fills, oldest first: two queries."""
    matches = [
        OrderExecution(
            exec_id=f"M{match_id}",
            source=INTERNAL,
            quantity=quantity,
            price=price,
            executed_at=matched_at,
            match_id=match_id,
        )
        for match_id, quantity, price, matched_at in match_list_for_order(order=order).values_list(
            "id", "quantity", "price", "matched_at"
        )
    ]
    fills = [
        OrderExecution(exec_id=exec_id, source=VENUE, quantity=quantity, price=price, executed_at=executed_at)
        for exec_id, quantity, price, executed_at in Execution.objects.filter(order=order)
        .order_by("cum_quantity")
        .values_list("exec_id", "quantity", "price", "executed_at")
    ]
    # Each list is in its own order already (matches by time then id, fills by CumQty);
    # a stable sort by time keeps that order among equal timestamps.
    return sorted(matches + fills, key=lambda execution: execution.executed_at)


def order_event_last_id() -> int:
    """The newest order event's id (0 when there is none): where a follower starts."""
    return OrderEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
